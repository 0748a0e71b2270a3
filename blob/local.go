package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// uploadSuffix ends every temporary name; with the leading dot it keeps an
// upload out of the key space, since no key segment may start with a dot.
const uploadSuffix = ".upload"

// maxTag keeps ".<segment>.<tag>.upload" within 255 bytes.
const maxTag = 64

// errUploadDone guards against writing into a file that is already renamed
// into place, or already removed.
var errUploadDone = errors.New("blob: upload already committed or aborted")

// Local is the Store of `exportd dev`: files in a directory, reached only
// through an os.Root so that neither a key nor a symlink planted in the tree
// can lead outside it.
type Local struct {
	root *os.Root
}

var _ Store = (*Local)(nil)

// NewLocal creates dir if needed and opens it as the root of a store; the
// store keeps a descriptor of dir, so Close it when done.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("error creating blob directory: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("error opening blob directory: %w", err)
	}
	return &Local{root: r}, nil
}

// Close releases the directory descriptor; the files stay.
func (l *Local) Close() error {
	return l.root.Close()
}

// Create starts an upload that stays invisible until Commit. The temporary
// file sits next to the final one so that Commit is a rename within one
// directory, which is atomic.
func (l *Local) Create(ctx context.Context, key, tag string) (Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ValidKey(key) || !validTag(tag) {
		return nil, fmt.Errorf("error creating %q (tag %q): %w", key, tag, ErrInvalidKey)
	}
	dir, base := path.Split(key)
	dir = strings.TrimSuffix(dir, "/")
	tmp := dir + "/." + base + "." + tag + uploadSuffix
	if dir == "" {
		dir = "."
		tmp = tmp[1:]
	}
	f, err := l.createFile(dir, tmp)
	if err != nil {
		return nil, fmt.Errorf("error creating %s: %w", key, err)
	}
	return &localUpload{root: l.root, f: f, key: key, dir: dir, tmp: tmp}, nil
}

// createFile replaces whatever an earlier run of the same attempt left at
// tmp. O_EXCL makes the open refuse a symlink planted at that name.
func (l *Local) createFile(dir, tmp string) (*os.File, error) {
	// The common case, a new upload into an existing directory, is one
	// open; a missing directory (or one a concurrent DeletePrefix pruned)
	// or a leftover upload costs a round more each.
	var err error
	for range 3 {
		var f *os.File
		f, err = l.root.OpenFile(filepath.FromSlash(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case err == nil:
			return f, nil
		case errors.Is(err, fs.ErrNotExist):
			err = l.root.MkdirAll(filepath.FromSlash(dir), 0o755)
		case errors.Is(err, fs.ErrExist):
			err = l.root.Remove(filepath.FromSlash(tmp))
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, err
}

// Open returns a committed file. Only a regular file reached without a
// symlink at its own name is served: the store never makes symlinks, so
// one found there was planted.
func (l *Local) Open(ctx context.Context, key string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ValidKey(key) {
		return nil, fmt.Errorf("error opening %q: %w", key, ErrInvalidKey)
	}
	// A Commit renaming over key between the open and the Lstat makes
	// them disagree; a few more rounds ride that out.
	for range 5 {
		f, err := l.openRegular(key)
		if err != errRaced {
			return f, err
		}
	}
	return nil, fmt.Errorf("error opening %s: %w", key, errRaced)
}

// errRaced means the name changed while Open looked at it.
var errRaced = errors.New("blob: object replaced while opening")

// openRegular looks before it opens, because opening a planted FIFO would
// block, then checks that it opened what it looked at.
func (l *Local) openRegular(key string) (Object, error) {
	name := filepath.FromSlash(key)
	lst, err := l.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || err == nil && !lst.Mode().IsRegular() {
		return nil, fmt.Errorf("error opening %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error opening %s: %w", key, err)
	}
	f, err := l.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errRaced
	}
	if err != nil {
		return nil, fmt.Errorf("error opening %s: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("error opening %s: %w", key, err)
	}
	if !os.SameFile(st, lst) {
		f.Close()
		return nil, errRaced
	}
	return &localObject{f: f, info: Info{Key: key, Size: st.Size(), ModTime: st.ModTime()}}, nil
}

// List walks the directories the prefix can reach, so its cost grows with
// what is under the prefix, not with the whole store.
func (l *Local) List(ctx context.Context, prefix string) ([]Info, error) {
	if !ValidPrefix(prefix) {
		return nil, fmt.Errorf("error listing %q: %w", prefix, ErrInvalidKey)
	}
	var out []Info
	err := l.walk(ctx, prefix, func(e entry) error {
		if e.kind != kindObject {
			return nil
		}
		fi, err := e.d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, Info{Key: e.key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("error listing %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// DeletePrefix removes objects, uploads and then the directories left
// empty, so a purged export leaves no trace in the tree.
func (l *Local) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" || !ValidPrefix(prefix) {
		return fmt.Errorf("error deleting %q: %w", prefix, ErrInvalidKey)
	}
	err := l.walk(ctx, prefix, func(e entry) error {
		switch e.kind {
		case kindDir:
			if err := l.root.RemoveAll(filepath.FromSlash(e.rel)); err != nil {
				return err
			}
			return fs.SkipDir
		case kindObject, kindUpload:
			if err := l.root.Remove(filepath.FromSlash(e.rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("error deleting %s: %w", prefix, err)
	}
	l.pruneDirs(prefixDir(prefix))
	return nil
}

// DeleteUploads clears what failed attempts left behind without touching
// any committed file.
func (l *Local) DeleteUploads(ctx context.Context, prefix string) error {
	if prefix == "" || !ValidPrefix(prefix) {
		return fmt.Errorf("error deleting uploads under %q: %w", prefix, ErrInvalidKey)
	}
	err := l.walk(ctx, prefix, func(e entry) error {
		if e.kind != kindUpload {
			return nil
		}
		if err := l.root.Remove(filepath.FromSlash(e.rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("error deleting uploads under %s: %w", prefix, err)
	}
	return nil
}

// pruneDirs removes dir and its parents while they are empty. A symlink is
// left alone: Remove would unlink it whatever it points to.
func (l *Local) pruneDirs(dir string) {
	for ; dir != "" && dir != "."; dir = path.Dir(dir) {
		fi, err := l.root.Lstat(filepath.FromSlash(dir))
		if err != nil || !fi.IsDir() {
			return
		}
		if l.root.Remove(filepath.FromSlash(dir)) != nil {
			return
		}
	}
}

// kind sorts what a walk meets, because only names the store made itself
// may be listed, opened or deleted one by one.
type kind int

const (
	kindOther  kind = iota // symlinks, devices, foreign names: never touched one by one
	kindObject             // a committed file under a valid key
	kindUpload             // a temporary file of an upload
	kindDir                // a directory under a valid key
)

type entry struct {
	rel  string // slash-separated path from the root
	key  string // the key of an object or upload
	kind kind
	d    fs.DirEntry
}

// walk calls fn for every entry whose key starts with prefix; fn returns
// fs.SkipDir to keep walk out of a directory.
func (l *Local) walk(ctx context.Context, prefix string, fn func(entry) error) error {
	dir, match := path.Split(prefix)
	return l.walkDir(ctx, strings.TrimSuffix(dir, "/"), match, fn)
}

func (l *Local) walkDir(ctx context.Context, dir, match string, fn func(entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := "."
	if dir != "" {
		name = filepath.FromSlash(dir)
	}
	f, err := l.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range ents {
		e := classify(dir, d)
		if e.kind == kindOther || !strings.HasPrefix(path.Base(e.key), match) {
			continue
		}
		err := fn(e)
		if errors.Is(err, fs.SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if e.kind == kindDir {
			if err := l.walkDir(ctx, e.rel, "", fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func classify(dir string, d fs.DirEntry) entry {
	rel := d.Name()
	if dir != "" {
		rel = dir + "/" + rel
	}
	e := entry{rel: rel, d: d}
	switch {
	case d.Type().IsDir() && ValidKey(rel):
		e.kind, e.key = kindDir, rel
	case !d.Type().IsRegular():
	case ValidKey(rel):
		e.kind, e.key = kindObject, rel
	default:
		if key, ok := uploadKey(dir, d.Name()); ok {
			e.kind, e.key = kindUpload, key
		}
	}
	return e
}

// uploadKey recovers the key from ".<base>.<tag>.upload"; tags hold no dot,
// so the last dot splits base from tag.
func uploadKey(dir, name string) (string, bool) {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, uploadSuffix) {
		return "", false
	}
	mid := name[1 : len(name)-len(uploadSuffix)]
	i := strings.LastIndexByte(mid, '.')
	if i < 0 || !validTag(mid[i+1:]) {
		return "", false
	}
	key := mid[:i]
	if dir != "" {
		key = dir + "/" + key
	}
	return key, ValidKey(key)
}

func prefixDir(prefix string) string {
	dir, _ := path.Split(prefix)
	return strings.TrimSuffix(dir, "/")
}

func validTag(tag string) bool {
	if tag == "" || len(tag) > maxTag {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

type localUpload struct {
	root *os.Root
	key  string
	dir  string // the directory to fsync after the rename, "." at the top
	tmp  string

	mu sync.Mutex
	f  *os.File // nil once committed or aborted
}

func (u *localUpload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return 0, errUploadDone
	}
	return u.f.Write(p)
}

// Commit syncs the data before the rename and the directory after it, so a
// crash leaves either the old object or the whole new one under the key.
func (u *localUpload) Commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return errUploadDone
	}
	f := u.f
	u.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = u.root.Rename(filepath.FromSlash(u.tmp), filepath.FromSlash(u.key))
	}
	if err != nil {
		u.root.Remove(filepath.FromSlash(u.tmp))
		return fmt.Errorf("error committing %s: %w", u.key, err)
	}
	if err := syncDir(u.root, u.dir); err != nil {
		return fmt.Errorf("error committing %s: %w", u.key, err)
	}
	return nil
}

// Abort is safe in a defer next to Commit.
func (u *localUpload) Abort() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return nil
	}
	u.f.Close()
	u.f = nil
	if err := u.root.Remove(filepath.FromSlash(u.tmp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("error aborting %s: %w", u.key, err)
	}
	return nil
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(filepath.FromSlash(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// localObject hides the *os.File so callers get only what ServeContent
// needs, not the file's path.
type localObject struct {
	f    *os.File
	info Info
}

func (o *localObject) Read(p []byte) (int, error)                   { return o.f.Read(p) }
func (o *localObject) Seek(offset int64, whence int) (int64, error) { return o.f.Seek(offset, whence) }
func (o *localObject) Close() error                                 { return o.f.Close() }
func (o *localObject) Info() Info                                   { return o.info }
