// Package jsonl writes export records as gzip-compressed JSON Lines: one
// JSON object per record, each followed by "\n", in the encoding of package
// jsonrec. A change export's records carry op, and its deletes only their
// key and deleted_at (NewChangeWriter).
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

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/changes"
	"github.com/exportd/exportd/format/internal/recbuf"
	"github.com/exportd/exportd/format/jsonrec"
)

// Writer writes one dataset as jsonl.gz.
type Writer struct {
	d       exportd.Dataset
	out     *recbuf.Buffer
	changes bool // the records of a change export: op and deleted_at follow
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, true, "jsonl", "")}
}

// NewChangeWriter returns a writer of the records of a change export of
// dataset d that writes to w: an upsert is the object NewWriter writes with
// "op":"upsert" last; a delete is {"id", "merchant_id", "created_at",
// "op":"delete", "deleted_at"} and nothing else.
func NewChangeWriter(d exportd.Dataset, w io.Writer) *Writer {
	jw := NewWriter(d, w)
	jw.changes = true
	return jw
}

// Write appends the records of b, one line each.
func (w *Writer) Write(b *exportd.Batch) error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.out.Closed() {
		return errors.New("jsonl: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("jsonl: batch of %q written to a %q file", b.Dataset, w.d)
	}
	if w.changes {
		return w.writeChanges(b)
	}
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.out.Buf = jsonrec.AppendPayment(w.out.Buf, &b.Payments[i])
			w.out.Buf = append(w.out.Buf, '\n')
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.out.Buf = jsonrec.AppendOrder(w.out.Buf, &b.Orders[i])
			w.out.Buf = append(w.out.Buf, '\n')
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeChanges is Write for a change export's records.
func (w *Writer) writeChanges(b *exportd.Batch) error {
	if err := changes.Check(b); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.out.Buf = jsonrec.AppendPaymentChange(w.out.Buf, &b.Payments[i])
			w.out.Buf = append(w.out.Buf, '\n')
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.out.Buf = jsonrec.AppendOrderChange(w.out.Buf, &b.Orders[i])
			w.out.Buf = append(w.out.Buf, '\n')
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close ends the document and the stream; it does not close the
// underlying io.Writer.
func (w *Writer) Close() error { return w.out.Close("") }
