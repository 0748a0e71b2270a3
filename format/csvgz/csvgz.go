// Package csvgz writes export records as gzip-compressed RFC 4180 CSV.
//
// The first row names the columns, which are those of the Parquet file.
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
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/jsonrec"
)

// flushSize is how many encoded bytes collect before they go to gzip.
const flushSize = 256 << 10

// The header rows; the column names are those of the Parquet file.
const (
	orderHeader   = "id,merchant_id,location_id,created_at,updated_at,state,currency,subtotal,tax,tip,total,customer_ref,note,items,payments\r\n"
	paymentHeader = "id,order_id,merchant_id,location_id,created_at,kind,tender,card_brand,result,amount\r\n"
)

// Writer writes one dataset as csv.gz.
type Writer struct {
	d      exportd.Dataset
	gz     *gzip.Writer
	buf    []byte
	json   []byte // scratch for the nested columns before quoting
	err    error
	closed bool
}

// NewWriter returns a writer of dataset d that writes to w. The header row
// is written even if no record follows.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	// BestSpeed is a valid level, so NewWriterLevel cannot fail.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	// MTIME 0 means "no time" (RFC 1952). The zero time.Time would not do:
	// this gzip package writes its Unix seconds truncated, a bogus date.
	gz.ModTime = time.Unix(0, 0)
	cw := &Writer{d: d, gz: gz, buf: make([]byte, 0, flushSize+64<<10)}
	if d == exportd.Payments {
		cw.buf = append(cw.buf, paymentHeader...)
	} else {
		cw.buf = append(cw.buf, orderHeader...)
	}
	return cw
}

// Write appends the records of b, one row each.
func (w *Writer) Write(b *exportd.Batch) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("csvgz: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("csvgz: batch of %q written to a %q file", b.Dataset, w.d)
	}
	if w.d == exportd.Payments {
		for i := range b.Payments {
			w.appendPayment(&b.Payments[i])
			if err := w.maybeFlush(); err != nil {
				return err
			}
		}
	} else {
		for i := range b.Orders {
			w.appendOrder(&b.Orders[i])
			if err := w.maybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) appendOrder(o *exportd.Order) {
	b := w.buf
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
	w.buf = append(b, '\r', '\n')
}

func (w *Writer) appendPayment(p *exportd.Payment) {
	b := w.buf
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
	w.buf = append(b, '\r', '\n')
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

func (w *Writer) maybeFlush() error {
	if len(w.buf) < flushSize {
		return nil
	}
	return w.flush()
}

// flush hands the buffer to gzip. An error sticks: the stream is broken.
func (w *Writer) flush() error {
	if _, err := w.gz.Write(w.buf); err != nil {
		w.err = fmt.Errorf("error compressing csv: %w", err)
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
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.gz.Close(); err != nil {
		w.err = fmt.Errorf("error closing csv gzip stream: %w", err)
	}
	return w.err
}
