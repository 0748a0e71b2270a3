// Package format turns batches of export records into files. Each format
// lives in its own subpackage; New picks one. Every writer streams: memory
// is bounded by the batch and the format's own buffering (a Parquet row
// group, an Arrow record batch), never by the file.
package format

import (
	"fmt"
	"io"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/arrowfile"
	"github.com/exportd/exportd/format/cloverjson"
	"github.com/exportd/exportd/format/csvgz"
	"github.com/exportd/exportd/format/doshiijson"
	"github.com/exportd/exportd/format/jsonl"
	"github.com/exportd/exportd/format/parquetfile"
)

// Writer writes the records of one dataset into one file.
type Writer interface {
	// Write appends a batch of records in export order. The writer may keep
	// no reference to the batch after it returns.
	Write(b *exportd.Batch) error
	// Close writes any footer and flushes; it does not close the
	// underlying io.Writer.
	Close() error
}

// New returns a writer of format f for dataset d that writes to w.
func New(f exportd.Format, d exportd.Dataset, w io.Writer) (Writer, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("unknown dataset %q", d)
	}
	switch f {
	case exportd.Parquet:
		return parquetfile.NewWriter(d, w), nil
	case exportd.Arrow:
		return arrowfile.NewWriter(d, w)
	case exportd.JSONL:
		return jsonl.NewWriter(d, w), nil
	case exportd.CSV:
		return csvgz.NewWriter(d, w), nil
	case exportd.CloverJSON:
		return cloverjson.NewWriter(d, w), nil
	case exportd.DoshiiJSON:
		return doshiijson.NewWriter(d, w), nil
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// NewChanges returns a writer of format f for the records of a change
// export of dataset d: the dataset's columns, then op and deleted_at
// (exportd.ChangeColumns). Only the general formats (exportd.Formats) have
// them; the dialects' documents have no place for a delete.
func NewChanges(f exportd.Format, d exportd.Dataset, w io.Writer) (Writer, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("unknown dataset %q", d)
	}
	switch f {
	case exportd.Parquet:
		return parquetfile.NewChangeWriter(d, w), nil
	case exportd.Arrow:
		return arrowfile.NewChangeWriter(d, w)
	case exportd.JSONL:
		return jsonl.NewChangeWriter(d, w), nil
	case exportd.CSV:
		return csvgz.NewChangeWriter(d, w), nil
	case exportd.CloverJSON, exportd.DoshiiJSON:
		return nil, fmt.Errorf("format %q cannot carry a change export", f)
	}
	return nil, fmt.Errorf("unknown format %q", f)
}
