package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

func TestQueueDepth(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	waiting, running, err := q.Depth(ctx)
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 0}, [2]int{waiting, running})

	l := postgres.Limits{Global: 1}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"d1", "d2", "d3"} {
		_, err := q.TryAcquire(ctx, id, "M", t0.Add(time.Duration(i)*time.Second), l)
		require.NoError(t, err)
	}
	waiting, running, err = q.Depth(ctx)
	require.NoError(t, err)
	require.Equal(t, [2]int{2, 1}, [2]int{waiting, running}, "one slot held, two waiting")
}
