package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// The columns each source query selects, in order, with the wire type the
// decoder reads them as. The SELECT lists are built from them, each result
// is checked against them once per query, and a row that fails to decode is
// explained by them.

// kind is how the decoder reads a column's binary value.
type kind uint8

const (
	kindInt8 kind = iota
	kindInt4
	kindTime
	kindText
)

// String names the kind as a user reads it in an error.
func (k kind) String() string {
	switch k {
	case kindInt8:
		return "bigint (int8)"
	case kindInt4:
		return "integer (int4)"
	case kindTime:
		return "timestamp with time zone (timestamptz)"
	}
	return "text"
}

// accepts reports whether a result column of type oid decodes as k:
// varchar and char have text's binary format.
func (k kind) accepts(oid uint32) bool {
	switch k {
	case kindInt8:
		return oid == pgtype.Int8OID
	case kindInt4:
		return oid == pgtype.Int4OID
	case kindTime:
		return oid == pgtype.TimestamptzOID
	}
	return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID
}

// readsFormat reports whether the decoder reads k in a result of format
// code f: binary, or either for text, whose binary format is its text
// (pgx asks for text columns as text in a batch).
func (k kind) readsFormat(f int16) bool {
	return f == pgx.BinaryFormatCode || k == kindText && f == pgx.TextFormatCode
}

type column struct {
	name     string
	kind     kind
	nullable bool
}

// columns is one query's SELECT list over a table.
type columns struct {
	table string
	cols  []column
	keys  []int  // the columns naming a row in errors: id first
	sql   string // the names, comma-separated
}

func newColumns(table string, keys []string, cols ...column) *columns {
	c := &columns{table: table, cols: cols}
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = col.name
	}
	c.sql = strings.Join(names, ", ")
	for _, k := range keys {
		for i, col := range cols {
			if col.name == k {
				c.keys = append(c.keys, i)
			}
		}
	}
	return c
}

// The select lists are derived from exportd's column tables: a column with
// a Source is selected, in the table's order, and read as its type. The
// decode functions in source.go read them by position, which
// TestDecodeFollowsColumns checks by name against the tables.
var (
	orderCols = newColumns("orders", []string{"id", "created_at"}, selected(exportd.OrderColumns)...)
	// The items query leads with the order id, to merge items into the
	// page's orders; the files have no such column.
	itemCols = newColumns("order_items", []string{"order_id", "line"},
		append([]column{{"order_id", kindInt8, false}}, selected(exportd.ItemColumns)...)...)
	paymentCols = newColumns("transactions", []string{"id", "created_at"}, selected(exportd.PaymentColumns)...)
)

// selected returns the source columns of a column table: those read from
// the row, as the decoder reads them.
func selected(cols []exportd.Column) []column {
	var out []column
	for _, c := range cols {
		if c.Source != "" {
			out = append(out, column{c.Source, kindOf(c), c.Nullable})
		}
	}
	return out
}

// kindOf is the wire type a column of the table is read as.
func kindOf(c exportd.Column) kind {
	switch c.Type {
	case exportd.Int64:
		return kindInt8
	case exportd.Int32:
		return kindInt4
	case exportd.Timestamp:
		return kindTime
	case exportd.String:
		return kindText
	}
	panic(fmt.Sprintf("postgres: column %q of type %s has no source type", c.Name, c.Type))
}

// check compares a result's columns with what the decoder expects, so that
// a changed schema fails at once, naming the column, instead of producing
// garbage or failing row by row.
func (cs *columns) check(ctx context.Context, c *pgx.Conn, fds []pgconn.FieldDescription) error {
	if len(fds) != len(cs.cols) {
		return exportd.SourceError(nil, true, "%s returned %d columns, expected %d; the source schema changed",
			cs.table, len(fds), len(cs.cols))
	}
	for i, fd := range fds {
		if !cs.cols[i].kind.readsFormat(fd.Format) {
			return exportd.SourceError(nil, true, "%s.%s came back as text: the source needs the extended protocol's binary results (no simple protocol, no statement-mode pooler)",
				cs.table, cs.cols[i].name)
		}
	}
	for i, fd := range fds {
		if col := cs.cols[i]; !col.kind.accepts(fd.DataTypeOID) {
			return exportd.SourceError(nil, true, "%s.%s has type %s, expected %s; the source schema changed",
				cs.table, col.name, typeName(ctx, c, fd.DataTypeOID), col.kind)
		}
	}
	return nil
}

// typeName returns PostgreSQL's name for a type, for error messages only.
func typeName(ctx context.Context, c *pgx.Conn, oid uint32) string {
	var name string
	if err := c.QueryRow(ctx, "SELECT format_type($1, NULL)", oid).Scan(&name); err == nil && name != "" {
		return name
	}
	if t, ok := c.TypeMap().TypeForOID(oid); ok {
		return t.Name
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// rowError explains a row the decoder refused: the first value that does
// not fit its column, with the row's key. It runs only on that failure.
func (cs *columns) rowError(v [][]byte) error {
	for i, col := range cs.cols {
		if problem := col.problem(v[i]); problem != "" {
			return exportd.SourceError(nil, true, "%s.%s: %s in row %s", cs.table, col.name, problem, cs.rowKey(v))
		}
	}
	return exportd.SourceError(nil, true, "%s: unreadable value in row %s", cs.table, cs.rowKey(v))
}

// problem says what is wrong with a raw value of the column, or "".
func (col column) problem(b []byte) string {
	if b == nil {
		if col.nullable {
			return ""
		}
		return "unexpected NULL"
	}
	switch col.kind {
	case kindInt8, kindTime:
		if len(b) != 8 {
			return fmt.Sprintf("malformed %s value (%d bytes)", col.kind, len(b))
		}
		if col.kind == kindTime {
			switch us := int64(binary.BigEndian.Uint64(b)); {
			case us == math.MaxInt64 || us == math.MinInt64:
				return "infinite timestamp"
			case us > maxMicros:
				return "timestamp out of range"
			}
		}
	case kindInt4:
		if len(b) != 4 {
			return fmt.Sprintf("malformed %s value (%d bytes)", col.kind, len(b))
		}
	}
	return ""
}

// rowKey formats a row's key columns as `id=123 (created_at ...)`.
func (cs *columns) rowKey(v [][]byte) string {
	var sb strings.Builder
	for n, i := range cs.keys {
		col := cs.cols[i]
		if n == 0 {
			sb.WriteString(col.name + "=" + col.format(v[i]))
			continue
		}
		sb.WriteString(" (" + col.name + " " + col.format(v[i]) + ")")
	}
	return sb.String()
}

// format renders a raw key value for an error message.
func (col column) format(b []byte) string {
	switch {
	case b == nil:
		return "NULL"
	case col.kind == kindInt4 && len(b) == 4:
		return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(b))), 10)
	case col.kind == kindInt8 && len(b) == 8:
		return strconv.FormatInt(int64(binary.BigEndian.Uint64(b)), 10)
	case col.kind == kindTime && len(b) == 8:
		switch us := int64(binary.BigEndian.Uint64(b)); {
		case us == math.MaxInt64:
			return "infinity"
		case us == math.MinInt64:
			return "-infinity"
		case us > maxMicros:
			return "out of range"
		default:
			return time.UnixMicro(us + pgEpochMicros).UTC().Format(time.RFC3339Nano)
		}
	case col.kind == kindText:
		return strconv.Quote(string(b))
	}
	return "(malformed)"
}

// fits reports whether a result has the columns, types and format the
// decoder expects; check says how it does not.
func (cs *columns) fits(fds []pgconn.FieldDescription) bool {
	if len(fds) != len(cs.cols) {
		return false
	}
	for i, fd := range fds {
		if !cs.cols[i].kind.readsFormat(fd.Format) || !cs.cols[i].kind.accepts(fd.DataTypeOID) {
			return false
		}
	}
	return true
}
