package postgres

import (
	"context"

	"github.com/exportd/exportd"
)

// DistinctOrders counts the distinct orders of a payments export's rows up
// to and including the key through: the exported range, even if rows were
// added to the window since.
func (s *Source) DistinctOrders(ctx context.Context, q Query, through exportd.Key) (int64, error) {
	if err := q.validate(); err != nil {
		return 0, err
	}
	sql := `SELECT count(DISTINCT order_id) FROM transactions
		WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 AND (created_at, id) <= ($4, $5)`
	args := []any{q.MerchantID, q.Start, q.End, through.CreatedAt, through.ID}
	if len(q.Locations) > 0 {
		sql += " AND location_id = ANY($6)"
		args = append(args, q.Locations)
	}
	var n int64
	if err := s.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, sourceError(ctx, err, "transactions")
	}
	return n, nil
}
