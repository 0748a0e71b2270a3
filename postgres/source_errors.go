package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/exportd/exportd"
	"github.com/jackc/pgx/v5/pgconn"
)

// sourceError classifies a failure to read table as an exportd source
// error: permanent when the query can never succeed (the schema changed,
// the data cannot be represented, access is denied), transient when
// PostgreSQL was unreachable, restarting or short of resources, so that
// the export retries only what retrying can fix. Cancellation is the
// caller's decision, not a source failure: it stays unclassified and
// errors.Is(err, context.Canceled) holds. Errors already classified pass
// through.
func sourceError(ctx context.Context, err error, table string) error {
	if err == nil || exportd.AsError(err) != nil {
		return err
	}
	// pgx does not always wrap the context's error when a query is cut
	// short by it.
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return exportd.SourceError(err, false, "reading %s from PostgreSQL timed out", table)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// Refused or lost connections, a closed pool, I/O errors.
		return exportd.SourceError(err, false, "reading %s was interrupted: the connection to PostgreSQL failed", table)
	}
	if permanentSQLState(pgErr.Code) {
		hint := ""
		switch pgErr.Code {
		case "42703", "42P01", "42804", "42883":
			hint = "; the source schema changed"
		}
		return exportd.SourceError(err, true, "cannot read %s: %s (SQLSTATE %s)%s", table, pgErr.Message, pgErr.Code, hint)
	}
	return exportd.SourceError(err, false, "reading %s was interrupted: %s (SQLSTATE %s)", table, pgErr.Message, pgErr.Code)
}

// permanentSQLState reports whether an error code means the same query can
// never succeed: data exceptions (22), syntax, schema and privilege errors
// (42), unsupported features (0A), corrupted data (XX001, XX002). Everything
// else, notably connection failures (08), shutdowns (57P01-57P03),
// serialization failures and deadlocks (40) and insufficient resources
// (53), is worth retrying.
func permanentSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "22", "42", "0A":
		return true
	}
	return code == "XX001" || code == "XX002"
}
