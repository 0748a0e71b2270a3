package cloverjson

import (
	"bytes"
	"encoding/json"
	"errors"
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

// The reference: what a Clover client must read for each record, built
// with encoding/json from mirror structs and mapping tables spelled out
// here, so that it shares no code with the writer.

type ref struct {
	ID string `json:"id"`
}

type elements[T any] struct {
	Elements []T `json:"elements"`
}

type tender struct {
	Label    string `json:"label"`
	LabelKey string `json:"labelKey"`
}

type cardTransaction struct {
	CardType string `json:"cardType"`
}

type payment struct {
	ID              string           `json:"id"`
	Order           ref              `json:"order"`
	Tender          tender           `json:"tender"`
	Amount          int64            `json:"amount"`
	CreatedTime     int64            `json:"createdTime"`
	Result          string           `json:"result"`
	CardTransaction *cardTransaction `json:"cardTransaction,omitempty"`
}

type refund struct {
	ID                     string           `json:"id"`
	OrderRef               ref              `json:"orderRef"`
	Amount                 int64            `json:"amount"`
	CreatedTime            int64            `json:"createdTime"`
	Status                 string           `json:"status"`
	OverrideMerchantTender tender           `json:"overrideMerchantTender"`
	CardTransaction        *cardTransaction `json:"cardTransaction,omitempty"`
}

type lineItem struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Price       int64   `json:"price"`
	UnitQty     int64   `json:"unitQty"`
	ItemCode    *string `json:"itemCode,omitempty"`
	CreatedTime int64   `json:"createdTime"`
}

type order struct {
	ID           string             `json:"id"`
	Currency     string             `json:"currency"`
	Customers    *elements[ref]     `json:"customers,omitempty"`
	Total        int64              `json:"total"`
	PaymentState string             `json:"paymentState,omitempty"`
	Note         *string            `json:"note,omitempty"`
	State        string             `json:"state"`
	CreatedTime  int64              `json:"createdTime"`
	ModifiedTime int64              `json:"modifiedTime"`
	LineItems    elements[lineItem] `json:"lineItems"`
	Payments     elements[payment]  `json:"payments"`
	Refunds      elements[refund]   `json:"refunds"`
}

var (
	wantTenders = map[string]tender{
		"card":      {"Credit Card", "com.clover.tender.credit_card"},
		"cash":      {"Cash", "com.clover.tender.cash"},
		"gift_card": {"Gift Card", "com.clover.tender.external_gift_card"},
	}
	wantResults      = map[string]string{"success": "SUCCESS", "declined": "FAIL"}
	wantCardTypes    = map[string]string{"visa": "VISA", "mastercard": "MC", "amex": "AMEX", "VISA": "VISA", "MASTERCARD": "MC", "AMEX": "AMEX", "DISCOVER": "DISCOVER"}
	wantPaymentState = map[string]string{"open": "OPEN", "paid": "PAID", "refunded": "REFUNDED", "partially_refunded": "PARTIALLY_REFUNDED"}
)

// ms is t in epoch milliseconds, rounded down also before 1970.
func ms(t time.Time) int64 {
	n := t.UnixNano()
	q := n / 1e6
	if n%1e6 < 0 {
		q--
	}
	return q
}

func card(t *testing.T, brand *string) *cardTransaction {
	t.Helper()
	if brand == nil {
		return nil
	}
	ct, ok := wantCardTypes[*brand]
	require.True(t, ok, "no expectation for brand %q", *brand)
	return &cardTransaction{CardType: ct}
}

func mirrorPayment(t *testing.T, p *exportd.Payment) payment {
	t.Helper()
	res, ok := wantResults[p.Result]
	require.True(t, ok, "no expectation for result %q", p.Result)
	return payment{
		ID: strconv.FormatInt(p.ID, 10), Order: ref{strconv.FormatInt(p.OrderID, 10)}, Tender: wantTenders[p.Tender],
		Amount: p.Amount, CreatedTime: ms(p.CreatedAt), Result: res, CardTransaction: card(t, p.CardBrand),
	}
}

func mirrorOrder(t *testing.T, o *exportd.Order) order {
	t.Helper()
	m := order{
		ID: strconv.FormatInt(o.ID, 10), Currency: o.Currency, Total: o.Total, PaymentState: wantPaymentState[o.State],
		Note: o.Note, State: o.State, CreatedTime: ms(o.CreatedAt), ModifiedTime: ms(o.UpdatedAt),
		LineItems: elements[lineItem]{[]lineItem{}}, Payments: elements[payment]{[]payment{}}, Refunds: elements[refund]{[]refund{}},
	}
	if o.CustomerRef != nil {
		m.Customers = &elements[ref]{[]ref{{*o.CustomerRef}}}
	}
	for _, it := range o.Items {
		m.LineItems.Elements = append(m.LineItems.Elements, lineItem{
			ID: fmt.Sprintf("%d-%d", o.ID, it.Line), Name: it.Name, Price: it.UnitPrice,
			UnitQty: int64(it.Quantity) * 1000, ItemCode: it.SKU, CreatedTime: ms(o.CreatedAt),
		})
	}
	for i := range o.Payments {
		p := &o.Payments[i]
		if p.Kind != "refund" {
			m.Payments.Elements = append(m.Payments.Elements, mirrorPayment(t, p))
			continue
		}
		status := map[string]string{"success": "SUCCESS", "declined": "FAIL"}[p.Result]
		m.Refunds.Elements = append(m.Refunds.Elements, refund{
			ID: strconv.FormatInt(p.ID, 10), OrderRef: ref{strconv.FormatInt(p.OrderID, 10)}, Amount: -p.Amount,
			CreatedTime: ms(p.CreatedAt), Status: status, OverrideMerchantTender: wantTenders[p.Tender],
			CardTransaction: card(t, p.CardBrand),
		})
	}
	return m
}

// expected is the JSON value record i of b must decode to.
func expected(t *testing.T, b *exportd.Batch, i int) any {
	t.Helper()
	var v any
	if b.Dataset == exportd.Payments {
		v = mirrorPayment(t, &b.Payments[i])
	} else {
		v = mirrorOrder(t, &b.Orders[i])
	}
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return recordtest.Decode(t, data)
}

// readElements parses a file as a Clover client does: one JSON object
// whose only key is "elements".
func readElements(t *testing.T, file []byte) []json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(file))
	var doc map[string]json.RawMessage
	require.NoError(t, dec.Decode(&doc), "%.200s", file)
	_, err := dec.Token()
	require.ErrorIs(t, err, io.EOF, "trailing data after the document")
	require.Len(t, doc, 1, "keys other than elements")
	var els []json.RawMessage
	require.NoError(t, json.Unmarshal(doc["elements"], &els))
	require.NotNil(t, els, "elements must be an array, not null")
	return els
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				els := readElements(t, recordtest.Write(t, writerFor(d), src, 100))
				require.Len(t, els, n)
				for i, el := range els {
					require.Equal(t, expected(t, src, i), recordtest.Decode(t, el), "element %d", i)
				}
			})
		}
	}
}

// TestClientSums reads orders into the structs a Clover client would use
// and checks that the money it sums is the money exported.
func TestClientSums(t *testing.T) {
	src := recordtest.Source(exportd.Orders, 1000)
	els := readElements(t, recordtest.Write(t, writerFor(exportd.Orders), src, 0))
	var total, paid, refunded, lines int64
	for _, el := range els {
		var o order
		require.NoError(t, json.Unmarshal(el, &o))
		total += o.Total
		for _, p := range o.Payments.Elements {
			paid += p.Amount
		}
		for _, r := range o.Refunds.Elements {
			refunded += r.Amount
		}
		for _, li := range o.LineItems.Elements {
			lines += li.Price * li.UnitQty / 1000
		}
	}
	var wantTotal, wantNet, wantLines int64
	for _, o := range src.Orders {
		wantTotal += o.Total
		for _, p := range o.Payments {
			wantNet += p.Amount
		}
		for _, it := range o.Items {
			wantLines += it.Amount
		}
	}
	require.Equal(t, wantTotal, total)
	require.Equal(t, wantNet, paid-refunded, "payments less refunds are the net amount")
	require.Equal(t, wantLines, lines, "price x unitQty / 1000 is the line amount")
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			// Megabytes of JSON: many flushes.
			recordtest.RequireDeterministic(t, writerFor(d), recordtest.Source(d, 5000))
		})
	}
}

func TestEmpty(t *testing.T) {
	for _, d := range recordtest.Datasets {
		file := recordtest.Write(t, writerFor(d), &exportd.Batch{Dataset: d}, 0)
		require.Equal(t, `{"elements":[]}`, string(file))
	}
}

func TestLayout(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6_789_000, time.UTC)
	brand, sku, cust := "visa", "SKU-1", "cust-9"
	o := exportd.Order{
		ID: 7, MerchantID: "M", CreatedAt: at, UpdatedAt: at.Add(time.Second), State: "partially_refunded", Currency: "USD",
		Subtotal: 700, Tax: 56, Total: 756, CustomerRef: &cust,
		Items: []exportd.Item{{Line: 1, SKU: &sku, Name: `12" pizza`, Quantity: 2, UnitPrice: 350, Amount: 700}},
		Payments: []exportd.Payment{
			{ID: 70, OrderID: 7, MerchantID: "M", CreatedAt: at, Kind: "sale", Tender: "card", CardBrand: &brand, Result: "success", Amount: 756},
			{ID: 71, OrderID: 7, MerchantID: "M", CreatedAt: at.Add(time.Hour), Kind: "refund", Tender: "cash", Result: "success", Amount: -100},
		},
	}
	file := recordtest.Write(t, writerFor(exportd.Orders), &exportd.Batch{Dataset: exportd.Orders, Orders: []exportd.Order{o}}, 0)
	want := `{"elements":[{"id":"7","currency":"USD","customers":{"elements":[{"id":"cust-9"}]},"total":756,` +
		`"paymentState":"PARTIALLY_REFUNDED","state":"partially_refunded","createdTime":1704164645006,"modifiedTime":1704164646006,` +
		`"lineItems":{"elements":[{"id":"7-1","name":"12\" pizza","price":350,"unitQty":2000,"itemCode":"SKU-1","createdTime":1704164645006}]},` +
		`"payments":{"elements":[{"id":"70","order":{"id":"7"},"tender":{"label":"Credit Card","labelKey":"com.clover.tender.credit_card"},` +
		`"amount":756,"createdTime":1704164645006,"result":"SUCCESS","cardTransaction":{"cardType":"VISA"}}]},` +
		`"refunds":{"elements":[{"id":"71","orderRef":{"id":"7"},"amount":100,"createdTime":1704168245006,"status":"SUCCESS",` +
		`"overrideMerchantTender":{"label":"Cash","labelKey":"com.clover.tender.cash"}}]}}]}`
	require.Equal(t, want, string(file))

	file = recordtest.Write(t, writerFor(exportd.Payments), &exportd.Batch{Dataset: exportd.Payments, Payments: o.Payments[1:]}, 0)
	want = `{"elements":[{"id":"71","order":{"id":"7"},"tender":{"label":"Cash","labelKey":"com.clover.tender.cash"},` +
		`"amount":-100,"createdTime":1704168245006,"result":"SUCCESS"}]}`
	require.Equal(t, want, string(file))
}

func TestMappings(t *testing.T) {
	for in, want := range map[string]string{"Visa": "VISA", "MasterCard": "MC", "american express": "AMEX", "Diners Club": "DINERS_CLUB", "UnionPay": "CHINA_UNION_PAY", "acme": "OTHER"} {
		require.Equal(t, want, CardType(in), in)
	}
	for in, want := range map[string]string{"success": "SUCCESS", "declined": "FAIL", "VOIDED": "VOIDED", "weird": "WEIRD"} {
		require.Equal(t, want, PaymentResult(in), in)
	}
	require.Equal(t, "FAIL", RefundStatus("weird"))
	require.Equal(t, "", PaymentState("voided"))
	label, key := Tender("voucher")
	require.Equal(t, [2]string{"voucher", "com.clover.tender.external_payment"}, [2]string{label, key})
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n--; w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestMisuse(t *testing.T) {
	w := NewWriter(exportd.Orders, io.Discard)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}), "payments")
	require.NoError(t, w.Close())
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}), "after close")
	require.NoError(t, w.Close(), "a second close is a no-op")

	// A write error sticks and reaches Close.
	w = NewWriter(exportd.Orders, &failWriter{})
	src := recordtest.Source(exportd.Orders, 5000)
	var err error
	for i := 0; i < src.Len() && err == nil; i += 100 {
		err = w.Write(src.Slice(i, i+100))
	}
	require.ErrorContains(t, err, "disk full")
	require.ErrorContains(t, w.Close(), "disk full")
}

func BenchmarkWrite(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, writerFor(d), recordtest.BenchSource(d, 1000))
		})
	}
}
