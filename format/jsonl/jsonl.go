// Package jsonl writes export records as gzip-compressed JSON Lines: one
// JSON object per record, each followed by "\n", in the encoding of package
// jsonrec.
//
// The compressed bytes depend only on the records. Encoded lines collect in
// a buffer that is handed to gzip whenever it reaches flushSize after a
// whole record, so the compressor sees the same writes however the records
// were split into batches, and the gzip header carries no name or time.
package jsonl

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/jsonrec"
)

// flushSize is how many encoded bytes collect before they go to gzip; large
// enough that the compressor works on big blocks, small enough to not matter
// for memory.
const flushSize = 256 << 10

// Writer writes one dataset as jsonl.gz.
type Writer struct {
	d      exportd.Dataset
	gz     *gzip.Writer
	buf    []byte
	err    error
	closed bool
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	// BestSpeed is a valid level, so NewWriterLevel cannot fail.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	// MTIME 0 means "no time" (RFC 1952). The zero time.Time would not do:
	// this gzip package writes its Unix seconds truncated, a bogus date.
	gz.ModTime = time.Unix(0, 0)
	return &Writer{d: d, gz: gz, buf: make([]byte, 0, flushSize+64<<10)}
}

// Write appends the records of b, one line each.
func (w *Writer) Write(b *exportd.Batch) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("jsonl: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("jsonl: batch of %q written to a %q file", b.Dataset, w.d)
	}
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.buf = jsonrec.AppendPayment(w.buf, &b.Payments[i])
			w.buf = append(w.buf, '\n')
			if err := w.maybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.buf = jsonrec.AppendOrder(w.buf, &b.Orders[i])
			w.buf = append(w.buf, '\n')
			if err := w.maybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) maybeFlush() error {
	if len(w.buf) < flushSize {
		return nil
	}
	return w.flush()
}

// flush hands the buffer to gzip. An error sticks: the stream is broken.
func (w *Writer) flush() error {
	if _, err := w.gz.Write(w.buf); err != nil {
		w.err = fmt.Errorf("error compressing jsonl: %w", err)
	}
	w.buf = w.buf[:0]
	return w.err
}

// Close compresses what is buffered and writes the gzip trailer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if err := w.gz.Close(); err != nil {
		w.err = fmt.Errorf("error closing jsonl gzip stream: %w", err)
	}
	return w.err
}
