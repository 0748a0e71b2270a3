// Package postgres wraps PostgreSQL, the source of merchant data and the
// store of apps, API keys and installs: schema migrations, the demo seed,
// the keyset-paged Source the export reads, and the Access store the API
// authenticates with. Everything takes a *pgxpool.Pool from Open.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a looked-up app, key or merchant does not
// exist (or, for keys, is revoked). Callers test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// Open connects a pool to url and checks that the server answers, so a
// wrong URL fails at startup rather than at the first export.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("error parsing database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error creating pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to database: %w", err)
	}
	return pool, nil
}
