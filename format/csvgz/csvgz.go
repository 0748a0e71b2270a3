// Package csvgz writes export records as gzip-compressed RFC 4180 CSV.
//
// The first row names the columns, those of exportd's column tables.
// Lines end in CRLF, as RFC 4180 says. A field is quoted only when it holds
// a comma, a double quote, CR or LF, with quotes doubled, or when it is an
// empty string: an unquoted empty field is a null and "" is the empty
// string, the convention PostgreSQL's COPY uses, so nulls survive a round
// trip. Times are RFC 3339 UTC with six fractional digits; the nested items
// and payments are one column each holding the JSON array that the jsonl
// format would hold.
//
// The compressed bytes depend only on the records: encoded rows collect in
// a buffer that goes to gzip whenever it reaches flushSize after a whole
// row, however the records were split into batches.
package csvgz

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/changes"
	"github.com/exportd/exportd/format/internal/recbuf"
	"github.com/exportd/exportd/format/jsonrec"
)

// header is the header row of a file of cols: the names of the column
// table, those of every format. The append functions below write the values
// in the same order, which TestRowsFollowHeader checks.
func header(cols []exportd.Column) string {
	return strings.Join(exportd.ColumnNames(cols), ",") + "\r\n"
}

// Writer writes one dataset as csv.gz.
type Writer struct {
	d    exportd.Dataset
	out  *recbuf.Buffer
	json []byte // scratch for the nested columns before quoting
	// changes is set for the records of a change export: op and
	// deleted_at follow the dataset's columns.
	changes bool
}

// NewWriter returns a writer of dataset d that writes to w. The header row
// is written even if no record follows.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, true, "csv", header(d.Columns()))}
}

// NewChangeWriter returns a writer of the records of a change export of
// dataset d that writes to w, with the columns of d.ChangeColumns(). An
// upsert is the row NewWriter writes, then upsert and an empty deleted_at;
// a delete has its id, merchant_id, created_at, delete and deleted_at, and
// empty cells (nulls) for every other column, even those that are never
// null in an upsert, so that no reader takes a delete's zeros for data.
func NewChangeWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, true, "csv", header(d.ChangeColumns())), changes: true}
}

// Write appends the records of b, one row each.
func (w *Writer) Write(b *exportd.Batch) error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.out.Closed() {
		return errors.New("csvgz: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("csvgz: batch of %q written to a %q file", b.Dataset, w.d)
	}
	if w.changes {
		return w.writeChanges(b)
	}
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.appendPayment(&b.Payments[i])
			w.out.Buf = append(w.out.Buf, '\r', '\n')
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.appendOrder(&b.Orders[i])
			w.out.Buf = append(w.out.Buf, '\r', '\n')
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
		return fmt.Errorf("csvgz: %w", err)
	}
	cols := w.d.Columns()
	if w.d == exportd.Payments {
		for i := range b.Payments {
			p := &b.Payments[i]
			if p.Op == exportd.OpDelete {
				w.out.Buf = appendDelete(w.out.Buf, cols, p.ID, p.MerchantID, p.CreatedAt, p.DeletedAt)
			} else {
				w.appendPayment(p)
				w.out.Buf = append(w.out.Buf, ",upsert,\r\n"...)
			}
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			o := &b.Orders[i]
			if o.Op == exportd.OpDelete {
				w.out.Buf = appendDelete(w.out.Buf, cols, o.ID, o.MerchantID, o.CreatedAt, o.DeletedAt)
			} else {
				w.appendOrder(o)
				w.out.Buf = append(w.out.Buf, ",upsert,\r\n"...)
			}
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendDelete appends the row of a delete in a file of the dataset
// columns cols then op and deleted_at: the columns a delete has, found by
// name in the table, and an empty cell for every other one. Deletes are
// few, so walking the table for each costs little.
func appendDelete(b []byte, cols []exportd.Column, id int64, merchantID string, createdAt time.Time, deletedAt *time.Time) []byte {
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		switch c.Name {
		case "id":
			b = strconv.AppendInt(b, id, 10)
		case "merchant_id":
			b = appendField(b, merchantID)
		case "created_at":
			b = jsonrec.AppendTime(b, createdAt)
		}
	}
	b = append(b, ",delete,"...)
	if deletedAt != nil {
		b = jsonrec.AppendTime(b, *deletedAt)
	}
	return append(b, '\r', '\n')
}

// appendOrder appends the cells of o, without the line end.
func (w *Writer) appendOrder(o *exportd.Order) {
	b := w.out.Buf
	b = strconv.AppendInt(b, o.ID, 10)
	b = append(b, ',')
	b = appendField(b, o.MerchantID)
	b = append(b, ',')
	b = appendOptField(b, o.LocationID)
	b = append(b, ',')
	b = jsonrec.AppendTime(b, o.CreatedAt)
	b = append(b, ',')
	b = jsonrec.AppendTime(b, o.UpdatedAt)
	b = append(b, ',')
	b = appendField(b, o.State)
	b = append(b, ',')
	b = appendField(b, o.Currency)
	b = append(b, ',')
	b = strconv.AppendInt(b, o.Subtotal, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, o.Tax, 10)
	b = append(b, ',')
	if o.Tip != nil {
		b = strconv.AppendInt(b, *o.Tip, 10)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, o.Total, 10)
	b = append(b, ',')
	b = appendOptField(b, o.CustomerRef)
	b = append(b, ',')
	b = appendOptField(b, o.Note)
	b = append(b, ',')
	w.json = jsonrec.AppendItems(w.json[:0], o.Items)
	b = appendField(b, w.json)
	b = append(b, ',')
	w.json = jsonrec.AppendPayments(w.json[:0], o.Payments)
	w.out.Buf = appendField(b, w.json)
}

// appendPayment appends the cells of p, without the line end.
func (w *Writer) appendPayment(p *exportd.Payment) {
	b := w.out.Buf
	b = strconv.AppendInt(b, p.ID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, p.OrderID, 10)
	b = append(b, ',')
	b = appendField(b, p.MerchantID)
	b = append(b, ',')
	b = appendOptField(b, p.LocationID)
	b = append(b, ',')
	b = jsonrec.AppendTime(b, p.CreatedAt)
	b = append(b, ',')
	b = appendField(b, p.Kind)
	b = append(b, ',')
	b = appendField(b, p.Tender)
	b = append(b, ',')
	b = appendOptField(b, p.CardBrand)
	b = append(b, ',')
	b = appendField(b, p.Result)
	b = append(b, ',')
	w.out.Buf = strconv.AppendInt(b, p.Amount, 10)
}

func appendOptField(dst []byte, s *string) []byte {
	if s == nil {
		return dst
	}
	return appendField(dst, *s)
}

// appendField appends s, quoted only if a reader would otherwise misread
// it or, when empty, take it for a null.
func appendField[S string | []byte](dst []byte, s S) []byte {
	if len(s) == 0 {
		return append(dst, '"', '"')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' || c == '"' || c == '\r' || c == '\n' {
			return appendQuoted(dst, s)
		}
	}
	return append(dst, s...)
}

// appendQuoted appends s in double quotes with inner quotes doubled.
func appendQuoted[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// Close ends the document and the stream; it does not close the
// underlying io.Writer.
func (w *Writer) Close() error { return w.out.Close("") }
