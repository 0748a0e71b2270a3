package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t) // already migrated once

	var before int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&before))
	require.Positive(t, before)

	// Concurrent callers serialise on the advisory lock and find nothing to do.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(ctx, pool) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var after int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&after))
	require.Equal(t, before, after)

	// The lock is released: a session can take it without waiting.
	var got bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(0x6578706f727464)).Scan(&got))
	require.True(t, got)
}

func TestMigrateFreshDatabaseConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	// Start from nothing, as a new deployment would, with several replicas
	// migrating at once.
	_, err := pool.Exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(ctx, pool) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var tables int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name IN ('merchants', 'locations', 'orders', 'order_items',
		'transactions', 'apps', 'api_keys', 'installs', 'schema_migrations')`).Scan(&tables))
	require.Equal(t, 9, tables)
}
