// Package parquetfile writes export records as a Parquet file with
// parquet-go: zstd pages, UTC microsecond timestamps, int64 cents, nested
// items and payments as LIST columns and nulls as optional columns, all as
// declared by the parquet tags of exportd.Order and exportd.Payment, and
// for change exports of OrderChange and PaymentChange, which add op and
// deleted_at.
//
// A row group ends after maxRows rows or once its buffered size reaches
// maxBytes, whichever comes first, which bounds memory. Both limits, and
// the page boundaries parquet-go picks, are checked at points that depend
// only on the number and content of the rows, so the file's bytes never
// depend on how the rows were split into Write calls.
package parquetfile

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/changes"
)

// Row group limits. Readers parallelise and skip by row group, so groups
// should be large, but a group is held in memory until it is complete.
const (
	// DefaultMaxRowsPerRowGroup caps the rows of a row group.
	DefaultMaxRowsPerRowGroup = 128 << 10
	// DefaultMaxBytesPerRowGroup caps parquet-go's estimate of a row group's
	// buffered size: compressed pages plus values not yet paged.
	DefaultMaxBytesPerRowGroup = 64 << 20
)

// chunkRows is how many rows go to parquet-go per call: parquet-go never
// takes more than 64 rows at a time before it considers cutting a page.
const chunkRows = 64

// Writer writes one dataset as a Parquet file.
type Writer struct {
	d       exportd.Dataset
	rows    rowWriter
	changes bool // the records of a change export
	err     error
	closed  bool
}

// rowWriter writes the records of batches as the rows of one Go type.
type rowWriter interface {
	writeBatch(b *exportd.Batch) error
	close() error
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return newWriter(d, w, DefaultMaxRowsPerRowGroup, DefaultMaxBytesPerRowGroup)
}

// NewChangeWriter returns a writer of the records of a change export of
// dataset d that writes to w, as rows of OrderChange or PaymentChange.
func NewChangeWriter(d exportd.Dataset, w io.Writer) *Writer {
	return newChangeWriter(d, w, DefaultMaxRowsPerRowGroup, DefaultMaxBytesPerRowGroup)
}

func newWriter(d exportd.Dataset, w io.Writer, maxRows, maxBytes int64) *Writer {
	if d == exportd.Payments {
		return &Writer{d: d, rows: &records[exportd.Payment]{
			g:  newGroupWriter(w, maxRows, maxBytes, (*arena).payment),
			of: func(b *exportd.Batch) []exportd.Payment { return b.Payments },
		}}
	}
	return &Writer{d: d, rows: &records[exportd.Order]{
		g:  newGroupWriter(w, maxRows, maxBytes, (*arena).order),
		of: func(b *exportd.Batch) []exportd.Order { return b.Orders },
	}}
}

func newChangeWriter(d exportd.Dataset, w io.Writer, maxRows, maxBytes int64) *Writer {
	if d == exportd.Payments {
		return &Writer{d: d, changes: true, rows: &changeRecords[exportd.Payment, PaymentChange]{
			g:   newGroupWriter(w, maxRows, maxBytes, (*arena).paymentChange),
			of:  func(b *exportd.Batch) []exportd.Payment { return b.Payments },
			row: paymentChange,
		}}
	}
	return &Writer{d: d, changes: true, rows: &changeRecords[exportd.Order, OrderChange]{
		g:   newGroupWriter(w, maxRows, maxBytes, (*arena).orderChange),
		of:  func(b *exportd.Batch) []exportd.Order { return b.Orders },
		row: orderChange,
	}}
}

// Write appends the records of b.
func (w *Writer) Write(b *exportd.Batch) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("parquetfile: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("parquetfile: batch of %q written to a %q file", b.Dataset, w.d)
	}
	if w.changes {
		if err := changes.Check(b); err != nil {
			return fmt.Errorf("parquetfile: %w", err)
		}
	}
	w.err = w.rows.writeBatch(b)
	return w.err
}

// Close writes the last row group and the footer. A file without rows
// still holds the schema.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.err = w.rows.close()
	return w.err
}

// records writes the records of a batch as they are, the rows of an
// ordinary export.
type records[T any] struct {
	g  *groupWriter[T]
	of func(*exportd.Batch) []T // the batch's records
}

func (r *records[T]) writeBatch(b *exportd.Batch) error { return r.g.write(r.of(b)) }

func (r *records[T]) close() error { return r.g.close() }

// groupWriter cuts the rows of one Go type into row groups.
type groupWriter[T any] struct {
	pw       *parquet.GenericWriter[T]
	maxRows  int64
	maxBytes int64
	rows     int64 // rows in the current row group, pending ones excluded
	start    int64 // pw.Size() when the current row group began
	// pending holds the first rows of a chunk that the caller's batch
	// ended in, detached from the caller's memory, until the next Write
	// or Close completes the chunk.
	pending []T
	arena   arena
	detach  func(*arena, *T)
}

func newGroupWriter[T any](w io.Writer, maxRows, maxBytes int64, detach func(*arena, *T)) *groupWriter[T] {
	return &groupWriter[T]{
		pw:       parquet.NewGenericWriter[T](w, parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault})),
		maxRows:  maxRows,
		maxBytes: maxBytes,
		pending:  make([]T, 0, chunkRows),
		detach:   detach,
	}
}

// write hands rows to parquet-go in chunks that end every chunkRows rows
// of a row group and at its end. parquet-go decides whether to cut a page
// after each Write call, so chunks that end at positions fixed by the row
// count alone keep page boundaries, and hence the file's bytes,
// independent of the caller's batches. The rows of a chunk that a batch
// does not complete wait in pending. The byte limit is checked at the end
// of every chunkRows rows, because Size walks every column; overshooting by
// that many rows does not matter.
func (g *groupWriter[T]) write(rows []T) error {
	for len(rows) > 0 {
		need := g.room()
		if len(g.pending) == 0 && len(rows) >= need {
			if err := g.writeChunk(rows[:need]); err != nil {
				return err
			}
			rows = rows[need:]
			continue
		}
		k := min(need, len(rows))
		for i := range rows[:k] {
			g.pending = append(g.pending, rows[i])
			g.detach(&g.arena, &g.pending[len(g.pending)-1])
		}
		rows = rows[k:]
		if k == need {
			if err := g.flushPending(); err != nil {
				return err
			}
		}
	}
	return nil
}

// room returns how many rows complete the current chunk.
func (g *groupWriter[T]) room() int {
	return int(g.chunkEnd() - g.rows - int64(len(g.pending)))
}

// chunkEnd is the row of the current row group at which the current chunk
// ends.
func (g *groupWriter[T]) chunkEnd() int64 {
	return min((g.rows/chunkRows+1)*chunkRows, g.maxRows)
}

func (g *groupWriter[T]) flushPending() error {
	err := g.writeChunk(g.pending)
	clear(g.pending) // drop the references for the collector
	g.pending = g.pending[:0]
	g.arena.reset()
	return err
}

// writeChunk writes rows that end a chunk, or the last rows of the file,
// and ends the row group when it is full.
func (g *groupWriter[T]) writeChunk(rows []T) error {
	if _, err := g.pw.Write(rows); err != nil {
		return fmt.Errorf("error writing parquet rows: %w", err)
	}
	g.rows += int64(len(rows))
	if g.rows >= g.maxRows || g.rows%chunkRows == 0 && g.pw.Size()-g.start >= g.maxBytes {
		if err := g.pw.Flush(); err != nil {
			return fmt.Errorf("error writing parquet row group: %w", err)
		}
		g.rows = 0
		g.start = g.pw.Size()
	}
	return nil
}

func (g *groupWriter[T]) close() error {
	if len(g.pending) > 0 {
		if err := g.flushPending(); err != nil {
			return err
		}
	}
	if err := g.pw.Close(); err != nil {
		return fmt.Errorf("error closing parquet file: %w", err)
	}
	return nil
}
