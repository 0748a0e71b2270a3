// Package jsonrec encodes export records as JSON objects. The jsonl and
// csv.gz writers both embed this encoding, so it lives in one place; it is
// written with appends rather than encoding/json because reflection and
// per-record allocation dominate the cost of large exports.
//
// Keys are the names of exportd's column tables, in the tables' order, as
// TestKeyOrderFollowsColumns checks; they are spelled out below rather than
// looked up so that encoding a record does nothing but append. Nil pointers
// encode as null, nested lists always as arrays ([] when empty), and times
// as RFC 3339 UTC with exactly six fractional digits, so every format of an
// export agrees on precision.
package jsonrec

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/exportd/exportd"
)

// TimeLayout is the time.Format layout of every exported timestamp; the
// fixed six digits keep columns sortable as text and match the microsecond
// precision of the binary formats.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// AppendOrder appends o as one JSON object, items and payments nested.
func AppendOrder(dst []byte, o *exportd.Order) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, o.ID, 10)
	dst = append(dst, `,"merchant_id":`...)
	dst = AppendString(dst, o.MerchantID)
	dst = append(dst, `,"location_id":`...)
	dst = appendOptString(dst, o.LocationID)
	dst = append(dst, `,"created_at":`...)
	dst = appendQuotedTime(dst, o.CreatedAt)
	dst = append(dst, `,"updated_at":`...)
	dst = appendQuotedTime(dst, o.UpdatedAt)
	dst = append(dst, `,"state":`...)
	dst = AppendString(dst, o.State)
	dst = append(dst, `,"currency":`...)
	dst = AppendString(dst, o.Currency)
	dst = append(dst, `,"subtotal":`...)
	dst = strconv.AppendInt(dst, o.Subtotal, 10)
	dst = append(dst, `,"tax":`...)
	dst = strconv.AppendInt(dst, o.Tax, 10)
	dst = append(dst, `,"tip":`...)
	dst = appendOptInt(dst, o.Tip)
	dst = append(dst, `,"total":`...)
	dst = strconv.AppendInt(dst, o.Total, 10)
	dst = append(dst, `,"customer_ref":`...)
	dst = appendOptString(dst, o.CustomerRef)
	dst = append(dst, `,"note":`...)
	dst = appendOptString(dst, o.Note)
	dst = append(dst, `,"items":`...)
	dst = AppendItems(dst, o.Items)
	dst = append(dst, `,"payments":`...)
	dst = AppendPayments(dst, o.Payments)
	return append(dst, '}')
}

// AppendItems appends items as a JSON array; nil appends [] so readers never
// have to tell a missing list from an empty one.
func AppendItems(dst []byte, items []exportd.Item) []byte {
	dst = append(dst, '[')
	for i := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		it := &items[i]
		dst = append(dst, `{"line":`...)
		dst = strconv.AppendInt(dst, int64(it.Line), 10)
		dst = append(dst, `,"sku":`...)
		dst = appendOptString(dst, it.SKU)
		dst = append(dst, `,"name":`...)
		dst = AppendString(dst, it.Name)
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendInt(dst, int64(it.Quantity), 10)
		dst = append(dst, `,"unit_price":`...)
		dst = strconv.AppendInt(dst, it.UnitPrice, 10)
		dst = append(dst, `,"amount":`...)
		dst = strconv.AppendInt(dst, it.Amount, 10)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// AppendPayments appends ps as a JSON array; nil appends [].
func AppendPayments(dst []byte, ps []exportd.Payment) []byte {
	dst = append(dst, '[')
	for i := range ps {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendPayment(dst, &ps[i])
	}
	return append(dst, ']')
}

// AppendPayment appends p as one JSON object.
func AppendPayment(dst []byte, p *exportd.Payment) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, p.ID, 10)
	dst = append(dst, `,"order_id":`...)
	dst = strconv.AppendInt(dst, p.OrderID, 10)
	dst = append(dst, `,"merchant_id":`...)
	dst = AppendString(dst, p.MerchantID)
	dst = append(dst, `,"location_id":`...)
	dst = appendOptString(dst, p.LocationID)
	dst = append(dst, `,"created_at":`...)
	dst = appendQuotedTime(dst, p.CreatedAt)
	dst = append(dst, `,"kind":`...)
	dst = AppendString(dst, p.Kind)
	dst = append(dst, `,"tender":`...)
	dst = AppendString(dst, p.Tender)
	dst = append(dst, `,"card_brand":`...)
	dst = appendOptString(dst, p.CardBrand)
	dst = append(dst, `,"result":`...)
	dst = AppendString(dst, p.Result)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, p.Amount, 10)
	return append(dst, '}')
}

// AppendOrderChange appends o as a record of a change export: an upsert is
// AppendOrder's object with "op":"upsert" last, a delete is AppendDelete's.
func AppendOrderChange(dst []byte, o *exportd.Order) []byte {
	if o.Op == exportd.OpDelete {
		return AppendDelete(dst, o.ID, o.MerchantID, o.CreatedAt, o.DeletedAt)
	}
	return appendUpsert(AppendOrder(dst, o))
}

// AppendPaymentChange appends p as a record of a change export, as
// AppendOrderChange does an order.
func AppendPaymentChange(dst []byte, p *exportd.Payment) []byte {
	if p.Op == exportd.OpDelete {
		return AppendDelete(dst, p.ID, p.MerchantID, p.CreatedAt, p.DeletedAt)
	}
	return appendUpsert(AppendPayment(dst, p))
}

// appendUpsert adds "op":"upsert" to the object that dst ends with. An
// upsert has no deleted_at key: omitting it keeps an upsert the object of
// an ordinary export with one key more.
func appendUpsert(dst []byte) []byte {
	return append(dst[:len(dst)-1], `,"op":"upsert"}`...)
}

// AppendDelete appends the delete of a record of either dataset as one
// JSON object of the only columns a delete has, in the tables' order: id,
// merchant_id, created_at, op and deleted_at. Leaving out the others, rather
// than writing zeros, keeps a delete from being read as data.
func AppendDelete(dst []byte, id int64, merchantID string, createdAt time.Time, deletedAt *time.Time) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"merchant_id":`...)
	dst = AppendString(dst, merchantID)
	dst = append(dst, `,"created_at":`...)
	dst = appendQuotedTime(dst, createdAt)
	dst = append(dst, `,"op":"delete","deleted_at":`...)
	if deletedAt == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendQuotedTime(dst, *deletedAt)
	}
	return append(dst, '}')
}

// AppendTime appends t in TimeLayout, converted to UTC and truncated to the
// microsecond, without quotes.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		// Four-digit years only; let the standard library render the rest.
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1000, 6)
	return append(dst, 'Z')
}

// appendDigits appends the n low decimal digits of v, zero-padded.
func appendDigits(dst []byte, v, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, 0)
	}
	for i := len(dst) - 1; n > 0; i, n = i-1, n-1 {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

func appendQuotedTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = AppendTime(dst, t)
	return append(dst, '"')
}

func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return AppendString(dst, *s)
}

func appendOptInt(dst []byte, v *int64) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, *v, 10)
}

// AppendString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD and U+2028/U+2029 are escaped, as encoding/json does, so every
// line is valid JSON and safe to embed in JavaScript.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hex = "0123456789abcdef"
