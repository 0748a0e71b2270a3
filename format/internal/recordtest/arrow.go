package recordtest

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// AppendArrow reads the rows of rec back into records and appends them to
// b, failing t if a column is missing, of an unexpected type, null where
// the Go field is not a pointer, or a time column is not timestamp[us, UTC].
// It serves both the Arrow IPC reader and the Parquet-to-Arrow reader.
func AppendArrow(t testing.TB, b *exportd.Batch, rec arrow.RecordBatch) {
	t.Helper()
	c := recordColumns(t, rec)
	n := int(rec.NumRows())
	if b.Dataset == exportd.Payments {
		b.Payments = c.payments(b.Payments, 0, n)
		return
	}
	b.Orders = c.orders(b.Orders, n)
}

// AppendArrowChanges reads the rows of rec, a record batch of a change
// export, back into records as AppendArrow does, with their Op from the
// op column and their DeletedAt from the nullable deleted_at column.
func AppendArrowChanges(t testing.TB, b *exportd.Batch, rec arrow.RecordBatch) {
	t.Helper()
	from := b.Len()
	AppendArrow(t, b, rec)
	c := recordColumns(t, rec)
	op, deleted := c.text("op", false), c.timestamps("deleted_at", true)
	for i := range int(rec.NumRows()) {
		o := exportd.ChangeOp(strings.Clone(op.Value(i)))
		var at *time.Time
		if !deleted.IsNull(i) {
			v := timeAt(deleted, i)
			at = &v
		}
		if b.Dataset == exportd.Payments {
			b.Payments[from+i].Op, b.Payments[from+i].DeletedAt = o, at
		} else {
			b.Orders[from+i].Op, b.Orders[from+i].DeletedAt = o, at
		}
	}
}

// columns finds the columns of a record batch or the fields of a struct.
type columns struct {
	t   testing.TB
	get func(name string) arrow.Array
}

func recordColumns(t testing.TB, rec arrow.RecordBatch) columns {
	return columns{t: t, get: func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		require.Len(t, idx, 1, "column %q", name)
		return rec.Column(idx[0])
	}}
}

func structColumns(t testing.TB, s *array.Struct) columns {
	st := s.DataType().(*arrow.StructType)
	return columns{t: t, get: func(name string) arrow.Array {
		i, ok := st.FieldIdx(name)
		require.True(t, ok, "struct field %q", name)
		return s.Field(i)
	}}
}

func column[A arrow.Array](c columns, name string, nullable bool) A {
	c.t.Helper()
	a := c.get(name)
	v, ok := a.(A)
	require.True(c.t, ok, "column %q has type %s", name, a.DataType())
	if !nullable {
		require.Zero(c.t, a.NullN(), "nulls in required column %q", name)
	}
	return v
}

func (c columns) int64s(name string) *array.Int64 { return column[*array.Int64](c, name, false) }
func (c columns) int32s(name string) *array.Int32 { return column[*array.Int32](c, name, false) }
func (c columns) text(name string, nullable bool) *array.String {
	return column[*array.String](c, name, nullable)
}

func (c columns) times(name string) *array.Timestamp {
	c.t.Helper()
	return c.timestamps(name, false)
}

func (c columns) timestamps(name string, nullable bool) *array.Timestamp {
	c.t.Helper()
	a := column[*array.Timestamp](c, name, nullable)
	tt := a.DataType().(*arrow.TimestampType)
	require.Equal(c.t, arrow.Microsecond, tt.Unit, "unit of %q", name)
	require.Equal(c.t, "UTC", tt.TimeZone, "time zone of %q", name)
	return a
}

func (c columns) list(name string) (*array.List, columns) {
	c.t.Helper()
	l := column[*array.List](c, name, false)
	s, ok := l.ListValues().(*array.Struct)
	require.True(c.t, ok, "elements of %q are %s", name, l.ListValues().DataType())
	require.Zero(c.t, s.NullN(), "null elements in %q", name)
	return l, structColumns(c.t, s)
}

func (c columns) orders(dst []exportd.Order, n int) []exportd.Order {
	id, merchant, loc := c.int64s("id"), c.text("merchant_id", false), c.text("location_id", true)
	created, updated := c.times("created_at"), c.times("updated_at")
	state, currency := c.text("state", false), c.text("currency", false)
	subtotal, tax, tip, total := c.int64s("subtotal"), c.int64s("tax"), column[*array.Int64](c, "tip", true), c.int64s("total")
	cust, note := c.text("customer_ref", true), c.text("note", true)
	items, ic := c.list("items")
	pays, pc := c.list("payments")
	line, sku, name, qty := ic.int32s("line"), ic.text("sku", true), ic.text("name", false), ic.int32s("quantity")
	unit, amount := ic.int64s("unit_price"), ic.int64s("amount")
	for i := range n {
		o := exportd.Order{
			ID:          id.Value(i),
			MerchantID:  strings.Clone(merchant.Value(i)),
			LocationID:  optString(loc, i),
			CreatedAt:   timeAt(created, i),
			UpdatedAt:   timeAt(updated, i),
			State:       strings.Clone(state.Value(i)),
			Currency:    strings.Clone(currency.Value(i)),
			Subtotal:    subtotal.Value(i),
			Tax:         tax.Value(i),
			Total:       total.Value(i),
			CustomerRef: optString(cust, i),
			Note:        optString(note, i),
		}
		if !tip.IsNull(i) {
			v := tip.Value(i)
			o.Tip = &v
		}
		from, to := items.ValueOffsets(i)
		for j := int(from); j < int(to); j++ {
			o.Items = append(o.Items, exportd.Item{
				Line:      line.Value(j),
				SKU:       optString(sku, j),
				Name:      strings.Clone(name.Value(j)),
				Quantity:  qty.Value(j),
				UnitPrice: unit.Value(j),
				Amount:    amount.Value(j),
			})
		}
		from, to = pays.ValueOffsets(i)
		o.Payments = pc.payments(nil, int(from), int(to))
		dst = append(dst, o)
	}
	return dst
}

func (c columns) payments(dst []exportd.Payment, from, to int) []exportd.Payment {
	id, order, merchant := c.int64s("id"), c.int64s("order_id"), c.text("merchant_id", false)
	loc, created := c.text("location_id", true), c.times("created_at")
	kind, tender, brand := c.text("kind", false), c.text("tender", false), c.text("card_brand", true)
	result, amount := c.text("result", false), c.int64s("amount")
	for i := from; i < to; i++ {
		dst = append(dst, exportd.Payment{
			ID:         id.Value(i),
			OrderID:    order.Value(i),
			MerchantID: strings.Clone(merchant.Value(i)),
			LocationID: optString(loc, i),
			CreatedAt:  timeAt(created, i),
			Kind:       strings.Clone(kind.Value(i)),
			Tender:     strings.Clone(tender.Value(i)),
			CardBrand:  optString(brand, i),
			Result:     strings.Clone(result.Value(i)),
			Amount:     amount.Value(i),
		})
	}
	return dst
}

func optString(a *array.String, i int) *string {
	if a.IsNull(i) {
		return nil
	}
	s := strings.Clone(a.Value(i))
	return &s
}

func timeAt(a *array.Timestamp, i int) time.Time {
	return time.UnixMicro(int64(a.Value(i))).UTC()
}
