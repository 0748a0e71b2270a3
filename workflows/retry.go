package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
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

// step is one activity of the export, run to success by run: a failure
// that may heal is retried with backoff for up to the retry bound,
// counted from the last attempt that made progress, and each retry is
// reported through retried, so the status document, the Web UI and the
// status query say why the export has not moved. A permanent failure, or
// one that outlasts the bound, is returned classified. The workflow
// retries rather than Temporal's retry policy because only the workflow
// can publish what it is waiting for.
type step struct {
	name string
	opts workflow.ActivityOptions
	fn   any
	// input builds the activity's input for an attempt: every attempt is
	// an activity execution of its own, so the attempt number travels
	// there, with the last heartbeat of the attempt before.
	input func(attempt int, last contract.Heartbeat) any
	// retried publishes a retry about to happen, and the progress so far.
	retried func(workflow.Context, *exportd.Retry, contract.Heartbeat) error
	// bound is the retry bound, recorded in the history on first use.
	bound func(workflow.Context) time.Duration
}

func (s step) run(ctx workflow.Context, out any) error {
	opts := s.opts
	opts.RetryPolicy = &temporal.RetryPolicy{MaximumAttempts: 1}
	actx := workflow.WithActivityOptions(ctx, opts)
	var since time.Time // when the current run of failures began
	committed := int64(-1)
	var last contract.Heartbeat
	var backoff time.Duration
	for attempt := 1; ; attempt++ {
		err := workflow.ExecuteActivity(actx, s.fn, s.input(attempt, last)).Get(ctx, out)
		if err == nil {
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
		if hb, ok := lastHeartbeat(err); ok {
			if committed >= 0 && hb.Rows > committed {
				since, backoff = time.Time{}, 0 // the attempt made progress
			}
			committed = hb.Rows
			last.Rows = hb.Rows
			last.Done = max(last.Done, hb.Done)
			last.Total = hb.Total
		}
		if since.IsZero() {
			since = now
		}
		f := failureOf(err)
		if bound := s.bound(ctx); now.Sub(since) >= bound {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s kept failing for %s (%d attempts); last error: %s", s.name, bound, attempt, f.Message), f.Code, nil)
		}
		wait := min(max(2*backoff, firstBackoff), maxBackoff)
		if app != nil && app.Type() == activities.ErrTypeWorkerStopping {
			wait = 0 // not a failure: the worker handed the step on
		} else {
			backoff = wait
		}
		retry := &exportd.Retry{Step: s.name, Attempt: attempt + 1, LastError: f.Message, Code: f.Code, NextAttemptAt: now.Add(wait)}
		if err := s.retried(ctx, retry, last); err != nil {
			return err
		}
		if wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// step returns a step of this export whose retries are published in its
// state.
func (r *run) step(name string, opts workflow.ActivityOptions, fn any, input func(attempt int, last contract.Heartbeat) any) step {
	return step{name: name, opts: opts, fn: fn, input: input, bound: r.retryBound,
		retried: func(ctx workflow.Context, retry *exportd.Retry, last contract.Heartbeat) error {
			r.state.Retry = retry
			// The memo carries the progress while no attempt runs, so it
			// never drops back between attempts.
			r.state.Progress.Rows = max(r.state.Progress.Rows, last.Done)
			return r.publish(ctx, r.state.Phase)
		}}
}

// retryBound is the configured retry bound, recorded in the history the
// first time a step needs it.
func (r *run) retryBound(ctx workflow.Context) time.Duration {
	if r.bound == 0 {
		r.bound = recordBound(ctx, r.cfg.RetryFor)
	}
	return r.bound
}

// recordBound records d, or DefaultRetryFor for zero, in the history.
func recordBound(ctx workflow.Context, d time.Duration) time.Duration {
	var out time.Duration
	enc := workflow.SideEffect(ctx, func(workflow.Context) any { return d })
	if err := enc.Get(&out); err != nil || out <= 0 {
		out = DefaultRetryFor
	}
	return out
}

// lastHeartbeat reads the progress of an Export attempt when it failed,
// from its error's details or its last heartbeat.
func lastHeartbeat(err error) (contract.Heartbeat, bool) {
	var hb contract.Heartbeat
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() && app.Details(&hb) == nil {
		return hb, true
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails() && timeout.LastHeartbeatDetails(&hb) == nil {
		return hb, true
	}
	return hb, false
}
