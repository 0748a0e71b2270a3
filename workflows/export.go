// Package workflows holds ExportWorkflow, the durable life of one export:
// plan, write the files, finalize, keep them until they expire, purge.
package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
)

// ExportResult is what a finished export workflow returns.
type ExportResult struct {
	Phase exportd.Phase  `json:"phase"`
	Rows  int64          `json:"rows"`
	Files int            `json:"files"`
	Tally *exportd.Tally `json:"tally,omitempty"`
}

// Activity timeouts. The heartbeat timeout bounds how long a crashed
// worker holds an export before another attempt resumes it.
const (
	exportHeartbeatTimeout = 20 * time.Second
	exportStartToClose     = 24 * time.Hour
)

// ExportWorkflow runs one export with the default Config.
func ExportWorkflow(ctx workflow.Context, in contract.ExportInput) (ExportResult, error) {
	return Config{}.Export(ctx, in)
}

// Export runs one export from QUEUED to EXPIRED (or FAILED or CANCELED).
// Its state is published in the memo and by the status query. The worker
// registers it as ExportWorkflow.
func (c Config) Export(ctx workflow.Context, in contract.ExportInput) (ExportResult, error) {
	r := &run{cfg: c, state: exportd.State{Spec: in.Spec, Phase: exportd.PhaseQueued}}
	info := workflow.GetInfo(ctx)
	r.state.CreatedAt = info.WorkflowStartTime.UTC()
	if r.state.Spec.ExportID == "" {
		r.state.Spec.ExportID = contract.ExportIDFromWorkflowID(info.WorkflowExecution.ID)
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryStatus, func() (exportd.State, error) {
		return r.state, nil
	}); err != nil {
		return ExportResult{}, fmt.Errorf("error registering status query: %w", err)
	}

	if err := r.state.Spec.Normalize(); err != nil {
		return r.fail(ctx, temporal.NewNonRetryableApplicationError(err.Error(), exportd.CodeInvalidRequest, err))
	}
	if err := r.publish(ctx, exportd.PhaseQueued); err != nil {
		return ExportResult{}, err
	}

	if err := r.export(ctx); err != nil {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return r.cancel(ctx)
		}
		return r.fail(ctx, err)
	}
	if err := r.keep(ctx); err != nil {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return r.cancel(ctx)
		}
		return r.fail(ctx, err)
	}
	if err := r.purge(ctx); err != nil {
		return r.fail(ctx, err)
	}
	if err := r.publish(ctx, exportd.PhaseExpired); err != nil {
		return ExportResult{}, err
	}
	return r.result(), nil
}

// run is the state of one workflow execution.
type run struct {
	cfg   Config
	bound time.Duration // the retry bound, once recorded
	state exportd.State
	// queued is set once the export entered the admission queue; it then
	// must release its place or slot however it ends.
	queued bool
	// settled is set once the parent, if any, was told how the export
	// ended.
	settled bool
}

// export plans, writes and finalizes the files, ending in READY.
func (r *run) export(ctx workflow.Context) error {
	var a *activities.Activities
	spec := r.state.Spec
	if err := r.admit(ctx); err != nil {
		return err
	}

	short := workflow.ActivityOptions{StartToCloseTimeout: 15 * time.Minute}
	var plan activities.PlanResult
	if err := r.do(ctx, r.step("plan", short, a.Plan, func(int, contract.Heartbeat) any {
		return activities.PlanInput{Spec: spec}
	}), &plan); err != nil {
		return err
	}
	r.state.Progress = exportd.Progress{Total: plan.Total}
	if plan.Partitions > 1 {
		r.state.Partitions = plan.Partitions
	}
	now := workflow.Now(ctx).UTC()
	r.state.StartedAt = &now
	if err := r.publish(ctx, exportd.PhaseExporting); err != nil {
		return err
	}

	var out activities.ExportResult
	if plan.Partitions > 1 {
		res, err := r.partitions(ctx, plan)
		if err != nil {
			return err
		}
		out = activities.ExportResult{Rows: res.Rows, FileCount: res.FileCount}
	} else if err := r.do(ctx, r.step("export", exportOptions(spec, ""), a.Export, func(n int, last contract.Heartbeat) any {
		return activities.ExportInput{Spec: spec, Total: plan.Total, Attempt: n, Shown: last.Done}
	}), &out); err != nil {
		return err
	}
	total := plan.Total
	if spec.Mode == exportd.ModeChanges {
		// Planned as of a mark of its own; the Export counted as of the
		// export's, which is exact.
		total = out.Rows
	}
	if workflow.GetVersion(ctx, progressVersion, workflow.DefaultVersion, 1) == 1 {
		// Once the Export activity is done its heartbeat is gone; the memo
		// carries the rows until READY, so progress never reads as 0.
		r.state.Progress = exportd.Progress{Rows: out.Rows, Total: total}
		if err := r.publish(ctx, exportd.PhaseExporting); err != nil {
			return err
		}
	}

	var fin activities.FinalizeResult
	generated := workflow.Now(ctx).UTC()
	if err := r.do(ctx, r.step("finalize", short, a.Finalize, func(n int, _ contract.Heartbeat) any {
		return activities.FinalizeInput{Spec: spec, GeneratedAt: generated, Attempt: n, NextCursor: out.NextCursor}
	}), &fin); err != nil {
		return err
	}

	r.release(ctx)
	done := workflow.Now(ctx).UTC()
	until := done.Add(time.Duration(spec.Retention))
	tally := fin.Tally
	r.state.CompletedAt = &done
	r.state.AvailableUntil = &until
	r.state.Rows = out.Rows
	r.state.Files = out.FileCount
	r.state.Tally = &tally
	r.state.Progress = exportd.Progress{Rows: out.Rows, Total: total}
	r.state.NextCursor = out.NextCursor
	if err := r.publish(ctx, exportd.PhaseReady); err != nil {
		return err
	}
	r.settle(ctx)
	if spec.Webhook != nil {
		// Delivery retries for up to a day; the files are ready meanwhile.
		st := r.state
		workflow.Go(ctx, func(gctx workflow.Context) { r.notify(gctx, st, 24*time.Hour) })
	}
	return nil
}

// exportOptions are the Export activity's options; what names the part
// of the window it writes, for the Web UI.
func exportOptions(spec exportd.Spec, what string) workflow.ActivityOptions {
	if what == "" && spec.Mode == exportd.ModeChanges {
		what = fmt.Sprintf("%s %s changes", spec.MerchantID, spec.Dataset)
	}
	if what == "" {
		what = fmt.Sprintf("%s %s %s..%s", spec.MerchantID, spec.Dataset, spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339))
	}
	return workflow.ActivityOptions{
		StartToCloseTimeout: exportStartToClose,
		HeartbeatTimeout:    exportHeartbeatTimeout,
		Summary:             what,
	}
}

// do runs a step of this export; its retry, once it succeeds, is over.
func (r *run) do(ctx workflow.Context, s step, out any) error {
	if err := s.run(ctx, out); err != nil {
		return err
	}
	r.state.Retry = nil
	return nil
}

// progressVersion gates publishing progress after the Export activity.
const progressVersion = "progress-after-export"

// notify runs the Notify activity for st, retrying within bound. A
// webhook that cannot be delivered is logged; it never fails the export.
func (r *run) notify(ctx workflow.Context, st exportd.State, bound time.Duration) {
	var a *activities.Activities
	nctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: bound,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	})
	if err := workflow.ExecuteActivity(nctx, a.Notify, activities.NotifyInput{State: st}).Get(nctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("webhook not delivered", "error", err)
	}
}

// admissionVersion gates the admission queue, so executions recorded
// before it existed replay without it.
const admissionVersion = "admission-queue"

// admit waits QUEUED until the admission queue gives the export a running
// slot. Between tries it sleeps on a timer, woken early by the slot-free
// signal a finishing export sends to the next in line.
func (r *run) admit(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, admissionVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	wake := workflow.GetSignalChannel(ctx, contract.SignalSlotFree)
	r.queued = true
	backoff := time.Second
	for {
		var res activities.AcquireResult
		in := activities.AcquireInput{ExportID: r.state.Spec.ExportID, MerchantID: r.state.Spec.MerchantID, EnqueuedAt: r.state.CreatedAt}
		if err := workflow.ExecuteActivity(actx, a.Acquire, in).Get(ctx, &res); err != nil {
			return err
		}
		if res.Acquired {
			r.state.QueuePosition = nil
			return nil
		}
		if r.state.QueuePosition == nil || *r.state.QueuePosition != res.Position {
			pos := res.Position
			r.state.QueuePosition = &pos
			if err := r.publish(ctx, exportd.PhaseQueued); err != nil {
				return err
			}
		}
		timerCtx, stopTimer := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, backoff), func(workflow.Future) {})
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.Select(ctx)
		stopTimer()
		if err := ctx.Err(); err != nil {
			return temporal.NewCanceledError()
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// release gives back the export's slot or queue place and wakes the
// exports that may run now. It runs on a disconnected context so that it
// also runs after cancellation, and never fails the export.
func (r *run) release(ctx workflow.Context) {
	if !r.queued {
		return
	}
	r.queued = false
	var a *activities.Activities
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 20},
	})
	var res activities.ReleaseResult
	if err := workflow.ExecuteActivity(dctx, a.Release, activities.ReleaseInput{ExportID: r.state.Spec.ExportID}).Get(dctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("releasing the export slot failed; its lease will expire", "error", err)
		return
	}
	for _, id := range res.Next {
		// Best effort: a missed wake-up costs the waiter one timer period.
		_ = workflow.SignalExternalWorkflow(dctx, contract.WorkflowID(id), "", contract.SignalSlotFree, nil).Get(dctx, nil)
	}
}

// keep holds the files until availableUntil, which the extend signal can
// move; it returns when the timer fires or the workflow is canceled.
func (r *run) keep(ctx workflow.Context) error {
	extend := workflow.GetSignalChannel(ctx, contract.SignalExtend)
	maxUntil := r.state.CreatedAt.Add(exportd.MaxRetention)
	for {
		timerCtx, stopTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, max(0, r.state.AvailableUntil.Sub(workflow.Now(ctx))))
		fired := false
		var timerErr error
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(f workflow.Future) {
			fired = true
			timerErr = f.Get(ctx, nil)
		})
		sel.AddReceive(extend, func(c workflow.ReceiveChannel, _ bool) {
			var sig contract.ExtendSignal
			c.Receive(ctx, &sig)
			until := sig.AvailableUntil.UTC()
			if until.After(maxUntil) {
				until = maxUntil
			}
			if until.After(*r.state.AvailableUntil) {
				r.state.AvailableUntil = &until
			}
		})
		sel.Select(ctx)
		if fired {
			return timerErr // nil when it expired, canceled when the workflow was
		}
		stopTimer()
		if err := r.publish(ctx, r.state.Phase); err != nil {
			return err
		}
	}
}

// purge deletes the export's files; it runs on a disconnected context so
// that it also runs after cancellation.
func (r *run) purge(ctx workflow.Context) error {
	var a *activities.Activities
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	return workflow.ExecuteActivity(dctx, a.Purge, activities.PurgeInput{ExportID: r.state.Spec.ExportID}).Get(dctx, nil)
}

// cancel purges whatever was written and ends the workflow canceled. An
// export canceled while READY has had its files and ends EXPIRED.
func (r *run) cancel(ctx workflow.Context) (ExportResult, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.release(ctx)
	if err := r.purge(ctx); err != nil {
		workflow.GetLogger(ctx).Error("purge after cancel failed", "error", err)
	}
	final := exportd.PhaseCanceled
	r.state.Retry = nil
	if r.state.Phase == exportd.PhaseReady {
		final = exportd.PhaseExpired
		now := workflow.Now(dctx).UTC()
		r.state.AvailableUntil = &now
	}
	if err := r.publish(dctx, final); err != nil {
		return ExportResult{}, err
	}
	if final == exportd.PhaseCanceled {
		r.settle(dctx)
	}
	if final == exportd.PhaseExpired {
		return r.result(), nil
	}
	return r.result(), temporal.NewCanceledError()
}

// fail records the failure in the published state, purges partial files
// and fails the workflow with the original error.
func (r *run) fail(ctx workflow.Context, err error) (ExportResult, error) {
	r.state.Error = failureOf(err)
	r.state.Retry = nil
	r.release(ctx)
	if r.state.Spec.ExportID != "" && r.state.Error.Code != exportd.CodeInvalidRequest {
		if perr := r.purge(ctx); perr != nil {
			workflow.GetLogger(ctx).Error("purge after failure failed", "error", perr)
		}
	}
	if perr := r.publish(ctx, exportd.PhaseFailed); perr != nil {
		workflow.GetLogger(ctx).Error("publishing failed phase failed", "error", perr)
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.settle(dctx)
	if r.state.Spec.Webhook != nil {
		r.notify(dctx, r.state, time.Hour)
	}
	return r.result(), err
}

// settle tells the workflow that started this export as its child, if
// any (a scheduled change export's run), how the export ended its work:
// the parent need not wait for the files to expire. Best effort: a parent
// gone meanwhile has nothing to learn.
func (r *run) settle(ctx workflow.Context) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil || r.settled {
		return
	}
	r.settled = true
	msg := contract.ExportSettled{ExportID: r.state.Spec.ExportID, Phase: r.state.Phase, NextCursor: r.state.NextCursor,
		Rows: r.state.Rows, Error: r.state.Error}
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, parent.RunID, contract.SignalExportSettled, msg).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("could not tell the parent workflow how the export ended", "parent", parent.ID, "error", err)
	}
}

func (r *run) result() ExportResult {
	return ExportResult{Phase: r.state.Phase, Rows: r.state.Rows, Files: r.state.Files, Tally: r.state.Tally}
}

// publish moves the export to phase p and writes the state where readers
// find it: the memo, the search attributes and the UI's current details.
func (r *run) publish(ctx workflow.Context, p exportd.Phase) error {
	r.state.Phase = p
	if err := workflow.UpsertMemo(ctx, map[string]any{contract.MemoState: r.state}); err != nil {
		return fmt.Errorf("error upserting memo: %w", err)
	}
	spec := r.state.Spec
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		contract.AttrMerchant.ValueSet(spec.MerchantID),
		contract.AttrDataset.ValueSet(string(spec.Dataset)),
		contract.AttrPhase.ValueSet(string(p)),
	); err != nil {
		return fmt.Errorf("error upserting search attributes: %w", err)
	}
	workflow.SetCurrentDetails(ctx, r.details())
	return nil
}

// details is the Markdown the Web UI shows as the workflow's current state.
// It changes only when the workflow publishes; live progress while
// EXPORTING is in the Export activity's heartbeat, which the workflow does
// not see, so the details point there instead of showing a stale count.
func (r *run) details() string {
	s := r.state
	d := fmt.Sprintf("**%s** · merchant `%s` · %s · %s → %s",
		s.Phase, s.Spec.MerchantID, s.Spec.Dataset,
		s.Spec.Start.Format(time.RFC3339), s.Spec.End.Format(time.RFC3339))
	if s.Spec.Mode == exportd.ModeChanges {
		what := "changes since the previous export's cursor"
		if s.Spec.Cursor == "" {
			what = "change backfill (every current record)"
		}
		d = fmt.Sprintf("**%s** · merchant `%s` · %s · %s", s.Phase, s.Spec.MerchantID, s.Spec.Dataset, what)
	}
	switch {
	case s.Phase == exportd.PhaseQueued && s.QueuePosition != nil && *s.QueuePosition == 0:
		d += "\n\nwaiting for a running slot, next in line"
	case s.Phase == exportd.PhaseQueued && s.QueuePosition != nil:
		d += fmt.Sprintf("\n\nwaiting for a running slot, %d export(s) ahead in the queue", *s.QueuePosition)
	case s.CompletedAt != nil:
		d += fmt.Sprintf("\n\n%s rows in %d files", thousands(s.Rows), s.Files)
	case s.Phase == exportd.PhaseExporting && s.Progress.Rows > 0:
		d += fmt.Sprintf("\n\n%s of %s rows written; writing the manifest", thousands(s.Progress.Rows), thousands(s.Progress.Total))
	case s.Phase == exportd.PhaseExporting:
		d += fmt.Sprintf("\n\n%s rows planned; live progress is in the Export activity's heartbeat "+
			"(Pending Activities tab: `rows` committed so far)", thousands(s.Progress.Total))
	case s.Progress.Total > 0:
		d += fmt.Sprintf("\n\n%s rows planned", thousands(s.Progress.Total))
	}
	if s.AvailableUntil != nil {
		d += "\n\navailable until " + s.AvailableUntil.Format(time.RFC3339)
	}
	if s.Error != nil {
		d += fmt.Sprintf("\n\nerror `%s`: %s", s.Error.Code, s.Error.Message)
	}
	return d
}

// thousands formats n with comma separators: 4000000 is "4,000,000".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// failureOf maps an activity or workflow error to the user-facing failure:
// the code an activity classified it with and its message, which names
// the step and the cause and never Temporal's own bookkeeping.
func failureOf(err error) *exportd.Failure {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		code := app.Type()
		if code == activities.ErrTypeWorkerStopping {
			return &exportd.Failure{Code: exportd.CodeInternal, Message: "the worker running the export stopped; another takes over", Retryable: true}
		}
		if !knownCode(code) {
			// Not classified by an activity (a panic, a bug): its text is
			// for the worker's log, not for the user.
			return &exportd.Failure{Code: exportd.CodeInternal, Message: "an unexpected error; the worker's log has the details", Retryable: true}
		}
		return &exportd.Failure{Code: code, Message: app.Message(), Retryable: code != exportd.CodeInvalidRequest}
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		if timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_HEARTBEAT {
			return &exportd.Failure{Code: exportd.CodeInternal, Message: "the worker running the export stopped responding (it crashed, or lost its connection)", Retryable: true}
		}
		return &exportd.Failure{Code: "timeout", Message: "the export did not finish in time; try a smaller window", Retryable: true}
	}
	return &exportd.Failure{Code: exportd.CodeInternal, Message: "the export failed unexpectedly; see the worker's log", Retryable: true}
}

func knownCode(code string) bool {
	switch code {
	case exportd.CodeInvalidRequest, exportd.CodeSourceError, exportd.CodeStorageError, exportd.CodeInternal:
		return true
	}
	return false
}
