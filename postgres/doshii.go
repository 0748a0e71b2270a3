package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// LocationsByClassifier lists the ids of a merchant's locations whose
// classifier is one of classifiers, compared case-insensitively because
// clients spell them as their vendor does ("Restaurant", "restaurant").
// The Doshii dialect filters exports by it.
func (a *Access) LocationsByClassifier(ctx context.Context, merchantID string, classifiers []string) ([]string, error) {
	if !storable(merchantID) {
		return nil, nil
	}
	lower := make([]string, 0, len(classifiers))
	for _, c := range classifiers {
		if storable(c) { // others match no classifier
			lower = append(lower, strings.ToLower(c))
		}
	}
	rows, err := a.Pool.Query(ctx, `SELECT id FROM locations
		WHERE merchant_id = $1 AND lower(classifier) = ANY($2) ORDER BY id`, merchantID, lower)
	if err != nil {
		return nil, fmt.Errorf("error listing locations by classifier: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("error listing locations by classifier: %w", err)
	}
	return ids, nil
}
