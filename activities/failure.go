package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
)

// ErrTypeWorkerStopping is the failure type of an attempt cut short by
// its worker shutting down; the workflow retries it at once.
const ErrTypeWorkerStopping = "worker_stopping"

// classify turns an activity's error into the failure the workflow acts
// on: a Temporal application error whose type is the exportd code, whose
// message names the step and the cause in the user's terms, which is
// non-retryable when the cause is permanent, and which carries the
// progress the attempt made so that the workflow can tell a failure that
// keeps recurring from one that interrupted real work. An error the
// layers below left unclassified gets code, and is taken as transient.
func classify(ctx context.Context, code, step string, err error, beat *contract.Heartbeat) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err // the attempt was canceled or timed out: Temporal says so itself
	}
	var details []any
	if beat != nil {
		details = []any{*beat}
	}
	if errors.Is(err, errWorkerStopping) {
		return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeWorkerStopping, temporal.ApplicationErrorOptions{Details: details})
	}
	e := exportd.AsError(err)
	var verr *exportd.ValidationError
	switch {
	case e != nil:
	case errors.As(err, &verr):
		e = &exportd.Error{Code: exportd.CodeInvalidRequest, Message: verr.Error(), Permanent: true}
	default:
		e = &exportd.Error{Code: code, Message: err.Error()}
	}
	return temporal.NewApplicationErrorWithOptions(step+": "+e.Error(), e.Code, temporal.ApplicationErrorOptions{
		NonRetryable: e.Permanent,
		Details:      details,
	})
}
