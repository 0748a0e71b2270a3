package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// cloneOrder copies an order out of a reused batch.
func cloneOrder(o exportd.Order) exportd.Order {
	cp := func(p *string) *string {
		if p == nil {
			return nil
		}
		return ptr(*p)
	}
	o.LocationID, o.CustomerRef, o.Note = cp(o.LocationID), cp(o.CustomerRef), cp(o.Note)
	if o.Tip != nil {
		o.Tip = ptr(*o.Tip)
	}
	if o.DeletedAt != nil {
		o.DeletedAt = ptr(*o.DeletedAt)
	}
	o.Items = append([]exportd.Item(nil), o.Items...)
	for i := range o.Items {
		o.Items[i].SKU = cp(o.Items[i].SKU)
	}
	o.Payments = append([]exportd.Payment(nil), o.Payments...)
	for i := range o.Payments {
		p := &o.Payments[i]
		p.LocationID, p.CardBrand = cp(p.LocationID), cp(p.CardBrand)
	}
	return o
}

// changeExport runs one change export of m1's orders from the mark and
// returns its records and its mark.
func changeExport(t *testing.T, pool *pgxpool.Pool, dataset exportd.Dataset, from postgres.Snapshot) ([]exportd.Order, []exportd.Payment, postgres.Snapshot) {
	t.Helper()
	ctx := context.Background()
	src := &postgres.Source{Pool: pool, PageSize: 2}
	c, err := src.OpenChanges(ctx)
	require.NoError(t, err)
	defer c.Close(ctx)
	q := postgres.ChangeQuery{MerchantID: "m1", Dataset: dataset, From: from}
	var orders []exportd.Order
	var pays []exportd.Payment
	require.NoError(t, src.StreamChanges(ctx, c, q, func(b *exportd.Batch) error {
		for _, o := range b.Orders {
			orders = append(orders, cloneOrder(o))
		}
		for _, p := range b.Payments {
			if p.DeletedAt != nil {
				p.DeletedAt = ptr(*p.DeletedAt)
			}
			pays = append(pays, p)
		}
		return nil
	}))
	n, err := src.CountChanges(ctx, c, q)
	require.NoError(t, err)
	require.EqualValues(t, len(orders)+len(pays), n)
	return orders, pays, c.Mark()
}

type opID struct {
	Op exportd.ChangeOp
	ID int64
}

func opIDs(orders []exportd.Order) []opID {
	out := []opID{}
	for _, o := range orders {
		out = append(out, opID{o.Op, o.ID})
	}
	return out
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func TestChangeExportOps(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	insertOrders(t, pool, order("m1", 1, t0), order("m1", 2, t0.Add(time.Minute)), order("m1", 3, t0), order("m2", 4, t0))

	// The backfill: every current order, decoded as Stream decodes it.
	got, _, mark := changeExport(t, pool, exportd.Orders, "")
	require.Equal(t, []opID{{exportd.OpUpsert, 1}, {exportd.OpUpsert, 3}, {exportd.OpUpsert, 2}}, opIDs(got))
	var streamed []exportd.Order
	require.NoError(t, (&postgres.Source{Pool: pool, PageSize: 2}).Stream(ctx,
		postgres.Query{MerchantID: "m1", Dataset: exportd.Orders, Start: t0, End: t0.Add(time.Hour)},
		func(b *exportd.Batch) error {
			for _, o := range b.Orders {
				o.Op = exportd.OpUpsert
				streamed = append(streamed, cloneOrder(o))
			}
			return nil
		}))
	require.Equal(t, streamed, got)

	exec(t, pool, "UPDATE order_items SET quantity = 2, amount = 2000 WHERE order_id = 1") // items alone
	insertPayments(t, pool, exportd.Payment{ID: 31, OrderID: 3, MerchantID: "m1", CreatedAt: t0.Add(time.Hour),
		Kind: "refund", Tender: "cash", Result: "success", Amount: -80}) // payments alone
	exec(t, pool, "DELETE FROM transactions WHERE order_id = 2; DELETE FROM order_items WHERE order_id = 2; DELETE FROM orders WHERE id = 2")
	insertOrders(t, pool, order("m1", 5, t0.Add(2*time.Minute)))
	exec(t, pool, "DELETE FROM orders WHERE id = 5") // created and deleted between two marks
	exec(t, pool, "UPDATE orders SET note = 'elsewhere' WHERE id = 4")
	// An insert that names an old stamp is restamped.
	exec(t, pool, `INSERT INTO orders SELECT 6, merchant_id, location_id, created_at + interval '3 minutes', updated_at, state,
		currency, subtotal, tax, tip, total, customer_ref, note, change_xid FROM orders WHERE id = 1`)
	exec(t, pool, `INSERT INTO orders SELECT 7, merchant_id, location_id, created_at + interval '4 minutes', updated_at, state,
		currency, subtotal, tax, tip, total, customer_ref, note, NULL FROM orders WHERE id = 1`)

	got, _, mark = changeExport(t, pool, exportd.Orders, mark)
	require.Equal(t, []opID{{exportd.OpUpsert, 1}, {exportd.OpUpsert, 3}, {exportd.OpDelete, 2}, {exportd.OpDelete, 5},
		{exportd.OpUpsert, 6}, {exportd.OpUpsert, 7}}, opIDs(got))
	require.EqualValues(t, 2000, got[0].Items[0].Amount)
	require.Len(t, got[1].Payments, 2)
	del := got[2]
	require.Equal(t, exportd.Order{ID: 2, MerchantID: "m1", CreatedAt: t0.Add(time.Minute), Op: exportd.OpDelete, DeletedAt: del.DeletedAt}, del)
	require.WithinDuration(t, time.Now(), *del.DeletedAt, time.Minute)

	// Deleted and inserted again: the order as it is now, no delete. Moved
	// to another merchant: gone from this one's copy.
	exec(t, pool, "DELETE FROM transactions WHERE order_id = 3; DELETE FROM order_items WHERE order_id = 3; DELETE FROM orders WHERE id = 3")
	insertOrders(t, pool, order("m1", 3, t0.Add(5*time.Minute)))
	exec(t, pool, "UPDATE orders SET merchant_id = 'm2' WHERE id = 1")
	got, _, mark = changeExport(t, pool, exportd.Orders, mark)
	require.Equal(t, []opID{{exportd.OpDelete, 1}, {exportd.OpUpsert, 3}}, opIDs(got))
	require.Equal(t, t0.Add(5*time.Minute), got[1].CreatedAt)

	// A rolled-back change and a no-op statement are no change.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE orders SET note = 'never' WHERE id = 3")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	exec(t, pool, "UPDATE orders SET note = 'x' WHERE id = 999")
	got, _, _ = changeExport(t, pool, exportd.Orders, mark)
	require.Empty(t, got)
}

// TestChangeExportLongTransaction: a transaction that began before a
// mark and commits after it is in the next export, not lost behind a later
// transaction that committed first; a change committed while an export
// runs is in the next export, and the running one still reads the version
// as of its mark.
func TestChangeExportLongTransaction(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	insertOrders(t, pool, order("m1", 1, t0), order("m1", 2, t0.Add(time.Minute)))
	_, _, mark0 := changeExport(t, pool, exportd.Orders, "")

	long, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer long.Rollback(ctx)
	_, err = long.Exec(ctx, "UPDATE orders SET note = 'long' WHERE id = 1")
	require.NoError(t, err)
	exec(t, pool, "UPDATE orders SET note = 'short' WHERE id = 2")

	got, _, mark1 := changeExport(t, pool, exportd.Orders, mark0)
	require.Equal(t, []opID{{exportd.OpUpsert, 2}}, opIDs(got))
	require.NoError(t, long.Commit(ctx))

	src := &postgres.Source{Pool: pool}
	c, err := src.OpenChanges(ctx)
	require.NoError(t, err)
	defer c.Close(ctx)
	exec(t, pool, "UPDATE orders SET note = 'after the mark' WHERE id = 1")
	var notes []string
	require.NoError(t, src.StreamChanges(ctx, c, postgres.ChangeQuery{MerchantID: "m1", Dataset: exportd.Orders, From: mark1},
		func(b *exportd.Batch) error {
			for _, o := range b.Orders {
				notes = append(notes, *o.Note)
			}
			return nil
		}))
	require.Equal(t, []string{"long"}, notes)
	got, _, _ = changeExport(t, pool, exportd.Orders, c.Mark())
	require.Len(t, got, 1)
	require.Equal(t, "after the mark", *got[0].Note)
}

func TestChangeExportPayments(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	insertOrders(t, pool, order("m1", 1, t0), order("m1", 2, t0.Add(time.Minute)), order("m2", 3, t0))
	_, pays, mark := changeExport(t, pool, exportd.Payments, "")
	require.Len(t, pays, 2)
	for _, p := range pays {
		require.Equal(t, exportd.OpUpsert, p.Op)
	}

	exec(t, pool, "UPDATE transactions SET result = 'declined' WHERE id = 10")
	exec(t, pool, "DELETE FROM transactions WHERE id = 20")
	exec(t, pool, "UPDATE transactions SET amount = 1 WHERE id = 30") // another merchant's
	_, pays, mark = changeExport(t, pool, exportd.Payments, mark)
	require.Len(t, pays, 2)
	require.Equal(t, exportd.Payment{ID: 10, OrderID: 1, MerchantID: "m1", LocationID: pays[0].LocationID, CreatedAt: t0.Add(time.Second),
		Kind: "sale", Tender: "cash", Result: "declined", Amount: 1080, Op: exportd.OpUpsert}, pays[0])
	require.Equal(t, exportd.Payment{ID: 20, MerchantID: "m1", CreatedAt: t0.Add(time.Minute + time.Second), Op: exportd.OpDelete,
		DeletedAt: pays[1].DeletedAt}, pays[1])
	require.NotNil(t, pays[1].DeletedAt)

	// A payment's change is a change of its order too.
	got, _, _ := changeExport(t, pool, exportd.Orders, mark)
	require.Empty(t, got, "the orders' marks are their own")
}

func TestChangeExportMarkLostAndBadQueries(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	insertOrders(t, pool, order("m1", 1, t0))
	src := &postgres.Source{Pool: pool}
	c, err := src.OpenChanges(ctx)
	require.NoError(t, err)
	q := postgres.ChangeQuery{MerchantID: "m1", Dataset: exportd.Orders}

	for _, bad := range []postgres.ChangeQuery{
		{Dataset: exportd.Orders},
		{MerchantID: "m1", Dataset: "refunds"},
		{MerchantID: "m1", Dataset: exportd.Orders, From: "1:2:3; DROP TABLE orders"},
		{MerchantID: "m1", Dataset: exportd.Orders, From: "9999999999:9999999999:"},
	} {
		err := src.StreamChanges(ctx, c, bad, func(*exportd.Batch) error { return nil })
		require.Equal(t, exportd.CodeInvalidRequest, exportd.ErrorCode(err), "%+v", bad)
		require.True(t, exportd.AsError(err).Permanent)
	}

	require.NoError(t, c.Close(ctx))
	err = src.StreamChanges(ctx, c, q, func(*exportd.Batch) error { return nil })
	require.ErrorIs(t, err, postgres.ErrMarkLost)
	require.Equal(t, exportd.CodeSourceError, exportd.ErrorCode(err))
	require.False(t, exportd.AsError(err).Permanent, "a new change export can succeed")
	_, err = src.CountChanges(ctx, c, q)
	require.True(t, errors.Is(err, postgres.ErrMarkLost))
}

// TestChangeExportChildOfInvisibleOrder: a payment (or item) written for an
// order that its transaction cannot see yet, because the order's insert
// has not committed, and that commits after a mark the order's insert came
// before, is in the next export with its order. The tables have no
// foreign keys, so nothing makes the payment wait for the order.
func TestChangeExportChildOfInvisibleOrder(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	insertOrders(t, pool, order("m1", 1, t0))
	_, _, mark := changeExport(t, pool, exportd.Orders, "")

	parent, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer parent.Rollback(ctx)
	_, err = parent.Exec(ctx, `INSERT INTO orders (id, merchant_id, created_at, updated_at, state, currency, subtotal, tax, total)
		VALUES (2, 'm1', $1, $1, 'paid', 'USD', 100, 0, 100)`, t0)
	require.NoError(t, err)
	child, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer child.Rollback(ctx)
	_, err = child.Exec(ctx, `INSERT INTO transactions (id, order_id, merchant_id, created_at, kind, tender, result, amount)
		VALUES (20, 2, 'm1', $1, 'sale', 'cash', 'success', 100)`, t0)
	require.NoError(t, err)
	_, err = child.Exec(ctx, `INSERT INTO order_items (order_id, line, name, quantity, unit_price, amount) VALUES (2, 1, 'x', 1, 100, 100)`)
	require.NoError(t, err)
	require.NoError(t, parent.Commit(ctx))

	got, _, mark := changeExport(t, pool, exportd.Orders, mark)
	require.Equal(t, []opID{{exportd.OpUpsert, 2}}, opIDs(got))
	require.Empty(t, got[0].Payments)
	require.NoError(t, child.Commit(ctx))

	got, _, _ = changeExport(t, pool, exportd.Orders, mark)
	require.Equal(t, []opID{{exportd.OpUpsert, 2}}, opIDs(got))
	require.Len(t, got[0].Payments, 1)
	require.Len(t, got[0].Items, 1)
}
