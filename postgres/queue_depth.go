package postgres

import (
	"context"
	"fmt"
)

// Depth counts the exports waiting for a running slot and those holding
// one, in one statement, for the queue gauges.
func (q *Queue) Depth(ctx context.Context) (waiting, running int, err error) {
	err = q.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE acquired_at IS NULL),
		count(*) FILTER (WHERE acquired_at IS NOT NULL) FROM export_queue`).Scan(&waiting, &running)
	if err != nil {
		return 0, 0, fmt.Errorf("error counting the export queue: %w", err)
	}
	return waiting, running, nil
}
