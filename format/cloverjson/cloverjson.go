// Package cloverjson writes export records as the files of Clover's Export
// API: one JSON document {"elements":[...]} of Clover-shaped objects, so
// that clients written for Clover parse them unchanged. The part size (1000
// objects in the Clover dialect) is the exporter's business, not this one's.
//
// The mapping follows Clover's v3 order and payment objects (the field
// names and enums of Clover's REST API and Android SDK):
//
//   - Ids are strings, as Clover's are: the decimal exportd id. A line item
//     has none of its own, so its id is "<order id>-<line>".
//   - Times are epoch milliseconds (createdTime, modifiedTime); exportd's
//     microseconds are truncated.
//   - Money is integer cents, as in exportd and Clover.
//   - An order is {id, currency, customers?, total, paymentState?, note?,
//     state, createdTime, modifiedTime, lineItems, payments, refunds}, the
//     three lists always present as {"elements": [...]}. state is exportd's
//     state verbatim (Clover leaves its value free); paymentState is its
//     upper-case form when that is one of Clover's PaymentState values.
//     customer_ref becomes customers.elements[0].id. Subtotal, tax, tip and
//     location have no place on a Clover order and are not written.
//   - A line item is {id, name, price, unitQty, itemCode?, createdTime}:
//     price is the unit price and unitQty the quantity in Clover's
//     fixed-point thousandths, so Clover's price × unitQty / 1000 is the
//     line amount.
//   - A payment is {id, order {id}, tender {label, labelKey}, amount,
//     createdTime, result, cardTransaction {cardType}?}, result and
//     cardType mapped onto Clover's enums (Result, CardType); the card
//     transaction is written only when the record has a card brand.
//   - Refunds. exportd keeps a refund as a transaction with a negative
//     amount; Clover keeps refunds apart from payments. In an order, sales
//     go to payments.elements and refunds to refunds.elements as Clover
//     refund objects {id, orderRef {id}, amount (positive), createdTime,
//     status, overrideMerchantTender, cardTransaction?}. In the payments
//     dataset every transaction is one payment object, so a file holds one
//     object per exported record, and a refund keeps its negative amount:
//     sums of amount are net, as in exportd's tallies.
//
// The bytes depend only on the records: encoded objects collect in a
// buffer that goes to the underlying writer whenever it grows past
// flushSize after a whole object, and nothing else is written.
package cloverjson

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

const (
	header  = `{"elements":[`
	trailer = `]}`
)

// Writer writes one dataset as a Clover {"elements":[...]} document.
type Writer struct {
	d   exportd.Dataset
	out *recbuf.Buffer
	n   int64 // objects written
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) *Writer {
	return &Writer{d: d, out: recbuf.New(w, false, "clover-json", header)}
}

// Write appends the records of b, one Clover object each.
func (w *Writer) Write(b *exportd.Batch) error {
	if err := w.out.Err(); err != nil {
		return err
	}
	if w.out.Closed() {
		return errors.New("cloverjson: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("cloverjson: batch of %q written to a %q file", b.Dataset, w.d)
	}
	for i := range b.Len() {
		if w.n > 0 {
			w.out.Buf = append(w.out.Buf, ',')
		}
		if w.d == exportd.Payments {
			w.out.Buf = AppendPayment(w.out.Buf, &b.Payments[i])
		} else {
			w.out.Buf = AppendOrder(w.out.Buf, &b.Orders[i])
		}
		w.n++
		{
			if err := w.out.MaybeFlush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// AppendOrder appends o as one Clover order object.
func AppendOrder(dst []byte, o *exportd.Order) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, o.ID)
	dst = append(dst, `,"currency":`...)
	dst = jsonrec.AppendString(dst, o.Currency)
	if o.CustomerRef != nil {
		dst = append(dst, `,"customers":{"elements":[{"id":`...)
		dst = jsonrec.AppendString(dst, *o.CustomerRef)
		dst = append(dst, `}]}`...)
	}
	dst = append(dst, `,"total":`...)
	dst = strconv.AppendInt(dst, o.Total, 10)
	if ps := PaymentState(o.State); ps != "" {
		dst = append(dst, `,"paymentState":"`...)
		dst = append(dst, ps...)
		dst = append(dst, '"')
	}
	if o.Note != nil {
		dst = append(dst, `,"note":`...)
		dst = jsonrec.AppendString(dst, *o.Note)
	}
	dst = append(dst, `,"state":`...)
	dst = jsonrec.AppendString(dst, o.State)
	dst = append(dst, `,"createdTime":`...)
	dst = appendMillis(dst, o.CreatedAt)
	dst = append(dst, `,"modifiedTime":`...)
	dst = appendMillis(dst, o.UpdatedAt)

	dst = append(dst, `,"lineItems":{"elements":[`...)
	for i := range o.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendLineItem(dst, o, &o.Items[i])
	}
	dst = append(dst, `]},"payments":{"elements":[`...)
	n := 0
	for i := range o.Payments {
		if p := &o.Payments[i]; !isRefund(p) {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = AppendPayment(dst, p)
			n++
		}
	}
	dst = append(dst, `]},"refunds":{"elements":[`...)
	n = 0
	for i := range o.Payments {
		if p := &o.Payments[i]; isRefund(p) {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendRefund(dst, p)
			n++
		}
	}
	return append(dst, `]}}`...)
}

func appendLineItem(dst []byte, o *exportd.Order, it *exportd.Item) []byte {
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendInt(dst, o.ID, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(it.Line), 10)
	dst = append(dst, `","name":`...)
	dst = jsonrec.AppendString(dst, it.Name)
	dst = append(dst, `,"price":`...)
	dst = strconv.AppendInt(dst, it.UnitPrice, 10)
	dst = append(dst, `,"unitQty":`...)
	dst = strconv.AppendInt(dst, int64(it.Quantity)*1000, 10)
	if it.SKU != nil {
		dst = append(dst, `,"itemCode":`...)
		dst = jsonrec.AppendString(dst, *it.SKU)
	}
	dst = append(dst, `,"createdTime":`...)
	dst = appendMillis(dst, o.CreatedAt)
	return append(dst, '}')
}

// AppendPayment appends p as one Clover payment object. A refund keeps its
// negative amount; within an order, refunds are written by appendRefund
// instead.
func AppendPayment(dst []byte, p *exportd.Payment) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, p.ID)
	dst = append(dst, `,"order":{"id":`...)
	dst = appendID(dst, p.OrderID)
	dst = append(dst, `},"tender":`...)
	dst = appendTender(dst, p.Tender)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, p.Amount, 10)
	dst = append(dst, `,"createdTime":`...)
	dst = appendMillis(dst, p.CreatedAt)
	dst = append(dst, `,"result":`...)
	dst = jsonrec.AppendString(dst, PaymentResult(p.Result))
	dst = appendCardTransaction(dst, p.CardBrand)
	return append(dst, '}')
}

func appendRefund(dst []byte, p *exportd.Payment) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, p.ID)
	dst = append(dst, `,"orderRef":{"id":`...)
	dst = appendID(dst, p.OrderID)
	dst = append(dst, `},"amount":`...)
	dst = strconv.AppendInt(dst, -p.Amount, 10)
	dst = append(dst, `,"createdTime":`...)
	dst = appendMillis(dst, p.CreatedAt)
	dst = append(dst, `,"status":`...)
	dst = jsonrec.AppendString(dst, RefundStatus(p.Result))
	dst = append(dst, `,"overrideMerchantTender":`...)
	dst = appendTender(dst, p.Tender)
	dst = appendCardTransaction(dst, p.CardBrand)
	return append(dst, '}')
}

func appendTender(dst []byte, tender string) []byte {
	label, key := Tender(tender)
	dst = append(dst, `{"label":`...)
	dst = jsonrec.AppendString(dst, label)
	dst = append(dst, `,"labelKey":`...)
	dst = jsonrec.AppendString(dst, key)
	return append(dst, '}')
}

func appendCardTransaction(dst []byte, brand *string) []byte {
	if brand == nil {
		return dst
	}
	dst = append(dst, `,"cardTransaction":{"cardType":`...)
	dst = jsonrec.AppendString(dst, CardType(*brand))
	return append(dst, '}')
}

// isRefund: the kind says so, and a negative amount is a refund whatever
// the kind, since Clover has no negative payments within an order.
func isRefund(p *exportd.Payment) bool { return p.Kind == "refund" || p.Amount < 0 }

func appendID(dst []byte, id int64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '"')
}

func appendMillis(dst []byte, t time.Time) []byte {
	return strconv.AppendInt(dst, t.UnixMilli(), 10)
}

// paymentStates maps exportd order states onto Clover's order PaymentState
// enum, keyed in lower case because exportd's states are.
var paymentStates = map[string]string{
	"open": "OPEN", "paid": "PAID", "refunded": "REFUNDED", "credited": "CREDITED",
	"partially_paid": "PARTIALLY_PAID", "partially_refunded": "PARTIALLY_REFUNDED",
}

// PaymentState returns Clover's paymentState for an exportd order state, or
// "" when the state is none of Clover's (the field is then left out rather
// than guessed).
func PaymentState(state string) string {
	return paymentStates[strings.ToLower(state)]
}

// PaymentResult maps an exportd transaction result onto Clover's payment
// Result enum; unknown results are passed on upper-cased rather than lost.
func PaymentResult(result string) string {
	switch r := strings.ToLower(result); r {
	case "success", "succeeded", "approved":
		return "SUCCESS"
	case "declined", "failed", "fail", "error":
		return "FAIL"
	case "voided", "pending", "initiated", "auth":
		return strings.ToUpper(r)
	}
	return strings.ToUpper(result)
}

// RefundStatus maps an exportd transaction result onto Clover's
// RefundStatus enum (FAIL, SUCCESS, PENDING, VOIDED).
func RefundStatus(result string) string {
	switch r := PaymentResult(result); r {
	case "SUCCESS", "FAIL", "PENDING", "VOIDED":
		return r
	}
	return "FAIL"
}

// cardTypes maps card brand spellings, upper case, onto Clover's CardType
// enum; the lower-case spellings exportd's sources use are there too, so
// the common case does not allocate.
var cardTypes = map[string]string{
	"VISA": "VISA", "MC": "MC", "MASTERCARD": "MC", "MASTER_CARD": "MC", "AMEX": "AMEX", "AMERICAN_EXPRESS": "AMEX",
	"DISCOVER": "DISCOVER", "DINERS": "DINERS_CLUB", "DINERS_CLUB": "DINERS_CLUB", "JCB": "JCB", "MAESTRO": "MAESTRO",
	"UNIONPAY": "CHINA_UNION_PAY", "UNION_PAY": "CHINA_UNION_PAY", "CHINA_UNION_PAY": "CHINA_UNION_PAY",
	"INTERAC": "INTERAC", "EFTPOS": "EFTPOS", "GIROCARD": "GIROCARD", "RUPAY": "RUPAY", "EBT": "EBT",
	"GIFT_CARD": "GIFT_CARD", "CARTE_BLANCHE": "CARTE_BLANCHE", "SOLO": "SOLO", "LASER": "LASER",
	"BANCNET": "BANCNET", "UNKNOWN": "UNKNOWN", "OTHER": "OTHER",
	"visa": "VISA", "mastercard": "MC", "amex": "AMEX", "discover": "DISCOVER",
}

// CardType maps a card brand onto Clover's CardType enum; a brand Clover
// has no name for is OTHER, as Clover itself reports it.
func CardType(brand string) string {
	if t, ok := cardTypes[brand]; ok {
		return t
	}
	k := strings.ToUpper(strings.TrimSpace(brand))
	k = strings.ReplaceAll(strings.ReplaceAll(k, " ", "_"), "-", "_")
	if t, ok := cardTypes[k]; ok {
		return t
	}
	return "OTHER"
}

// Tender returns the label and labelKey of the Clover tender for an exportd
// tender. Tenders Clover has no standard key for are external payments
// labelled with the exportd name, so the name is not lost.
func Tender(tender string) (label, labelKey string) {
	switch strings.ToLower(tender) {
	case "card", "credit", "credit_card":
		return "Credit Card", "com.clover.tender.credit_card"
	case "debit", "debit_card":
		return "Debit Card", "com.clover.tender.debit_card"
	case "cash":
		return "Cash", "com.clover.tender.cash"
	case "check", "cheque":
		return "Check", "com.clover.tender.check"
	case "gift_card", "giftcard", "gift card":
		return "Gift Card", "com.clover.tender.external_gift_card"
	}
	return tender, "com.clover.tender.external_payment"
}

// Close ends the document and the stream; it does not close the
// underlying io.Writer.
func (w *Writer) Close() error { return w.out.Close(trailer) }
