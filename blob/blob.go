// Package blob stores result files. A file becomes visible under its key
// only when its upload is committed, so a reader never sees half a file and
// a crashed writer leaves nothing behind under a real name.
package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned for a key that holds no object.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned before any storage is touched, so a hostile key
// from a URL can be answered with 404 without reaching the file system.
var ErrInvalidKey = errors.New("blob: invalid key")

// MaxSegment bounds one segment of a key so that a local store's temporary
// name (".<segment>.<tag>.upload") still fits a file-name limit of 255 bytes.
const MaxSegment = 128

// Store is where result files live: a local directory in dev, an
// S3-compatible bucket at scale.
type Store interface {
	// Create starts an upload of key. The bytes go to a temporary object
	// named after key and tag (the activity attempt: 1 to 64 letters,
	// digits, '-' or '_'), invisible to Open and List until Commit.
	Create(ctx context.Context, key, tag string) (Upload, error)
	// Open returns the object under key, or ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// List returns the committed objects whose keys start with prefix,
	// sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// DeletePrefix removes every object, committed or not, whose key
	// starts with prefix. It is idempotent. It refuses an empty prefix, so
	// a bug cannot wipe the whole store.
	DeletePrefix(ctx context.Context, prefix string) error
	// DeleteUploads removes the uncommitted uploads under prefix, for
	// example those a crashed attempt left behind. It refuses an empty
	// prefix like DeletePrefix.
	DeleteUploads(ctx context.Context, prefix string) error
}

// Upload is an object being written.
type Upload interface {
	io.Writer
	// Commit makes the object visible under its key, atomically replacing
	// any object already there.
	Commit() error
	// Abort discards the upload. It is safe after Commit (a no-op).
	Abort() error
}

// Object is a committed object opened for reading.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

// Info describes a committed object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// ValidKey reports whether key is a safe object key: slash-separated
// segments of letters, digits, '.', '-' and '_', none empty, none starting
// with a dot, none longer than MaxSegment. Keys from URLs must pass it
// before they reach a store.
func ValidKey(key string) bool {
	if key == "" || len(key) > 512 {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '/' {
			c := key[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return false
			}
			continue
		}
		if i == start || key[start] == '.' || i-start > MaxSegment {
			return false
		}
		start = i + 1
	}
	return true
}

// ValidPrefix reports whether prefix can start a valid key: empty, a valid
// key ("exp1/orders"), or a valid key followed by a slash ("exp1/"). Pass
// "exp1/" rather than "exp1" to stay out of "exp10/".
func ValidPrefix(prefix string) bool {
	return prefix == "" || ValidKey(strings.TrimSuffix(prefix, "/"))
}
