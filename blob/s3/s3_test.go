package s3_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/blob"
	s3 "github.com/exportd/exportd/blob/s3"
)

func TestNewRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	cases := map[string]func(*s3.Config){
		"missing bucket":   func(c *s3.Config) { c.Bucket = "nope" },
		"no bucket":        func(c *s3.Config) { c.Bucket = "" },
		"no endpoint":      func(c *s3.Config) { c.Endpoint = "" },
		"scheme":           func(c *s3.Config) { c.Endpoint = "http://" + c.Endpoint },
		"half credentials": func(c *s3.Config) { c.SecretKey = "" },
		"small parts":      func(c *s3.Config) { c.PartSize = 1 << 20 },
		"huge parts":       func(c *s3.Config) { c.PartSize = 6 << 30 },
		"bad prefix":       func(c *s3.Config) { c.Prefix = "a/../b" },
		"hidden prefix":    func(c *s3.Config) { c.Prefix = ".uploads" },
		"unreachable":      func(c *s3.Config) { c.Endpoint = "127.0.0.1:1" },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := f.config()
			change(&cfg)
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := s3.New(ctx, cfg)
			require.Error(t, err)
		})
	}
	cfg := f.config()
	cfg.Bucket = "nope"
	_, err := s3.New(ctx, cfg)
	require.ErrorContains(t, err, `s3 bucket "nope" does not exist`)
}

func TestConfigStringHidesTheSecret(t *testing.T) {
	cfg := s3.Config{Endpoint: "minio:9000", Bucket: "exports", AccessKey: "AKID", SecretKey: "s3cr3t"}
	for _, out := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprint(&cfg)} {
		require.NotContains(t, out, "s3cr3t")
		require.Contains(t, out, "AKID")
	}
}

func TestStreamedUploadGoesThroughATemporaryObject(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	s := f.store(t, f.config())
	put(t, s, "exp1/a", "t0", "old")

	u, err := s.Create(ctx, "exp1/a", "t1")
	require.NoError(t, err)
	data := strings.Repeat("0123456789abcdef", (s3.MinPartSize+1<<20)/16)
	_, err = io.WriteString(u, data)
	require.NoError(t, err)
	// The first part is on the server, under a name no key can have.
	require.Equal(t, []string{"exp1/a", ".uploads/exp1/a.t1 (multipart)"}, f.names(t))
	require.Equal(t, "old", get(t, s, "exp1/a"))

	require.NoError(t, u.Commit())
	require.Equal(t, []string{"exp1/a"}, f.names(t))
	require.Equal(t, data, get(t, s, "exp1/a"))
}

func TestSmallUploadIsOnePut(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	s := f.store(t, f.config())
	before := f.requests.Load()
	u, err := s.Create(ctx, "exp1/a", "t1")
	require.NoError(t, err)
	_, err = io.WriteString(u, strings.Repeat("x", s3.MinPartSize))
	require.NoError(t, err)
	require.Equal(t, before, f.requests.Load(), "nothing sent before Commit")
	require.NoError(t, u.Commit())
	require.Equal(t, before+1, f.requests.Load())
	require.Equal(t, []string{"exp1/a"}, f.names(t))
}

// TestLargeUploadStreamsWithBoundedMemory writes 40 MiB in 5 MiB parts.
// gofakes3 keeps every byte in this process's heap, so heap growth says
// little; the allocation profile, split by call stack into server and
// client, says what the store itself allocated.
func TestLargeUploadStreamsWithBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("40 MiB through gofakes3")
	}
	const size = 40 << 20
	ctx := context.Background()
	f := newFakeS3(t)
	s := f.store(t, f.config())

	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	clientBefore := clientAllocBytes()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)

	u, err := s.Create(ctx, "exp1/big.parquet", "a1")
	require.NoError(t, err)
	src := rand.NewChaCha8([32]byte{1})
	want := sha256.New()
	buf := make([]byte, 256<<10)
	for n := 0; n < size; n += len(buf) {
		_, _ = src.Read(buf)
		want.Write(buf)
		_, err := u.Write(buf)
		require.NoError(t, err)
	}
	require.NoError(t, u.Commit())

	client := clientAllocBytes() - clientBefore
	runtime.ReadMemStats(&m1)
	t.Logf("40 MiB upload: store and minio-go allocated %.1f MiB in all; whole process (gofakes3 included) allocated %.1f MiB, heap in use %+.1f MiB",
		mib(client), mib(m1.TotalAlloc-m0.TotalAlloc), mib(m1.HeapInuse)-mib(m0.HeapInuse))
	// One part spooled before the stream starts, one part buffered by
	// minio-go, and change.
	require.Less(t, client, int64(2*s3.MinPartSize+2<<20))

	o, err := s.Open(ctx, "exp1/big.parquet")
	require.NoError(t, err)
	defer o.Close()
	require.Equal(t, int64(size), o.Info().Size)
	got := sha256.New()
	_, err = io.Copy(got, o)
	require.NoError(t, err)
	require.Equal(t, want.Sum(nil), got.Sum(nil))
	require.Equal(t, []string{"exp1/big.parquet"}, f.names(t))
}

func mib[T int64 | uint64](n T) float64 { return float64(n) / (1 << 20) }

// clientAllocBytes sums the bytes ever allocated by stacks that are not
// serving an HTTP request nor measuring, that is by the test's writer,
// the store, minio-go and the HTTP client.
func clientAllocBytes() int64 {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+100)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var total int64
	for _, r := range recs {
		if !servingStack(r.Stack()) {
			total += r.AllocBytes
		}
	}
	return total
}

// servingStack reports whether an allocation is gofakes3's or this
// measurement's own, by any function on its stack.
func servingStack(pcs []uintptr) bool {
	frames := runtime.CallersFrames(pcs)
	for {
		fr, more := frames.Next()
		for _, p := range []string{"github.com/johannesboyne/gofakes3", "net/http.(*conn)", "net/http.(*response)", "net/http.(*chunkWriter)", "net/http/httptest", "s3_test.newFakeS3", "s3_test.clientAllocBytes"} {
			if strings.Contains(fr.Function, p) {
				return true
			}
		}
		if !more {
			return false
		}
	}
}

func TestAbandonedUploadEndsWithItsContext(t *testing.T) {
	f := newFakeS3(t)
	s := f.store(t, f.config())
	ctx, cancel := context.WithCancel(context.Background())
	u, err := s.Create(ctx, "exp1/a", "t1")
	require.NoError(t, err)
	_, err = io.WriteString(u, strings.Repeat("x", s3.MinPartSize+1))
	require.NoError(t, err)
	require.Equal(t, []string{".uploads/exp1/a.t1 (multipart)"}, f.names(t))

	cancel()
	// minio-go aborts the multipart upload once the pipe ends.
	require.Eventually(t, func() bool { return len(f.names(t)) == 0 }, 5*time.Second, 10*time.Millisecond)
	_, err = io.WriteString(u, "more")
	require.Error(t, err)
	require.Error(t, u.Commit())
	require.Empty(t, f.names(t))
}

func TestCommitWithCanceledContextShowsNothing(t *testing.T) {
	f := newFakeS3(t)
	s := f.store(t, f.config())
	for _, size := range []int{10, s3.MinPartSize + 1} {
		ctx, cancel := context.WithCancel(context.Background())
		u, err := s.Create(ctx, "exp1/a", "t1")
		require.NoError(t, err)
		_, err = io.WriteString(u, strings.Repeat("x", size))
		require.NoError(t, err)
		cancel()
		require.ErrorIs(t, u.Commit(), context.Canceled)
		require.NoError(t, u.Abort())
		_, err = s.Open(context.Background(), "exp1/a")
		require.ErrorIs(t, err, blob.ErrNotFound)
	}
	require.Eventually(t, func() bool { return len(f.names(t)) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestDeleteSweepsLeftoverTemporaryObjects(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	s := f.store(t, f.config())
	// What a Commit that died between copy and delete leaves behind.
	for _, name := range []string{"exp1/a", ".uploads/exp1/a.t1", ".uploads/exp1/a.t1.t2", ".uploads/exp10/a.t1", ".uploads/exp2/x.t1", ".uploads/exp1/junk"} {
		_, err := f.raw.PutObject(ctx, testBucket, name, strings.NewReader(name), int64(len(name)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	require.Equal(t, []string{"exp1/a"}, keys(t, s, ""))

	// "exp1/a.t" is a prefix of the temporary name of exp1/a, not of the key.
	require.NoError(t, s.DeleteUploads(ctx, "exp1/a.t"))
	require.Equal(t, []string{".uploads/exp1/a.t1", ".uploads/exp1/junk", ".uploads/exp10/a.t1", ".uploads/exp2/x.t1", "exp1/a"}, f.names(t))

	require.NoError(t, s.DeleteUploads(ctx, "exp1/"))
	require.Equal(t, []string{".uploads/exp1/junk", ".uploads/exp10/a.t1", ".uploads/exp2/x.t1", "exp1/a"}, f.names(t))
	require.Equal(t, "exp1/a", f.content(t, "exp1/a"))

	require.NoError(t, s.DeletePrefix(ctx, "exp2/"))
	require.Equal(t, []string{".uploads/exp1/junk", ".uploads/exp10/a.t1", "exp1/a"}, f.names(t))
}

func TestPrefixKeepsTheStoreInItsFolder(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	cfg := f.config()
	cfg.Prefix = "/tenant/one"
	s := f.store(t, cfg)
	outside := f.store(t, f.config())
	put(t, outside, "exp1/a", "t1", "outside")
	put(t, s, "exp1/a", "t1", "inside")
	u, err := s.Create(ctx, "exp1/b", "t1")
	require.NoError(t, err)
	_, err = io.WriteString(u, strings.Repeat("x", s3.MinPartSize+1))
	require.NoError(t, err)
	defer u.Abort()

	require.Equal(t, []string{"exp1/a", "tenant/one/exp1/a", "tenant/one/.uploads/exp1/b.t1 (multipart)"}, f.names(t))
	require.Equal(t, []string{"exp1/a"}, keys(t, s, ""))
	require.Equal(t, "inside", get(t, s, "exp1/a"))
	require.NoError(t, s.DeletePrefix(ctx, "exp1/"))
	require.Equal(t, []string{"exp1/a"}, f.names(t))
	require.Equal(t, "outside", get(t, outside, "exp1/a"))
}

func TestPresignGet(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t)
	s := f.store(t, f.config())
	put(t, s, "exp1/orders-00000.csv.gz", "t1", "0123456789")
	put(t, s, "exp2/secret.csv.gz", "t1", "not yours")

	before := f.requests.Load()
	signed, err := s.PresignGet(ctx, "exp1/orders-00000.csv.gz", time.Hour, "orders 00000.csv.gz")
	require.NoError(t, err)
	require.Equal(t, before, f.requests.Load(), "presigning is local")

	resp := fetch(t, signed, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "0123456789", resp.body)
	require.Equal(t, `attachment; filename="orders 00000.csv.gz"`, resp.Header.Get("Content-Disposition"))

	resp = fetch(t, signed, "bytes=2-5")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, "2345", resp.body)

	u, err := url.Parse(signed)
	require.NoError(t, err)
	u.Path = "/" + testBucket + "/exp2/secret.csv.gz"
	tampered := map[string]string{
		"other object":       u.String(),
		"longer expiry":      tamper(t, signed, "X-Amz-Expires", "604800"),
		"other disposition":  tamper(t, signed, "response-content-disposition", "inline"),
		"forged signature":   tamper(t, signed, "X-Amz-Signature", strings.Repeat("0", 64)),
		"added content type": tamper(t, signed, "response-content-type", "text/html"),
	}
	for name, bad := range tampered {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, http.StatusForbidden, fetch(t, bad, "").StatusCode)
		})
	}
	t.Run("expired", func(t *testing.T) {
		f.clock.Store(int64(time.Hour + time.Minute))
		defer f.clock.Store(0)
		require.Equal(t, http.StatusForbidden, fetch(t, signed, "").StatusCode)
	})
	t.Run("gofakes3 alone checks nothing", func(t *testing.T) {
		f.verify.Store(false)
		defer f.verify.Store(true)
		resp := fetch(t, tampered["other object"], "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "not yours", resp.body)
	})

	for _, d := range []time.Duration{0, time.Millisecond, -time.Hour, s3.MaxPresignExpiry + time.Second} {
		_, err := s.PresignGet(ctx, "exp1/orders-00000.csv.gz", d, "")
		require.Error(t, err, d)
	}
	for _, key := range hostileKeys {
		_, err := s.PresignGet(ctx, key, time.Hour, "")
		require.ErrorIs(t, err, blob.ErrInvalidKey, "%q", key)
	}
	plain, err := s.PresignGet(ctx, "exp1/orders-00000.csv.gz", time.Minute, "")
	require.NoError(t, err)
	require.NotContains(t, plain, "response-content-disposition")
	require.Equal(t, "0123456789", fetch(t, plain, "").body)
}

type response struct {
	*http.Response
	body string
}

func fetch(t *testing.T, rawURL, rng string) response {
	t.Helper()
	var resp *http.Response
	var err error
	if rng == "" {
		resp, err = http.Get(rawURL)
	} else {
		req, rerr := http.NewRequest(http.MethodGet, rawURL, nil)
		require.NoError(t, rerr)
		req.Header.Set("Range", rng)
		resp, err = http.DefaultClient.Do(req)
	}
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp, string(b)}
}
