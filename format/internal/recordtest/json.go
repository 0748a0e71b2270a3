package recordtest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// TimeText is how the text formats must render t, spelled out here
// independently of the writers.
func TimeText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// The reference encoding: what a record must look like as JSON, built with
// encoding/json from mirror structs so it shares no code with the writers.

type jsonItem struct {
	Line      int32   `json:"line"`
	SKU       *string `json:"sku"`
	Name      string  `json:"name"`
	Quantity  int32   `json:"quantity"`
	UnitPrice int64   `json:"unit_price"`
	Amount    int64   `json:"amount"`
}

type jsonPayment struct {
	ID         int64   `json:"id"`
	OrderID    int64   `json:"order_id"`
	MerchantID string  `json:"merchant_id"`
	LocationID *string `json:"location_id"`
	CreatedAt  string  `json:"created_at"`
	Kind       string  `json:"kind"`
	Tender     string  `json:"tender"`
	CardBrand  *string `json:"card_brand"`
	Result     string  `json:"result"`
	Amount     int64   `json:"amount"`
}

type jsonOrder struct {
	ID          int64         `json:"id"`
	MerchantID  string        `json:"merchant_id"`
	LocationID  *string       `json:"location_id"`
	CreatedAt   string        `json:"created_at"`
	UpdatedAt   string        `json:"updated_at"`
	State       string        `json:"state"`
	Currency    string        `json:"currency"`
	Subtotal    int64         `json:"subtotal"`
	Tax         int64         `json:"tax"`
	Tip         *int64        `json:"tip"`
	Total       int64         `json:"total"`
	CustomerRef *string       `json:"customer_ref"`
	Note        *string       `json:"note"`
	Items       []jsonItem    `json:"items"`
	Payments    []jsonPayment `json:"payments"`
}

func mirrorItems(items []exportd.Item) []jsonItem {
	out := make([]jsonItem, 0, len(items))
	for _, it := range items {
		out = append(out, jsonItem(it))
	}
	return out
}

func mirrorPayment(p *exportd.Payment) jsonPayment {
	return jsonPayment{
		ID: p.ID, OrderID: p.OrderID, MerchantID: p.MerchantID, LocationID: p.LocationID,
		CreatedAt: TimeText(p.CreatedAt), Kind: p.Kind, Tender: p.Tender,
		CardBrand: p.CardBrand, Result: p.Result, Amount: p.Amount,
	}
}

func mirrorPayments(ps []exportd.Payment) []jsonPayment {
	out := make([]jsonPayment, 0, len(ps))
	for i := range ps {
		out = append(out, mirrorPayment(&ps[i]))
	}
	return out
}

func mirrorOrder(o *exportd.Order) jsonOrder {
	return jsonOrder{
		ID: o.ID, MerchantID: o.MerchantID, LocationID: o.LocationID,
		CreatedAt: TimeText(o.CreatedAt), UpdatedAt: TimeText(o.UpdatedAt),
		State: o.State, Currency: o.Currency, Subtotal: o.Subtotal, Tax: o.Tax,
		Tip: o.Tip, Total: o.Total, CustomerRef: o.CustomerRef, Note: o.Note,
		Items: mirrorItems(o.Items), Payments: mirrorPayments(o.Payments),
	}
}

// JSONRecord is the JSON value record i of b must decode to, as Decode
// returns it.
func JSONRecord(t testing.TB, b *exportd.Batch, i int) any {
	t.Helper()
	if b.Dataset == exportd.Payments {
		return roundTrip(t, mirrorPayment(&b.Payments[i]))
	}
	return roundTrip(t, mirrorOrder(&b.Orders[i]))
}

// jsonDelete is the whole JSON object of a delete.
type jsonDelete struct {
	ID         int64   `json:"id"`
	MerchantID string  `json:"merchant_id"`
	CreatedAt  string  `json:"created_at"`
	Op         string  `json:"op"`
	DeletedAt  *string `json:"deleted_at"`
}

// JSONChangeRecord is the JSON value record i of b, a change export's
// record, must decode to: an upsert is JSONRecord's object with "op"
// added; a delete has id, merchant_id, created_at, op and deleted_at only.
func JSONChangeRecord(t testing.TB, b *exportd.Batch, i int) any {
	t.Helper()
	var (
		id        int64
		merchant  string
		created   time.Time
		op        exportd.ChangeOp
		deletedAt *time.Time
	)
	if b.Dataset == exportd.Payments {
		p := &b.Payments[i]
		id, merchant, created, op, deletedAt = p.ID, p.MerchantID, p.CreatedAt, p.Op, p.DeletedAt
	} else {
		o := &b.Orders[i]
		id, merchant, created, op, deletedAt = o.ID, o.MerchantID, o.CreatedAt, o.Op, o.DeletedAt
	}
	if op != exportd.OpDelete {
		rec := JSONRecord(t, b, i).(map[string]any)
		rec["op"] = string(op)
		return rec
	}
	del := jsonDelete{ID: id, MerchantID: merchant, CreatedAt: TimeText(created), Op: string(op)}
	if deletedAt != nil {
		s := TimeText(*deletedAt)
		del.DeletedAt = &s
	}
	return roundTrip(t, del)
}

// JSONItems is the JSON value the items of order o must decode to.
func JSONItems(t testing.TB, o *exportd.Order) any {
	t.Helper()
	return roundTrip(t, mirrorItems(o.Items))
}

// JSONPayments is the JSON value the payments of order o must decode to.
func JSONPayments(t testing.TB, o *exportd.Order) any {
	t.Helper()
	return roundTrip(t, mirrorPayments(o.Payments))
}

func roundTrip(t testing.TB, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return Decode(t, data)
}

// Decode decodes one JSON value with numbers kept exact, failing t if data
// is not exactly one valid JSON value.
func Decode(t testing.TB, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "decoding %q", data)
	require.False(t, dec.More(), "trailing data after JSON value in %q", data)
	return v
}
