package parquetfile

import (
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// TestSchemaFollowsColumns checks the Parquet schema parquet-go derives from
// the struct tags against the column tables: names in order, optional
// exactly where the table is nullable, lists repeated groups of the
// element's columns.
func TestSchemaFollowsColumns(t *testing.T) {
	var check func(path string, cols []exportd.Column, fields []parquet.Field)
	check = func(path string, cols []exportd.Column, fields []parquet.Field) {
		require.Len(t, fields, len(cols), path)
		for i, c := range cols {
			f := fields[i]
			p := path + "." + c.Name
			require.Equal(t, c.Name, f.Name(), p)
			require.Equal(t, c.Nullable, f.Optional(), p)
			if c.Type != exportd.List {
				require.True(t, f.Leaf(), p)
				continue
			}
			// LIST: <name> (LIST) { repeated group list { element } }
			list := f.Fields()
			require.Len(t, list, 1, p)
			require.True(t, list[0].Repeated(), p)
			require.Len(t, list[0].Fields(), 1, p)
			check(p, c.Elem, list[0].Fields()[0].Fields())
		}
	}
	check("orders", exportd.OrderColumns, parquet.SchemaOf(new(exportd.Order)).Fields())
	check("payments", exportd.PaymentColumns, parquet.SchemaOf(new(exportd.Payment)).Fields())
	check("order changes", exportd.Orders.ChangeColumns(), parquet.SchemaOf(new(OrderChange)).Fields())
	check("payment changes", exportd.Payments.ChangeColumns(), parquet.SchemaOf(new(PaymentChange)).Fields())
}
