package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/exportd/exportd"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestSourceErrorClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{&pgconn.PgError{Code: "42703", Message: `column "tip" does not exist`}, true},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for table orders"}, true},
		{&pgconn.PgError{Code: "22003", Message: "bigint out of range"}, true},
		{&pgconn.PgError{Code: "22P02", Message: "invalid input syntax"}, true},
		{&pgconn.PgError{Code: "0A000", Message: "not supported"}, true},
		{&pgconn.PgError{Code: "XX001", Message: "invalid page in block 1"}, true},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, false},
		{&pgconn.PgError{Code: "57P02", Message: "crash shutdown"}, false},
		{&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, false},
		{&pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, false},
		{&pgconn.PgError{Code: "40001", Message: "could not serialize access"}, false},
		{&pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, false},
		{&pgconn.PgError{Code: "53300", Message: "too many connections"}, false},
		{&pgconn.PgError{Code: "08006", Message: "connection failure"}, false},
		{fmt.Errorf("failed to connect: %w", io.ErrUnexpectedEOF), false},
		{context.DeadlineExceeded, false},
	} {
		err := sourceError(ctx, fmt.Errorf("wrapped: %w", tc.err), "orders")
		e := exportd.AsError(err)
		require.NotNil(t, e, "%v", tc.err)
		require.Equal(t, exportd.CodeSourceError, e.Code)
		require.Equal(t, tc.permanent, e.Permanent, "%v", tc.err)
		require.Contains(t, e.Message, "orders")
		require.ErrorIs(t, err, tc.err, "the cause stays in the chain")
	}

	// Already classified errors pass through untouched.
	classified := exportd.SourceError(nil, true, "orders.tip has type numeric")
	require.Same(t, classified, sourceError(ctx, classified, "orders"))
	require.NoError(t, sourceError(ctx, nil, "orders"))

	// Cancellation stays unclassified, even when pgx reports it as a
	// broken connection.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err := sourceError(canceled, errors.New("conn closed"), "orders")
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, exportd.AsError(err))
}
