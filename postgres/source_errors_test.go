package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// requireSourceError asserts that err is a source_error, permanent or
// not, whose user-facing message holds each of parts.
func requireSourceError(t *testing.T, err error, permanent bool, parts ...string) {
	t.Helper()
	require.Error(t, err)
	var e *exportd.Error
	require.True(t, errors.As(err, &e), "unclassified: %v", err)
	t.Logf("%s (permanent %v)", e.Message, e.Permanent)
	require.Equal(t, exportd.CodeSourceError, e.Code, "%v", err)
	require.Equal(t, permanent, e.Permanent, "%v", err)
	for _, p := range parts {
		require.Contains(t, e.Message, p)
	}
	require.False(t, errors.Is(err, context.Canceled))
}

// threeOrders inserts orders 1-3 of m1, a second apart from t0.
func threeOrders(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for id := int64(1); id <= 3; id++ {
		insertOrders(t, pool, order("m1", id, t0.Add(time.Duration(id)*time.Second)))
	}
}

func streamAll(src *postgres.Source, ds exportd.Dataset) (int, error) {
	rows := 0
	err := src.Stream(context.Background(), postgres.Query{MerchantID: "m1", Dataset: ds, Start: t0, End: t0.Add(time.Hour)},
		func(b *exportd.Batch) error { rows += b.Len(); return nil })
	return rows, err
}

// TestSourceUnreadableIsPermanent changes the schema or forces data the
// decoder cannot read under a stream: the export must end at once with a
// message naming the table, the column and, for data, the row.
func TestSourceUnreadableIsPermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sql     []string
		dataset exportd.Dataset
		want    []string
	}{
		{"order column type changed", []string{"ALTER TABLE orders ALTER COLUMN tip TYPE numeric"}, exportd.Orders,
			[]string{"orders.tip has type numeric, expected bigint (int8); the source schema changed"}},
		{"item column type changed", []string{"ALTER TABLE order_items ALTER COLUMN quantity TYPE bigint"}, exportd.Orders,
			[]string{"order_items.quantity has type bigint, expected integer (int4)"}},
		{"payment time lost its zone", []string{"ALTER TABLE transactions ALTER COLUMN created_at TYPE timestamp"}, exportd.Payments,
			[]string{"transactions.created_at has type timestamp without time zone, expected timestamp with time zone"}},
		{"text column became json", []string{"ALTER TABLE orders ALTER COLUMN note TYPE jsonb USING to_jsonb(note)"}, exportd.Orders,
			[]string{"orders.note has type jsonb, expected text"}},
		{"column dropped", []string{"ALTER TABLE orders DROP COLUMN note"}, exportd.Orders,
			[]string{"cannot read orders", `column "note" does not exist`, "the source schema changed"}},
		{"child table dropped", []string{"DROP TABLE order_items"}, exportd.Orders,
			[]string{"cannot read order_items", `relation "order_items" does not exist`}},
		{"null money", []string{"ALTER TABLE orders ALTER COLUMN tax DROP NOT NULL", "UPDATE orders SET tax = NULL WHERE id = 2"}, exportd.Orders,
			[]string{"orders.tax: unexpected NULL in row id=2 (created_at 2025-03-01T12:00:02Z)"}},
		{"null text", []string{"ALTER TABLE orders ALTER COLUMN state DROP NOT NULL", "UPDATE orders SET state = NULL WHERE id = 3"}, exportd.Orders,
			[]string{"orders.state: unexpected NULL in row id=3 (created_at 2025-03-01T12:00:03Z)"}},
		{"null item name", []string{"ALTER TABLE order_items ALTER COLUMN name DROP NOT NULL", "UPDATE order_items SET name = NULL WHERE order_id = 2"}, exportd.Orders,
			[]string{"order_items.name: unexpected NULL in row order_id=2 (line 1)"}},
		{"null payment kind", []string{"ALTER TABLE transactions ALTER COLUMN kind DROP NOT NULL", "UPDATE transactions SET kind = NULL WHERE id = 20"}, exportd.Payments,
			[]string{"transactions.kind: unexpected NULL in row id=20 (created_at 2025-03-01T12:00:03Z)"}},
		{"infinite timestamp", []string{"UPDATE orders SET updated_at = 'infinity' WHERE id = 2"}, exportd.Orders,
			[]string{"orders.updated_at: infinite timestamp in row id=2 (created_at 2025-03-01T12:00:02Z)"}},
		{"timestamp beyond time.Time's microseconds", []string{"UPDATE orders SET updated_at = '294270-01-01 00:00:00+00' WHERE id = 1"}, exportd.Orders,
			[]string{"orders.updated_at: timestamp out of range in row id=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.New(t)
			threeOrders(t, pool)
			for _, sql := range tc.sql {
				_, err := pool.Exec(context.Background(), sql)
				require.NoError(t, err, sql)
			}
			for _, size := range []int{0, 1} {
				_, err := streamAll(&postgres.Source{Pool: pool, PageSize: size}, tc.dataset)
				requireSourceError(t, err, true, tc.want...)
			}
		})
	}
}

// TestSourceCountsClassified: Count and DistinctOrders classify as Stream
// does.
func TestSourceCountsClassified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	threeOrders(t, pool)
	src := &postgres.Source{Pool: pool}
	q := postgres.Query{MerchantID: "m1", Dataset: exportd.Payments, Start: t0, End: t0.Add(time.Hour)}
	through := exportd.Key{CreatedAt: t0.Add(time.Hour), ID: 1 << 60}
	n, err := src.DistinctOrders(ctx, q, through)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	_, err = pool.Exec(ctx, "ALTER TABLE transactions RENAME TO payments")
	require.NoError(t, err)
	_, err = src.Count(ctx, q)
	requireSourceError(t, err, true, "cannot read transactions", `relation "transactions" does not exist`)
	_, err = src.DistinctOrders(ctx, q, through)
	requireSourceError(t, err, true, "cannot read transactions")

	q.Dataset = exportd.Orders
	_, err = pool.Exec(ctx, "ALTER TABLE orders RENAME COLUMN merchant_id TO merchant")
	require.NoError(t, err)
	_, err = src.Count(ctx, q)
	requireSourceError(t, err, true, "cannot read orders", `column "merchant_id" does not exist`)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = src.Count(canceled, q)
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, exportd.AsError(err), "cancellation is not a source failure")

	late, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, err = src.DistinctOrders(late, q, through)
	requireSourceError(t, err, false, "timed out")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	pool.Close()
	_, err = src.Count(ctx, q)
	requireSourceError(t, err, false, "reading orders was interrupted")
}

// TestSourceConnectionLossIsTransient kills the stream's backends, or
// closes its pool, between pages: a retry can succeed, so the error is a
// transient source_error.
func TestSourceConnectionLossIsTransient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, ds := range []exportd.Dataset{exportd.Orders, exportd.Payments} {
		t.Run(string(ds)+"/terminated", func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewURL(t)
			pool, err := postgres.Open(ctx, url)
			require.NoError(t, err)
			defer pool.Close()
			threeOrders(t, pool)
			killer, err := pgx.Connect(ctx, url)
			require.NoError(t, err)
			defer killer.Close(ctx)
			rows, err := streamWith(&postgres.Source{Pool: pool, PageSize: 1}, ds, func() {
				_, err := killer.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid()`)
				require.NoError(t, err)
			})
			// The page read ahead may fail in any of its queries.
			requireSourceError(t, err, false, "was interrupted")
			require.Less(t, rows, 3)
		})
		t.Run(string(ds)+"/closed pool", func(t *testing.T) {
			t.Parallel()
			pool, err := postgres.Open(ctx, pgtest.NewURL(t))
			require.NoError(t, err)
			threeOrders(t, pool)
			// Close waits for the page read ahead to release its connection.
			_, err = streamWith(&postgres.Source{Pool: pool, PageSize: 1}, ds, pool.Close)
			requireSourceError(t, err, false, "reading "+tableOf(ds)+" was interrupted")
		})
	}
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.New(t)
		threeOrders(t, pool)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := (&postgres.Source{Pool: pool, PageSize: 1}).Stream(cctx,
			postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)},
			func(*exportd.Batch) error { cancel(); return nil })
		require.ErrorIs(t, err, context.Canceled)
		if e := exportd.AsError(err); e != nil {
			require.False(t, e.Permanent)
		}
	})
}

// streamWith streams m1's window, calling disturb after the first page.
func streamWith(src *postgres.Source, ds exportd.Dataset, disturb func()) (int, error) {
	rows := 0
	err := src.Stream(context.Background(), postgres.Query{MerchantID: "m1", Dataset: ds, Start: t0, End: t0.Add(time.Hour)},
		func(b *exportd.Batch) error {
			if rows == 0 {
				disturb()
			}
			rows += b.Len()
			return nil
		})
	return rows, err
}

func tableOf(ds exportd.Dataset) string {
	if ds == exportd.Payments {
		return "transactions"
	}
	return "orders"
}
