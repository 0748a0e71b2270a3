package postgres

import (
	"context"
	"fmt"
	"time"
)

// reapLock is the session advisory lock key held for a reaper pass
// ("reaper" in ASCII), so that passes never overlap across processes.
const reapLock int64 = 0x726561706572

// QueueEntry is one row of the admission queue as the reaper sees it.
type QueueEntry struct {
	ExportID   string
	EnqueuedAt time.Time
	// Age is the time since the export was enqueued, by the database's
	// clock.
	Age time.Duration
	// Running is set while the export holds a running slot.
	Running bool
}

// Entries lists the admission queue, running exports first, then the
// waiting ones in queue order.
func (q *Queue) Entries(ctx context.Context) ([]QueueEntry, error) {
	rows, err := q.Pool.Query(ctx, `SELECT export_id, enqueued_at, extract(epoch FROM now() - enqueued_at)::float8, acquired_at IS NOT NULL
		FROM export_queue ORDER BY acquired_at IS NULL, enqueued_at, export_id`)
	if err != nil {
		return nil, fmt.Errorf("error listing the export queue: %w", err)
	}
	defer rows.Close()
	var out []QueueEntry
	for rows.Next() {
		var e QueueEntry
		var age float64
		if err := rows.Scan(&e.ExportID, &e.EnqueuedAt, &age, &e.Running); err != nil {
			return nil, fmt.Errorf("error listing the export queue: %w", err)
		}
		e.Age = time.Duration(age * float64(time.Second))
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error listing the export queue: %w", err)
	}
	return out, nil
}

// Reap removes an entry whose export ended without releasing it, as
// Release does, but only if the row is still the one the reaper saw (same
// enqueue time), so a row written again meanwhile survives. It returns
// whether a row was removed and the waiting exports that may run now.
func (q *Queue) Reap(ctx context.Context, e QueueEntry, l Limits) (bool, []string, error) {
	removed, next, err := q.remove(ctx, l, "DELETE FROM export_queue WHERE export_id = $1 AND enqueued_at = $2", e.ExportID, e.EnqueuedAt)
	if err != nil {
		return false, nil, fmt.Errorf("error reaping an export slot: %w", err)
	}
	return removed, next, nil
}

// Renew moves the leases of the running slots among exportIDs to lease
// from now, and returns how many it renewed. Waiting exports hold no
// slot, so they have no lease to renew.
func (q *Queue) Renew(ctx context.Context, exportIDs []string, lease time.Duration) (int, error) {
	if len(exportIDs) == 0 || lease <= 0 {
		return 0, nil
	}
	tag, err := q.Pool.Exec(ctx, `UPDATE export_queue SET lease_until = now() + $2::interval
		WHERE export_id = ANY($1) AND acquired_at IS NOT NULL`, exportIDs, lease)
	if err != nil {
		return 0, fmt.Errorf("error renewing export slot leases: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ClaimReap takes the reaper's turn. It is false while another process
// runs a pass, or when a pass began less than every ago: then the caller
// skips its pass. When true, call done once the pass ends.
func (q *Queue) ClaimReap(ctx context.Context, every time.Duration) (done func(), ok bool, err error) {
	conn, err := q.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("error acquiring connection: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", reapLock).Scan(&ok); err != nil || !ok {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("error taking the reaper lock: %w", err)
		}
		return nil, false, nil
	}
	done = func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", reapLock); err != nil {
			// A pooled session still holding the lock would stop every
			// later pass; ending the session releases it.
			_ = conn.Hijack().Close(ctx)
			return
		}
		conn.Release()
	}
	tag, err := conn.Exec(ctx, "UPDATE export_queue_reaper SET reaped_at = now() WHERE reaped_at <= now() - $1::interval", every)
	if err != nil {
		done()
		return nil, false, fmt.Errorf("error claiming the reaper's turn: %w", err)
	}
	if tag.RowsAffected() == 0 {
		done()
		return nil, false, nil
	}
	return done, true, nil
}
