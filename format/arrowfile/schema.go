package arrowfile

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// timestamp is the type of every time column: the microsecond precision
// and UTC zone of the Parquet files, so both formats hold the same values.
func timestamp() arrow.DataType {
	return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
}

// Field nullability mirrors the Go types: a pointer field is nullable,
// anything else is not.

func itemType() *arrow.StructType {
	return arrow.StructOf(
		arrow.Field{Name: "line", Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: "sku", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "name", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "quantity", Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: "unit_price", Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: "amount", Type: arrow.PrimitiveTypes.Int64},
	)
}

func paymentFields() []arrow.Field {
	return []arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "order_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "merchant_id", Type: arrow.BinaryTypes.String},
		{Name: "location_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "created_at", Type: timestamp()},
		{Name: "kind", Type: arrow.BinaryTypes.String},
		{Name: "tender", Type: arrow.BinaryTypes.String},
		{Name: "card_brand", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "result", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: arrow.PrimitiveTypes.Int64},
	}
}

// paymentSchema is the schema of a payments file.
func paymentSchema() *arrow.Schema {
	return arrow.NewSchema(paymentFields(), nil)
}

// orderSchema is the schema of an orders file: items and payments are
// non-null lists of non-null structs, empty when an order has none.
func orderSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "merchant_id", Type: arrow.BinaryTypes.String},
		{Name: "location_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "created_at", Type: timestamp()},
		{Name: "updated_at", Type: timestamp()},
		{Name: "state", Type: arrow.BinaryTypes.String},
		{Name: "currency", Type: arrow.BinaryTypes.String},
		{Name: "subtotal", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tax", Type: arrow.PrimitiveTypes.Int64},
		{Name: "tip", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "total", Type: arrow.PrimitiveTypes.Int64},
		{Name: "customer_ref", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "items", Type: arrow.ListOfNonNullable(itemType())},
		{Name: "payments", Type: arrow.ListOfNonNullable(arrow.StructOf(paymentFields()...))},
	}, nil)
}

// The column builders below are resolved once so appending a row is a
// sequence of direct calls, with no type assertions per value.

type itemCols struct {
	line, quantity    *array.Int32Builder
	sku, name         *array.StringBuilder
	unitPrice, amount *array.Int64Builder
	list              *array.ListBuilder
	elem              *array.StructBuilder
}

type paymentCols struct {
	id, orderID, amount                                 *array.Int64Builder
	merchantID, locationID, kind, tender, brand, result *array.StringBuilder
	createdAt                                           *array.TimestampBuilder
}

type orderCols struct {
	id, subtotal, tax, tip, total                          *array.Int64Builder
	merchantID, locationID, state, currency, custRef, note *array.StringBuilder
	createdAt, updatedAt                                   *array.TimestampBuilder
	items                                                  itemCols
	payList                                                *array.ListBuilder
	payElem                                                *array.StructBuilder
	payments                                               paymentCols
}

// field is how a column builder is looked up: in a RecordBuilder for the
// top-level columns, in a StructBuilder for nested ones.
type field func(i int) array.Builder

func newPaymentCols(f field) paymentCols {
	return paymentCols{
		id:         f(0).(*array.Int64Builder),
		orderID:    f(1).(*array.Int64Builder),
		merchantID: f(2).(*array.StringBuilder),
		locationID: f(3).(*array.StringBuilder),
		createdAt:  f(4).(*array.TimestampBuilder),
		kind:       f(5).(*array.StringBuilder),
		tender:     f(6).(*array.StringBuilder),
		brand:      f(7).(*array.StringBuilder),
		result:     f(8).(*array.StringBuilder),
		amount:     f(9).(*array.Int64Builder),
	}
}

func newOrderCols(f field) orderCols {
	items := f(13).(*array.ListBuilder)
	itemElem := items.ValueBuilder().(*array.StructBuilder)
	pays := f(14).(*array.ListBuilder)
	payElem := pays.ValueBuilder().(*array.StructBuilder)
	return orderCols{
		id:         f(0).(*array.Int64Builder),
		merchantID: f(1).(*array.StringBuilder),
		locationID: f(2).(*array.StringBuilder),
		createdAt:  f(3).(*array.TimestampBuilder),
		updatedAt:  f(4).(*array.TimestampBuilder),
		state:      f(5).(*array.StringBuilder),
		currency:   f(6).(*array.StringBuilder),
		subtotal:   f(7).(*array.Int64Builder),
		tax:        f(8).(*array.Int64Builder),
		tip:        f(9).(*array.Int64Builder),
		total:      f(10).(*array.Int64Builder),
		custRef:    f(11).(*array.StringBuilder),
		note:       f(12).(*array.StringBuilder),
		items: itemCols{
			list:      items,
			elem:      itemElem,
			line:      itemElem.FieldBuilder(0).(*array.Int32Builder),
			sku:       itemElem.FieldBuilder(1).(*array.StringBuilder),
			name:      itemElem.FieldBuilder(2).(*array.StringBuilder),
			quantity:  itemElem.FieldBuilder(3).(*array.Int32Builder),
			unitPrice: itemElem.FieldBuilder(4).(*array.Int64Builder),
			amount:    itemElem.FieldBuilder(5).(*array.Int64Builder),
		},
		payList:  pays,
		payElem:  payElem,
		payments: newPaymentCols(payElem.FieldBuilder),
	}
}
