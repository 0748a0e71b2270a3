package postgres

import (
	"encoding/base32"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The seed's rows come from a generator that is a pure function of the seed
// and one merchant's options: each of the three COPY passes runs its own
// copy from the start and keeps only its table's rows, so nothing but the
// current order is ever in memory.

// Order and transaction IDs are idBlock(merchant)<<idSeqBits | sequence:
// each merchant owns a block, so merchants seeded by different runs never
// collide (Seed checks the blocks of all merchants it knows), and every ID
// stays below 2^53, exact in JavaScript clients' numbers.
const (
	idSeqBits   = 34
	idBlockBits = 53 - idSeqBits
)

func idBlock(merchantID string) int64 {
	h := fnv.New64a()
	h.Write([]byte(merchantID))
	return int64(h.Sum64() % (1 << idBlockBits))
}

// idRange returns the IDs a merchant's block covers, inclusive.
func idRange(merchantID string) (lo, hi int64) {
	b := idBlock(merchantID) << idSeqBits
	return b, b | (1<<idSeqBits - 1)
}

// Relative traffic by local hour: a breakfast bump, lunch, and the evening
// peak, with bars open late.
var hourWeights = [24]float64{
	0.10, 0.06, 0.03, 0.02, 0.02, 0.05, 0.25, 0.60, 1.00, 0.90, 0.80, 1.30,
	2.20, 1.90, 1.00, 0.80, 0.90, 1.40, 2.30, 2.60, 2.20, 1.50, 0.80, 0.40,
}

// Relative traffic by weekday, Sunday first: busy Friday and Saturday.
var weekdayWeights = [7]float64{1.15, 0.80, 0.85, 0.90, 1.00, 1.35, 1.50}

var locationNames = []string{
	"Downtown", "Airport T2", "Harbourfront", "Old Town", "University",
	"Market Hall", "Südbahnhof", "Riverside", "Mall Level 1", "Station Kiosk",
}

var classifiers = []string{"restaurant", "bar", "cafe", "takeaway", "retail"}

type product struct {
	name  string
	price int64 // cents
}

var products = []product{
	{"Espresso", 280}, {"Cappuccino", 420}, {"Flat white", 450}, {"Matcha latte 抹茶", 520},
	{"Croissant", 320}, {"Pain au chocolat", 360}, {"Crème brûlée", 750}, {"Cheeseburger", 1290},
	{"Veggie burger", 1190}, {"Fries", 450}, {"Sweet potato fries", 550}, {"Jalapeño poppers", 690},
	{"Caesar salad", 1150}, {"Ramen, tonkotsu", 1450}, {"Gyoza (6)", 750}, {"Margherita pizza", 1390},
	{"Pint of lager", 690}, {"Glass of house red", 850}, {"Lemonade", 390}, {"Sparkling water", 290},
	{"Club sandwich", 1050}, {"Soup of the day", 790}, {"Brownie", 390}, {"Ice cream, 2 scoops", 480},
	{"Paperback novel", 1699}, {"Notebook A5", 899}, {"Tote bag", 1500}, {"Gift card top-up", 2500},
	{"Smørrebrød", 1250}, {"Bánh mì", 990}, {"Açaí bowl", 1190}, {"Churros", 590},
}

// A few notes carry what breaks naive exporters: commas, quotes, newlines,
// non-Latin scripts and emoji.
var notes = []string{
	"No onions, please",
	"Extra napkins, forks & knives",
	`Say "happy birthday" to the table`,
	"Allergie: Nüsse & Sesam",
	"Café crème, très chaud",
	"Ring the bell twice,\nthen wait",
	"🎉 Party of 12 — booth 4",
	"请少放盐",
	"Leave at door; code 1234#",
	`He said "make it snappy", so...`,
	"Gluten-free bun (GF)",
	"Pay at pickup, 'cash only'",
	"½ portion for the kid",
	"Comma, separated, values",
}

var tipPercents = [...]int64{0, 0, 10, 15, 15, 18, 20, 20, 25}

var cardBrands = []string{"VISA", "MASTERCARD", "AMEX", "DISCOVER"}

type seedLocation struct {
	id, name, classifier string
	weight               float64
}

type orderRow struct {
	id, subtotal, tax, tip, total           pgtype.Int8
	merchantID, locationID, state, currency pgtype.Text
	customerRef, note                       pgtype.Text
	createdAt, updatedAt                    pgtype.Timestamptz
}

type itemRow struct {
	orderID, unitPrice, amount pgtype.Int8
	line, quantity             pgtype.Int4
	sku, name                  pgtype.Text
}

type txnRow struct {
	id, orderID, amount                                 pgtype.Int8
	merchantID, locationID, kind, tender, brand, result pgtype.Text
	createdAt                                           pgtype.Timestamptz
}

// generator yields one merchant's orders, each with its items and
// transactions, in the same sequence every time it is built from the same
// inputs.
type generator struct {
	rng        *rand.Rand
	m          SeedMerchant
	loc        *time.Location
	start, end time.Time
	block      int64
	taxBP      int64 // tax rate in basis points
	locations  []seedLocation
	locTotal   float64
	skus       []string
	customers  []string
	hourTotal  float64

	days      []time.Time // local midnights
	dayCounts []int
	day       int
	left      int // orders left in the current day
	hours     [25]time.Time
	burstLeft int
	burstAt   time.Time
	orderSeq  int64
	txnSeq    int64

	order  orderRow
	items  [5]itemRow
	nItems int
	txns   [3]txnRow
	nTxns  int
}

func newGenerator(seed uint64, m SeedMerchant, start, end time.Time) (*generator, error) {
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		return nil, fmt.Errorf("error loading timezone of merchant %s: %w", m.ID, err)
	}
	h := fnv.New64a()
	h.Write([]byte(m.ID))
	g := &generator{
		rng:   rand.New(rand.NewPCG(seed, h.Sum64())),
		m:     m,
		loc:   loc,
		start: start,
		end:   end,
		block: idBlock(m.ID) << idSeqBits,
	}
	g.taxBP = 500 + 25*g.rng.Int64N(21)
	g.locations = planLocations(g.rng, m)
	for _, l := range g.locations {
		g.locTotal += l.weight
	}
	g.skus = make([]string, len(products))
	for i := range products {
		g.skus[i] = fmt.Sprintf("SKU-%05d", g.rng.IntN(100000))
	}
	nCustomers := min(max(m.Orders/6, 20), 200_000)
	g.customers = make([]string, nCustomers)
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	var b [5]byte
	for i := range g.customers {
		for j := range b {
			b[j] = byte(g.rng.Uint32())
		}
		g.customers[i] = "cus_" + enc.EncodeToString(b[:])
	}
	for _, w := range hourWeights {
		g.hourTotal += w
	}
	g.planDays()

	o := &g.order
	o.merchantID = pgtype.Text{String: m.ID, Valid: true}
	o.currency = pgtype.Text{String: m.Currency, Valid: true}
	return g, nil
}

func planLocations(rng *rand.Rand, m SeedMerchant) []seedLocation {
	locs := make([]seedLocation, m.Locations)
	offset := rng.IntN(len(locationNames))
	for i := range locs {
		weight := 1.0
		if i > 0 {
			weight = 0.3 + 0.7*rng.Float64()
		}
		locs[i] = seedLocation{
			id:         fmt.Sprintf("%s-L%02d", m.ID, i+1),
			name:       locationNames[(offset+i)%len(locationNames)],
			classifier: classifiers[rng.IntN(len(classifiers))],
			weight:     weight,
		}
	}
	return locs
}

// planDays spreads the merchant's orders over the local days of the window
// by weekday, a gentle growth trend and day-to-day noise, rounding
// cumulatively so that the counts add up exactly.
func (g *generator) planDays() {
	s := g.start.In(g.loc)
	for d := time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, g.loc); d.Before(g.end); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, g.loc) {
		g.days = append(g.days, d)
	}
	weights := make([]float64, len(g.days))
	var total float64
	for i, d := range g.days {
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, g.loc)
		inside := earlier(next, g.end).Sub(later(d, g.start))
		w := weekdayWeights[d.Weekday()] * (1 + 0.25*float64(i)/float64(len(g.days))) * (0.85 + 0.3*g.rng.Float64())
		w *= float64(inside) / float64(next.Sub(d))
		weights[i] = w
		total += w
	}
	g.dayCounts = make([]int, len(g.days))
	var cum float64
	prev := 0
	for i, w := range weights {
		cum += w
		upto := int(float64(g.m.Orders)*cum/total + 0.5)
		if i == len(weights)-1 {
			upto = g.m.Orders
		}
		g.dayCounts[i] = upto - prev
		prev = upto
	}
	g.day = -1
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// next generates the next order with its items and transactions. It
// returns false after the last order.
func (g *generator) next() bool {
	for g.left == 0 {
		g.day++
		if g.day >= len(g.days) {
			return false
		}
		g.left = g.dayCounts[g.day]
		g.burstLeft = 0
		d := g.days[g.day]
		for h := range g.hours {
			g.hours[h] = time.Date(d.Year(), d.Month(), d.Day(), h, 0, 0, 0, g.loc)
		}
	}
	g.left--
	r := g.rng
	o := &g.order
	g.orderSeq++
	o.id = pgtype.Int8{Int64: g.block | g.orderSeq, Valid: true}

	// Offline registers upload queued orders in bursts that share one
	// timestamp: the ties keyset paging must get right.
	var at time.Time
	burst := g.burstLeft > 0
	if burst {
		g.burstLeft--
		at = g.burstAt
	} else {
		at = g.orderTime()
		if r.IntN(100) < 3 {
			g.burstLeft = 1 + r.IntN(5)
			g.burstAt = at
		}
	}
	o.createdAt = pgtype.Timestamptz{Time: at, Valid: true}

	o.locationID = pgtype.Text{}
	if r.IntN(100) >= 3 { // the rest are online orders, with no location
		o.locationID = pgtype.Text{String: g.pickLocation(), Valid: true}
	}

	// Line items; the subtotal is their sum.
	g.nItems = pickItemCount(r)
	var subtotal int64
	for i := range g.nItems {
		it := &g.items[i]
		it.orderID = o.id
		it.line = pgtype.Int4{Int32: int32(i + 1), Valid: true}
		var name string
		var price int64
		if r.IntN(100) < 4 {
			name, price = "Custom amount", 100+r.Int64N(5000)
			it.sku = pgtype.Text{}
		} else {
			// The lower of two draws favours the first products.
			p := min(r.IntN(len(products)), r.IntN(len(products)))
			name, price = products[p].name, products[p].price
			it.sku = pgtype.Text{String: g.skus[p], Valid: true}
		}
		qty := int64(1)
		if q := r.IntN(100); q >= 95 {
			qty = 3 + int64(r.IntN(2))
		} else if q >= 80 {
			qty = 2
		}
		it.name = pgtype.Text{String: name, Valid: true}
		it.quantity = pgtype.Int4{Int32: int32(qty), Valid: true}
		it.unitPrice = pgtype.Int8{Int64: price, Valid: true}
		it.amount = pgtype.Int8{Int64: price * qty, Valid: true}
		subtotal += price * qty
	}
	tax := (subtotal*g.taxBP + 5000) / 10000
	o.tip = pgtype.Int8{}
	var tip int64
	if r.IntN(100) >= 35 { // the rest had no tip prompt
		tip = subtotal * tipPercents[r.IntN(len(tipPercents))] / 100
		o.tip = pgtype.Int8{Int64: tip, Valid: true}
	}
	total := subtotal + tax + tip
	o.subtotal = pgtype.Int8{Int64: subtotal, Valid: true}
	o.tax = pgtype.Int8{Int64: tax, Valid: true}
	o.total = pgtype.Int8{Int64: total, Valid: true}

	o.customerRef = pgtype.Text{}
	if r.IntN(100) >= 40 {
		c := min(r.IntN(len(g.customers)), r.IntN(len(g.customers)))
		o.customerRef = pgtype.Text{String: g.customers[c], Valid: true}
	}
	o.note = pgtype.Text{}
	if r.IntN(100) < 6 {
		o.note = pgtype.Text{String: notes[r.IntN(len(notes))], Valid: true}
	}

	last := g.payments(at, burst, total)
	o.updatedAt = pgtype.Timestamptz{Time: last, Valid: true}
	return true
}

// orderTime draws a local time on the current day by the hourly rhythm,
// at millisecond precision, inside the window.
func (g *generator) orderTime() time.Time {
	var t time.Time
	for try := 0; try < 16; try++ {
		x := g.rng.Float64() * g.hourTotal
		h := 0
		for h < 23 && x >= hourWeights[h] {
			x -= hourWeights[h]
			h++
		}
		span := g.hours[h+1].Sub(g.hours[h]).Milliseconds()
		t = g.hours[h].Add(time.Duration(g.rng.Int64N(max(span, 1))) * time.Millisecond)
		if !t.Before(g.start) && t.Before(g.end) {
			return t.UTC()
		}
	}
	if t.Before(g.start) {
		return g.start.UTC()
	}
	return g.end.Add(-time.Millisecond).UTC()
}

func (g *generator) pickLocation() string {
	x := g.rng.Float64() * g.locTotal
	for _, l := range g.locations {
		if x < l.weight {
			return l.id
		}
		x -= l.weight
	}
	return g.locations[len(g.locations)-1].id
}

func pickItemCount(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 35:
		return 1
	case x < 65:
		return 2
	case x < 83:
		return 3
	case x < 93:
		return 4
	default:
		return 5
	}
}

// payments makes 1-3 transactions: a sale, sometimes split over two
// tenders, sometimes preceded by a declined card, sometimes refunded in
// full or in part. It returns the time of the last one.
func (g *generator) payments(at time.Time, burst bool, total int64) time.Time {
	r := g.rng
	split := r.IntN(100) < 9
	declined := r.IntN(100) < 2
	refund := r.IntN(100) < 3
	g.nTxns = 0

	// Orders of a burst were paid at the same instant too.
	t := at
	if !burst {
		t = t.Add(time.Duration(r.Int64N(120_000)) * time.Millisecond)
	}
	tender, brand := g.pickTender()
	if declined && !(split && refund) { // at most three transactions
		g.addTxn(t, "sale", "card", cardBrands[r.IntN(len(cardBrands))], "declined", total)
		t = t.Add(time.Duration(15_000+r.Int64N(45_000)) * time.Millisecond)
	}
	if split {
		part := total / 2
		if total > 1 {
			part = 1 + r.Int64N(total-1)
		}
		g.addTxn(t, "sale", tender, brand, "success", part)
		t = t.Add(time.Duration(5_000+r.Int64N(30_000)) * time.Millisecond)
		tender2, brand2 := g.pickTender()
		g.addTxn(t, "sale", tender2, brand2, "success", total-part)
	} else {
		g.addTxn(t, "sale", tender, brand, "success", total)
	}
	if refund && g.nTxns < 3 {
		amount := total
		if r.IntN(100) < 40 && total > 1 {
			amount = 1 + r.Int64N(total-1)
		}
		t = t.Add(time.Duration(600_000+r.Int64N(5*24*3_600_000)) * time.Millisecond)
		g.addTxn(t, "refund", tender, brand, "success", -amount)
		if amount == total {
			g.order.state = pgtype.Text{String: "refunded", Valid: true}
		} else {
			g.order.state = pgtype.Text{String: "partially_refunded", Valid: true}
		}
	} else {
		g.order.state = pgtype.Text{String: "paid", Valid: true}
	}
	return g.txns[g.nTxns-1].createdAt.Time
}

func (g *generator) pickTender() (tender, brand string) {
	switch x := g.rng.IntN(100); {
	case x < 68:
		return "card", cardBrands[min(g.rng.IntN(len(cardBrands)), g.rng.IntN(len(cardBrands)))]
	case x < 95:
		return "cash", ""
	default:
		return "gift_card", ""
	}
}

// addTxn appends a transaction, keeping it inside the window: data seeded
// for [start, end) stays there.
func (g *generator) addTxn(t time.Time, kind, tender, brand, result string, amount int64) {
	if !t.Before(g.end) {
		t = g.end.Add(-time.Millisecond)
	}
	g.txnSeq++
	x := &g.txns[g.nTxns]
	g.nTxns++
	x.id = pgtype.Int8{Int64: g.block | g.txnSeq, Valid: true}
	x.orderID = g.order.id
	x.merchantID = g.order.merchantID
	x.locationID = g.order.locationID
	x.createdAt = pgtype.Timestamptz{Time: t.UTC(), Valid: true}
	x.kind = pgtype.Text{String: kind, Valid: true}
	x.tender = pgtype.Text{String: tender, Valid: true}
	x.brand = pgtype.Text{String: brand, Valid: brand != ""}
	x.result = pgtype.Text{String: result, Valid: true}
	x.amount = pgtype.Int8{Int64: amount, Valid: true}
}
