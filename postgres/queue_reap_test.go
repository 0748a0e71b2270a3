package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

func TestQueueReapRemovesOrphansAndWakesTheNext(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 1, Lease: time.Hour}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		ok, _, err := q.Enqueue(ctx, id, "M"+id, t0.Add(time.Duration(i)*time.Second), 0)
		require.NoError(t, err)
		require.True(t, ok)
	}
	adm, err := q.TryAcquire(ctx, "a", "Ma", t0, l)
	require.NoError(t, err)
	require.True(t, adm.Acquired)

	entries, err := q.Entries(ctx)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	require.Equal(t, "a", entries[0].ExportID)
	require.True(t, entries[0].Running)
	require.Equal(t, []string{"b", "c"}, []string{entries[1].ExportID, entries[2].ExportID})
	require.False(t, entries[1].Running)
	require.Greater(t, entries[1].Age, 24*time.Hour, "enqueued in 2025")
	require.True(t, entries[1].EnqueuedAt.Equal(t0.Add(time.Second)))

	// b's workflow is gone (terminated while waiting): reaping it frees
	// the place ahead of c; nobody may run yet, a holds the one slot.
	removed, next, err := q.Reap(ctx, entries[1], l)
	require.NoError(t, err)
	require.True(t, removed)
	require.Empty(t, next)
	pos, err := q.Position(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, 0, pos, "c is first in line now")

	// a row written again since the reaper read it survives.
	stale := entries[0]
	stale.EnqueuedAt = stale.EnqueuedAt.Add(-time.Minute)
	removed, _, err = q.Reap(ctx, stale, l)
	require.NoError(t, err)
	require.False(t, removed)

	// a's workflow ended without releasing: reaping it wakes c.
	removed, next, err = q.Reap(ctx, entries[0], l)
	require.NoError(t, err)
	require.True(t, removed)
	require.Equal(t, []string{"c"}, next)
	adm, err = q.TryAcquire(ctx, "c", "Mc", t0, l)
	require.NoError(t, err)
	require.True(t, adm.Acquired)
}

// TestQueueRenewedLeaseOutlivesItsTerm is a slow export: it holds its
// slot well past its lease because the lease is renewed, and the slot is
// taken back only once renewals stop.
func TestQueueRenewedLeaseOutlivesItsTerm(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 1, Lease: time.Second}
	adm, err := q.TryAcquire(ctx, "slow", "A", time.Now(), l)
	require.NoError(t, err)
	require.True(t, adm.Acquired)
	ok, _, err := q.Enqueue(ctx, "next", "B", time.Now(), 0)
	require.NoError(t, err)
	require.True(t, ok)

	began := time.Now()
	for time.Since(began) < 2*l.Lease {
		time.Sleep(l.Lease / 4)
		n, err := q.Renew(ctx, []string{"slow", "next"}, l.Lease)
		require.NoError(t, err)
		require.Equal(t, 1, n, "only the running slot has a lease")
		adm, err := q.TryAcquire(ctx, "next", "B", time.Now(), l)
		require.NoError(t, err)
		require.False(t, adm.Acquired, "the slow export still holds the one slot after %s", time.Since(began))
	}

	time.Sleep(l.Lease + 200*time.Millisecond)
	adm, err = q.TryAcquire(ctx, "next", "B", time.Now(), l)
	require.NoError(t, err)
	require.True(t, adm.Acquired, "a lease no longer renewed runs out")
}

func TestQueueClaimReapOnePassAtATime(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	done, ok, err := q.ClaimReap(ctx, time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "the first claim ever")
	_, ok, err = q.ClaimReap(ctx, 0)
	require.NoError(t, err)
	require.False(t, ok, "a pass is running")
	done()
	_, ok, err = q.ClaimReap(ctx, time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "a pass began less than an hour ago")
	done, ok, err = q.ClaimReap(ctx, 0)
	require.NoError(t, err)
	require.True(t, ok)
	done()
}
