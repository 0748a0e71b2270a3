package csvgz

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

func writerFor(d exportd.Dataset) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return NewWriter(d, w) }
}

func gunzip(t *testing.T, file []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(file))
	require.NoError(t, err)
	require.Empty(t, zr.Name)
	require.True(t, zr.ModTime.IsZero(), "gzip header has a time: %v", zr.ModTime)
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	return data
}

// text is how a nullable string reads back: encoding/csv cannot tell null
// from empty, and it drops the CR of a CRLF even inside quotes.
func text(s *string) string {
	if s == nil {
		return ""
	}
	return strings.ReplaceAll(*s, "\r\n", "\n")
}

func number(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

var headers = map[exportd.Dataset][]string{
	exportd.Orders:   exportd.ColumnNames(exportd.OrderColumns),
	exportd.Payments: exportd.ColumnNames(exportd.PaymentColumns),
}

// TestRowsFollowHeader checks the hand-written value code against the
// column table by name: the cell under each header name holds what the
// reference JSON encoding has under that key.
func TestRowsFollowHeader(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.Source(d, 300)
			rows, err := csv.NewReader(bytes.NewReader(gunzip(t, recordtest.Write(t, writerFor(d), src, 0)))).ReadAll()
			require.NoError(t, err)
			cols := d.Columns()
			require.Equal(t, exportd.ColumnNames(cols), rows[0])
			for i, row := range rows[1:] {
				ref := recordtest.JSONRecord(t, src, i).(map[string]any)
				require.Len(t, ref, len(cols), "reference keys against the table")
				for j, c := range cols {
					want, ok := ref[c.Name]
					require.True(t, ok, "the reference has no %q", c.Name)
					switch v := want.(type) {
					case nil:
						require.Empty(t, row[j], "row %d column %s", i, c.Name)
					case string:
						require.Equal(t, strings.ReplaceAll(v, "\r\n", "\n"), row[j], "row %d column %s", i, c.Name)
					case json.Number:
						require.Equal(t, v.String(), row[j], "row %d column %s", i, c.Name)
					default:
						require.Equal(t, v, recordtest.Decode(t, []byte(row[j])), "row %d column %s", i, c.Name)
					}
				}
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				r := csv.NewReader(bytes.NewReader(gunzip(t, recordtest.Write(t, writerFor(d), src, 100))))
				rows, err := r.ReadAll()
				require.NoError(t, err)
				require.Len(t, rows, n+1)
				require.Equal(t, headers[d], rows[0])
				for i, row := range rows[1:] {
					requireRow(t, src, i, row)
				}
			})
		}
	}
}

func requireRow(t *testing.T, src *exportd.Batch, i int, row []string) {
	t.Helper()
	if src.Dataset == exportd.Payments {
		p := &src.Payments[i]
		require.Equal(t, []string{itoa(p.ID), itoa(p.OrderID), p.MerchantID, text(p.LocationID),
			recordtest.TimeText(p.CreatedAt), p.Kind, p.Tender, text(p.CardBrand), p.Result, itoa(p.Amount)}, row, "row %d", i)
		return
	}
	o := &src.Orders[i]
	require.Equal(t, []string{itoa(o.ID), o.MerchantID, text(o.LocationID), recordtest.TimeText(o.CreatedAt),
		recordtest.TimeText(o.UpdatedAt), o.State, o.Currency, itoa(o.Subtotal), itoa(o.Tax), number(o.Tip),
		itoa(o.Total), text(o.CustomerRef), text(o.Note)}, row[:13], "row %d", i)
	require.Len(t, row, 15)
	require.Equal(t, recordtest.JSONItems(t, o), recordtest.Decode(t, []byte(row[13])), "items of row %d", i)
	require.Equal(t, recordtest.JSONPayments(t, o), recordtest.Decode(t, []byte(row[14])), "payments of row %d", i)
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			recordtest.RequireDeterministic(t, writerFor(d), recordtest.Source(d, 5000))
		})
	}
}

// TestLayout pins down what encoding/csv cannot see: CRLF line ends,
// quoting only where needed, and null versus empty string.
func TestLayout(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	empty, crlf, plain, quoted := "", "a\r\nb", "LOC A", `x,"y"`
	src := &exportd.Batch{Dataset: exportd.Payments, Payments: []exportd.Payment{
		{ID: 1, OrderID: 2, MerchantID: "M", LocationID: &empty, CreatedAt: at, Kind: "refund", Tender: "card", CardBrand: nil, Result: "ok", Amount: -5},
		{ID: 3, OrderID: 4, MerchantID: quoted, LocationID: &crlf, CreatedAt: at, Kind: "sale", Tender: "card", CardBrand: &plain, Result: "ok", Amount: 5},
	}}
	got := string(gunzip(t, recordtest.Write(t, writerFor(exportd.Payments), src, 0)))
	require.Equal(t, "id,order_id,merchant_id,location_id,created_at,kind,tender,card_brand,result,amount\r\n"+
		"1,2,M,\"\",2024-01-02T03:04:05.000006Z,refund,card,,ok,-5\r\n"+
		"3,4,\"x,\"\"y\"\"\",\"a\r\nb\",2024-01-02T03:04:05.000006Z,sale,card,LOC A,ok,5\r\n", got)

	orders := &exportd.Batch{Dataset: exportd.Orders, Orders: []exportd.Order{{ID: 1, CreatedAt: at, UpdatedAt: at}}}
	got = string(gunzip(t, recordtest.Write(t, writerFor(exportd.Orders), orders, 0)))
	require.True(t, strings.HasSuffix(got, "\r\n1,\"\",,2024-01-02T03:04:05.000006Z,2024-01-02T03:04:05.000006Z,\"\",\"\",0,0,,0,,,[],[]\r\n"), got)
}

func TestEmptyFileHasHeader(t *testing.T) {
	for _, d := range recordtest.Datasets {
		got := gunzip(t, recordtest.Write(t, writerFor(d), &exportd.Batch{Dataset: d}, 0))
		require.Equal(t, strings.Join(headers[d], ",")+"\r\n", string(got))
	}
}

func TestMisuse(t *testing.T) {
	w := NewWriter(exportd.Payments, io.Discard)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}), "orders")
	require.NoError(t, w.Close())
	require.Error(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}))
	require.NoError(t, w.Close(), "second close")
}

func TestWriteError(t *testing.T) {
	w := NewWriter(exportd.Orders, failingWriter{})
	err := w.Write(recordtest.Source(exportd.Orders, 2000))
	if err == nil {
		err = w.Close()
	}
	require.ErrorIs(t, err, errDiskFull)
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func BenchmarkWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, writerFor(d), recordtest.BenchSource(d, 1000))
		})
	}
}

func changeWriterFor(d exportd.Dataset) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return NewChangeWriter(d, w) }
}

// TestChangeLayout pins down the rows of a change export where
// encoding/csv cannot see the difference: a delete's cells other than its
// key, op and deleted_at are empty (null), not "" or 0 or [], and an
// upsert's deleted_at is empty.
func TestChangeLayout(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	deleted := time.Date(2024, 2, 3, 4, 5, 6, 7000, time.UTC)
	payments := &exportd.Batch{Dataset: exportd.Payments, Payments: []exportd.Payment{
		{ID: 1, OrderID: 2, MerchantID: "M", CreatedAt: at, Kind: "sale", Tender: "cash", Result: "ok", Amount: 5, Op: exportd.OpUpsert},
		{ID: 3, MerchantID: "M", CreatedAt: at, Op: exportd.OpDelete, DeletedAt: &deleted},
		{ID: 4, MerchantID: "", CreatedAt: at, Op: exportd.OpDelete},
	}}
	got := string(gunzip(t, recordtest.Write(t, changeWriterFor(exportd.Payments), payments, 0)))
	require.Equal(t, "id,order_id,merchant_id,location_id,created_at,kind,tender,card_brand,result,amount,op,deleted_at\r\n"+
		"1,2,M,,2024-01-02T03:04:05.000006Z,sale,cash,,ok,5,upsert,\r\n"+
		"3,,M,,2024-01-02T03:04:05.000006Z,,,,,,delete,2024-02-03T04:05:06.000007Z\r\n"+
		"4,,\"\",,2024-01-02T03:04:05.000006Z,,,,,,delete,\r\n", got)

	orders := &exportd.Batch{Dataset: exportd.Orders, Orders: []exportd.Order{
		{ID: 1, MerchantID: "M", CreatedAt: at, UpdatedAt: at, Op: exportd.OpUpsert},
		{ID: 2, MerchantID: "M", CreatedAt: at, State: "ignored", Op: exportd.OpDelete, DeletedAt: &deleted},
	}}
	got = string(gunzip(t, recordtest.Write(t, changeWriterFor(exportd.Orders), orders, 0)))
	require.Equal(t, strings.Join(exportd.ColumnNames(exportd.Orders.ChangeColumns()), ",")+"\r\n"+
		"1,M,,2024-01-02T03:04:05.000006Z,2024-01-02T03:04:05.000006Z,\"\",\"\",0,0,,0,,,[],[],upsert,\r\n"+
		"2,M,,2024-01-02T03:04:05.000006Z,,,,,,,,,,,,delete,2024-02-03T04:05:06.000007Z\r\n", got)
}

func TestChangesEmptyFileHasHeader(t *testing.T) {
	for _, d := range recordtest.Datasets {
		got := gunzip(t, recordtest.Write(t, changeWriterFor(d), &exportd.Batch{Dataset: d}, 0))
		require.Equal(t, strings.Join(exportd.ColumnNames(d.ChangeColumns()), ",")+"\r\n", string(got))
	}
}

func BenchmarkChangeWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, changeWriterFor(d), recordtest.BenchChangeSource(d, 1000))
		})
	}
}
