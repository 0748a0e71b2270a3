package postgres

import (
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// TestDecodeFollowsColumns checks the hand-written decode functions, which
// read values by position, against exportd's column tables by name: a row
// whose every column holds a value of its own is decoded, and each field of
// the record must hold the value of the source column its table names.
func TestDecodeFollowsColumns(t *testing.T) {
	p := newPager(&Source{}, Query{MerchantID: "M", Dataset: exportd.Orders}, 1)
	p.tips, p.customerRefs, p.noteStrs = grow(p.tips, 1), grow(p.customerRefs, 1), grow(p.noteStrs, 1)

	var o exportd.Order
	p.order(&o, 0, rawRow(orderCols))
	requireDecoded(t, "orders", orderCols, exportd.OrderColumns, reflect.ValueOf(o))

	it := p.item(rawRow(itemCols))
	requireDecoded(t, "order_items", itemCols, exportd.ItemColumns, reflect.ValueOf(it))
	require.Equal(t, "order_id", itemCols.cols[0].name, "the merge key of the items query")

	var x exportd.Payment
	p.payment(&x, rawRow(paymentCols))
	requireDecoded(t, "transactions", paymentCols, exportd.PaymentColumns, reflect.ValueOf(x))
	require.False(t, p.dec.bad)
}

// rawRow encodes a row of cs in which column i holds 1000+i (seconds after
// the PostgreSQL epoch for a time) or the text "v<i>".
func rawRow(cs *columns) [][]byte {
	v := make([][]byte, len(cs.cols))
	for i, c := range cs.cols {
		switch n := int64(1000 + i); c.kind {
		case kindInt8:
			v[i] = binary.BigEndian.AppendUint64(nil, uint64(n))
		case kindInt4:
			v[i] = binary.BigEndian.AppendUint32(nil, uint32(n))
		case kindTime:
			v[i] = binary.BigEndian.AppendUint64(nil, uint64(n*1_000_000))
		case kindText:
			v[i] = []byte("v" + string(rune('0'+i)))
		}
	}
	return v
}

// rawValue is what rawRow put in column i, as the record holds it.
func rawValue(k kind, i int) any {
	n := int64(1000 + i)
	switch k {
	case kindInt8:
		return n
	case kindInt4:
		return int32(n)
	case kindTime:
		return time.UnixMicro(n*1_000_000 + pgEpochMicros).UTC()
	}
	return "v" + string(rune('0'+i))
}

func requireDecoded(t *testing.T, table string, cs *columns, cols []exportd.Column, rec reflect.Value) {
	t.Helper()
	for i, c := range cols {
		f := rec.Field(i) // the record's fields are the table's, in order (TestParquetTagsMatchColumns)
		switch {
		case c.Type == exportd.List:
			continue
		case c.Source == "":
			require.Equal(t, "M", f.Interface(), "%s: %s is the query's merchant", table, c.Name)
			continue
		}
		pos := -1
		for j, sc := range cs.cols {
			if sc.name == c.Source {
				pos = j
			}
		}
		require.NotEqual(t, -1, pos, "%s: %s is not selected", table, c.Source)
		if f.Kind() == reflect.Pointer {
			require.False(t, f.IsNil(), "%s.%s", table, c.Source)
			f = f.Elem()
		}
		require.Equal(t, rawValue(cs.cols[pos].kind, pos), f.Interface(), "%s.%s decoded into %s", table, c.Source, c.Name)
	}
}
