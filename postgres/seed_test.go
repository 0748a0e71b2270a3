package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// dumpHash is the md5 of an ordered dump of the seeded tables, without
// change_xid: which transaction loaded a row is not the row's data.
func dumpHash(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var sum string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT md5(
		(SELECT string_agg(m::text, E'\n' ORDER BY id) FROM merchants m) ||
		(SELECT string_agg(l::text, E'\n' ORDER BY id) FROM locations l) ||
		(SELECT string_agg((to_jsonb(o) - 'change_xid')::text, E'\n' ORDER BY id) FROM orders o) ||
		(SELECT string_agg(i::text, E'\n' ORDER BY order_id, line) FROM order_items i) ||
		(SELECT string_agg((to_jsonb(x) - 'change_xid')::text, E'\n' ORDER BY id) FROM transactions x))`).Scan(&sum))
	return sum
}

var smallSeed = postgres.SeedOptions{
	Seed:              42,
	OrdersPerMerchant: 3000,
	Start:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	End:               time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
}

func TestSeedDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, c := pgtest.New(t), pgtest.New(t), pgtest.New(t)
	_, err := postgres.Seed(ctx, a, smallSeed)
	require.NoError(t, err)
	_, err = postgres.Seed(ctx, b, smallSeed)
	require.NoError(t, err)
	require.Equal(t, dumpHash(t, a), dumpHash(t, b))

	// A pool too small for parallel COPY loads the same rows.
	cfg, err := pgxpool.ParseConfig(pgtest.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 1
	single, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer single.Close()
	_, err = postgres.Seed(ctx, single, smallSeed)
	require.NoError(t, err)
	require.Equal(t, dumpHash(t, a), dumpHash(t, single))

	other := smallSeed
	other.Seed++
	_, err = postgres.Seed(ctx, c, other)
	require.NoError(t, err)
	require.NotEqual(t, dumpHash(t, a), dumpHash(t, c))
}

func TestSeedMerchantDependsOnlyOnItsOwnOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all, one := pgtest.New(t), pgtest.New(t)
	_, err := postgres.Seed(ctx, all, smallSeed)
	require.NoError(t, err)
	// Seeding the second merchant alone, later, gives the same rows.
	alone := smallSeed
	alone.Merchants = postgres.DefaultSeedMerchants()[1:2]
	_, err = postgres.Seed(ctx, one, alone)
	require.NoError(t, err)
	sum := func(pool *pgxpool.Pool) string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT md5(string_agg((to_jsonb(o) - 'change_xid')::text, E'\n' ORDER BY id)) FROM orders o
			WHERE merchant_id = $1`, alone.Merchants[0].ID).Scan(&s))
		return s
	}
	require.Equal(t, sum(all), sum(one))
}

func TestSeedSkipsSeededMerchants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	first, err := postgres.Seed(ctx, pool, smallSeed)
	require.NoError(t, err)
	require.Len(t, first.Merchants, 3)
	for _, m := range first.Merchants {
		require.False(t, m.Skipped)
		require.EqualValues(t, 3000, m.Orders)
		require.Positive(t, m.Items)
		require.Positive(t, m.Transactions)
	}
	before := dumpHash(t, pool)

	// As `dev` does at every start, with one more merchant this time.
	again := smallSeed
	again.Merchants = append(postgres.DefaultSeedMerchants(), postgres.SeedMerchant{ID: "newcomer", Currency: "GBP", Timezone: "Europe/London", Orders: 100})
	var progress []string
	again.Progress = func(m postgres.SeededMerchant) { progress = append(progress, m.ID) }
	second, err := postgres.Seed(ctx, pool, again)
	require.NoError(t, err)
	require.Equal(t, []string{"cafe-lumiere", "harbor-burgers", "southern-books", "newcomer"}, progress)
	for _, m := range second.Merchants[:3] {
		require.True(t, m.Skipped, m.ID)
		require.Zero(t, m.Orders)
	}
	require.False(t, second.Merchants[3].Skipped)
	require.EqualValues(t, 100, second.Merchants[3].Orders)

	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE merchant_id <> 'newcomer'").Scan(&n))
	require.Equal(t, 9000, n)
	_, err = pool.Exec(ctx, "DELETE FROM transactions WHERE merchant_id = 'newcomer'; DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE merchant_id = 'newcomer'); DELETE FROM orders WHERE merchant_id = 'newcomer'; DELETE FROM locations WHERE merchant_id = 'newcomer'; DELETE FROM merchants WHERE id = 'newcomer'")
	require.NoError(t, err)
	require.Equal(t, before, dumpHash(t, pool))
}

func TestSeedRecoversFromInterruptedLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clean, pool := pgtest.New(t), pgtest.New(t)
	opts := smallSeed
	opts.Merchants = postgres.DefaultSeedMerchants()[:1]
	_, err := postgres.Seed(ctx, clean, opts)
	require.NoError(t, err)

	// A crash between the commits of a load leaves items and transactions
	// without their orders.
	_, err = postgres.Seed(ctx, pool, opts)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "DELETE FROM orders")
	require.NoError(t, err)
	res, err := postgres.Seed(ctx, pool, opts)
	require.NoError(t, err)
	require.False(t, res.Merchants[0].Skipped)
	require.Equal(t, dumpHash(t, clean), dumpHash(t, pool))
}

func TestSeedRejectsBadOptions(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	for _, opts := range []postgres.SeedOptions{
		{Merchants: []postgres.SeedMerchant{{ID: "", Currency: "USD"}}},
		{Merchants: []postgres.SeedMerchant{{ID: "a", Currency: "USD"}, {ID: "a", Currency: "USD"}}},
		{Merchants: []postgres.SeedMerchant{{ID: "a", Currency: "dollars"}}},
		{Merchants: []postgres.SeedMerchant{{ID: "a", Currency: "USD", Timezone: "Mars/Olympus"}}},
		{Start: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		_, err := postgres.Seed(context.Background(), pool, opts)
		require.Error(t, err, "%+v", opts)
	}
}

// TestSeedRealistic checks the shape of the data the exports are tested
// and benchmarked on.
func TestSeedRealistic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	opts := smallSeed
	opts.OrdersPerMerchant = 20_000
	_, err := postgres.Seed(ctx, pool, opts)
	require.NoError(t, err)

	scalar := func(sql string, args ...any) float64 {
		t.Helper()
		var v float64
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&v), sql)
		return v
	}
	require.EqualValues(t, 60_000, scalar("SELECT count(*) FROM orders"))
	require.EqualValues(t, 60_000, scalar("SELECT count(DISTINCT id) FROM orders"), "ids never collide")
	require.Zero(t, scalar("SELECT count(*) FROM orders WHERE id >= 2^53 OR id <= 0"), "ids fit a JavaScript number")
	require.Zero(t, scalar("SELECT count(*) FROM orders WHERE created_at < $1 OR created_at >= $2", opts.Start, opts.End))
	require.Zero(t, scalar("SELECT count(*) FROM transactions WHERE created_at < $1 OR created_at >= $2", opts.Start, opts.End))
	require.Zero(t, scalar("SELECT count(*) FROM orders WHERE updated_at < created_at"))
	require.Zero(t, scalar("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.id = o.location_id AND l.merchant_id = o.merchant_id) AND location_id IS NOT NULL"))
	require.EqualValues(t, 9, scalar("SELECT count(*) FROM locations WHERE classifier <> ''"))

	// 1-5 items, and the subtotal is their sum.
	require.Zero(t, scalar(`SELECT count(*) FROM (SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id
		GROUP BY o.id, o.subtotal HAVING count(*) NOT BETWEEN 1 AND 5 OR sum(i.amount) <> o.subtotal) x`))
	require.Zero(t, scalar("SELECT count(*) FROM order_items WHERE amount <> quantity * unit_price OR quantity < 1"))
	require.Zero(t, scalar("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)"))
	// total = subtotal + tax + tip, and the successful sales pay it.
	require.Zero(t, scalar("SELECT count(*) FROM orders WHERE total <> subtotal + tax + coalesce(tip, 0) OR tax <= 0"))
	require.Zero(t, scalar(`SELECT count(*) FROM (SELECT o.id FROM orders o JOIN transactions x ON x.order_id = o.id
		GROUP BY o.id, o.total HAVING count(*) NOT BETWEEN 1 AND 3
		OR sum(x.amount) FILTER (WHERE x.kind = 'sale' AND x.result = 'success') <> o.total) y`))
	require.Zero(t, scalar(`SELECT count(*) FROM transactions x JOIN orders o ON o.id = x.order_id
		WHERE x.merchant_id <> o.merchant_id OR x.location_id IS DISTINCT FROM o.location_id OR x.created_at < o.created_at`))

	// About 3% of orders are refunded, with negative amounts.
	refunds := scalar("SELECT count(*) FROM transactions WHERE kind = 'refund'") / 60_000
	require.InDelta(t, 0.03, refunds, 0.01)
	require.Zero(t, scalar("SELECT count(*) FROM transactions WHERE kind = 'refund' AND amount >= 0"))
	require.Zero(t, scalar(`SELECT count(*) FROM orders o WHERE (state = 'paid') = EXISTS
		(SELECT 1 FROM transactions x WHERE x.order_id = o.id AND x.kind = 'refund')`))
	require.Positive(t, scalar("SELECT count(*) FROM transactions WHERE result = 'declined'"))

	// Card brands exactly on card payments.
	require.Zero(t, scalar("SELECT count(*) FROM transactions WHERE (tender = 'card') <> (card_brand IS NOT NULL)"))
	// Nulls in every nullable column.
	for _, col := range []string{"tip", "customer_ref", "note", "location_id"} {
		nulls := scalar("SELECT count(*) FILTER (WHERE " + col + " IS NULL)::float / count(*) FROM orders")
		require.Greater(t, nulls, 0.01, col)
		require.Less(t, nulls, 0.99, col)
	}
	require.Positive(t, scalar("SELECT count(*) FROM order_items WHERE sku IS NULL"))
	// Notes that trip naive CSV and JSON writers.
	require.Positive(t, scalar(`SELECT count(*) FROM orders WHERE note LIKE '%,%'`))
	require.Positive(t, scalar(`SELECT count(*) FROM orders WHERE note LIKE '%"%'`))
	require.Positive(t, scalar(`SELECT count(*) FROM orders WHERE note LIKE E'%\n%'`))
	require.Positive(t, scalar(`SELECT count(*) FROM orders WHERE note ~ '[^\x01-\x7f]'`))

	// Deliberate ties on created_at, within a merchant.
	require.Greater(t, scalar(`SELECT count(*) FROM (SELECT 1 FROM orders GROUP BY merchant_id, created_at HAVING count(*) > 1) x`), 100.0)
	// Ids do not follow time within a day, so id order is not export order.
	require.Positive(t, scalar(`SELECT count(*) FROM (SELECT id, lag(id) OVER (PARTITION BY merchant_id ORDER BY created_at, id) AS prev
		FROM orders) x WHERE id < prev`))

	// Rhythm in local time: evenings beat early mornings, Saturdays beat
	// Mondays.
	local := func(sql string) float64 {
		return scalar(`SELECT count(*) FROM orders o JOIN merchants m ON m.id = o.merchant_id WHERE ` + sql)
	}
	require.Greater(t, local("extract(hour FROM o.created_at AT TIME ZONE m.timezone) = 19"),
		4*local("extract(hour FROM o.created_at AT TIME ZONE m.timezone) = 4"))
	require.Greater(t, local("extract(isodow FROM o.created_at AT TIME ZONE m.timezone) = 6"),
		1.3*local("extract(isodow FROM o.created_at AT TIME ZONE m.timezone) = 1"))
}
