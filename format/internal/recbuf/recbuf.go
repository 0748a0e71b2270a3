// Package recbuf is the output stage the text formats share: records are
// encoded into Buf, which goes out (through gzip, for the compressed
// formats) only after a whole record once it holds FlushSize bytes, so a
// file's bytes never depend on how records were batched. An error sticks:
// after one, the stream is broken and every call returns it.
package recbuf

import (
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
)

// FlushSize is how many encoded bytes collect before they are written:
// large enough that gzip and the file see few, big writes.
const FlushSize = 256 << 10

// Buffer holds encoded records on their way to a file.
type Buffer struct {
	// Buf is where writers append encoded records.
	Buf    []byte
	dst    io.Writer
	gz     *gzip.Writer // nil when uncompressed
	what   string       // the format, for error messages
	err    error
	closed bool
}

// New returns a buffer writing to w, through a deterministic gzip stream
// when gzipped, starting with head (a header row, an opening bracket).
func New(w io.Writer, gzipped bool, what, head string) *Buffer {
	b := &Buffer{Buf: append(make([]byte, 0, FlushSize+64<<10), head...), dst: w, what: what}
	if gzipped {
		// BestSpeed is a valid level, so NewWriterLevel cannot fail.
		b.gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		// MTIME 0 means "no time" (RFC 1952). The zero time.Time would not
		// do: this gzip package writes its Unix seconds truncated, a bogus
		// date that would also differ from one build to the next.
		b.gz.ModTime = time.Unix(0, 0)
		b.dst = b.gz
	}
	return b
}

// Err returns the error that broke the stream, if any.
func (b *Buffer) Err() error { return b.err }

// Closed reports whether Close was called.
func (b *Buffer) Closed() bool { return b.closed }

// MaybeFlush writes Buf out once it holds FlushSize bytes; call it only
// after a whole record.
func (b *Buffer) MaybeFlush() error {
	if len(b.Buf) < FlushSize {
		return nil
	}
	return b.Flush()
}

// Flush writes Buf out.
func (b *Buffer) Flush() error {
	if len(b.Buf) > 0 && b.err == nil {
		if _, err := b.dst.Write(b.Buf); err != nil {
			b.err = fmt.Errorf("error writing %s: %w", b.what, err)
		}
	}
	b.Buf = b.Buf[:0]
	return b.err
}

// Close appends trailer (the end of a document), writes what is buffered
// and ends the gzip stream. It does not close the underlying writer, and
// a second call returns the first's result.
func (b *Buffer) Close(trailer string) error {
	if b.closed {
		return b.err
	}
	b.closed = true
	if b.err != nil {
		return b.err
	}
	b.Buf = append(b.Buf, trailer...)
	if err := b.Flush(); err != nil {
		return err
	}
	if b.gz != nil {
		if err := b.gz.Close(); err != nil {
			b.err = fmt.Errorf("error closing %s gzip stream: %w", b.what, err)
		}
	}
	return b.err
}
