package postgres_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

var changesLong = flag.Bool("changes.long", false, "run TestChangeExportsReplay for minutes instead of seconds")

// TestChangeExportsReplay is the property of issue 14: writers insert,
// edit (an order and its items together, items alone, payments alone),
// move and delete orders, and delete and re-insert ids, in transactions of
// random length, some left open across a mark and committed after it,
// some rolled back, while a chain of change exports runs. After every
// export, replaying the chain so far equals the merchant's orders as of
// that export's mark (read by plain SQL in the mark's snapshot); at the
// end, it equals SELECT of the current orders; no version of an order is
// in two exports. Each seed runs a few seconds; -changes.long runs more
// exports with more writers.
func TestChangeExportsReplay(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			exports, writers := 25, 3
			if *changesLong {
				exports, writers = 1000, 6
			}
			runChangeChain(t, seed, exports, writers)
		})
	}
}

type chainWriter struct {
	pool    *pgxpool.Pool
	nextID  *atomic.Int64
	mu      sync.Mutex
	live    []int64 // ids that may exist
	deleted []int64 // ids that may have been deleted
}

func (w *chainWriter) pick(rng *rand.Rand, from *[]int64) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*from) == 0 {
		return 0, false
	}
	return (*from)[rng.IntN(len(*from))], true
}

func (w *chainWriter) add(to *[]int64, id int64) {
	w.mu.Lock()
	*to = append(*to, id)
	w.mu.Unlock()
}

func (w *chainWriter) insertOrder(ctx context.Context, tx pgx.Tx, rng *rand.Rand, id int64, token string) error {
	at := t0.Add(time.Duration(rng.IntN(1000)) * time.Minute).Truncate(time.Minute) // ties on created_at
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id, merchant_id, location_id, created_at, updated_at, state, currency,
		subtotal, tax, tip, total, note) VALUES ($1, 'm1', 'L1', $2, clock_timestamp(), 'paid', 'USD', 0, 10, NULL, 10, $3)`,
		id, at, token); err != nil {
		return err
	}
	for line := 1; line <= 1+rng.IntN(3); line++ {
		if _, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line, name, quantity, unit_price, amount)
			VALUES ($1, $2, $3, 1, 100, 100)`, id, line, token); err != nil {
			return err
		}
	}
	return w.insertPayment(ctx, tx, id)
}

func (w *chainWriter) insertPayment(ctx context.Context, tx pgx.Tx, orderID int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO transactions (id, order_id, merchant_id, location_id, created_at, kind, tender, result, amount)
		VALUES ($1, $2, 'm1', 'L1', $3, 'sale', 'cash', 'success', 10)`, w.nextID.Add(1), orderID, t0)
	return err
}

// op performs one random change in tx.
func (w *chainWriter) op(ctx context.Context, tx pgx.Tx, rng *rand.Rand, token string) error {
	id, ok := w.pick(rng, &w.live)
	r := rng.IntN(100)
	switch {
	case r < 25 || !ok:
		id := w.nextID.Add(1)
		if err := w.insertOrder(ctx, tx, rng, id, token); err != nil {
			return err
		}
		w.add(&w.live, id)
	case r < 45: // the order and its items together
		if _, err := tx.Exec(ctx, `UPDATE orders SET updated_at = clock_timestamp(), note = $2, subtotal = subtotal + 100,
			total = total + 100 WHERE id = $1 AND merchant_id = 'm1'`, id, token); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line, name, quantity, unit_price, amount)
			SELECT $1, coalesce(max(line), 0) + 1, $2, 1, 100, 100 FROM order_items WHERE order_id = $1`, id, token)
		return err
	case r < 60: // items alone
		_, err := tx.Exec(ctx, `UPDATE order_items SET name = $2, quantity = quantity + 1, amount = amount + unit_price
			WHERE order_id = $1 AND line = (SELECT min(line) FROM order_items WHERE order_id = $1)`, id, token)
		return err
	case r < 65: // an item removed alone
		_, err := tx.Exec(ctx, `DELETE FROM order_items WHERE order_id = $1 AND line = (SELECT max(line) FROM order_items WHERE order_id = $1)`, id)
		return err
	case r < 75: // payments alone
		return w.insertPayment(ctx, tx, id)
	case r < 90:
		for _, sql := range []string{
			"DELETE FROM transactions WHERE order_id = $1",
			"DELETE FROM order_items WHERE order_id = $1",
			"DELETE FROM orders WHERE id = $1 AND merchant_id = 'm1'",
		} {
			if _, err := tx.Exec(ctx, sql, id); err != nil {
				return err
			}
		}
		w.add(&w.deleted, id)
	case r < 95: // an id deleted earlier comes back
		if id, ok := w.pick(rng, &w.deleted); ok {
			return w.insertOrder(ctx, tx, rng, id, token)
		}
	default: // the order moves to another merchant: gone from m1's copy
		if _, err := tx.Exec(ctx, "UPDATE orders SET merchant_id = 'm2' WHERE id = $1 AND merchant_id = 'm1'", id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE transactions SET merchant_id = 'm2' WHERE order_id = $1", id)
		return err
	}
	return nil
}

// run writes until ctx ends: transactions of 1-4 changes, most short,
// some held open for longer than the time between two marks, one in ten
// rolled back. It returns the xids of the transactions it committed.
func (w *chainWriter) run(ctx context.Context, seed uint64, n int) ([]uint64, int, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	var xids []uint64
	var conflicts int
	for i := 0; ctx.Err() == nil; i++ {
		token := fmt.Sprintf("w%d-%d", n, i)
		var xid uint64
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid); err != nil {
				return err
			}
			for range 1 + rng.IntN(4) {
				if err := w.op(ctx, tx, rng, token); err != nil {
					return err
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
			}
			if rng.IntN(5) == 0 {
				time.Sleep(time.Duration(40+rng.IntN(120)) * time.Millisecond) // across a mark
			}
			if rng.IntN(10) == 0 {
				return errRollback
			}
			return nil
		})
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			xids = append(xids, xid)
		case errors.Is(err, errRollback):
		case errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "23505"):
			conflicts++ // deadlocks and racing re-inserts: the transaction is gone
		case ctx.Err() != nil:
			return xids, conflicts, nil
		default:
			return xids, conflicts, err
		}
	}
	return xids, conflicts, nil
}

var errRollback = errors.New("rollback")

// canon renders an order with its items and payments for comparison:
// what a copy must hold.
func canon(o *exportd.Order) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d %s %s %s %s %d %d %d %v %s|", o.ID, o.MerchantID, o.CreatedAt.UTC().Format(time.RFC3339Nano),
		o.UpdatedAt.UTC().Format(time.RFC3339Nano), o.State, o.Subtotal, o.Tax, o.Total, deref(o.Tip), derefString(o.Note))
	for _, it := range o.Items {
		fmt.Fprintf(&sb, "item %d %s %d %d|", it.Line, it.Name, it.Quantity, it.Amount)
	}
	for _, p := range o.Payments {
		fmt.Fprintf(&sb, "pay %d %d %s|", p.ID, p.Amount, p.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	return sb.String()
}

// sqlOrders reads m1's orders by plain SQL, as canon renders them.
func sqlOrders(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) map[int64]string {
	t.Helper()
	orders := map[int64]*exportd.Order{}
	rows, err := q.Query(ctx, `SELECT id, created_at, updated_at, state, subtotal, tax, tip, total, note
		FROM orders WHERE merchant_id = 'm1'`)
	require.NoError(t, err)
	for rows.Next() {
		o := &exportd.Order{MerchantID: "m1"}
		require.NoError(t, rows.Scan(&o.ID, &o.CreatedAt, &o.UpdatedAt, &o.State, &o.Subtotal, &o.Tax, &o.Tip, &o.Total, &o.Note))
		orders[o.ID] = o
	}
	require.NoError(t, rows.Err())
	rows, err = q.Query(ctx, `SELECT order_id, line, name, quantity, amount FROM order_items
		WHERE order_id IN (SELECT id FROM orders WHERE merchant_id = 'm1') ORDER BY order_id, line`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var it exportd.Item
		require.NoError(t, rows.Scan(&id, &it.Line, &it.Name, &it.Quantity, &it.Amount))
		orders[id].Items = append(orders[id].Items, it)
	}
	require.NoError(t, rows.Err())
	rows, err = q.Query(ctx, `SELECT id, order_id, amount, created_at FROM transactions
		WHERE merchant_id = 'm1' AND order_id IN (SELECT id FROM orders WHERE merchant_id = 'm1') ORDER BY order_id, created_at, id`)
	require.NoError(t, err)
	for rows.Next() {
		var p exportd.Payment
		require.NoError(t, rows.Scan(&p.ID, &p.OrderID, &p.Amount, &p.CreatedAt))
		orders[p.OrderID].Payments = append(orders[p.OrderID].Payments, p)
	}
	require.NoError(t, rows.Err())
	out := make(map[int64]string, len(orders))
	for id, o := range orders {
		out[id] = canon(o)
	}
	return out
}

func derefString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func runChangeChain(t *testing.T, seed uint64, exports, writers int) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewURL(t))
	require.NoError(t, err)
	cfg.MaxConns = int32(writers + 4) // the writers do not starve the export's pages
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: seed, Start: t0, End: t0.Add(24 * time.Hour),
		Merchants: []postgres.SeedMerchant{{ID: "m1", Currency: "USD", Orders: 300}, {ID: "m2", Currency: "USD", Orders: 50}}})
	require.NoError(t, err)
	// Half of the seeded orders predate change tracking (NULL change_xid),
	// as on a database migrated with its data in place.
	_, err = pool.Exec(ctx, `ALTER TABLE orders DISABLE TRIGGER orders_stamp_change;
		UPDATE orders SET change_xid = NULL WHERE id % 2 = 0;
		ALTER TABLE orders ENABLE TRIGGER orders_stamp_change`)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "SELECT id FROM orders WHERE merchant_id = 'm1'")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	var maxID int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT max(id) FROM (SELECT id FROM orders UNION ALL SELECT id FROM transactions) x").Scan(&maxID))

	w := &chainWriter{pool: pool, nextID: new(atomic.Int64), live: ids}
	w.nextID.Store(maxID)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	xids := make([][]uint64, writers)
	conflicts := make([]int, writers)
	werrs := make([]error, writers)
	for n := range writers {
		wg.Go(func() { xids[n], conflicts[n], werrs[n] = w.run(wctx, seed, n) })
	}
	defer func() { stop(); wg.Wait() }()

	rng := rand.New(rand.NewPCG(seed, 99))
	copyOf := map[int64]string{}
	seen := map[string]bool{} // every upserted version, across the chain
	var marks []postgres.Snapshot
	var from postgres.Snapshot
	var records, deletes, resumes int
	began := time.Now()
	for k := range exports + 1 {
		last := k == exports
		if last {
			// The final export's mark follows every write: the copy must
			// then equal the tables as they are.
			stop()
			wg.Wait()
		} else {
			time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
		}
		src := &postgres.Source{Pool: pool, PageSize: 1 + rng.IntN(40)}
		c, err := src.OpenChanges(ctx)
		require.NoError(t, err)
		q := postgres.ChangeQuery{MerchantID: "m1", Dataset: exportd.Orders, From: from}
		total, err := src.CountChanges(ctx, c, q)
		require.NoError(t, err)

		var got int64
		var prev exportd.Key
		inExport := map[int64]bool{}
		apply := func(b *exportd.Batch) {
			for i := range b.Orders {
				o := &b.Orders[i]
				key := b.Key(i)
				require.True(t, prev.Less(key), "export %d: records out of order: %v then %v", k, prev, key)
				prev = key
				require.False(t, inExport[o.ID], "export %d: order %d twice", k, o.ID)
				inExport[o.ID] = true
				switch o.Op {
				case exportd.OpUpsert:
					v := canon(o)
					require.False(t, seen[v], "export %d: a version of order %d was in an earlier export: %s", k, o.ID, v)
					seen[v] = true
					copyOf[o.ID] = v
				case exportd.OpDelete:
					require.NotNil(t, o.DeletedAt)
					delete(copyOf, o.ID)
					deletes++
				default:
					t.Fatalf("export %d: order %d has op %q", k, o.ID, o.Op)
				}
				got++
			}
		}
		// Some exports stop after a page and resume from its last key, as
		// a retried activity does.
		stopAfter := -1
		if rng.IntN(3) == 0 {
			stopAfter = rng.IntN(3)
		}
		errStop := errors.New("stop")
		for {
			pages := 0
			q.After = prev
			err := src.StreamChanges(ctx, c, q, func(b *exportd.Batch) error {
				if pages == stopAfter {
					return errStop
				}
				pages++
				apply(b)
				return nil
			})
			if errors.Is(err, errStop) {
				stopAfter = -1
				resumes++
				continue
			}
			require.NoError(t, err)
			break
		}
		require.Equal(t, total, got, "export %d: CountChanges", k)
		records += int(got)

		// The copy equals the orders as of the mark: read by plain SQL in
		// the export's own snapshot.
		want := markState(t, ctx, pool, c)
		sameOrders(t, want, copyOf, fmt.Sprintf("export %d: the copy differs from the orders as of its mark", k))
		require.NoError(t, c.Close(ctx))
		from = c.Mark()
		marks = append(marks, from)
	}
	for _, err := range werrs {
		require.NoError(t, err)
	}
	sameOrders(t, sqlOrders(t, ctx, pool), copyOf, "the copy differs from the current orders")

	// Some committed transactions were open across a mark, so committed
	// out of order with later ones.
	var commits, across int
	for _, xs := range xids {
		for _, x := range xs {
			commits++
			for _, m := range marks[:len(marks)-1] {
				if inProgress(m, x) {
					across++
					break
				}
			}
		}
	}
	var nconf int
	for _, c := range conflicts {
		nconf += c
	}
	t.Logf("%d exports in %v: %d records (%d deletes), %d resumed; %d writer commits, %d open across a mark, %d conflicts; %d orders at the end",
		len(marks), time.Since(began).Round(time.Millisecond), records, deletes, resumes, commits, across, nconf, len(copyOf))
	require.Positive(t, across, "no writer transaction was open across a mark")
	require.Positive(t, deletes)
}

// sameOrders fails the test with the orders that differ, if any.
func sameOrders(t *testing.T, want, got map[int64]string, msg string) {
	t.Helper()
	var diffs []string
	for id, w := range want {
		if g, ok := got[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s", w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("want %s\n  got  %s", w, g))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s", g))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("%s: %d orders differ, e.g.\n  %s", msg, len(diffs), strings.Join(diffs[:min(3, len(diffs))], "\n  "))
	}
}

// markState reads m1's orders by plain SQL in the change export's
// snapshot, taken from its mark's holder.
func markState(t *testing.T, ctx context.Context, pool *pgxpool.Pool, c *postgres.Changes) map[int64]string {
	t.Helper()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+c.SnapshotID()+"'")
	require.NoError(t, err)
	var mark string
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&mark))
	require.Equal(t, string(c.Mark()), mark, "the exported snapshot is the mark")
	return sqlOrders(t, ctx, tx)
}

// inProgress reports whether xid was running when the mark was taken.
func inProgress(mark postgres.Snapshot, xid uint64) bool {
	parts := strings.Split(string(mark), ":")
	if len(parts) != 3 || parts[2] == "" {
		return false
	}
	return slices.Contains(strings.Split(parts[2], ","), strconv.FormatUint(xid, 10))
}
