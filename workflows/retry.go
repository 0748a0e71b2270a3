package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
)

// Config is what ExportWorkflow takes from its worker's configuration.
// A value is recorded in the history when first used, so a worker
// restarted with other values replays the same decisions.
type Config struct {
	// RetryFor bounds how long a step keeps failing with errors that may
	// heal (storage, a lost connection) before the export fails; it counts
	// from the last attempt that made progress. Zero means DefaultRetryFor.
	RetryFor time.Duration
}

// DefaultRetryFor is the retry bound of a Config that names none.
const DefaultRetryFor = time.Hour

// Retry backoff between attempts of a failing step.
const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
)

// step runs one activity of the export to success. A failure that may
// heal is retried with backoff for up to the retry bound, counted from
// the last attempt that made progress; each retry is published in the
// state, so the status document, the Web UI and the status query say
// why the export has not moved. A permanent failure, or one that
// outlasts the bound, is returned classified. The workflow retries
// rather than Temporal's retry policy because only the workflow can
// publish what it is waiting for.
//
// in builds the activity's input for an attempt: every attempt is an
// activity execution of its own, so the attempt number travels there.
func (r *run) step(ctx workflow.Context, name string, opts workflow.ActivityOptions, fn any, in func(attempt int) any, out any) error {
	opts.RetryPolicy = &temporal.RetryPolicy{MaximumAttempts: 1}
	actx := workflow.WithActivityOptions(ctx, opts)
	var since time.Time // when the current run of failures began
	committed := int64(-1)
	var backoff time.Duration
	for attempt := 1; ; attempt++ {
		err := workflow.ExecuteActivity(actx, fn, in(attempt)).Get(ctx, out)
		if err == nil {
			r.state.Retry = nil
			return nil
		}
		if ctx.Err() != nil || temporal.IsCanceledError(err) {
			return err
		}
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.NonRetryable() {
			return err
		}
		now := workflow.Now(ctx)
		if rows, ok := committedRows(err); ok {
			// The memo carries the rows committed while no attempt runs, so
			// progress never drops back between attempts.
			r.state.Progress.Rows = max(r.state.Progress.Rows, rows)
			if committed >= 0 && rows > committed {
				since, backoff = time.Time{}, 0 // the attempt made progress
			}
			committed = rows
		}
		if since.IsZero() {
			since = now
		}
		f := failureOf(err)
		if bound := r.retryBound(ctx); now.Sub(since) >= bound {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s kept failing for %s (%d attempts); last error: %s", name, bound, attempt, f.Message), f.Code, nil)
		}
		wait := min(max(2*backoff, firstBackoff), maxBackoff)
		if app != nil && app.Type() == activities.ErrTypeWorkerStopping {
			wait = 0 // not a failure: the worker handed the step on
		} else {
			backoff = wait
		}
		r.state.Retry = &exportd.Retry{Step: name, Attempt: attempt + 1, LastError: f.Message, Code: f.Code, NextAttemptAt: now.Add(wait)}
		if err := r.publish(ctx, r.state.Phase); err != nil {
			return err
		}
		if wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// retryBound is the configured retry bound, recorded in the history the
// first time a step needs it.
func (r *run) retryBound(ctx workflow.Context) time.Duration {
	if r.bound == 0 {
		d := r.cfg.RetryFor
		enc := workflow.SideEffect(ctx, func(workflow.Context) any { return d })
		if err := enc.Get(&r.bound); err != nil || r.bound <= 0 {
			r.bound = DefaultRetryFor
		}
	}
	return r.bound
}

// committedRows reads the rows an Export attempt had committed when it
// failed, from its error's details or its last heartbeat.
func committedRows(err error) (int64, bool) {
	var hb activities.Heartbeat
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() && app.Details(&hb) == nil {
		return hb.Rows, true
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails() && timeout.LastHeartbeatDetails(&hb) == nil {
		return hb.Rows, true
	}
	return 0, false
}
