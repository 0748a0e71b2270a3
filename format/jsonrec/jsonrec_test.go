package jsonrec

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

// stdString is encoding/json's encoding of s, the reference for AppendString.
func stdString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(s))
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{
		"",
		"plain",
		`quote " and backslash \`,
		"newline \n return \r tab \t backspace \b formfeed \f",
		"controls \x00 \x01 \x1f and DEL \x7f",
		"html <a href='x'>&amp;</a>",
		"unicode café 寿司 😀",
		"separators \u2028 \u2029",
		"invalid \xff utf-8 \xc3",
		"truncated emoji \xf0\x9f\x98",
		"surrogate half \xed\xa0\x80",
		"\u00a0 non-breaking",
	} {
		t.Run(s, func(t *testing.T) {
			require.Equal(t, stdString(t, s), string(AppendString(nil, s)))
		})
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\nd\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, stdString(t, s), string(AppendString(nil, s)))
	})
}

func TestAppendTime(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*60*60)
	for _, tc := range []struct {
		name string
		in   time.Time
		want string
	}{
		{"micros", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), "2024-01-02T03:04:05.123456Z"},
		{"whole second", time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), "2024-12-31T23:59:59.000000Z"},
		{"nanos truncate", time.Date(2024, 1, 2, 3, 4, 5, 999999999, time.UTC), "2024-01-02T03:04:05.999999Z"},
		{"other zone", time.Date(2024, 1, 1, 8, 0, 0, 1000, tokyo), "2023-12-31T23:00:00.000001Z"},
		{"before epoch", time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), "1969-12-31T23:59:59.999999Z"},
		{"zero", time.Time{}, "0001-01-01T00:00:00.000000Z"},
		{"five-digit year", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "10000-01-01T00:00:00.000000Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, string(AppendTime(nil, tc.in)))
		})
	}
}

func TestAppendOrderExact(t *testing.T) {
	loc, note, sku := "LOC_A", "a \"b\"\n", "SKU-1"
	tip := int64(-5)
	o := exportd.Order{
		ID: 7, MerchantID: "M", LocationID: &loc,
		CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC),
		UpdatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		State:     "paid", Currency: "USD", Subtotal: 100, Tax: 8, Tip: &tip, Total: 103, Note: &note,
		Items:    []exportd.Item{{Line: 1, SKU: &sku, Name: "Tea", Quantity: 2, UnitPrice: 50, Amount: 100}},
		Payments: []exportd.Payment{{ID: 70, OrderID: 7, MerchantID: "M", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Kind: "refund", Tender: "cash", Result: "success", Amount: -103}},
	}
	want := `{"id":7,"merchant_id":"M","location_id":"LOC_A","created_at":"2024-01-02T03:04:05.000006Z",` +
		`"updated_at":"2024-01-02T03:04:05.000000Z","state":"paid","currency":"USD","subtotal":100,"tax":8,` +
		`"tip":-5,"total":103,"customer_ref":null,"note":"a \"b\"\n",` +
		`"items":[{"line":1,"sku":"SKU-1","name":"Tea","quantity":2,"unit_price":50,"amount":100}],` +
		`"payments":[{"id":70,"order_id":7,"merchant_id":"M","location_id":null,"created_at":"2024-01-02T03:04:05.000006Z",` +
		`"kind":"refund","tender":"cash","card_brand":null,"result":"success","amount":-103}]}`
	require.Equal(t, want, string(AppendOrder(nil, &o)))

	o.Items, o.Payments = nil, []exportd.Payment{}
	require.Contains(t, string(AppendOrder(nil, &o)), `"items":[],"payments":[]}`)
}

func TestAppendMatchesReference(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.Source(d, 500)
			var buf []byte
			for i := range src.Len() {
				buf = buf[:0]
				if d == exportd.Payments {
					buf = AppendPayment(buf, &src.Payments[i])
				} else {
					buf = AppendOrder(buf, &src.Orders[i])
				}
				require.Equal(t, recordtest.JSONRecord(t, src, i), recordtest.Decode(t, buf), "record %d", i)
			}
		})
	}
}

func BenchmarkAppendOrder(b *testing.B) {
	orders := recordtest.BenchOrders(1000)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		buf = AppendOrder(buf[:0], &orders[n%len(orders)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// TestKeyOrderFollowsColumns checks the hand-written encoders against the
// column tables: every object has exactly the table's keys, in its order,
// nested lists included.
func TestKeyOrderFollowsColumns(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.Source(d, 300)
			var buf []byte
			for i := range src.Len() {
				buf = buf[:0]
				if d == exportd.Payments {
					buf = AppendPayment(buf, &src.Payments[i])
				} else {
					buf = AppendOrder(buf, &src.Orders[i])
				}
				dec := json.NewDecoder(bytes.NewReader(buf))
				requireObjectKeys(t, dec, string(d), d.Columns())
			}
		})
	}
}

// requireObjectKeys reads one object from dec and requires its keys to be
// the names of cols in order, descending into the objects of list columns.
func requireObjectKeys(t *testing.T, dec *json.Decoder, path string, cols []exportd.Column) {
	t.Helper()
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, path)
	for _, c := range cols {
		key, err := dec.Token()
		require.NoError(t, err)
		require.Equal(t, c.Name, key, "%s: key order", path)
		if c.Type != exportd.List {
			var v json.RawMessage
			require.NoError(t, dec.Decode(&v))
			continue
		}
		tok, err := dec.Token()
		require.NoError(t, err)
		require.Equal(t, json.Delim('['), tok, path+"."+c.Name)
		for dec.More() {
			requireObjectKeys(t, dec, path+"."+c.Name, c.Elem)
		}
		tok, err = dec.Token()
		require.NoError(t, err)
		require.Equal(t, json.Delim(']'), tok, path+"."+c.Name)
	}
	tok, err = dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('}'), tok, "%s: keys beyond the table", path)
}

func TestAppendChangeExact(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	deleted := time.Date(2024, 2, 3, 4, 5, 6, 7000, time.UTC)
	p := exportd.Payment{ID: 1, OrderID: 2, MerchantID: "M", CreatedAt: at, Kind: "sale", Tender: "cash", Result: "success", Amount: 10, Op: exportd.OpUpsert}
	require.Equal(t, `{"id":1,"order_id":2,"merchant_id":"M","location_id":null,"created_at":"2024-01-02T03:04:05.000006Z",`+
		`"kind":"sale","tender":"cash","card_brand":null,"result":"success","amount":10,"op":"upsert"}`,
		string(AppendPaymentChange(nil, &p)))

	// A delete is its key, op and deleted_at, whatever else the record holds.
	p.Op, p.DeletedAt = exportd.OpDelete, &deleted
	want := `{"id":1,"merchant_id":"M","created_at":"2024-01-02T03:04:05.000006Z","op":"delete","deleted_at":"2024-02-03T04:05:06.000007Z"}`
	require.Equal(t, want, string(AppendPaymentChange(nil, &p)))
	o := exportd.Order{ID: 1, MerchantID: "M", CreatedAt: at, State: "paid", Items: []exportd.Item{{Line: 1}}, Op: exportd.OpDelete, DeletedAt: &deleted}
	require.Equal(t, want, string(AppendOrderChange(nil, &o)))

	o.DeletedAt = nil
	require.Equal(t, `{"id":1,"merchant_id":"M","created_at":"2024-01-02T03:04:05.000006Z","op":"delete","deleted_at":null}`,
		string(AppendOrderChange([]byte{}, &o)))
}

// TestChangeKeyOrderFollowsColumns checks the change records' keys against
// the change tables: an upsert has the dataset's columns then op, a delete
// id, merchant_id, created_at, op and deleted_at, both in the table's order.
func TestChangeKeyOrderFollowsColumns(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			cols := d.ChangeColumns()
			upsert := cols[:len(cols)-1]
			var deletes []exportd.Column
			for _, c := range cols {
				switch c.Name {
				case "id", "merchant_id", "created_at", "op", "deleted_at":
					deletes = append(deletes, c)
				}
			}
			require.Len(t, deletes, 5)
			src := recordtest.ChangeSource(d, 300)
			var buf []byte
			for i := range src.Len() {
				buf = buf[:0]
				var op exportd.ChangeOp
				if d == exportd.Payments {
					buf, op = AppendPaymentChange(buf, &src.Payments[i]), src.Payments[i].Op
				} else {
					buf, op = AppendOrderChange(buf, &src.Orders[i]), src.Orders[i].Op
				}
				want := upsert
				if op == exportd.OpDelete {
					want = deletes
				}
				requireObjectKeys(t, json.NewDecoder(bytes.NewReader(buf)), string(d), want)
				require.Equal(t, recordtest.JSONChangeRecord(t, src, i), recordtest.Decode(t, buf), "record %d", i)
			}
		})
	}
}
