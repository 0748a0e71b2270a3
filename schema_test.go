package exportd_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/parquetfile"
)

// TestParquetTagsMatchColumns checks the record types against the column
// tables: parquet-go derives the Parquet schema from the struct tags, so
// the fields must be the table's columns, in its order, with its names,
// nullability and types.
func TestParquetTagsMatchColumns(t *testing.T) {
	requireRecordMatches(t, "Order", reflect.TypeFor[exportd.Order](), exportd.OrderColumns)
	requireRecordMatches(t, "Payment", reflect.TypeFor[exportd.Payment](), exportd.PaymentColumns)
	// The rows of change exports: the record embedded, then op and
	// deleted_at.
	requireRecordMatches(t, "OrderChange", reflect.TypeFor[parquetfile.OrderChange](), exportd.Orders.ChangeColumns())
	requireRecordMatches(t, "PaymentChange", reflect.TypeFor[parquetfile.PaymentChange](), exportd.Payments.ChangeColumns())
}

// parquetFields returns the fields of struct type rt that parquet-go makes
// columns of, in order: those of an embedded struct in its place, as
// parquet-go flattens them, and none that it skips (`parquet:"-"`: a
// change export's op and deletedAt on the records, which only the change
// rows write).
func parquetFields(rt reflect.Type) []reflect.StructField {
	var fields []reflect.StructField
	for i := range rt.NumField() {
		switch f := rt.Field(i); {
		case f.Anonymous:
			fields = append(fields, parquetFields(f.Type)...)
		case f.Tag.Get("parquet") != "-":
			fields = append(fields, f)
		}
	}
	return fields
}

func requireRecordMatches(t *testing.T, path string, rt reflect.Type, cols []exportd.Column) {
	t.Helper()
	fields := parquetFields(rt)
	require.Equal(t, len(cols), len(fields), "%s: fields against columns %v", path, exportd.ColumnNames(cols))
	for i, col := range cols {
		f := fields[i]
		where := path + "." + f.Name
		name, opts, _ := strings.Cut(f.Tag.Get("parquet"), ",")
		require.Equal(t, col.Name, name, "%s: parquet name of column %d", where, i)

		want := map[exportd.Type]reflect.Type{
			exportd.Int32:     reflect.TypeFor[int32](),
			exportd.Int64:     reflect.TypeFor[int64](),
			exportd.String:    reflect.TypeFor[string](),
			exportd.Timestamp: reflect.TypeFor[time.Time](),
		}[col.Type]
		wantOpts := ""
		switch {
		case col.Type == exportd.List:
			require.Equal(t, reflect.Slice, f.Type.Kind(), "%s: a list column is a slice", where)
			requireRecordMatches(t, where, f.Type.Elem(), col.Elem)
			wantOpts = "list"
			want = f.Type
		case col.Type == exportd.Timestamp && col.Nullable:
			wantOpts = "optional,timestamp(microsecond)"
		case col.Type == exportd.Timestamp:
			wantOpts = "timestamp(microsecond)"
		case col.Nullable:
			wantOpts = "optional"
		}
		if col.Nullable {
			want = reflect.PointerTo(want)
		}
		require.Equal(t, want, f.Type, "%s: Go type of a %s column (nullable %v)", where, col.Type, col.Nullable)
		require.Equal(t, wantOpts, opts, "%s: parquet tag options", where)
	}
}

// TestColumnTables checks the tables themselves: unique names, known
// types, and Elem exactly on lists.
func TestColumnTables(t *testing.T) {
	var check func(path string, cols []exportd.Column)
	check = func(path string, cols []exportd.Column) {
		seen := map[string]bool{}
		for _, c := range cols {
			require.NotEmpty(t, c.Name, path)
			require.False(t, seen[c.Name], "%s: column %q twice", path, c.Name)
			seen[c.Name] = true
			require.NotEqual(t, "invalid", c.Type.String(), "%s.%s: type", path, c.Name)
			require.Equal(t, c.Type == exportd.List, c.Elem != nil, "%s.%s: Elem is for lists only", path, c.Name)
			if c.Type == exportd.List {
				require.False(t, c.Nullable, "%s.%s: lists are never null, only empty", path, c.Name)
				require.Empty(t, c.Source, "%s.%s: lists come from queries of their own", path, c.Name)
				check(path+"."+c.Name, c.Elem)
			}
		}
	}
	for _, d := range []exportd.Dataset{exportd.Orders, exportd.Payments} {
		check(string(d), d.Columns())
	}
}
