package exportd

import "slices"

// The column tables below are the one description of each record schema.
// Everything that names the columns of a file follows them: the SQL select
// lists and the decoder's expected types (postgres), the Arrow schema
// (format/arrowfile) and the CSV header (format/csvgz) are built from them
// once, at start; the parquet tags of Order, Item and Payment, the decode
// positions and the key order of format/jsonrec are hand-written for speed
// and checked against them by tests. The README's "Adding a column" says
// which files a new column touches.
//
// A table is a plain slice so that an export kind can extend a dataset's
// columns with a trailing set of its own (append(OrderColumns, extra...)),
// and every derivation takes the slice rather than the dataset.

// Type is a column's value type, the same in every format.
type Type uint8

// The column types.
const (
	// Int32 is a 32-bit integer: integer in PostgreSQL, int32 in Parquet
	// and Arrow.
	Int32 Type = iota + 1
	// Int64 is a 64-bit integer, money in cents among others: bigint in
	// PostgreSQL, int64 in Parquet and Arrow.
	Int64
	// String is UTF-8 text.
	String
	// Timestamp is a UTC time at microsecond precision: timestamptz in
	// PostgreSQL, timestamp(microsecond) in Parquet, timestamp[us, UTC] in
	// Arrow, RFC 3339 with six fractional digits in JSON and CSV.
	Timestamp
	// List is a non-null list of non-null records whose columns are Elem:
	// LIST in Parquet, list<struct> in Arrow, a JSON array in JSON and CSV.
	List
)

// String names the type as the tables' tests print it.
func (t Type) String() string {
	switch t {
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case String:
		return "string"
	case Timestamp:
		return "timestamp"
	case List:
		return "list"
	}
	return "invalid"
}

// Column is one column of an exported record.
type Column struct {
	// Name is the column's name in every file: the Parquet and Arrow field,
	// the CSV header and the JSON key.
	Name string
	Type Type
	// Nullable columns may be null (a pointer in the Go record); the others
	// never are.
	Nullable bool
	// Source is the column of the source table the value is read from;
	// empty when the source does not select it: the merchant, which is the
	// query's own, and nested lists, which have queries of their own.
	Source string
	// Elem holds the columns of a List's elements.
	Elem []Column
}

// ItemColumns are the columns of an order's line items (Item).
var ItemColumns = []Column{
	{Name: "line", Type: Int32, Source: "line"},
	{Name: "sku", Type: String, Nullable: true, Source: "sku"},
	{Name: "name", Type: String, Source: "name"},
	{Name: "quantity", Type: Int32, Source: "quantity"},
	{Name: "unit_price", Type: Int64, Source: "unit_price"},
	{Name: "amount", Type: Int64, Source: "amount"},
}

// PaymentColumns are the columns of the payments dataset and of the
// payments nested in an order (Payment).
var PaymentColumns = []Column{
	{Name: "id", Type: Int64, Source: "id"},
	{Name: "order_id", Type: Int64, Source: "order_id"},
	{Name: "merchant_id", Type: String},
	{Name: "location_id", Type: String, Nullable: true, Source: "location_id"},
	{Name: "created_at", Type: Timestamp, Source: "created_at"},
	{Name: "kind", Type: String, Source: "kind"},
	{Name: "tender", Type: String, Source: "tender"},
	{Name: "card_brand", Type: String, Nullable: true, Source: "card_brand"},
	{Name: "result", Type: String, Source: "result"},
	{Name: "amount", Type: Int64, Source: "amount"},
}

// OrderColumns are the columns of the orders dataset (Order), its items
// and payments nested.
var OrderColumns = []Column{
	{Name: "id", Type: Int64, Source: "id"},
	{Name: "merchant_id", Type: String},
	{Name: "location_id", Type: String, Nullable: true, Source: "location_id"},
	{Name: "created_at", Type: Timestamp, Source: "created_at"},
	{Name: "updated_at", Type: Timestamp, Source: "updated_at"},
	{Name: "state", Type: String, Source: "state"},
	{Name: "currency", Type: String, Source: "currency"},
	{Name: "subtotal", Type: Int64, Source: "subtotal"},
	{Name: "tax", Type: Int64, Source: "tax"},
	{Name: "tip", Type: Int64, Nullable: true, Source: "tip"},
	{Name: "total", Type: Int64, Source: "total"},
	{Name: "customer_ref", Type: String, Nullable: true, Source: "customer_ref"},
	{Name: "note", Type: String, Nullable: true, Source: "note"},
	{Name: "items", Type: List, Elem: ItemColumns},
	{Name: "payments", Type: List, Elem: PaymentColumns},
}

// ChangeColumns trail the dataset's columns in the files of a change
// export: what the record does to a copy (ChangeOp) and, for a delete,
// when the record was deleted. A delete's other columns are its id,
// merchant_id and created_at; in Parquet and Arrow the rest are null
// where nullable, else zero ("" and 0, empty lists, the epoch), in JSON
// lines they are left out and in CSV empty: read op first.
var ChangeColumns = []Column{
	{Name: "op", Type: String},
	{Name: "deleted_at", Type: Timestamp, Nullable: true},
}

// ChangeColumns returns the column table of a change export of dataset d:
// d's columns, then ChangeColumns.
func (d Dataset) ChangeColumns() []Column {
	return append(slices.Clip(d.Columns()), ChangeColumns...)
}

// Columns returns the column table of dataset d.
func (d Dataset) Columns() []Column {
	if d == Payments {
		return PaymentColumns
	}
	return OrderColumns
}

// ColumnNames returns the names of cols in order.
func ColumnNames(cols []Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}
