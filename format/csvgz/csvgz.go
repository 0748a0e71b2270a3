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

	"github.com/exportd/exportd"
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
}

// NewWriter returns a writer of dataset d that writes to w. The header row
// is written even if no record follows.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, true, "csv", header(d.Columns()))}
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
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.appendPayment(&b.Payments[i])
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.appendOrder(&b.Orders[i])
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

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
	b = appendField(b, w.json)
	w.out.Buf = append(b, '\r', '\n')
}

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
	b = strconv.AppendInt(b, p.Amount, 10)
	w.out.Buf = append(b, '\r', '\n')
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
