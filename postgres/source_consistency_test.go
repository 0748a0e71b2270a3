package postgres_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSourcePagesAreConsistent streams a window while a writer keeps
// changing orders and their items together, in one transaction each: every
// streamed order's items still sum to its subtotal, as in every committed
// state, and every order is streamed exactly once.
func TestSourcePagesAreConsistent(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	start, end := t0, t0.Add(7*24*time.Hour)
	_, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 11, Start: start, End: end,
		Merchants: []postgres.SeedMerchant{{ID: "m1", Currency: "USD", Orders: 2000}}})
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "SELECT id FROM orders WHERE merchant_id = 'm1' ORDER BY created_at, id")
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)

	// The writer changes the quantities of a few random orders' items and
	// their subtotals and totals to match, committing them together.
	wctx, stop := context.WithCancel(ctx)
	var commits atomic.Int64
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		batch := make([]int64, 20)
		for wctx.Err() == nil {
			for i := range batch {
				batch[i] = all[rng.IntN(len(all))]
			}
			err := pgx.BeginFunc(wctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(wctx, `UPDATE order_items SET quantity = quantity % 4 + 1,
					amount = unit_price * (quantity % 4 + 1) WHERE order_id = ANY($1)`, batch); err != nil {
					return err
				}
				_, err := tx.Exec(wctx, `UPDATE orders o SET subtotal = s.sum, total = s.sum + o.tax + coalesce(o.tip, 0)
					FROM (SELECT order_id, sum(amount) AS sum FROM order_items WHERE order_id = ANY($1) GROUP BY order_id) s
					WHERE o.id = s.order_id`, batch)
				return err
			})
			if err != nil {
				if wctx.Err() == nil {
					werr = err
				}
				return
			}
			commits.Add(1)
		}
	})
	defer func() { stop(); wg.Wait() }()

	src := &postgres.Source{Pool: pool, PageSize: 37}
	q := postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: start, End: end}
	// Pass after pass until the writer has committed during the streams a
	// good few times; a loaded machine may starve it in some passes.
	var during int64
	for pass := 0; pass < 5 || during < 50 && pass < 100; pass++ {
		before := commits.Load()
		seen := make(map[int64]bool, len(all))
		var order []int64
		err := src.Stream(ctx, q, func(b *exportd.Batch) error {
			for _, o := range b.Orders {
				var sum int64
				for _, it := range o.Items {
					sum += it.Amount
				}
				require.Equal(t, o.Subtotal, sum, "order %d: items do not sum to its subtotal", o.ID)
				require.Equal(t, o.Total, o.Subtotal+o.Tax+deref(o.Tip), "order %d", o.ID)
				require.False(t, seen[o.ID], "order %d streamed twice", o.ID)
				seen[o.ID] = true
				order = append(order, o.ID)
			}
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, all, order, "pass %d", pass)
		during += commits.Load() - before
	}
	require.GreaterOrEqual(t, during, int64(50), "the writer committed during the streams")
	stop()
	wg.Wait()
	require.NoError(t, werr)
	t.Logf("%d writer commits of 20 orders each, %d during streams", commits.Load(), during)
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
