package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
)

// Temporal is what the reaper asks of Temporal; client.Client
// implements it.
type Temporal interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Reaper keeps the admission queue true to Temporal. An export's workflow
// releases its row however it ends, unless it never runs its release:
// terminated, timed out, or never started because the API died between
// enqueue and start. Every pass the reaper asks Temporal about each row:
// a row whose workflow is closed or missing is removed and the exports
// that may run now are woken, as a release would; a running slot whose
// workflow is open has its lease renewed. Every worker runs one; one pass
// at a time, and at most one per Every/2, runs across all of them.
type Reaper struct {
	Queue    *postgres.Queue
	Temporal Temporal
	// Limits are the caps, for choosing whom to wake, and the lease
	// given on renewal.
	Limits postgres.Limits
	// Every is the time between passes; zero means DefaultReapEvery.
	Every time.Duration
	// Grace keeps a row whose workflow does not exist yet, since the API
	// enqueues before it starts the workflow; zero means DefaultReapGrace.
	Grace  time.Duration
	Logger *slog.Logger
}

// Reaper defaults: a row whose workflow is missing goes within Grace +
// Every (45 s), a closed one within Every.
const (
	DefaultReapEvery = 15 * time.Second
	DefaultReapGrace = 30 * time.Second
)

// describeTimeout bounds one question to Temporal, so that one slow
// answer cannot stall a pass for long; maxFailures failed questions in a
// row end the pass.
const (
	describeTimeout = 10 * time.Second
	maxFailures     = 3
)

// Run makes a pass at once and then every r.Every until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	tick := time.NewTicker(r.every())
	defer tick.Stop()
	for {
		if _, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.logger().Warn("queue reaper pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// PassResult is what one pass did.
type PassResult struct {
	// Ran is false when another worker's pass ran or is running.
	Ran     bool
	Reaped  []string
	Renewed int
}

// Pass makes one pass over the queue, if it is this worker's turn.
func (r *Reaper) Pass(ctx context.Context) (PassResult, error) {
	var res PassResult
	done, ok, err := r.Queue.ClaimReap(ctx, r.every()/2)
	if err != nil || !ok {
		return res, err
	}
	defer done()
	res.Ran = true
	entries, err := r.Queue.Entries(ctx)
	if err != nil {
		return res, err
	}
	// Entries come running first: their leases are renewed before the
	// pass goes on to the waiting ones, however many wait.
	var open []string
	failures := 0
	renew := func() error {
		n, err := r.Queue.Renew(ctx, open, r.Limits.Lease)
		res.Renewed += n
		open = nil
		return err
	}
	for _, e := range entries {
		if !e.Running && len(open) > 0 {
			if err := renew(); err != nil {
				return res, err
			}
		}
		st, err := r.status(ctx, e.ExportID)
		if err != nil {
			// Temporal unsure: leave the row; a slot's lease still runs.
			// Several failures in a row mean Temporal is away: end the
			// pass rather than wait out a timeout per row.
			r.logger().Warn("queue reaper cannot tell whether an export's workflow is open", "export_id", e.ExportID, "error", err)
			if failures++; failures == maxFailures {
				return res, errors.Join(fmt.Errorf("queue reaper pass ended after %d failures in a row: %w", failures, err), renew())
			}
			continue
		}
		failures = 0
		if st == workflowOpen {
			if e.Running {
				open = append(open, e.ExportID)
			}
			continue
		}
		if st == workflowMissing && e.Age < r.grace() {
			continue
		}
		removed, next, err := r.Queue.Reap(ctx, e, r.Limits)
		if err != nil {
			return res, err
		}
		if removed {
			res.Reaped = append(res.Reaped, e.ExportID)
			r.logger().Info("queue reaper removed an export whose workflow "+st.String(), "export_id", e.ExportID,
				"held_slot", e.Running, "enqueued_at", e.EnqueuedAt)
		}
		r.wake(ctx, next)
	}
	return res, renew()
}

type workflowStatus int

const (
	workflowOpen workflowStatus = iota
	workflowClosed
	workflowMissing
)

func (s workflowStatus) String() string {
	return [...]string{"is open", "is closed", "does not exist"}[s]
}

// status asks Temporal whether an export's workflow is open. An export
// started by hand under a workflow ID without the export- prefix has
// that whole ID as its export ID, so a missing export-<id> is looked up
// as <id> too.
func (r *Reaper) status(ctx context.Context, exportID string) (workflowStatus, error) {
	st, err := r.describe(ctx, contract.WorkflowID(exportID))
	if st == workflowMissing && err == nil {
		return r.describe(ctx, exportID)
	}
	return st, err
}

func (r *Reaper) describe(ctx context.Context, workflowID string) (workflowStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	resp, err := r.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return workflowMissing, nil
	}
	if err != nil {
		return 0, fmt.Errorf("error describing workflow %s: %w", workflowID, err)
	}
	if resp.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return workflowOpen, nil
	}
	return workflowClosed, nil
}

// wake signals exports that may run now; a missed signal costs the
// waiter one backoff period, so failures are only logged.
func (r *Reaper) wake(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := r.Temporal.SignalWorkflow(ctx, contract.WorkflowID(id), "", contract.SignalSlotFree, nil); err != nil {
			r.logger().Debug("queue reaper could not wake an export", "export_id", id, "error", err)
		}
	}
}

func (r *Reaper) every() time.Duration {
	if r.Every > 0 {
		return r.Every
	}
	return DefaultReapEvery
}

func (r *Reaper) grace() time.Duration {
	if r.Grace > 0 {
		return r.Grace
	}
	return DefaultReapGrace
}

func (r *Reaper) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}
