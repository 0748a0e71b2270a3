package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

// TestSourceChildQueriesUseTheIndex explains the child queries of the
// first page of a window as a page's transaction runs them: the first
// execution of a prepared statement, with a full page of ids. They must
// read order_items and transactions through their order_id indexes, never
// scan the tables, which a custom plan for thousands of ids may do.
func TestSourceChildQueriesUseTheIndex(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	start, end := t0, t0.Add(30*24*time.Hour)
	_, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 5, Start: start, End: end,
		Merchants: []postgres.SeedMerchant{{ID: "m1", Currency: "USD", Orders: 20_000}}})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ANALYZE orders, order_items, transactions")
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "SELECT id FROM orders WHERE merchant_id = 'm1' ORDER BY created_at, id LIMIT $1", postgres.DefaultPageSize)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	lit := make([]string, len(ids))
	for i, id := range ids {
		lit[i] = strconv.FormatInt(id, 10)
	}
	array := "'{" + strings.Join(lit, ",") + "}'"

	for _, tc := range []struct{ name, sql, args, index string }{
		{"items", postgres.ItemsSQL, array, "order_items_pkey"},
		{"payments", postgres.OrderPaymentsSQL, array + ", 'm1'", "transactions_order_id_idx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := pool.Acquire(ctx)
			require.NoError(t, err)
			defer conn.Release()
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: postgres.BeginPageSQL})
			require.NoError(t, err)
			defer tx.Rollback(ctx)
			_, err = tx.Exec(ctx, "PREPARE child AS "+tc.sql)
			require.NoError(t, err)
			defer conn.Exec(ctx, "DEALLOCATE ALL")
			rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE child("+tc.args+")", pgx.QueryExecModeSimpleProtocol)
			require.NoError(t, err)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			for i, l := range lines {
				lines[i] = l[:min(len(l), 100)] // not the page's ids
			}
			plan := strings.Join(lines, "\n")
			require.NotContains(t, plan, "Seq Scan", plan)
			require.Contains(t, plan, tc.index, plan)
		})
	}
}
