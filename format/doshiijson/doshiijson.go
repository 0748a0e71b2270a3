// Package doshiijson writes export records as the Doshii dialect's data
// files: one gzip-compressed JSON array of Doshii-shaped orders (or, for a
// payments export, Doshii-shaped transactions).
//
// The shapes follow Doshii's Partner API v3 order and transaction objects
// (GET /orders/:id, the bulk data sample): ids are strings, item prices are
// strings of cents, transaction amounts are numbers of cents, times are
// ISO 8601 UTC with milliseconds. Fields exportd has no data for (type,
// mealPhase, consumer, ...) are left out rather than invented; a few that
// Doshii lacks but a bulk consumer needs are added and documented on
// AppendOrder.
//
// Like the jsonl writer, encoded records collect in a buffer handed to gzip
// only after whole records once it reaches flushSize, and the gzip header
// carries no name or time, so the bytes depend only on the records.
package doshiijson

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recbuf"
	"github.com/exportd/exportd/format/jsonrec"
)

// TimeLayout is Doshii's timestamp layout ("2019-01-01T12:00:00.000Z"):
// exported times are truncated to the millisecond to match it.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Writer writes one dataset as a gzip JSON array.
type Writer struct {
	d   exportd.Dataset
	out *recbuf.Buffer
	n   int64 // records written, to place the commas
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, true, "doshii json", "[")}
}

// Write appends the records of b to the array.
func (w *Writer) Write(b *exportd.Batch) error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.out.Closed() {
		return errors.New("doshiijson: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("doshiijson: batch of %q written to a %q file", b.Dataset, w.d)
	}
	for i := range b.Len() {
		if w.n > 0 {
			w.out.Buf = append(w.out.Buf, ',')
		}
		w.n++
		if w.d == exportd.Payments {
			w.out.Buf = AppendTransaction(w.out.Buf, &b.Payments[i])
		} else {
			w.out.Buf = AppendOrder(w.out.Buf, &b.Orders[i])
		}
		{
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// AppendOrder appends o as a Doshii order object:
//
//	id, locationId, location {id}   the order and where it was taken
//	status                          from the order state (OrderStatus)
//	notes                           the order note, or null
//	items[]                         posId (the SKU, left out when unknown),
//	                                name, quantity, unitPrice and
//	                                totalBeforeSurcounts/totalAfterSurcounts
//	                                (strings of cents), type "single",
//	                                surcounts [], options []
//	surcounts []                    exportd has no order-level surcounts
//	taxes[]                         the order tax as one absolute,
//	                                exclusive tax; [] when zero
//	transactions[]                  see AppendTransaction
//	posCreatedAt, createdAt, updatedAt
//
// and, beyond Doshii's order object, so that a bulk consumer can reconcile
// money without re-deriving it: currency (ISO 4217), subtotalAmount,
// taxAmount, tipAmount (null when the order had no tip prompt) and
// totalAmount, all numbers of cents.
func AppendOrder(dst []byte, o *exportd.Order) []byte {
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendInt(dst, o.ID, 10)
	dst = append(dst, `","locationId":`...)
	dst = appendOptString(dst, o.LocationID)
	dst = append(dst, `,"location":`...)
	if o.LocationID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"id":`...)
		dst = jsonrec.AppendString(dst, *o.LocationID)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"status":`...)
	dst = jsonrec.AppendString(dst, OrderStatus(o.State))
	dst = append(dst, `,"notes":`...)
	dst = appendOptString(dst, o.Note)
	dst = append(dst, `,"items":[`...)
	for i := range o.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, &o.Items[i])
	}
	dst = append(dst, `],"surcounts":[],"taxes":[`...)
	if o.Tax != 0 {
		dst = append(dst, `{"name":"Tax","amount":"`...)
		dst = strconv.AppendInt(dst, o.Tax, 10)
		dst = append(dst, `","type":"absolute","taxType":"exclusive","value":"`...)
		dst = strconv.AppendInt(dst, o.Tax, 10)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"transactions":[`...)
	for i := range o.Payments {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendTransaction(dst, &o.Payments[i])
	}
	dst = append(dst, `],"posCreatedAt":`...)
	dst = appendTime(dst, o.CreatedAt)
	dst = append(dst, `,"createdAt":`...)
	dst = appendTime(dst, o.CreatedAt)
	dst = append(dst, `,"updatedAt":`...)
	dst = appendTime(dst, o.UpdatedAt)
	dst = append(dst, `,"currency":`...)
	dst = jsonrec.AppendString(dst, o.Currency)
	dst = append(dst, `,"subtotalAmount":`...)
	dst = strconv.AppendInt(dst, o.Subtotal, 10)
	dst = append(dst, `,"taxAmount":`...)
	dst = strconv.AppendInt(dst, o.Tax, 10)
	dst = append(dst, `,"tipAmount":`...)
	if o.Tip == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, *o.Tip, 10)
	}
	dst = append(dst, `,"totalAmount":`...)
	dst = strconv.AppendInt(dst, o.Total, 10)
	return append(dst, '}')
}

func appendItem(dst []byte, it *exportd.Item) []byte {
	dst = append(dst, '{')
	if it.SKU != nil {
		dst = append(dst, `"posId":`...)
		dst = jsonrec.AppendString(dst, *it.SKU)
		dst = append(dst, ',')
	}
	dst = append(dst, `"name":`...)
	dst = jsonrec.AppendString(dst, it.Name)
	dst = append(dst, `,"quantity":`...)
	dst = strconv.AppendInt(dst, int64(it.Quantity), 10)
	dst = append(dst, `,"unitPrice":"`...)
	dst = strconv.AppendInt(dst, it.UnitPrice, 10)
	dst = append(dst, `","totalBeforeSurcounts":"`...)
	dst = strconv.AppendInt(dst, it.Amount, 10)
	dst = append(dst, `","totalAfterSurcounts":"`...)
	dst = strconv.AppendInt(dst, it.Amount, 10)
	return append(dst, `","type":"single","surcounts":[],"options":[]}`...)
}

// AppendTransaction appends p as a Doshii transaction object: id, orderId
// (strings), amount (number of cents, negative for a refund, as the source
// stores it so that sums are net), method (PaymentMethod, from the tender
// and card brand), status (from the result), createdAt and updatedAt (the
// same: exportd keeps one time per transaction), and locationId.
func AppendTransaction(dst []byte, p *exportd.Payment) []byte {
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendInt(dst, p.ID, 10)
	dst = append(dst, `","orderId":"`...)
	dst = strconv.AppendInt(dst, p.OrderID, 10)
	dst = append(dst, `","locationId":`...)
	dst = appendOptString(dst, p.LocationID)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, p.Amount, 10)
	dst = append(dst, `,"method":`...)
	dst = jsonrec.AppendString(dst, PaymentMethod(p.Tender, p.CardBrand))
	dst = append(dst, `,"status":`...)
	dst = jsonrec.AppendString(dst, TransactionStatus(p.Result))
	dst = append(dst, `,"createdAt":`...)
	dst = appendTime(dst, p.CreatedAt)
	dst = append(dst, `,"updatedAt":`...)
	dst = appendTime(dst, p.CreatedAt)
	return append(dst, '}')
}

// OrderStatus maps an exportd order state onto Doshii's order statuses:
// an open order is one the venue accepted, a paid or refunded one is
// complete, a voided one was cancelled. Unknown states pass through, so no
// information is lost to a guess.
func OrderStatus(state string) string {
	switch strings.ToLower(state) {
	case "open":
		return "accepted"
	case "paid", "refunded", "partially_refunded":
		return "complete"
	case "voided", "void", "cancelled", "canceled":
		return "cancelled"
	}
	return state
}

// PaymentMethod maps a tender and card brand onto Doshii's PaymentMethod
// values; card brands Doshii does not list, and unknown tenders, are
// "other".
func PaymentMethod(tender string, brand *string) string {
	switch strings.ToLower(tender) {
	case "cash":
		return "cash"
	case "gift_card", "giftcard":
		return "giftcard"
	case "card":
		if brand == nil {
			return "other"
		}
		switch b := strings.ToLower(*brand); b {
		case "visa", "mastercard", "amex", "diners", "eftpos":
			return b
		}
	}
	return "other"
}

// TransactionStatus maps a transaction result onto Doshii's transaction
// statuses: a success is complete, a decline rejected; others pass through.
func TransactionStatus(result string) string {
	switch strings.ToLower(result) {
	case "success":
		return "complete"
	case "declined", "failed":
		return "rejected"
	}
	return result
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().Truncate(time.Millisecond).AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return jsonrec.AppendString(dst, *s)
}

// Close ends the document and the stream; it does not close the
// underlying io.Writer.
func (w *Writer) Close() error { return w.out.Close("]") }
