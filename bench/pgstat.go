package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TableScans counts how PostgreSQL has read one source table so far
// (pg_stat_user_tables).
type TableScans struct{ Seq, SeqRows, Idx int64 }

// sourceTables are the tables an export reads.
var sourceTables = []string{"orders", "order_items", "transactions"}

// Scans snapshots the scans of the source tables; nil if unreadable. A
// plan that reads a whole child table for a page of orders shows in the
// difference of two snapshots. A backend reports its counts when it goes
// idle, so take the second snapshot a moment after the work.
func Scans(ctx context.Context, pool *pgxpool.Pool) map[string]TableScans {
	rows, err := pool.Query(ctx, `SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0)
		FROM pg_stat_user_tables WHERE relname = ANY($1)`, sourceTables)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]TableScans{}
	for rows.Next() {
		var name string
		var t TableScans
		if rows.Scan(&name, &t.Seq, &t.SeqRows, &t.Idx) == nil {
			out[name] = t
		}
	}
	return out
}

// ScansSince describes the scans between two snapshots.
func ScansSince(before, after map[string]TableScans) string {
	var parts []string
	for _, name := range sourceTables {
		a, b := after[name], before[name]
		parts = append(parts, fmt.Sprintf("%s %d seq (%.1fM rows) %d idx", name, a.Seq-b.Seq, float64(a.SeqRows-b.SeqRows)/1e6, a.Idx-b.Idx))
	}
	return strings.Join(parts, ", ")
}
