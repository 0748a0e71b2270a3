package blob_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/blob"
)

func newLocal(t *testing.T) (*blob.Local, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, dir
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

// tree maps every path under dir, hidden ones and symlinks included, to
// its content (or link target), so a test can tell that nothing changed.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "-> " + target
			return err
		case d.IsDir():
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func TestLocalCommitMakesVisible(t *testing.T) {
	ctx := context.Background()
	s, dir := newLocal(t)

	u, err := s.Create(ctx, "exp1/orders-0001.csv.gz", "a1")
	require.NoError(t, err)
	_, err = io.WriteString(u, "hello ")
	require.NoError(t, err)
	_, err = io.WriteString(u, "world")
	require.NoError(t, err)

	_, err = s.Open(ctx, "exp1/orders-0001.csv.gz")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.Empty(t, keys(t, s, ""))
	require.Equal(t, map[string]string{
		"./":                                 "",
		"exp1/":                              "",
		"exp1/.orders-0001.csv.gz.a1.upload": "hello world",
	}, tree(t, dir))

	require.NoError(t, u.Commit())
	require.Equal(t, "hello world", get(t, s, "exp1/orders-0001.csv.gz"))
	require.Equal(t, []string{"exp1/orders-0001.csv.gz"}, keys(t, s, "exp1/"))
	require.Equal(t, map[string]string{
		"./":                      "",
		"exp1/":                   "",
		"exp1/orders-0001.csv.gz": "hello world",
	}, tree(t, dir))

	_, err = io.WriteString(u, "more")
	require.Error(t, err, "write after commit")
	require.Error(t, u.Commit(), "second commit")
	require.NoError(t, u.Abort(), "abort after commit is a no-op")
	require.Equal(t, "hello world", get(t, s, "exp1/orders-0001.csv.gz"))
}

func TestLocalTopLevelKey(t *testing.T) {
	s, dir := newLocal(t)
	put(t, s, "manifest.json", "t", "{}")
	require.Equal(t, "{}", get(t, s, "manifest.json"))
	require.Equal(t, map[string]string{"./": "", "manifest.json": "{}"}, tree(t, dir))
}

func TestLocalUncommittedInvisible(t *testing.T) {
	ctx := context.Background()
	s, _ := newLocal(t)
	put(t, s, "exp1/a", "t1", "committed")

	// A crashed attempt: neither Commit nor Abort.
	u, err := s.Create(ctx, "exp1/b", "t2")
	require.NoError(t, err)
	_, err = io.WriteString(u, "partial")
	require.NoError(t, err)
	u2, err := s.Create(ctx, "exp1/a", "t2")
	require.NoError(t, err)
	_, err = io.WriteString(u2, "partial")
	require.NoError(t, err)

	require.Equal(t, []string{"exp1/a"}, keys(t, s, ""))
	require.Equal(t, []string{"exp1/a"}, keys(t, s, "exp1/"))
	_, err = s.Open(ctx, "exp1/b")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.Equal(t, "committed", get(t, s, "exp1/a"))
}

func TestLocalAbort(t *testing.T) {
	ctx := context.Background()
	s, dir := newLocal(t)
	u, err := s.Create(ctx, "exp1/a", "t1")
	require.NoError(t, err)
	_, err = io.WriteString(u, "discard me")
	require.NoError(t, err)
	require.NoError(t, u.Abort())
	require.NoError(t, u.Abort(), "abort twice")
	require.Error(t, u.Commit(), "commit after abort")
	_, err = io.WriteString(u, "x")
	require.Error(t, err, "write after abort")

	require.Equal(t, map[string]string{"./": "", "exp1/": ""}, tree(t, dir))
	_, err = s.Open(ctx, "exp1/a")
	require.ErrorIs(t, err, blob.ErrNotFound)
}

func TestLocalRetryWithSameTagStartsOver(t *testing.T) {
	ctx := context.Background()
	s, _ := newLocal(t)
	u, err := s.Create(ctx, "exp1/a", "t1")
	require.NoError(t, err)
	_, err = io.WriteString(u, "a much longer first try")
	require.NoError(t, err)

	put(t, s, "exp1/a", "t1", "second")
	require.Equal(t, "second", get(t, s, "exp1/a"))
}

func TestLocalOverwrite(t *testing.T) {
	ctx := context.Background()
	s, _ := newLocal(t)
	put(t, s, "exp1/a", "t1", "first")

	u1, err := s.Create(ctx, "exp1/a", "t2")
	require.NoError(t, err)
	u2, err := s.Create(ctx, "exp1/a", "t3")
	require.NoError(t, err)
	_, err = io.WriteString(u1, "from t2")
	require.NoError(t, err)
	_, err = io.WriteString(u2, "from t3")
	require.NoError(t, err)

	// A reader that opened the old object keeps reading it.
	old, err := s.Open(ctx, "exp1/a")
	require.NoError(t, err)
	defer old.Close()

	require.NoError(t, u2.Commit())
	require.Equal(t, "from t3", get(t, s, "exp1/a"))
	require.NoError(t, u1.Commit())
	require.Equal(t, "from t2", get(t, s, "exp1/a"))
	require.Equal(t, []string{"exp1/a"}, keys(t, s, ""))

	b, err := io.ReadAll(old)
	require.NoError(t, err)
	require.Equal(t, "first", string(b))
}

func TestLocalReadersSeeWholeVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := newLocal(t)
	version := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 64<<10) }
	put(t, s, "exp1/a", "t0", version(0))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			o, err := s.Open(ctx, "exp1/a")
			if !assertNoError(t, err) {
				return
			}
			b, err := io.ReadAll(o)
			o.Close()
			if !assertNoError(t, err) {
				return
			}
			if len(b) != 64<<10 || strings.Count(string(b), string(b[:1])) != len(b) {
				t.Errorf("reader saw a torn object of %d bytes", len(b))
				return
			}
		}
	}()
	for i := 1; i < 30; i++ {
		put(t, s, "exp1/a", "t1", version(i))
	}
	close(stop)
	wg.Wait()
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestLocalDeleteUploads(t *testing.T) {
	ctx := context.Background()
	s, dir := newLocal(t)
	put(t, s, "exp1/a", "t1", "A")
	put(t, s, "exp1/sub/b", "t1", "B")
	for _, k := range []string{"exp1/a", "exp1/c", "exp1/sub/b", "exp10/a"} {
		u, err := s.Create(ctx, k, "t2")
		require.NoError(t, err)
		_, err = io.WriteString(u, "partial")
		require.NoError(t, err)
	}

	require.NoError(t, s.DeleteUploads(ctx, "exp1/"))
	require.Equal(t, map[string]string{
		"./":                 "",
		"exp1/":              "",
		"exp1/a":             "A",
		"exp1/sub/":          "",
		"exp1/sub/b":         "B",
		"exp10/":             "",
		"exp10/.a.t2.upload": "partial",
	}, tree(t, dir))
	require.NoError(t, s.DeleteUploads(ctx, "exp1/"), "idempotent")
	require.ErrorIs(t, s.DeleteUploads(ctx, ""), blob.ErrInvalidKey)
}

func TestLocalDeletePrefix(t *testing.T) {
	ctx := context.Background()
	s, dir := newLocal(t)
	put(t, s, "exp1/a", "t1", "A")
	put(t, s, "exp1/deep/er/b", "t1", "B")
	put(t, s, "exp10/a", "t1", "keep")
	put(t, s, "exp2/orders-1", "t1", "O1")
	put(t, s, "exp2/payments-1", "t1", "P1")
	u, err := s.Create(ctx, "exp1/c", "t2")
	require.NoError(t, err)
	_, err = io.WriteString(u, "partial")
	require.NoError(t, err)
	u2, err := s.Create(ctx, "exp2/orders-2", "t2")
	require.NoError(t, err)
	_, err = io.WriteString(u2, "partial")
	require.NoError(t, err)

	require.NoError(t, s.DeletePrefix(ctx, "exp1/"))
	require.NoError(t, s.DeletePrefix(ctx, "exp1/"), "idempotent")
	require.NoError(t, s.DeletePrefix(ctx, "exp2/orders-"))
	require.Equal(t, map[string]string{
		"./":              "",
		"exp10/":          "",
		"exp10/a":         "keep",
		"exp2/":           "",
		"exp2/payments-1": "P1",
	}, tree(t, dir))

	require.NoError(t, s.DeletePrefix(ctx, "exp2/"))
	require.NoError(t, s.DeletePrefix(ctx, "nothing-here/"))
	require.Equal(t, []string{"exp10/a"}, keys(t, s, ""))
	require.ErrorIs(t, s.DeletePrefix(ctx, ""), blob.ErrInvalidKey)
	require.Equal(t, []string{"exp10/a"}, keys(t, s, ""))
}

func TestLocalListPrefix(t *testing.T) {
	s, _ := newLocal(t)
	for _, k := range []string{"b/x", "a-b", "a/z", "a/y/1", "a.txt", "ab"} {
		put(t, s, k, "t", k)
	}
	require.Equal(t, []string{"a-b", "a.txt", "a/y/1", "a/z", "ab", "b/x"}, keys(t, s, ""))
	require.Equal(t, []string{"a-b", "a.txt", "a/y/1", "a/z", "ab"}, keys(t, s, "a"))
	require.Equal(t, []string{"a/y/1", "a/z"}, keys(t, s, "a/"))
	require.Equal(t, []string{"a/y/1"}, keys(t, s, "a/y"))
	require.Equal(t, []string{}, keys(t, s, "c/"))
	require.Equal(t, []string{}, keys(t, s, "a-b/"), "prefix under a file")
}

// hostileKeys must never reach the file system.
var hostileKeys = []string{
	"",
	".",
	"..",
	"../x",
	"../../etc/passwd",
	"a/../../b",
	"a/./b",
	"/etc/passwd",
	"/",
	"a//b",
	"a/",
	".hidden",
	"a/.tmp",
	"a/.b.t1.upload",
	"ünïcode",
	"caf\u00e9/x",
	"a\x00b",
	"a\\b",
	"..\\x",
	"C:\\x",
	"a b",
	"a:b",
	"%2e%2e/x",
	"~/x",
	"a\nb",
	strings.Repeat("a", 513),
	strings.Repeat("a/", 256) + "a",
	strings.Repeat("a", blob.MaxSegment+1),
	"x/" + strings.Repeat("a", blob.MaxSegment+1),
}

func TestLocalRefusesHostileKeys(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	defer s.Close()
	put(t, s, "exp1/a", "t1", "A")
	require.NoError(t, os.WriteFile(filepath.Join(parent, "x"), []byte("outside"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "b"), []byte("outside"), 0o644))
	before := tree(t, parent)

	for _, key := range hostileKeys {
		t.Run(strings.ToValidUTF8(key, "?"), func(t *testing.T) {
			_, err := s.Create(ctx, key, "t1")
			require.ErrorIs(t, err, blob.ErrInvalidKey)
			_, err = s.Open(ctx, key)
			require.ErrorIs(t, err, blob.ErrInvalidKey)
			if key != "" && key != "a/" {
				_, err = s.List(ctx, key)
				require.ErrorIs(t, err, blob.ErrInvalidKey)
				require.ErrorIs(t, s.DeletePrefix(ctx, key), blob.ErrInvalidKey)
				require.ErrorIs(t, s.DeleteUploads(ctx, key), blob.ErrInvalidKey)
			}
			require.ErrorIs(t, s.DeletePrefix(ctx, key+"/"), blob.ErrInvalidKey)
			require.Equal(t, before, tree(t, parent))
		})
	}
	for _, tag := range []string{"", "../x", "a/b", "a.b", ".", "t\x00", strings.Repeat("t", 65)} {
		_, err := s.Create(ctx, "exp1/b", tag)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "tag %q", tag)
	}
	require.Equal(t, before, tree(t, parent))
}

func TestLocalLongestKey(t *testing.T) {
	s, _ := newLocal(t)
	seg := strings.Repeat("s", blob.MaxSegment-1)
	key := seg + "/" + seg + "/" + seg + "/" + seg
	require.Len(t, key, 511)
	require.True(t, blob.ValidKey(key))
	put(t, s, key, strings.Repeat("t", 64), "long")
	require.Equal(t, "long", get(t, s, key))
}

func TestLocalDoesNotFollowSymlinks(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	require.NoError(t, os.Mkdir(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, ".secret.t1.upload"), []byte("not ours"), 0o644))

	dir := filepath.Join(parent, "store")
	s, err := blob.NewLocal(dir)
	require.NoError(t, err)
	defer s.Close()
	put(t, s, "exp1/a", "t1", "A")
	// A directory link, a file link (absolute and relative), and a link
	// that stays inside the root: the store made none of them, so it
	// serves none of them.
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "evil")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "exp1", "abs")))
	require.NoError(t, os.Symlink("../../outside/secret", filepath.Join(dir, "exp1", "rel")))
	require.NoError(t, os.Symlink("a", filepath.Join(dir, "exp1", "inside")))
	before := tree(t, outside)

	for _, key := range []string{"evil/secret", "exp1/abs", "exp1/rel", "exp1/inside", "evil"} {
		o, err := s.Open(ctx, key)
		require.Error(t, err, key)
		require.Nil(t, o)
	}
	require.Equal(t, []string{"exp1/a"}, keys(t, s, ""))
	require.Equal(t, []string{"exp1/a"}, keys(t, s, "exp1/"))
	_, err = s.List(ctx, "evil/")
	require.Error(t, err)

	_, err = s.Create(ctx, "evil/new", "t1")
	require.Error(t, err)
	_, err = s.Create(ctx, "evil/sub/new", "t1")
	require.Error(t, err)

	require.Error(t, s.DeleteUploads(ctx, "evil/"))
	require.Error(t, s.DeletePrefix(ctx, "evil/"))
	require.NoError(t, s.DeleteUploads(ctx, "e"))
	require.NoError(t, s.DeletePrefix(ctx, "exp1/"))
	require.NoError(t, s.DeletePrefix(ctx, "e"))

	require.Equal(t, before, tree(t, outside))
	link, err := os.Readlink(filepath.Join(dir, "evil"))
	require.NoError(t, err)
	require.Equal(t, outside, link)
}

func TestLocalOpenFIFOIsNotFound(t *testing.T) {
	s, dir := newLocal(t)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "exp1"), 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "exp1", "fifo"), 0o644))
	_, err := s.Open(context.Background(), "exp1/fifo")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.Empty(t, keys(t, s, ""))
}

func TestLocalServeContent(t *testing.T) {
	ctx := context.Background()
	s, _ := newLocal(t)
	put(t, s, "exp1/a.csv", "t1", "0123456789")

	o, err := s.Open(ctx, "exp1/a.csv")
	require.NoError(t, err)
	defer o.Close()
	req := httptest.NewRequest(http.MethodGet, "/files/a.csv", nil)
	req.Header.Set("Range", "bytes=2-5")
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "a.csv", o.Info().ModTime, o)
	require.Equal(t, http.StatusPartialContent, rec.Code)
	require.Equal(t, "2345", rec.Body.String())
	require.Equal(t, "bytes 2-5/10", rec.Header().Get("Content-Range"))
}

func TestLocalOpenDirectoryIsNotFound(t *testing.T) {
	s, _ := newLocal(t)
	put(t, s, "exp1/a", "t1", "A")
	_, err := s.Open(context.Background(), "exp1")
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, err = s.Open(context.Background(), "exp1/a/b")
	require.ErrorIs(t, err, blob.ErrNotFound)
}

func TestLocalCanceledContext(t *testing.T) {
	s, _ := newLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Create(ctx, "exp1/a", "t1")
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.List(ctx, "")
	require.ErrorIs(t, err, context.Canceled)
}

func FuzzValidKey(f *testing.F) {
	for _, k := range hostileKeys {
		f.Add(k)
	}
	for _, k := range []string{"a", "exp1/orders-0001.parquet", "a.b/c-d/e_f", "a..b", "a/b..", "x/y/z/w", "A9._-"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		parent := t.TempDir()
		root := filepath.Join(parent, "store")
		s, err := blob.NewLocal(root)
		require.NoError(t, err)
		defer s.Close()

		if !blob.ValidKey(key) {
			_, err := s.Create(context.Background(), key, "t")
			require.ErrorIs(t, err, blob.ErrInvalidKey)
			require.Equal(t, map[string]string{"./": "", "store/": ""}, tree(t, parent))
			return
		}

		name := filepath.FromSlash(key)
		require.True(t, filepath.IsLocal(name), "accepted key %q is not local", key)
		require.Equal(t, name, filepath.Clean(name), "accepted key %q is not clean", key)
		rel, err := filepath.Rel(root, filepath.Join(root, name))
		require.NoError(t, err)
		require.Equal(t, name, rel)
		require.True(t, blob.ValidPrefix(key))
		require.True(t, blob.ValidPrefix(key+"/"))

		put(t, s, key, "t", key)
		b, err := os.ReadFile(filepath.Join(root, name))
		require.NoError(t, err)
		require.Equal(t, key, string(b))
		require.Equal(t, []string{key}, keys(t, s, ""))
		for p := range tree(t, parent) {
			inside := p == "./" || p == "store/" || strings.HasPrefix(p, "store"+string(filepath.Separator))
			require.True(t, inside, "%q made %q outside the store", key, p)
		}
	})
}
