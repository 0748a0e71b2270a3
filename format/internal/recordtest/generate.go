// Package recordtest supports the tests of the format writers: it makes
// deterministic records full of edge cases, writes them in batches of any
// size, and turns what independent readers decode back into records or
// reference JSON, so every format is checked against the same source.
package recordtest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/exportd/exportd"
)

// Notes exercise every escaping rule of JSON and CSV.
var notes = []string{
	"",
	"no onions, please",
	`she said "hi", then left`,
	"line one\nline two",
	"windows\r\nline",
	"tab\there",
	"control \x01\x1f chars",
	`back\slash`,
	"unicode: café, 寿司, emoji 😀",
	"separators \u2028 and \u2029",
	" leading and trailing ",
	`"`,
	",",
	"'single'",
}

var itemNames = []string{"Latte", "Crème brûlée", "寿司", "Bagel, toasted", `12" pizza`, "🍕 slice", "Tea"}

// gen makes records from one random stream.
type gen struct {
	r                  *rand.Rand
	at                 time.Time
	id                 int64
	minItems, maxItems int
	minPays, maxPays   int
	edgeCases          bool
}

func newGen(seed uint64) *gen {
	return &gen{
		r:  rand.New(rand.NewPCG(seed, 0x5eed)),
		at: time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC),
	}
}

// Orders returns n orders in export order, with nulls, empty and non-nil
// empty lists, refunds and awkward strings.
func Orders(seed uint64, n int) []exportd.Order {
	g := newGen(seed)
	g.maxItems, g.maxPays, g.edgeCases = 4, 3, true
	return g.orders(n)
}

// BenchOrders returns n ordinary orders of 2-3 items and 1-3 payments.
func BenchOrders(n int) []exportd.Order {
	g := newGen(1)
	g.minItems, g.maxItems, g.minPays, g.maxPays = 2, 3, 1, 3
	return g.orders(n)
}

// Payments returns n payments in export order.
func Payments(seed uint64, n int) []exportd.Payment {
	return collectPayments(Orders(seed, n), n)
}

// BenchPayments returns n ordinary payments.
func BenchPayments(n int) []exportd.Payment {
	return collectPayments(BenchOrders(n), n)
}

func collectPayments(orders []exportd.Order, n int) []exportd.Payment {
	ps := make([]exportd.Payment, 0, n)
	for _, o := range orders {
		ps = append(ps, o.Payments...)
	}
	if len(ps) < n {
		panic(fmt.Sprintf("recordtest: only %d payments for %d asked", len(ps), n))
	}
	return ps[:n]
}

func (g *gen) orders(n int) []exportd.Order {
	os := make([]exportd.Order, n)
	for i := range os {
		g.order(&os[i])
	}
	return os
}

func (g *gen) order(o *exportd.Order) {
	r := g.r
	// Steps of zero microseconds give equal times, ordered by id.
	g.at = g.at.Add(time.Duration(r.IntN(3_000_000)) * time.Microsecond)
	g.id += 1 + r.Int64N(3)
	*o = exportd.Order{
		ID:         g.id,
		MerchantID: "MERCHANT_1",
		LocationID: g.maybe(0.8, pick(r, []string{"LOC_A", "LOC_B", "Café du Monde"})),
		CreatedAt:  g.at,
		UpdatedAt:  g.at.Add(time.Duration(r.Int64N(86_400_000_000)) * time.Microsecond),
		State:      pick(r, []string{"open", "paid", "refunded", "voided"}),
		Currency:   pick(r, []string{"USD", "EUR", "JPY"}),
	}
	if g.edgeCases && r.IntN(50) == 0 {
		// Before 1970: negative microseconds since the epoch.
		o.UpdatedAt = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)
	}
	nItems := g.minItems + r.IntN(g.maxItems-g.minItems+1)
	if nItems > 0 || (g.edgeCases && r.IntN(2) == 0) {
		o.Items = make([]exportd.Item, nItems)
	}
	for j := range o.Items {
		q := int32(1 + r.IntN(3))
		price := 50 + r.Int64N(2000)
		o.Items[j] = exportd.Item{
			Line:      int32(j + 1),
			SKU:       g.maybe(0.75, fmt.Sprintf("SKU-%05d", r.IntN(100000))),
			Name:      pick(r, itemNames),
			Quantity:  q,
			UnitPrice: price,
			Amount:    int64(q) * price,
		}
		o.Subtotal += o.Items[j].Amount
	}
	o.Tax = o.Subtotal * 8 / 100
	if r.IntN(10) < 7 {
		tip := r.Int64N(500)
		o.Tip = &tip
		o.Total = o.Subtotal + o.Tax + tip
	} else {
		o.Total = o.Subtotal + o.Tax
	}
	o.CustomerRef = g.maybe(0.6, fmt.Sprintf("cust-%d", r.IntN(1000)))
	if g.edgeCases {
		o.Note = g.maybe(0.5, pick(r, notes))
	}
	nPays := g.minPays + r.IntN(g.maxPays-g.minPays+1)
	if nPays > 0 || (g.edgeCases && r.IntN(2) == 0) {
		o.Payments = make([]exportd.Payment, nPays)
	}
	for j := range o.Payments {
		p := &o.Payments[j]
		*p = exportd.Payment{
			ID:         o.ID*10 + int64(j),
			OrderID:    o.ID,
			MerchantID: o.MerchantID,
			CreatedAt:  o.CreatedAt.Add(time.Duration(j) * time.Second),
			Kind:       "sale",
			Tender:     pick(r, []string{"card", "cash", "gift_card"}),
			Result:     pick(r, []string{"success", "success", "declined"}),
			Amount:     o.Total,
		}
		if o.LocationID != nil {
			loc := *o.LocationID
			p.LocationID = &loc
		}
		if p.Tender == "card" {
			p.CardBrand = g.maybe(0.9, pick(r, []string{"visa", "mastercard", "amex"}))
		}
		if j > 0 {
			p.Kind = "refund"
			p.Amount = -r.Int64N(o.Total + 1)
		}
	}
}

// maybe returns a pointer to v with probability p, else nil.
func (g *gen) maybe(p float64, v string) *string {
	if g.r.Float64() >= p {
		return nil
	}
	return &v
}

func pick(r *rand.Rand, vs []string) string { return vs[r.IntN(len(vs))] }
