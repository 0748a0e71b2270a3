package s3_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	s3 "github.com/exportd/exportd/blob/s3"
)

const (
	testBucket    = "exports"
	testRegion    = "us-east-1"
	testAccessKey = "AKIDEXPORTDTEST"
	testSecretKey = "exportd-test-secret"
)

// fakeS3 is gofakes3 with its in-memory backend behind a real HTTP server.
// gofakes3 checks no signature at all, so presigned URLs pass through a
// SigV4 query-signature check written here from the AWS specification;
// everything else goes straight to gofakes3.
type fakeS3 struct {
	srv      *httptest.Server
	raw      *minio.Client // inspects the bucket behind the store's back
	requests atomic.Int64  // every request the server received
	verify   atomic.Bool   // check presigned URLs (on by default)
	clock    atomic.Int64  // added to time.Now by the presign check, in ns
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(testBucket))
	f := &fakeS3{}
	f.verify.Store(true)
	fake := gofakes3.New(backend).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if _, ok := r.URL.Query()["X-Amz-Signature"]; ok && f.verify.Load() {
			now := time.Now().Add(time.Duration(f.clock.Load()))
			if err := checkPresigned(r, now); err != nil {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "<Error><Code>AccessDenied</Code><Message>%s</Message></Error>", err)
				return
			}
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	raw, err := minio.New(f.endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(testAccessKey, testSecretKey, ""),
		Region: testRegion,
	})
	require.NoError(t, err)
	f.raw = raw
	return f
}

func (f *fakeS3) endpoint() string {
	return strings.TrimPrefix(f.srv.URL, "http://")
}

func (f *fakeS3) config() s3.Config {
	return s3.Config{
		Endpoint: f.endpoint(), Bucket: testBucket, Region: testRegion,
		AccessKey: testAccessKey, SecretKey: testSecretKey, PartSize: s3.MinPartSize,
	}
}

func (f *fakeS3) store(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(context.Background(), cfg)
	require.NoError(t, err)
	return s
}

// names lists what the bucket holds: object names, then incomplete
// multipart uploads as "name (multipart)".
func (f *fakeS3) names(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	out := []string{}
	for o := range f.raw.ListObjectsIter(ctx, testBucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		out = append(out, o.Key)
	}
	for u := range f.raw.ListIncompleteUploads(ctx, testBucket, "", true) {
		if minio.ToErrorResponse(u.Err).Code == minio.NoSuchUpload {
			continue // gofakes3's answer for a bucket that never had one
		}
		require.NoError(t, u.Err)
		out = append(out, u.Key+" (multipart)")
	}
	return out
}

// content reads an object behind the store's back.
func (f *fakeS3) content(t *testing.T, name string) string {
	t.Helper()
	o, err := f.raw.GetObject(context.Background(), testBucket, name, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer o.Close()
	b, err := io.ReadAll(o)
	require.NoError(t, err)
	return string(b)
}

// checkPresigned verifies a SigV4 presigned GET as S3 does: credential
// scope, expiry, and the signature over the method, path, query and host.
func checkPresigned(r *http.Request, now time.Time) error {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return errors.New("unsupported algorithm")
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[0] != testAccessKey || scope[2] != testRegion || scope[3] != "s3" || scope[4] != "aws4_request" {
		return errors.New("bad credential")
	}
	amzDate := q.Get("X-Amz-Date")
	signedAt, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || amzDate[:8] != scope[1] {
		return errors.New("bad date")
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires < 1 || expires > 7*24*3600 {
		return errors.New("bad expiry")
	}
	if now.After(signedAt.Add(time.Duration(expires) * time.Second)) {
		return errors.New("request has expired")
	}
	if q.Get("X-Amz-SignedHeaders") != "host" {
		return errors.New("unexpected signed headers")
	}
	var params []string
	for k, vs := range q {
		if k == "X-Amz-Signature" {
			continue
		}
		for _, v := range vs {
			params = append(params, awsEscape(k, true)+"="+awsEscape(v, true))
		}
	}
	sort.Strings(params)
	canonical := strings.Join([]string{
		r.Method, awsEscape(r.URL.Path, false), strings.Join(params, "&"),
		"host:" + r.Host + "\n", "host", "UNSIGNED-PAYLOAD",
	}, "\n")
	digest := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(digest[:])
	key := []byte("AWS4" + testSecretKey)
	for _, part := range append(scope[1:], toSign) {
		key = hmacSHA256(key, part)
	}
	got, err := hex.DecodeString(q.Get("X-Amz-Signature"))
	if err != nil || !hmac.Equal(got, key) {
		return errors.New("signature does not match")
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// awsEscape is SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~
// as %XX, and '/' too when slash is set.
func awsEscape(s string, slash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' && !slash {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// tamper returns rawURL with one query parameter changed.
func tamper(t *testing.T, rawURL, param, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set(param, value)
	u.RawQuery = q.Encode()
	return u.String()
}
