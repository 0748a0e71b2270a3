package doshiijson

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

func writerFor(d exportd.Dataset) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return NewWriter(d, w) }
}

// readArray decompresses a file with the standard library and decodes it
// as one JSON array, each element left generic so that it compares with
// the reference built by encoding/json.
func readArray(t *testing.T, file []byte) []any {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(file))
	require.NoError(t, err)
	require.Empty(t, zr.Name)
	require.True(t, zr.ModTime.IsZero(), "gzip header has a time: %v", zr.ModTime)
	body, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.NoError(t, zr.Close())
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var arr []any
	require.NoError(t, dec.Decode(&arr), "%.300s", body)
	require.False(t, dec.More(), "trailing data after the array")
	require.NotNil(t, arr, "the file must be an array, not null")
	return arr
}

// The reference shapes, written from Doshii's order and transaction
// objects with encoding/json and sharing no code with the writer.

type refTax struct {
	Name    string `json:"name"`
	Amount  string `json:"amount"`
	Type    string `json:"type"`
	TaxType string `json:"taxType"`
	Value   string `json:"value"`
}

type refItem struct {
	PosID                *string `json:"posId,omitempty"`
	Name                 string  `json:"name"`
	Quantity             int32   `json:"quantity"`
	UnitPrice            string  `json:"unitPrice"`
	TotalBeforeSurcounts string  `json:"totalBeforeSurcounts"`
	TotalAfterSurcounts  string  `json:"totalAfterSurcounts"`
	Type                 string  `json:"type"`
	Surcounts            []any   `json:"surcounts"`
	Options              []any   `json:"options"`
}

type refTransaction struct {
	ID         string  `json:"id"`
	OrderID    string  `json:"orderId"`
	LocationID *string `json:"locationId"`
	Amount     int64   `json:"amount"`
	Method     string  `json:"method"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"createdAt"`
	UpdatedAt  string  `json:"updatedAt"`
}

type refLocation struct {
	ID string `json:"id"`
}

type refOrder struct {
	ID             string           `json:"id"`
	LocationID     *string          `json:"locationId"`
	Location       *refLocation     `json:"location"`
	Status         string           `json:"status"`
	Notes          *string          `json:"notes"`
	Items          []refItem        `json:"items"`
	Surcounts      []any            `json:"surcounts"`
	Taxes          []refTax         `json:"taxes"`
	Transactions   []refTransaction `json:"transactions"`
	PosCreatedAt   string           `json:"posCreatedAt"`
	CreatedAt      string           `json:"createdAt"`
	UpdatedAt      string           `json:"updatedAt"`
	Currency       string           `json:"currency"`
	SubtotalAmount int64            `json:"subtotalAmount"`
	TaxAmount      int64            `json:"taxAmount"`
	TipAmount      *int64           `json:"tipAmount"`
	TotalAmount    int64            `json:"totalAmount"`
}

func msTime(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.Year(), t.Month(), t.Day(),
		t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e6)
}

var methods = map[string]string{"visa": "visa", "mastercard": "mastercard", "amex": "amex"}

func refTxn(p exportd.Payment) refTransaction {
	method := map[string]string{"cash": "cash", "gift_card": "giftcard"}[p.Tender]
	if p.Tender == "card" {
		method = "other"
		if p.CardBrand != nil {
			method = methods[*p.CardBrand]
		}
	}
	status := map[string]string{"success": "complete", "declined": "rejected"}[p.Result]
	return refTransaction{ID: strconv.FormatInt(p.ID, 10), OrderID: strconv.FormatInt(p.OrderID, 10),
		LocationID: p.LocationID, Amount: p.Amount, Method: method, Status: status,
		CreatedAt: msTime(p.CreatedAt), UpdatedAt: msTime(p.CreatedAt)}
}

func refOf(o exportd.Order) refOrder {
	statuses := map[string]string{"open": "accepted", "paid": "complete", "refunded": "complete", "voided": "cancelled"}
	r := refOrder{
		ID: strconv.FormatInt(o.ID, 10), LocationID: o.LocationID, Status: statuses[o.State], Notes: o.Note,
		Items: []refItem{}, Surcounts: []any{}, Taxes: []refTax{}, Transactions: []refTransaction{},
		PosCreatedAt: msTime(o.CreatedAt), CreatedAt: msTime(o.CreatedAt), UpdatedAt: msTime(o.UpdatedAt),
		Currency: o.Currency, SubtotalAmount: o.Subtotal, TaxAmount: o.Tax, TipAmount: o.Tip, TotalAmount: o.Total,
	}
	if o.LocationID != nil {
		r.Location = &refLocation{ID: *o.LocationID}
	}
	for _, it := range o.Items {
		r.Items = append(r.Items, refItem{PosID: it.SKU, Name: it.Name, Quantity: it.Quantity,
			UnitPrice: strconv.FormatInt(it.UnitPrice, 10), TotalBeforeSurcounts: strconv.FormatInt(it.Amount, 10),
			TotalAfterSurcounts: strconv.FormatInt(it.Amount, 10), Type: "single", Surcounts: []any{}, Options: []any{}})
	}
	if o.Tax != 0 {
		tax := strconv.FormatInt(o.Tax, 10)
		r.Taxes = append(r.Taxes, refTax{Name: "Tax", Amount: tax, Type: "absolute", TaxType: "exclusive", Value: tax})
	}
	for _, p := range o.Payments {
		r.Transactions = append(r.Transactions, refTxn(p))
	}
	return r
}

// generic round-trips v through encoding/json into the form readArray
// produces.
func generic(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	require.NoError(t, dec.Decode(&out))
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				arr := readArray(t, recordtest.Write(t, writerFor(d), src, 100))
				require.Len(t, arr, n)
				for i := range arr {
					var want any
					if d == exportd.Payments {
						want = generic(t, refTxn(src.Payments[i]))
					} else {
						want = generic(t, refOf(src.Orders[i]))
					}
					require.Equal(t, want, arr[i], "record %d", i)
				}
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			// Several megabytes of JSON: many buffer flushes into gzip.
			recordtest.RequireDeterministic(t, writerFor(d), recordtest.Source(d, 5000))
		})
	}
}

func TestEmptyFileIsEmptyArray(t *testing.T) {
	for _, d := range recordtest.Datasets {
		file := recordtest.Write(t, writerFor(d), &exportd.Batch{Dataset: d}, 0)
		zr, err := gzip.NewReader(bytes.NewReader(file))
		require.NoError(t, err)
		body, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, "[]", string(body))
		require.Empty(t, readArray(t, file))
	}
}

func TestOrderLayout(t *testing.T) {
	loc, sku, brand, tip := "L1", "SKU-1", "VISA", int64(50)
	at := time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC)
	o := exportd.Order{ID: 7, MerchantID: "M", LocationID: &loc, CreatedAt: at, UpdatedAt: at.Add(time.Second),
		State: "paid", Currency: "AUD", Subtotal: 1000, Tax: 100, Tip: &tip, Total: 1150,
		Items: []exportd.Item{{Line: 1, SKU: &sku, Name: "Flat white", Quantity: 2, UnitPrice: 500, Amount: 1000}},
		Payments: []exportd.Payment{{ID: 70, OrderID: 7, MerchantID: "M", LocationID: &loc, CreatedAt: at,
			Kind: "sale", Tender: "card", CardBrand: &brand, Result: "success", Amount: 1150}}}
	file := recordtest.Write(t, writerFor(exportd.Orders), &exportd.Batch{Dataset: exportd.Orders, Orders: []exportd.Order{o}}, 0)
	zr, err := gzip.NewReader(bytes.NewReader(file))
	require.NoError(t, err)
	body, err := io.ReadAll(zr)
	require.NoError(t, err)
	want := `[{"id":"7","locationId":"L1","location":{"id":"L1"},"status":"complete","notes":null,` +
		`"items":[{"posId":"SKU-1","name":"Flat white","quantity":2,"unitPrice":"500","totalBeforeSurcounts":"1000",` +
		`"totalAfterSurcounts":"1000","type":"single","surcounts":[],"options":[]}],"surcounts":[],` +
		`"taxes":[{"name":"Tax","amount":"100","type":"absolute","taxType":"exclusive","value":"100"}],` +
		`"transactions":[{"id":"70","orderId":"7","locationId":"L1","amount":1150,"method":"visa","status":"complete",` +
		`"createdAt":"2024-01-02T03:04:05.678Z","updatedAt":"2024-01-02T03:04:05.678Z"}],` +
		`"posCreatedAt":"2024-01-02T03:04:05.678Z","createdAt":"2024-01-02T03:04:05.678Z","updatedAt":"2024-01-02T03:04:06.678Z",` +
		`"currency":"AUD","subtotalAmount":1000,"taxAmount":100,"tipAmount":50,"totalAmount":1150}]`
	require.Equal(t, want, string(body))
}

func TestMappings(t *testing.T) {
	brand := func(s string) *string { return &s }
	require.Equal(t, "visa", PaymentMethod("card", brand("VISA")))
	require.Equal(t, "other", PaymentMethod("card", brand("DISCOVER")))
	require.Equal(t, "other", PaymentMethod("card", nil))
	require.Equal(t, "giftcard", PaymentMethod("gift_card", nil))
	require.Equal(t, "other", PaymentMethod("voucher", nil))
	require.Equal(t, "complete", OrderStatus("partially_refunded"))
	require.Equal(t, "on_hold", OrderStatus("on_hold"), "unknown states pass through")
	require.Equal(t, "rejected", TransactionStatus("declined"))
}

func TestMisuse(t *testing.T) {
	w := NewWriter(exportd.Orders, io.Discard)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}), "payments")
	require.NoError(t, w.Close())
	require.Error(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}))
	require.NoError(t, w.Close(), "a second Close is a no-op")
}

// errWriter fails every write, like a full disk.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestWriteErrorSticks(t *testing.T) {
	w := NewWriter(exportd.Orders, errWriter{})
	src := recordtest.Source(exportd.Orders, 3000)
	var err error
	for i := 0; i < src.Len() && err == nil; i += 100 {
		err = w.Write(src.Slice(i, min(i+100, src.Len())))
	}
	if err == nil {
		err = w.Close()
	}
	require.ErrorIs(t, err, io.ErrShortWrite)
	require.ErrorIs(t, w.Close(), io.ErrShortWrite)
}

func BenchmarkOrders(b *testing.B) {
	recordtest.Bench(b, writerFor(exportd.Orders), recordtest.BenchSource(exportd.Orders, 1000))
}
