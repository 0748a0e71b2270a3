package arrowfile

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/exportd/exportd"
)

// timestamp is the type of every time column: the microsecond precision
// and UTC zone of the Parquet files, so both formats hold the same values.
func timestamp() arrow.DataType {
	return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
}

// fields builds the Arrow fields of a column table: the names, types and
// nullability of exportd's tables, lists as non-null lists of non-null
// structs, empty when a record has none.
func fields(cols []exportd.Column) []arrow.Field {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = arrow.Field{Name: c.Name, Type: dataType(c), Nullable: c.Nullable}
	}
	return fs
}

func dataType(c exportd.Column) arrow.DataType {
	switch c.Type {
	case exportd.Int32:
		return arrow.PrimitiveTypes.Int32
	case exportd.Int64:
		return arrow.PrimitiveTypes.Int64
	case exportd.String:
		return arrow.BinaryTypes.String
	case exportd.Timestamp:
		return timestamp()
	case exportd.List:
		return arrow.ListOfNonNullable(arrow.StructOf(fields(c.Elem)...))
	}
	panic(fmt.Sprintf("arrowfile: column %q has no Arrow type for %s", c.Name, c.Type))
}

// schemaOf is the schema of a file of the given columns.
func schemaOf(cols []exportd.Column) *arrow.Schema {
	return arrow.NewSchema(fields(cols), nil)
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

// builders finds the builders of a column table's columns by name, so the
// append code below names columns rather than counting them.
type builders struct {
	cols  []exportd.Column
	field field
}

// get returns the builder of column name as a B. A name missing from the
// table, or a builder of another type, is a bug of this file that every
// test writing a file finds.
func get[B array.Builder](bs builders, name string) B {
	for i, c := range bs.cols {
		if c.Name == name {
			if b, ok := bs.field(i).(B); ok {
				return b
			}
			panic(fmt.Sprintf("arrowfile: column %q has builder %T", name, bs.field(i)))
		}
	}
	panic(fmt.Sprintf("arrowfile: no column %q in %v", name, exportd.ColumnNames(bs.cols)))
}

// changeCols are the trailing columns of a change export.
type changeCols struct {
	op        *array.StringBuilder
	deletedAt *array.TimestampBuilder
}

func newChangeCols(bs builders) *changeCols {
	return &changeCols{
		op:        get[*array.StringBuilder](bs, "op"),
		deletedAt: get[*array.TimestampBuilder](bs, "deleted_at"),
	}
}

func newPaymentCols(bs builders) paymentCols {
	return paymentCols{
		id:         get[*array.Int64Builder](bs, "id"),
		orderID:    get[*array.Int64Builder](bs, "order_id"),
		merchantID: get[*array.StringBuilder](bs, "merchant_id"),
		locationID: get[*array.StringBuilder](bs, "location_id"),
		createdAt:  get[*array.TimestampBuilder](bs, "created_at"),
		kind:       get[*array.StringBuilder](bs, "kind"),
		tender:     get[*array.StringBuilder](bs, "tender"),
		brand:      get[*array.StringBuilder](bs, "card_brand"),
		result:     get[*array.StringBuilder](bs, "result"),
		amount:     get[*array.Int64Builder](bs, "amount"),
	}
}

func newOrderCols(bs builders) orderCols {
	items := get[*array.ListBuilder](bs, "items")
	itemElem := items.ValueBuilder().(*array.StructBuilder)
	ib := builders{cols: exportd.ItemColumns, field: itemElem.FieldBuilder}
	pays := get[*array.ListBuilder](bs, "payments")
	payElem := pays.ValueBuilder().(*array.StructBuilder)
	return orderCols{
		id:         get[*array.Int64Builder](bs, "id"),
		merchantID: get[*array.StringBuilder](bs, "merchant_id"),
		locationID: get[*array.StringBuilder](bs, "location_id"),
		createdAt:  get[*array.TimestampBuilder](bs, "created_at"),
		updatedAt:  get[*array.TimestampBuilder](bs, "updated_at"),
		state:      get[*array.StringBuilder](bs, "state"),
		currency:   get[*array.StringBuilder](bs, "currency"),
		subtotal:   get[*array.Int64Builder](bs, "subtotal"),
		tax:        get[*array.Int64Builder](bs, "tax"),
		tip:        get[*array.Int64Builder](bs, "tip"),
		total:      get[*array.Int64Builder](bs, "total"),
		custRef:    get[*array.StringBuilder](bs, "customer_ref"),
		note:       get[*array.StringBuilder](bs, "note"),
		items: itemCols{
			list:      items,
			elem:      itemElem,
			line:      get[*array.Int32Builder](ib, "line"),
			sku:       get[*array.StringBuilder](ib, "sku"),
			name:      get[*array.StringBuilder](ib, "name"),
			quantity:  get[*array.Int32Builder](ib, "quantity"),
			unitPrice: get[*array.Int64Builder](ib, "unit_price"),
			amount:    get[*array.Int64Builder](ib, "amount"),
		},
		payList:  pays,
		payElem:  payElem,
		payments: newPaymentCols(builders{cols: exportd.PaymentColumns, field: payElem.FieldBuilder}),
	}
}
