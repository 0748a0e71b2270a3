package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

func TestQueueAdmitsWithinCapsInOrder(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 3, PerMerchant: 2}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// a1 a2 a3 of merchant A, then b1 b2 of merchant B.
	ids := []struct{ id, merchant string }{{"a1", "A"}, {"a2", "A"}, {"a3", "A"}, {"b1", "B"}, {"b2", "B"}}
	for i, e := range ids {
		ok, _, err := q.Enqueue(ctx, e.id, e.merchant, t0.Add(time.Duration(i)*time.Second), 0)
		require.NoError(t, err)
		require.True(t, ok)
	}
	n, err := q.Waiting(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	pos, err := q.Position(ctx, "b2")
	require.NoError(t, err)
	require.Equal(t, 4, pos)

	try := func(id, merchant string) postgres.Admission {
		t.Helper()
		adm, err := q.TryAcquire(ctx, id, merchant, t0, l)
		require.NoError(t, err)
		return adm
	}
	// The first three eligible are a1, a2 and b1: a3 would put merchant A
	// over its cap. Whoever asks first among them is admitted.
	require.True(t, try("b1", "B").Acquired)
	require.False(t, try("b2", "B").Acquired, "fourth in line")
	require.True(t, try("a1", "A").Acquired)
	require.True(t, try("a2", "A").Acquired)
	adm := try("a3", "A")
	require.False(t, adm.Acquired, "merchant A is at its cap")
	require.Equal(t, 0, adm.Position)
	// The global cap of 3 is reached.
	require.False(t, try("b2", "B").Acquired)
	require.True(t, try("a1", "A").Acquired, "a retried try of a holder is still admitted")

	next, err := q.Release(ctx, "a1", l)
	require.NoError(t, err)
	require.Equal(t, []string{"a3"}, next, "one global slot free; a3 is first in line and A is under its cap again")
	require.True(t, try("a3", "A").Acquired)
	pos, err = q.Position(ctx, "a3")
	require.NoError(t, err)
	require.Equal(t, -1, pos, "not waiting any more")
}

func TestQueueLeaseExpiresForgottenSlots(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 1, Lease: time.Hour}
	_, err := q.Pool.Exec(ctx, `INSERT INTO export_queue VALUES ('old', 'A', now() - interval '3 hours', now() - interval '2 hours')`)
	require.NoError(t, err)
	adm, err := q.TryAcquire(ctx, "new", "A", time.Now(), l)
	require.NoError(t, err)
	require.True(t, adm.Acquired, "a slot held past its lease is taken back")
}

func TestQueueConcurrentTriesNeverExceedCaps(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 4, PerMerchant: 2}
	t0 := time.Now()
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		go func(i int) {
			_, err := q.TryAcquire(ctx, fmt.Sprintf("e%02d", i), fmt.Sprintf("M%d", i%3), t0.Add(time.Duration(i)*time.Millisecond), l)
			errs <- err
		}(i)
	}
	for i := 0; i < 40; i++ {
		require.NoError(t, <-errs)
	}
	var maxPer int
	require.NoError(t, q.Pool.QueryRow(ctx, `SELECT coalesce(max(c), 0) FROM
		(SELECT count(*) c FROM export_queue WHERE acquired_at IS NOT NULL GROUP BY merchant_id) x`).Scan(&maxPer))
	var held int
	require.NoError(t, q.Pool.QueryRow(ctx, "SELECT count(*) FROM export_queue WHERE acquired_at IS NOT NULL").Scan(&held))
	require.LessOrEqual(t, held, 4)
	require.LessOrEqual(t, maxPer, 2)
}

func TestQueueLimitHoldsUnderConcurrentSubmits(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	results := make(chan bool, 50)
	for i := 0; i < 50; i++ {
		go func(i int) {
			ok, _, err := q.Enqueue(ctx, fmt.Sprintf("s%02d", i), "M", time.Now(), 20)
			require.NoError(t, err)
			results <- ok
		}(i)
	}
	admitted := 0
	for i := 0; i < 50; i++ {
		if <-results {
			admitted++
		}
	}
	require.Equal(t, 20, admitted)
	ok, waiting, err := q.Enqueue(ctx, "s00", "M", time.Now(), 20)
	require.NoError(t, err)
	require.Equal(t, 20, waiting)
	require.Equal(t, isAdmitted(t, q, "s00"), ok, "re-enqueueing an admitted export is accepted, a refused one is not")
}

func isAdmitted(t *testing.T, q *postgres.Queue, id string) bool {
	t.Helper()
	pos, err := q.Position(context.Background(), id)
	require.NoError(t, err)
	return pos >= 0
}
