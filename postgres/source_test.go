package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// insertOrders writes orders, with their items and payments, as given.
func insertOrders(t *testing.T, pool *pgxpool.Pool, orders ...exportd.Order) {
	t.Helper()
	ctx := context.Background()
	for _, o := range orders {
		_, err := pool.Exec(ctx, `INSERT INTO merchants (id, name, timezone, currency) VALUES ($1, $1, 'UTC', 'USD')
			ON CONFLICT DO NOTHING`, o.MerchantID)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO orders (id, merchant_id, location_id, created_at, updated_at, state, currency,
			subtotal, tax, tip, total, customer_ref, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			o.ID, o.MerchantID, o.LocationID, o.CreatedAt, o.UpdatedAt, o.State, o.Currency, o.Subtotal, o.Tax, o.Tip,
			o.Total, o.CustomerRef, o.Note)
		require.NoError(t, err)
		for _, it := range o.Items {
			_, err = pool.Exec(ctx, `INSERT INTO order_items (order_id, line, sku, name, quantity, unit_price, amount)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, o.ID, it.Line, it.SKU, it.Name, it.Quantity, it.UnitPrice, it.Amount)
			require.NoError(t, err)
		}
		insertPayments(t, pool, o.Payments...)
	}
}

func insertPayments(t *testing.T, pool *pgxpool.Pool, pays ...exportd.Payment) {
	t.Helper()
	for _, p := range pays {
		_, err := pool.Exec(context.Background(), `INSERT INTO transactions (id, order_id, merchant_id, location_id,
			created_at, kind, tender, card_brand, result, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.ID, p.OrderID, p.MerchantID, p.LocationID, p.CreatedAt, p.Kind, p.Tender, p.CardBrand, p.Result, p.Amount)
		require.NoError(t, err)
	}
}

// order makes a small consistent order with one item and one payment.
func order(merchant string, id int64, at time.Time) exportd.Order {
	return exportd.Order{
		ID: id, MerchantID: merchant, LocationID: ptr("L1"), CreatedAt: at, UpdatedAt: at.Add(time.Minute),
		State: "paid", Currency: "USD", Subtotal: 1000, Tax: 80, Total: 1080,
		Items: []exportd.Item{{Line: 1, SKU: ptr("SKU-1"), Name: "Thing", Quantity: 1, UnitPrice: 1000, Amount: 1000}},
		Payments: []exportd.Payment{{ID: id * 10, OrderID: id, MerchantID: merchant, LocationID: ptr("L1"),
			CreatedAt: at.Add(time.Second), Kind: "sale", Tender: "cash", Result: "success", Amount: 1080}},
	}
}

// collect streams q and returns deep copies of the records, plus the size
// of each page.
func collect(t *testing.T, src *postgres.Source, q postgres.Query) ([]exportd.Order, []exportd.Payment, []int) {
	t.Helper()
	var orders []exportd.Order
	var pays []exportd.Payment
	var pages []int
	err := src.Stream(context.Background(), q, func(b *exportd.Batch) error {
		pages = append(pages, b.Len())
		for _, o := range b.Orders {
			o.Items = slices.Clone(o.Items)
			o.Payments = slices.Clone(o.Payments)
			orders = append(orders, o)
		}
		pays = append(pays, b.Payments...)
		return nil
	})
	require.NoError(t, err)
	return orders, pays, pages
}

func ids[T any](recs []T, id func(T) int64) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = id(r)
	}
	return out
}

func orderID(o exportd.Order) int64     { return o.ID }
func paymentID(p exportd.Payment) int64 { return p.ID }

func TestSourceTiesAcrossPageBoundaries(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	// Ten orders share one timestamp; ids are inserted out of order so that
	// insertion order and id order differ.
	var want []int64
	for _, id := range []int64{70, 20, 100, 10, 50, 90, 30, 80, 60, 40} {
		o := order("m1", id, t0)
		o.Payments[0].CreatedAt = t0
		insertOrders(t, pool, o)
		want = append(want, id)
	}
	slices.Sort(want)
	insertOrders(t, pool, order("m1", 5, t0.Add(-time.Microsecond)), order("m1", 1, t0.Add(time.Microsecond)))
	want = append(append([]int64{5}, want...), 1)

	src := &postgres.Source{Pool: pool, PageSize: 3}
	q := postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}
	orders, _, pages := collect(t, src, q)
	require.Equal(t, want, ids(orders, orderID))
	require.Equal(t, []int{3, 3, 3, 3}, pages, "a full last page costs one more, empty query")

	// The payments share one timestamp too.
	q.Dataset = exportd.Payments
	_, pays, _ := collect(t, src, q)
	wantPays := make([]int64, len(want))
	for i := range want {
		wantPays[i] = want[i] * 10
	}
	require.ElementsMatch(t, wantPays, ids(pays, paymentID))
	for i := 1; i < len(pays); i++ {
		require.True(t, payKey(pays[i-1]).Less(payKey(pays[i])), "payments out of order at %d", i)
	}
}

func payKey(p exportd.Payment) exportd.Key { return exportd.Key{CreatedAt: p.CreatedAt, ID: p.ID} }

func TestSourceWindowEdges(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	start, end := t0, t0.Add(24*time.Hour)
	insertOrders(t, pool,
		order("m1", 1, start.Add(-time.Microsecond)), // before
		order("m1", 2, start),                        // first instant: in
		order("m1", 3, end.Add(-time.Microsecond)),   // last instant: in
		order("m1", 4, end),                          // end is exclusive: out
		order("m2", 5, start.Add(time.Hour)),         // another merchant
	)
	src := &postgres.Source{Pool: pool}
	q := postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: start, End: end}
	orders, _, _ := collect(t, src, q)
	require.Equal(t, []int64{2, 3}, ids(orders, orderID))
	n, err := src.Count(context.Background(), q)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	// Payments are windowed by their own time, a second after their
	// order's: order 1's falls inside, order 3's outside.
	q.Dataset = exportd.Payments
	_, pays, _ := collect(t, src, q)
	require.Equal(t, []int64{10, 20}, ids(pays, paymentID))
	n, err = src.Count(context.Background(), q)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

func TestSourceEmptyWindow(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	insertOrders(t, pool, order("m1", 1, t0))
	src := &postgres.Source{Pool: pool}
	for _, ds := range []exportd.Dataset{exportd.Orders, exportd.Payments} {
		q := postgres.Query{MerchantID: "m1", Dataset: ds, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
		called := false
		require.NoError(t, src.Stream(context.Background(), q, func(*exportd.Batch) error { called = true; return nil }))
		require.False(t, called, "fn is not called for an empty window")
		n, err := src.Count(context.Background(), q)
		require.NoError(t, err)
		require.Zero(t, n)
	}
	// An unknown merchant is an empty window too, not an error.
	q := postgres.Query{MerchantID: "nobody", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)}
	orders, _, _ := collect(t, src, q)
	require.Empty(t, orders)
}

func TestSourceLocationsFilter(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	a, b, online := order("m1", 1, t0), order("m1", 2, t0.Add(time.Second)), order("m1", 3, t0.Add(2*time.Second))
	b.LocationID, b.Payments[0].LocationID = ptr("L2"), ptr("L2")
	online.LocationID, online.Payments[0].LocationID = nil, nil
	insertOrders(t, pool, a, b, online)
	src := &postgres.Source{Pool: pool}
	for _, tc := range []struct {
		locations []string
		want      []int64
	}{
		{nil, []int64{1, 2, 3}},
		{[]string{"L1"}, []int64{1}},
		{[]string{"L2", "L1"}, []int64{1, 2}},
		{[]string{"elsewhere"}, nil},
	} {
		q := postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour), Locations: tc.locations}
		orders, _, _ := collect(t, src, q)
		require.Equal(t, tc.want, nilIfEmpty(ids(orders, orderID)), "locations %v", tc.locations)
		n, err := src.Count(context.Background(), q)
		require.NoError(t, err)
		require.EqualValues(t, len(tc.want), n)

		q.Dataset = exportd.Payments
		_, pays, _ := collect(t, src, q)
		require.Len(t, pays, len(tc.want))
	}
}

func nilIfEmpty(s []int64) []int64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestSourceResumeAfterKey(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	_, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 7,
		Merchants: []postgres.SeedMerchant{{ID: "m1", Currency: "USD"}}, OrdersPerMerchant: 3000,
		Start: t0, End: t0.Add(10 * 24 * time.Hour)})
	require.NoError(t, err)
	src := &postgres.Source{Pool: pool, PageSize: 256}
	for _, ds := range []exportd.Dataset{exportd.Orders, exportd.Payments} {
		q := postgres.Query{MerchantID: "m1", Dataset: ds, Start: t0, End: t0.Add(10 * 24 * time.Hour)}
		var all []exportd.Key
		require.NoError(t, src.Stream(ctx, q, func(b *exportd.Batch) error {
			for i := range b.Len() {
				all = append(all, b.Key(i))
			}
			return nil
		}))
		n, err := src.Count(ctx, q)
		require.NoError(t, err)
		require.EqualValues(t, len(all), n)

		// Resume after a key inside a run of ties, and after a page edge.
		tie := -1
		for i := 1; i < len(all); i++ {
			if all[i].CreatedAt.Equal(all[i-1].CreatedAt) {
				tie = i - 1
				break
			}
		}
		require.NotEqual(t, -1, tie, "the seed makes ties")
		for _, cut := range []int{0, tie, 255, len(all) - 2, len(all) - 1} {
			q.After = all[cut]
			var rest []exportd.Key
			require.NoError(t, src.Stream(ctx, q, func(b *exportd.Batch) error {
				for i := range b.Len() {
					rest = append(rest, b.Key(i))
				}
				return nil
			}))
			require.Equal(t, nilIfEmptyKeys(all[cut+1:]), rest, "%s after index %d", ds, cut)
			// Count ignores After: it is the plan, not what is left.
			n, err := src.Count(ctx, q)
			require.NoError(t, err)
			require.EqualValues(t, len(all), n)
		}
	}
}

func nilIfEmptyKeys(k []exportd.Key) []exportd.Key {
	if len(k) == 0 {
		return nil
	}
	return k
}

func TestSourceNestedChildren(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	o := order("m1", 1, t0)
	o.Tip, o.CustomerRef, o.Note = ptr(int64(150)), ptr("cus_1"), ptr(`Say "hi", 🎉`)
	o.Total = o.Subtotal + o.Tax + 150
	o.Items = []exportd.Item{
		{Line: 1, SKU: ptr("A"), Name: "Crème brûlée", Quantity: 2, UnitPrice: 300, Amount: 600},
		{Line: 2, SKU: nil, Name: "Custom amount", Quantity: 1, UnitPrice: 400, Amount: 400},
	}
	// Payments ordered by (created_at, id), not by id.
	o.Payments = []exportd.Payment{
		{ID: 30, OrderID: 1, MerchantID: "m1", LocationID: ptr("L1"), CreatedAt: t0.Add(time.Second), Kind: "sale", Tender: "card", CardBrand: ptr("VISA"), Result: "declined", Amount: 1230},
		{ID: 20, OrderID: 1, MerchantID: "m1", LocationID: ptr("L1"), CreatedAt: t0.Add(2 * time.Second), Kind: "sale", Tender: "cash", Result: "success", Amount: 1230},
		{ID: 10, OrderID: 1, MerchantID: "m1", LocationID: ptr("L1"), CreatedAt: t0.Add(time.Hour), Kind: "refund", Tender: "cash", Result: "success", Amount: -500},
	}
	o.UpdatedAt = t0.Add(time.Hour)
	bare := order("m1", 2, t0.Add(time.Minute))
	bare.Items, bare.Payments = nil, nil
	insertOrders(t, pool, o, bare)
	// Items are inserted in reverse line order to be sure of the sort.
	_, err := pool.Exec(context.Background(), `INSERT INTO order_items (order_id, line, name, quantity, unit_price, amount)
		VALUES (3, 2, 'b', 1, 1, 1), (3, 1, 'a', 1, 1, 1)`)
	require.NoError(t, err)
	third := order("m1", 3, t0.Add(2*time.Minute))
	third.Payments = nil
	third.Items = nil
	insertOrders(t, pool, third)
	// A transaction of another merchant that names order 1 stays out.
	insertPayments(t, pool, exportd.Payment{ID: 99, OrderID: 1, MerchantID: "m2", CreatedAt: t0, Kind: "sale", Tender: "cash", Result: "success", Amount: 1})

	src := &postgres.Source{Pool: pool}
	got, _, _ := collect(t, src, postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)})
	require.Len(t, got, 3)
	require.Equal(t, o, got[0])
	require.Equal(t, time.UTC, got[0].CreatedAt.Location())
	require.Equal(t, time.UTC, got[0].Payments[0].CreatedAt.Location())
	// An order without children has empty lists, not nil: encoders write
	// [] rather than null.
	require.NotNil(t, got[1].Items)
	require.Empty(t, got[1].Items)
	require.NotNil(t, got[1].Payments)
	require.Equal(t, []int32{1, 2}, []int32{got[2].Items[0].Line, got[2].Items[1].Line})
}

func TestSourceMatchesSQLOnSeededData(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	start, end := t0, t0.Add(30*24*time.Hour)
	_, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 3, OrdersPerMerchant: 4000, Start: start, End: end})
	require.NoError(t, err)
	m := postgres.DefaultSeedMerchants()[1]
	// A window that cuts through the data, and a page size that does not
	// divide anything.
	q := postgres.Query{MerchantID: m.ID, Dataset: exportd.Orders, Start: start.Add(36 * time.Hour), End: end.Add(-100 * time.Hour)}
	src := &postgres.Source{Pool: pool, PageSize: 777}
	orders, _, _ := collect(t, src, q)

	rows, err := pool.Query(ctx, `SELECT id FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3
		ORDER BY created_at, id`, m.ID, q.Start, q.End)
	require.NoError(t, err)
	var want []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, ids(orders, orderID))

	var items, pays, amount int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM order_items WHERE order_id = ANY($1)),
		(SELECT count(*) FROM transactions WHERE order_id = ANY($1)),
		(SELECT sum(amount) FROM transactions WHERE order_id = ANY($1))`, want).Scan(&items, &pays, &amount))
	var gotItems, gotPays, gotAmount int64
	for _, o := range orders {
		require.Equal(t, m.ID, o.MerchantID)
		require.NotEmpty(t, o.Items)
		require.NotEmpty(t, o.Payments)
		gotItems += int64(len(o.Items))
		gotPays += int64(len(o.Payments))
		for _, p := range o.Payments {
			require.Equal(t, o.ID, p.OrderID)
			gotAmount += p.Amount
		}
	}
	require.Equal(t, items, gotItems)
	require.Equal(t, pays, gotPays)
	require.Equal(t, amount, gotAmount)
}

func TestSourceStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	insertOrders(t, pool, order("m1", 1, t0), order("m1", 2, t0.Add(time.Second)))
	src := &postgres.Source{Pool: pool, PageSize: 1}
	stop := errors.New("stop")
	calls := 0
	err := src.Stream(context.Background(), postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)},
		func(*exportd.Batch) error { calls++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}

func TestSourceRejectsBadQuery(t *testing.T) {
	t.Parallel()
	src := &postgres.Source{} // never reaches the pool
	for _, q := range []postgres.Query{
		{Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)},
		{MerchantID: "m1", Dataset: "refunds", Start: t0, End: t0.Add(time.Hour)},
		{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0},
	} {
		_, err := src.Count(context.Background(), q)
		requireInvalid(t, err)
		_, err = src.DistinctOrders(context.Background(), q, exportd.Key{})
		requireInvalid(t, err)
		requireInvalid(t, src.Stream(context.Background(), q, func(*exportd.Batch) error { return nil }))
	}
}

// requireInvalid asserts that err refuses the query for good.
func requireInvalid(t *testing.T, err error) {
	t.Helper()
	e := exportd.AsError(err)
	require.NotNil(t, e, "unclassified: %v", err)
	require.Equal(t, exportd.CodeInvalidRequest, e.Code)
	require.True(t, e.Permanent)
}

// TestSourceSurvivesRestart restarts PostgreSQL in the middle of a stream:
// only the page in flight fails, and resuming from the last key handed out
// delivers every row exactly once, as a retried export activity does.
func TestSourceSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.Server(t)
	pool, err := postgres.Open(ctx, pg.URL())
	require.NoError(t, err)
	defer pool.Close()
	_, err = postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 9, Start: t0, End: t0.Add(48 * time.Hour),
		Merchants: []postgres.SeedMerchant{{ID: "m1", Currency: "USD", Orders: 3000}}})
	require.NoError(t, err)

	src := &postgres.Source{Pool: pool, PageSize: 400}
	q := postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(48 * time.Hour)}
	var got []int64
	restarted, failures := false, 0
	for attempt := 0; attempt < 10; attempt++ {
		err = src.Stream(ctx, q, func(b *exportd.Batch) error {
			for i, o := range b.Orders {
				got = append(got, o.ID)
				q.After = b.Key(i)
			}
			if len(got) >= 1200 && !restarted {
				restarted = true
				require.NoError(t, pg.Stop(ctx))
				require.NoError(t, pg.Start(ctx))
			}
			return nil
		})
		if err == nil {
			break
		}
		failures++
	}
	require.NoError(t, err)
	require.True(t, restarted)
	require.Positive(t, failures, "the restart failed a page")

	q.After = exportd.Key{}
	all, _, _ := collect(t, src, q)
	require.Equal(t, ids(all, orderID), got)
}
