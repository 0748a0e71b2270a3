package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd"
)

// Partition is a key range of an export's window, exported on its own.
type Partition struct {
	Index   int
	After   exportd.Key // exclusive start; zero is the window's start
	Through exportd.Key // inclusive end
	Rows    int64       // planned
	// BasePart is the number of the partition's first part, and Parts
	// how many part numbers it owns: its rows over the part size.
	BasePart, Parts int
}

// Boundaries splits the rows of q's window, in export order, into runs of
// size rows and returns the key of each run's last row, the final run's
// included: the same rows always give the same keys. Each boundary is
// found by an index scan from the one before, so the whole plan reads the
// window's keys once.
func (s *Source) Boundaries(ctx context.Context, q Query, size int64) ([]exportd.Key, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	if size < 1 {
		return nil, fmt.Errorf("partition size must be positive")
	}
	var keys []exportd.Key
	after := exportd.Key{}
	for {
		sql := "SELECT created_at, id FROM " + q.table() + " WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3"
		args := []any{q.MerchantID, q.Start, q.End}
		if !after.IsZero() {
			sql += " AND (created_at, id) > ($4, $5)"
			args = append(args, after.CreatedAt, after.ID)
		}
		if len(q.Locations) > 0 {
			args = append(args, q.Locations)
			sql += " AND location_id = ANY($" + strconv.Itoa(len(args)) + ")"
		}
		// The run's last row; past the end, the window's last row.
		k, ok, err := s.key(ctx, q, sql+" ORDER BY created_at, id OFFSET $"+strconv.Itoa(len(args)+1)+" LIMIT 1", append(args, size-1))
		if err == nil && !ok {
			k, ok, err = s.key(ctx, q, sql+" ORDER BY created_at DESC, id DESC LIMIT 1", args)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			return keys, nil
		}
		keys = append(keys, k)
		after = k
	}
}

func (s *Source) key(ctx context.Context, q Query, sql string, args []any) (exportd.Key, bool, error) {
	var k exportd.Key
	err := s.Pool.QueryRow(ctx, sql, args...).Scan(&k.CreatedAt, &k.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, false, nil
	}
	if err != nil {
		return k, false, sourceError(ctx, err, q.table())
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, true, nil
}

// Partitions records an export's partitions, replacing any recorded
// before: Plan may run again and must write the same.
func (f *Files) SavePartitions(ctx context.Context, exportID string, ps []Partition) error {
	err := pgx.BeginFunc(ctx, f.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM export_partitions WHERE export_id = $1", exportID); err != nil {
			return err
		}
		rows := make([][]any, len(ps))
		for i, p := range ps {
			after := keyArgs(p.After)
			rows[i] = []any{exportID, p.Index, after[0], after[1], p.Through.CreatedAt, p.Through.ID, p.Rows, p.BasePart, p.Parts}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"export_partitions"},
			[]string{"export_id", "partition", "after_at", "after_id", "through_at", "through_id", "rows", "base_part", "parts"},
			pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("error recording the partitions of export %s: %w", exportID, err)
	}
	return nil
}

// Partition reads one recorded partition of an export.
func (f *Files) Partition(ctx context.Context, exportID string, index int) (Partition, error) {
	p := Partition{Index: index}
	var afterAt *time.Time
	var afterID *int64
	err := f.Pool.QueryRow(ctx, `SELECT after_at, after_id, through_at, through_id, rows, base_part, parts
		FROM export_partitions WHERE export_id = $1 AND partition = $2`, exportID, index).
		Scan(&afterAt, &afterID, &p.Through.CreatedAt, &p.Through.ID, &p.Rows, &p.BasePart, &p.Parts)
	if err != nil {
		return p, fmt.Errorf("error reading partition %d of export %s: %w", index, exportID, err)
	}
	p.Through.CreatedAt = p.Through.CreatedAt.UTC()
	if afterAt != nil && afterID != nil {
		p.After = exportd.Key{CreatedAt: afterAt.UTC(), ID: *afterID}
	}
	return p, nil
}
