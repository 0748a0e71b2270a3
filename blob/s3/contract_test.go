package s3_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/blob"
	s3 "github.com/exportd/exportd/blob/s3"
)

// fixture is one blob.Store under the contract, with a view of its
// backing storage that does not go through it.
type fixture struct {
	store blob.Store
	// partial is how many bytes an unfinished upload writes: enough for
	// the S3 store to have started a multipart upload on the server.
	partial int
	// residue lists what the backing storage holds, sorted: keys of
	// objects, and "<key> (upload)" for uploads not committed.
	residue func(t *testing.T) []string
	// fingerprint changes whenever the backing storage is reached.
	fingerprint func(t *testing.T) any
}

func localFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	residue := func(t *testing.T) []string {
		t.Helper()
		out := []string{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if base := path.Base(rel); strings.HasPrefix(base, ".") && strings.HasSuffix(base, ".upload") {
				// ".<base>.<tag>.upload" is an upload of <dir>/<base>.
				key := path.Join(path.Dir(rel), strings.TrimSuffix(base[1:], ".upload"))
				rel = key[:strings.LastIndexByte(key, '.')] + " (upload)"
			}
			out = append(out, rel)
			return nil
		})
		require.NoError(t, err)
		slices.Sort(out)
		return out
	}
	return &fixture{store: s, partial: 7, residue: residue, fingerprint: func(t *testing.T) any { return residue(t) }}
}

func s3Fixture(t *testing.T) *fixture {
	f := newFakeS3(t)
	s := f.store(t, f.config())
	residue := func(t *testing.T) []string {
		t.Helper()
		out := []string{}
		for _, n := range f.names(t) {
			n = strings.TrimSuffix(n, " (multipart)")
			if rest, ok := strings.CutPrefix(n, ".uploads/"); ok {
				n = rest[:strings.LastIndexByte(rest, '.')] + " (upload)"
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return &fixture{store: s, partial: s3.MinPartSize + 1, residue: residue,
		fingerprint: func(*testing.T) any { return f.requests.Load() }}
}

// TestContract runs the same cases against the local store and the S3
// store, so the two cannot drift apart on what blob.Store promises.
func TestContract(t *testing.T) {
	impls := []struct {
		name string
		new  func(t *testing.T) *fixture
	}{{"local", localFixture}, {"s3", s3Fixture}}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range contractCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, impl.new(t)) })
			}
		})
	}
}

func put(t *testing.T, s blob.Store, key, tag, data string) {
	t.Helper()
	u, err := s.Create(context.Background(), key, tag)
	require.NoError(t, err)
	_, err = io.WriteString(u, data)
	require.NoError(t, err)
	require.NoError(t, u.Commit())
}

func get(t *testing.T, s blob.Store, key string) string {
	t.Helper()
	o, err := s.Open(context.Background(), key)
	require.NoError(t, err)
	defer o.Close()
	b, err := io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, int64(len(b)), o.Info().Size)
	require.Equal(t, key, o.Info().Key)
	require.False(t, o.Info().ModTime.IsZero())
	return string(b)
}

func keys(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(context.Background(), prefix)
	require.NoError(t, err)
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

// unfinished starts an upload and leaves it open, as a crashed attempt
// does.
func (f *fixture) unfinished(t *testing.T, key, tag string) blob.Upload {
	t.Helper()
	u, err := f.store.Create(context.Background(), key, tag)
	require.NoError(t, err)
	_, err = io.WriteString(u, strings.Repeat("p", f.partial))
	require.NoError(t, err)
	t.Cleanup(func() { u.Abort() })
	return u
}

var contractCases = []struct {
	name string
	run  func(t *testing.T, f *fixture)
}{
	{"commit makes visible", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		u, err := f.store.Create(ctx, "exp1/orders-0001.csv.gz", "a1")
		require.NoError(t, err)
		_, err = io.WriteString(u, "hello ")
		require.NoError(t, err)
		_, err = io.WriteString(u, "world")
		require.NoError(t, err)

		_, err = f.store.Open(ctx, "exp1/orders-0001.csv.gz")
		require.ErrorIs(t, err, blob.ErrNotFound)
		require.Empty(t, keys(t, f.store, ""))

		require.NoError(t, u.Commit())
		require.Equal(t, "hello world", get(t, f.store, "exp1/orders-0001.csv.gz"))
		require.Equal(t, []string{"exp1/orders-0001.csv.gz"}, keys(t, f.store, "exp1/"))
		require.Equal(t, []string{"exp1/orders-0001.csv.gz"}, f.residue(t))

		_, err = io.WriteString(u, "more")
		require.Error(t, err, "write after commit")
		require.Error(t, u.Commit(), "second commit")
		require.NoError(t, u.Abort(), "abort after commit is a no-op")
		require.Equal(t, "hello world", get(t, f.store, "exp1/orders-0001.csv.gz"))
	}},
	{"top-level and empty objects", func(t *testing.T, f *fixture) {
		put(t, f.store, "manifest.json", "t", "{}")
		put(t, f.store, "exp1/empty", "t", "")
		require.Equal(t, "{}", get(t, f.store, "manifest.json"))
		require.Equal(t, "", get(t, f.store, "exp1/empty"))
		require.Equal(t, []string{"exp1/empty", "manifest.json"}, keys(t, f.store, ""))
	}},
	{"uncommitted uploads invisible", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a", "t1", "committed")
		f.unfinished(t, "exp1/b", "t2")
		f.unfinished(t, "exp1/a", "t2")

		require.Equal(t, []string{"exp1/a"}, keys(t, f.store, ""))
		require.Equal(t, []string{"exp1/a"}, keys(t, f.store, "exp1/"))
		_, err := f.store.Open(ctx, "exp1/b")
		require.ErrorIs(t, err, blob.ErrNotFound)
		require.Equal(t, "committed", get(t, f.store, "exp1/a"))
		require.Equal(t, []string{"exp1/a", "exp1/a (upload)", "exp1/b (upload)"}, f.residue(t))
	}},
	{"abort leaves nothing", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for _, size := range []int{10, f.partial} {
			u, err := f.store.Create(ctx, "exp1/a", "t1")
			require.NoError(t, err)
			_, err = io.WriteString(u, strings.Repeat("d", size))
			require.NoError(t, err)
			require.NoError(t, u.Abort())
			require.NoError(t, u.Abort(), "abort twice")
			require.Error(t, u.Commit(), "commit after abort")
			_, err = io.WriteString(u, "x")
			require.Error(t, err, "write after abort")

			require.Empty(t, f.residue(t), "%d bytes", size)
			_, err = f.store.Open(ctx, "exp1/a")
			require.ErrorIs(t, err, blob.ErrNotFound)
		}
	}},
	{"retry with the same tag starts over", func(t *testing.T, f *fixture) {
		f.unfinished(t, "exp1/a", "t1")
		put(t, f.store, "exp1/a", "t1", "second")
		require.Equal(t, "second", get(t, f.store, "exp1/a"))
	}},
	{"second commit replaces", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a", "t1", "first")
		u1, err := f.store.Create(ctx, "exp1/a", "t2")
		require.NoError(t, err)
		u2, err := f.store.Create(ctx, "exp1/a", "t3")
		require.NoError(t, err)
		_, err = io.WriteString(u1, "from t2")
		require.NoError(t, err)
		_, err = io.WriteString(u2, "from t3")
		require.NoError(t, err)

		require.NoError(t, u2.Commit())
		require.Equal(t, "from t3", get(t, f.store, "exp1/a"))
		require.NoError(t, u1.Commit())
		require.Equal(t, "from t2", get(t, f.store, "exp1/a"))
		require.Equal(t, []string{"exp1/a"}, keys(t, f.store, ""))
		require.Equal(t, []string{"exp1/a"}, f.residue(t))
	}},
	{"readers see whole versions", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		version := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 64<<10) }
		put(t, f.store, "exp1/a", "t0", version(0))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				o, err := f.store.Open(ctx, "exp1/a")
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(o)
				o.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if len(b) != 64<<10 || strings.Count(string(b), string(b[:1])) != len(b) {
					t.Errorf("reader saw a torn object of %d bytes", len(b))
					return
				}
			}
		})
		for i := 1; i < 20; i++ {
			put(t, f.store, "exp1/a", "t1", version(i))
		}
		close(stop)
		wg.Wait()
	}},
	{"DeleteUploads removes only uploads", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a", "t1", "A")
		put(t, f.store, "exp1/sub/b", "t1", "B")
		for _, k := range []string{"exp1/a", "exp1/c", "exp1/sub/b", "exp10/a"} {
			f.unfinished(t, k, "t2")
		}
		require.NoError(t, f.store.DeleteUploads(ctx, "exp1/"))
		require.Equal(t, []string{"exp1/a", "exp1/sub/b", "exp10/a (upload)"}, f.residue(t))
		require.Equal(t, "A", get(t, f.store, "exp1/a"))
		require.Equal(t, "B", get(t, f.store, "exp1/sub/b"))
		require.NoError(t, f.store.DeleteUploads(ctx, "exp1/"), "idempotent")
		require.ErrorIs(t, f.store.DeleteUploads(ctx, ""), blob.ErrInvalidKey)
	}},
	{"DeletePrefix stays out of siblings", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a", "t1", "A")
		put(t, f.store, "exp1/deep/er/b", "t1", "B")
		put(t, f.store, "exp10/a", "t1", "keep")
		put(t, f.store, "exp2/orders-1", "t1", "O1")
		put(t, f.store, "exp2/payments-1", "t1", "P1")
		f.unfinished(t, "exp1/c", "t2")
		f.unfinished(t, "exp2/orders-2", "t2")

		require.NoError(t, f.store.DeletePrefix(ctx, "exp1/"))
		require.NoError(t, f.store.DeletePrefix(ctx, "exp1/"), "idempotent")
		require.NoError(t, f.store.DeletePrefix(ctx, "exp2/orders-"))
		require.Equal(t, []string{"exp10/a", "exp2/payments-1"}, f.residue(t))
		require.Equal(t, "keep", get(t, f.store, "exp10/a"))

		require.NoError(t, f.store.DeletePrefix(ctx, "exp2/"))
		require.NoError(t, f.store.DeletePrefix(ctx, "nothing-here/"))
		require.ErrorIs(t, f.store.DeletePrefix(ctx, ""), blob.ErrInvalidKey)
		require.Equal(t, []string{"exp10/a"}, keys(t, f.store, ""))
	}},
	{"List by prefix in key order", func(t *testing.T, f *fixture) {
		for _, k := range []string{"b/x", "a-b", "a/z", "a/y/1", "a.txt", "ab"} {
			put(t, f.store, k, "t", k)
		}
		require.Equal(t, []string{"a-b", "a.txt", "a/y/1", "a/z", "ab", "b/x"}, keys(t, f.store, ""))
		require.Equal(t, []string{"a-b", "a.txt", "a/y/1", "a/z", "ab"}, keys(t, f.store, "a"))
		require.Equal(t, []string{"a/y/1", "a/z"}, keys(t, f.store, "a/"))
		require.Equal(t, []string{"a/y/1"}, keys(t, f.store, "a/y"))
		require.Equal(t, []string{}, keys(t, f.store, "c/"))
		require.Equal(t, []string{}, keys(t, f.store, "a-b/"), "prefix under an object")
		infos, err := f.store.List(context.Background(), "a/z")
		require.NoError(t, err)
		require.Len(t, infos, 1)
		require.Equal(t, int64(3), infos[0].Size)
	}},
	{"Open of a missing key or a folder is not found", func(t *testing.T, f *fixture) {
		put(t, f.store, "exp1/a", "t1", "A")
		for _, k := range []string{"exp1", "exp1/a/b", "exp1/b"} {
			_, err := f.store.Open(context.Background(), k)
			require.ErrorIs(t, err, blob.ErrNotFound, k)
		}
	}},
	{"invalid keys and tags refused untouched", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a", "t1", "A")
		before := f.fingerprint(t)
		for _, key := range hostileKeys {
			_, err := f.store.Create(ctx, key, "t1")
			require.ErrorIs(t, err, blob.ErrInvalidKey, "%q", key)
			_, err = f.store.Open(ctx, key)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "%q", key)
			if key != "" && key != "a/" {
				_, err = f.store.List(ctx, key)
				require.ErrorIs(t, err, blob.ErrInvalidKey, "%q", key)
				require.ErrorIs(t, f.store.DeletePrefix(ctx, key), blob.ErrInvalidKey, "%q", key)
				require.ErrorIs(t, f.store.DeleteUploads(ctx, key), blob.ErrInvalidKey, "%q", key)
			}
			require.ErrorIs(t, f.store.DeletePrefix(ctx, key+"/"), blob.ErrInvalidKey, "%q", key)
		}
		for _, tag := range []string{"", "../x", "a/b", "a.b", ".", "t\x00", strings.Repeat("t", 65)} {
			_, err := f.store.Create(ctx, "exp1/b", tag)
			require.ErrorIs(t, err, blob.ErrInvalidKey, "tag %q", tag)
		}
		require.Equal(t, before, f.fingerprint(t))
	}},
	{"longest key", func(t *testing.T, f *fixture) {
		seg := strings.Repeat("s", blob.MaxSegment-1)
		key := seg + "/" + seg + "/" + seg + "/" + seg
		require.True(t, blob.ValidKey(key))
		put(t, f.store, key, strings.Repeat("t", 64), "long")
		require.Equal(t, "long", get(t, f.store, key))
	}},
	{"Seek and ServeContent with Range", func(t *testing.T, f *fixture) {
		ctx := context.Background()
		put(t, f.store, "exp1/a.csv", "t1", "0123456789")
		o, err := f.store.Open(ctx, "exp1/a.csv")
		require.NoError(t, err)
		defer o.Close()
		req := httptest.NewRequest(http.MethodGet, "/files/a.csv", nil)
		req.Header.Set("Range", "bytes=2-5")
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "a.csv", o.Info().ModTime, o)
		require.Equal(t, http.StatusPartialContent, rec.Code)
		require.Equal(t, "2345", rec.Body.String())
		require.Equal(t, "bytes 2-5/10", rec.Header().Get("Content-Range"))

		o2, err := f.store.Open(ctx, "exp1/a.csv")
		require.NoError(t, err)
		defer o2.Close()
		n, err := o2.Seek(-3, io.SeekEnd)
		require.NoError(t, err)
		require.Equal(t, int64(7), n)
		b, err := io.ReadAll(o2)
		require.NoError(t, err)
		require.Equal(t, "789", string(b))
		_, err = o2.Seek(1, io.SeekStart)
		require.NoError(t, err)
		b = make([]byte, 2)
		_, err = io.ReadFull(o2, b)
		require.NoError(t, err)
		require.Equal(t, "12", string(b))
	}},
	{"canceled context", func(t *testing.T, f *fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.store.Create(ctx, "exp1/a", "t1")
		require.ErrorIs(t, err, context.Canceled)
		_, err = f.store.List(ctx, "")
		require.ErrorIs(t, err, context.Canceled)
		_, err = f.store.Open(ctx, "exp1/a")
		require.ErrorIs(t, err, context.Canceled)
	}},
}

// hostileKeys must be refused before they reach any storage.
var hostileKeys = []string{
	"", ".", "..", "../x", "../../etc/passwd", "a/../../b", "a/./b", "/etc/passwd", "/",
	"a//b", "a/", ".hidden", "a/.tmp", "a/.b.t1.upload", ".uploads/a.t1", "ünïcode", "caf\u00e9/x",
	"a\x00b", "a\\b", "..\\x", "C:\\x", "a b", "a:b", "%2e%2e/x", "~/x", "a\nb", "a?b", "a#b",
	strings.Repeat("a", 513),
	strings.Repeat("a/", 256) + "a",
	strings.Repeat("a", blob.MaxSegment+1),
	"x/" + strings.Repeat("a", blob.MaxSegment+1),
}
