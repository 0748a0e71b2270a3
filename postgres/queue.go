package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits caps running exports.
type Limits struct {
	// Global caps running exports across all workers; 0 means no cap.
	Global int
	// PerMerchant caps one merchant's running exports; 0 means no cap.
	PerMerchant int
	// Lease is how long a slot is held without renewal: the queue reaper
	// renews the slots of exports whose workflow is open, and a slot
	// whose lease ran out is taken to belong to an export that ended
	// without releasing it. 0 means slots never expire.
	Lease time.Duration
}

// Queue admits exports to run within Limits, first come first served
// among those whose merchant is under its cap.
type Queue struct {
	Pool *pgxpool.Pool
}

// queueLock is the advisory lock key serialising admission decisions.
const queueLock = 0x6578706f7274 // "export"

// Enqueue records an export waiting to run, unless limit (when positive)
// exports are already waiting: then it returns false and how many wait.
// The count and the insert happen under the queue lock, so concurrent
// submissions cannot overshoot the limit. Enqueueing an export again is
// accepted and changes nothing, so retries and idempotent requests are
// safe.
func (q *Queue) Enqueue(ctx context.Context, exportID, merchantID string, at time.Time, limit int) (bool, int, error) {
	ok, waiting := false, 0
	err := pgx.BeginFunc(ctx, q.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", queueLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM export_queue WHERE export_id = $1),
				(SELECT count(*) FROM export_queue WHERE acquired_at IS NULL)`, exportID).Scan(&exists, &waiting); err != nil {
			return err
		}
		if exists {
			ok = true
			return nil
		}
		if limit > 0 && waiting >= limit {
			return nil
		}
		ok = true
		_, err := tx.Exec(ctx, "INSERT INTO export_queue (export_id, merchant_id, enqueued_at) VALUES ($1, $2, $3)", exportID, merchantID, at)
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("error enqueueing export: %w", err)
	}
	return ok, waiting, nil
}

// Waiting counts the exports waiting for a slot.
func (q *Queue) Waiting(ctx context.Context) (int, error) {
	var n int
	if err := q.Pool.QueryRow(ctx, "SELECT count(*) FROM export_queue WHERE acquired_at IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting waiting exports: %w", err)
	}
	return n, nil
}

// Position returns how many waiting exports are ahead of exportID, or -1
// when it is not waiting.
func (q *Queue) Position(ctx context.Context, exportID string) (int, error) {
	var pos int
	err := q.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM export_queue w
			WHERE w.acquired_at IS NULL AND (w.enqueued_at, w.export_id) < (me.enqueued_at, me.export_id))
		FROM export_queue me WHERE me.export_id = $1 AND me.acquired_at IS NULL`, exportID).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("error reading queue position: %w", err)
	}
	return pos, nil
}

// Admission is the outcome of TryAcquire.
type Admission struct {
	Acquired bool
	// Position counts the waiting exports ahead when not acquired.
	Position int
}

// TryAcquire gives exportID a running slot if the caps allow and no
// eligible export is ahead of it. It enqueues the export first, so a
// workflow started without the API still queues.
func (q *Queue) TryAcquire(ctx context.Context, exportID, merchantID string, enqueuedAt time.Time, l Limits) (Admission, error) {
	var adm Admission
	err := pgx.BeginFunc(ctx, q.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", queueLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO export_queue (export_id, merchant_id, enqueued_at) VALUES ($1, $2, $3)
			ON CONFLICT (export_id) DO NOTHING`, exportID, merchantID, enqueuedAt); err != nil {
			return err
		}
		if err := expireLeases(ctx, tx, l); err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRow(ctx, "SELECT acquired_at IS NOT NULL FROM export_queue WHERE export_id = $1", exportID).Scan(&held); err != nil {
			return err
		}
		if held {
			adm.Acquired = true // a retried activity whose first attempt won
			return nil
		}
		next, err := eligible(ctx, tx, l, 0)
		if err != nil {
			return err
		}
		free, err := freeGlobal(ctx, tx, l)
		if err != nil {
			return err
		}
		if pos := slices.Index(next, exportID); pos >= 0 && (l.Global == 0 || pos < free) {
			_, err := tx.Exec(ctx, "UPDATE export_queue SET acquired_at = now(), lease_until = now() + $2::interval WHERE export_id = $1",
				exportID, leaseArg(l))
			adm.Acquired = err == nil
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM export_queue w, export_queue me
			WHERE me.export_id = $1 AND w.acquired_at IS NULL AND (w.enqueued_at, w.export_id) < (me.enqueued_at, me.export_id)`,
			exportID).Scan(&adm.Position)
	})
	if err != nil {
		return Admission{}, fmt.Errorf("error acquiring an export slot: %w", err)
	}
	return adm, nil
}

// Release frees exportID's slot or place in the queue, and returns the
// waiting exports that may now run, so the caller can wake them.
func (q *Queue) Release(ctx context.Context, exportID string, l Limits) ([]string, error) {
	_, next, err := q.remove(ctx, l, "DELETE FROM export_queue WHERE export_id = $1", exportID)
	if err != nil {
		return nil, fmt.Errorf("error releasing an export slot: %w", err)
	}
	return next, nil
}

// remove runs del, a DELETE from export_queue, under the queue lock, then
// expires leases and returns whether del removed a row and the waiting
// exports that may run now.
func (q *Queue) remove(ctx context.Context, l Limits, del string, args ...any) (bool, []string, error) {
	var next []string
	var removed bool
	err := pgx.BeginFunc(ctx, q.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", queueLock); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, del, args...)
		if err != nil {
			return err
		}
		removed = tag.RowsAffected() > 0
		if err := expireLeases(ctx, tx, l); err != nil {
			return err
		}
		all, err := eligible(ctx, tx, l, 100)
		if err != nil {
			return err
		}
		n := len(all)
		if l.Global > 0 {
			free, err := freeGlobal(ctx, tx, l)
			if err != nil {
				return err
			}
			n = min(n, free)
		}
		next = all[:max(n, 0)]
		return nil
	})
	return removed, next, err
}

// eligible lists waiting exports in queue order whose merchant is under
// its cap, counting the ones listed before them against the cap.
func eligible(ctx context.Context, tx pgx.Tx, l Limits, limit int) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT w.export_id, w.merchant_id,
			(SELECT count(*) FROM export_queue r WHERE r.merchant_id = w.merchant_id AND r.acquired_at IS NOT NULL)
		FROM export_queue w WHERE w.acquired_at IS NULL ORDER BY w.enqueued_at, w.export_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	picked := map[string]int{}
	for rows.Next() {
		var id, merchant string
		var running int
		if err := rows.Scan(&id, &merchant, &running); err != nil {
			return nil, err
		}
		if l.PerMerchant > 0 && running+picked[merchant] >= l.PerMerchant {
			continue
		}
		picked[merchant]++
		out = append(out, id)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, rows.Err()
}

// freeGlobal is how many more exports may run under the global cap; a
// failed count is an error, never a cap of zero that would stall the queue
// without a word.
func freeGlobal(ctx context.Context, tx pgx.Tx, l Limits) (int, error) {
	if l.Global == 0 {
		return 0, nil // no cap; callers do not read it
	}
	var running int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM export_queue WHERE acquired_at IS NOT NULL").Scan(&running); err != nil {
		return 0, fmt.Errorf("error counting running exports: %w", err)
	}
	return l.Global - running, nil
}

// expireLeases frees slots whose lease ran out. A slot acquired by a
// worker that predates leases has no lease_until; it is leased from its
// acquisition.
func expireLeases(ctx context.Context, tx pgx.Tx, l Limits) error {
	if l.Lease <= 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM export_queue
		WHERE acquired_at IS NOT NULL AND coalesce(lease_until, acquired_at + $1::interval) < now()`, l.Lease)
	return err
}

// leaseArg is the lease of a newly acquired slot as a query argument:
// NULL (no expiry) when l has no lease.
func leaseArg(l Limits) any {
	if l.Lease <= 0 {
		return nil
	}
	return l.Lease
}
