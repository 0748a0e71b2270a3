package exports_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/exports"
)

// FuzzServeFileRange sends arbitrary Range (and If-Range) headers for a
// file of known bytes. The answer is 200 with the whole file, 206 with
// exactly the bytes each Content-Range advertises, or 416 naming the
// size; never anything else, never a 5xx.
func FuzzServeFileRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-99", "bytes=0-0", "bytes=-1", "bytes=-5000", "bytes=999-", "bytes=1000-", "bytes=5-2",
		"bytes=0-9,20-29", "bytes=0-9,5-14,-3", "bytes=0-", "bytes=", "bytes=-0", "bytes=--1", "bytes=0-99999999999999999999",
		"bytes=9223372036854775807-", "bytes=-9223372036854775808", "items=0-9", "bytes = 0-9", "bytes=0-9,,", "bytes=\x00-1",
		strings.Repeat("bytes=0-0,", 200),
	} {
		f.Add(s, "")
	}
	f.Add("bytes=0-9", `"etag"`)
	f.Add("bytes=0-9", "Mon, 02 Jan 2006 15:04:05 GMT")

	obj := make([]byte, 1000)
	for i := range obj {
		obj[i] = byte(i*7 + i/256)
	}
	sum := sha256.Sum256(obj)
	file := exportd.FileInfo{Name: "orders-00000.csv.gz", Format: exportd.CSV, Bytes: int64(len(obj)), SHA256: hex.EncodeToString(sum[:])}
	store, err := blob.NewLocal(f.TempDir())
	require.NoError(f, err)
	f.Cleanup(func() { _ = store.Close() })
	up, err := store.Create(context.Background(), "xrange/"+file.Name, "t")
	require.NoError(f, err)
	_, err = up.Write(obj)
	require.NoError(f, err)
	require.NoError(f, up.Commit())
	svc := &exports.Service{Store: store}
	etag := `"` + file.SHA256 + `"`

	f.Fuzz(func(t *testing.T, rng, ifRange string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/exports/xrange/files/"+file.Name, nil)
		r.Header.Set("Range", rng)
		if ifRange != "" {
			r.Header.Set("If-Range", ifRange)
		}
		w := httptest.NewRecorder()
		require.NoError(t, svc.ServeFile(w, r, "xrange", file))
		body := w.Body.Bytes()
		switch w.Code {
		case http.StatusOK:
			require.Equal(t, obj, body)
			require.Equal(t, etag, w.Header().Get("ETag"))
		case http.StatusPartialContent:
			checkPartial(t, obj, w.Header(), body)
		case http.StatusRequestedRangeNotSatisfiable:
			// Unsatisfiable ranges name the size; malformed ones need not.
			if cr := w.Header().Get("Content-Range"); cr != "" {
				require.Equal(t, fmt.Sprintf("bytes */%d", len(obj)), cr)
			}
		default:
			t.Fatalf("Range %q If-Range %q: status %d", rng, ifRange, w.Code)
		}
	})
}

// checkPartial checks a 206: one range with Content-Range, or a
// multipart/byteranges body whose every part carries its own.
func checkPartial(t *testing.T, obj []byte, h http.Header, body []byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	require.NoError(t, err)
	if mt != "multipart/byteranges" {
		checkRange(t, obj, h.Get("Content-Range"), body)
		require.Equal(t, strconv.Itoa(len(body)), h.Get("Content-Length"))
		return
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
	n := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		checkRange(t, obj, p.Header.Get("Content-Range"), b)
		n++
	}
	require.Positive(t, n)
}

func checkRange(t *testing.T, obj []byte, cr string, b []byte) {
	t.Helper()
	var first, last, size int
	_, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size)
	require.NoError(t, err, "Content-Range %q", cr)
	require.Equal(t, len(obj), size)
	require.True(t, 0 <= first && first <= last && last < size, cr)
	require.Equal(t, obj[first:last+1], b, cr)
}
