package parquetfile

import (
	"time"
	"unsafe"

	"github.com/exportd/exportd"
)

// A caller may reuse a batch's memory once Write returns: its slices, the
// targets of its pointers and, by the contract of postgres.Source, even
// its strings. The few rows a writer keeps across calls (less than one
// chunk) are copied into an arena first. The arena is reused once those
// rows have gone to parquet-go, which copies what it is given, so keeping
// rows costs no allocation once the arena has grown.
type arena struct {
	bytes []byte
	strs  []string
	ints  []int64
	times []time.Time
	items []exportd.Item
	pays  []exportd.Payment
}

// reset makes the arena's memory available again; no row kept before may
// be used after it.
func (a *arena) reset() {
	a.bytes, a.strs, a.ints, a.times = a.bytes[:0], a.strs[:0], a.ints[:0], a.times[:0]
	clear(a.items) // drop references for the collector
	clear(a.pays)
	a.items, a.pays = a.items[:0], a.pays[:0]
}

// str copies s into the arena. Growing the arena leaves strings made
// earlier in the old array, which nothing writes to again, so they stay
// intact until reset.
func (a *arena) str(s string) string {
	if s == "" {
		return ""
	}
	if len(a.bytes)+len(s) > cap(a.bytes) {
		a.bytes = make([]byte, 0, max(2*cap(a.bytes), len(s), 4<<10))
	}
	start := len(a.bytes)
	a.bytes = append(a.bytes, s...)
	return unsafe.String(&a.bytes[start], len(s))
}

func (a *arena) strPtr(s *string) *string {
	if s == nil {
		return nil
	}
	if len(a.strs) == cap(a.strs) {
		a.strs = make([]string, 0, max(2*cap(a.strs), 64))
	}
	a.strs = append(a.strs, a.str(*s))
	return &a.strs[len(a.strs)-1]
}

func (a *arena) intPtr(v *int64) *int64 {
	if v == nil {
		return nil
	}
	if len(a.ints) == cap(a.ints) {
		a.ints = make([]int64, 0, max(2*cap(a.ints), 64))
	}
	a.ints = append(a.ints, *v)
	return &a.ints[len(a.ints)-1]
}

func (a *arena) timePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	if len(a.times) == cap(a.times) {
		a.times = make([]time.Time, 0, max(2*cap(a.times), 64))
	}
	a.times = append(a.times, *t)
	return &a.times[len(a.times)-1]
}

func (a *arena) order(o *exportd.Order) {
	o.MerchantID = a.str(o.MerchantID)
	o.LocationID = a.strPtr(o.LocationID)
	o.State = a.str(o.State)
	o.Currency = a.str(o.Currency)
	o.Tip = a.intPtr(o.Tip)
	o.CustomerRef = a.strPtr(o.CustomerRef)
	o.Note = a.strPtr(o.Note)
	if o.Items != nil {
		if len(a.items)+len(o.Items) > cap(a.items) {
			a.items = make([]exportd.Item, 0, max(2*cap(a.items), len(o.Items), 256))
		}
		start := len(a.items)
		for _, it := range o.Items {
			it.SKU = a.strPtr(it.SKU)
			it.Name = a.str(it.Name)
			a.items = append(a.items, it)
		}
		o.Items = a.items[start:len(a.items):len(a.items)]
	}
	if o.Payments != nil {
		if len(a.pays)+len(o.Payments) > cap(a.pays) {
			a.pays = make([]exportd.Payment, 0, max(2*cap(a.pays), len(o.Payments), 128))
		}
		start := len(a.pays)
		for _, p := range o.Payments {
			a.payment(&p)
			a.pays = append(a.pays, p)
		}
		o.Payments = a.pays[start:len(a.pays):len(a.pays)]
	}
}

func (a *arena) payment(p *exportd.Payment) {
	p.MerchantID = a.str(p.MerchantID)
	p.LocationID = a.strPtr(p.LocationID)
	p.Kind = a.str(p.Kind)
	p.Tender = a.str(p.Tender)
	p.CardBrand = a.strPtr(p.CardBrand)
	p.Result = a.str(p.Result)
}

func (a *arena) orderChange(r *OrderChange) {
	a.order(&r.Order)
	r.DeletedAt = a.timePtr(r.DeletedAt)
}

func (a *arena) paymentChange(r *PaymentChange) {
	a.payment(&r.Payment)
	r.DeletedAt = a.timePtr(r.DeletedAt)
}
