package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
)

// Bounds of a scheduled run's bookkeeping. Beginning gives up sooner: a
// run that cannot begin is covered by the next one. Settling holds on
// longer, but a run that is never settled loses nothing either: the
// chain's cursor stays, so the next run exports the interval again.
const (
	beginRunFor  = time.Hour
	settleRunFor = 24 * time.Hour
)

// ScheduledExport is one run of a schedule of change exports, started by
// the schedule's action (Temporal Schedule, overlap SKIP). It records the
// run and reads the spec and the chain's cursor (BeginScheduledRun),
// starts the run's export as a child ExportWorkflow that outlives it
// (ParentClosePolicy ABANDON: the export keeps its files until they
// expire), waits until the export settles (the export-settled signal, or
// the child's end), and records the outcome, moving the chain's cursor
// by compare-and-set when the export succeeded (SettleScheduledRun). A
// run whose export did not succeed fails, so the Web UI shows it failed;
// the chain's cursor stays, and the next run exports the same interval.
func ScheduledExport(ctx workflow.Context, in contract.ScheduledExportInput) (contract.ScheduledExportResult, error) {
	var a *activities.Activities
	at := workflow.GetInfo(ctx).WorkflowStartTime
	if t, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(contract.AttrScheduledStartTime); ok {
		at = t
	}
	res := contract.ScheduledExportResult{ExportID: contract.ScheduledExportID(in.ScheduleID, at)}
	bctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: beginRunFor,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var begun activities.BeginScheduledRunResult
	if err := workflow.ExecuteActivity(bctx, a.BeginScheduledRun, activities.BeginScheduledRunInput{
		ScheduleID: in.ScheduleID, ExportID: res.ExportID, ScheduledAt: at.UTC(),
	}).Get(ctx, &begun); err != nil {
		return res, err
	}
	switch {
	case begun.Skipped != "":
		workflow.GetLogger(ctx).Info("scheduled run skipped", "schedule", in.ScheduleID, "reason", begun.Skipped)
		return contract.ScheduledExportResult{Skipped: begun.Skipped}, nil
	case begun.Failure != nil:
		res.Phase = exportd.PhaseFailed
		return res, temporal.NewNonRetryableApplicationError(begun.Failure.Message, begun.Failure.Code, nil)
	case begun.Spec == nil:
		return res, temporal.NewNonRetryableApplicationError("the run began without a spec", exportd.CodeInternal, nil)
	}

	settled, err := runExport(ctx, *begun.Spec)
	if err != nil {
		return res, err
	}
	// Recorded even when this run is being canceled: the export has
	// settled, and the chain must learn its cursor.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	sctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: settleRunFor,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute},
	})
	var out activities.SettleScheduledRunResult
	if err := workflow.ExecuteActivity(sctx, a.SettleScheduledRun, activities.SettleScheduledRunInput{ExportSettled: settled}).Get(dctx, &out); err != nil {
		return res, err
	}
	res.Phase, res.NextCursor, res.Chained = settled.Phase, settled.NextCursor, out.Chained
	if settled.Phase != exportd.PhaseReady {
		f := settled.Error
		if f == nil {
			f = &exportd.Failure{Code: exportd.CodeInternal, Message: "the export was " + settled.Phase.Status()}
		}
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("export %s %s: %s", settled.ExportID, settled.Phase.Status(), f.Message), f.Code, nil)
	}
	return res, nil
}

// runExport starts the run's export as a child and returns how it
// settled: what its export-settled signal says, or, if it ended without
// one (terminated, or it could not start), what its end says.
func runExport(ctx workflow.Context, spec exportd.Spec) (contract.ExportSettled, error) {
	state := exportd.State{Spec: spec, Phase: exportd.PhaseQueued, CreatedAt: workflow.Now(ctx).UTC()}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            contract.WorkflowID(spec.ExportID),
		TaskQueue:             contract.TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// As an API export has them from its first moment (starter.Start),
		// so the API lists and describes it before a worker picks it up.
		Memo: map[string]any{contract.MemoState: state},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.AttrMerchant.ValueSet(spec.MerchantID),
			contract.AttrDataset.ValueSet(string(spec.Dataset)),
			contract.AttrPhase.ValueSet(string(exportd.PhaseQueued)),
		),
		StaticSummary: scheduledSummary(spec),
	})
	child := workflow.ExecuteChildWorkflow(cctx, contract.WorkflowName, contract.ExportInput{Spec: spec})
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			// Only a run started twice for the same time gets here (a
			// reset); the first one settles the export.
			return contract.ExportSettled{}, temporal.NewNonRetryableApplicationError(
				"export "+spec.ExportID+" was started by an earlier execution of this run", "already_started", err)
		}
		workflow.GetLogger(ctx).Error("could not start a scheduled export", "export", spec.ExportID, "error", err)
		return contract.ExportSettled{ExportID: spec.ExportID, Phase: exportd.PhaseFailed,
			Error: &exportd.Failure{Code: exportd.CodeInternal, Message: "the export could not be started", Retryable: true}}, nil
	}

	signals := workflow.GetSignalChannel(ctx, contract.SignalExportSettled)
	var settled contract.ExportSettled
	var got, ended bool
	var childErr error
	receive := func(c workflow.ReceiveChannel) {
		var s contract.ExportSettled
		c.Receive(ctx, &s)
		if s.ExportID == spec.ExportID {
			settled, got = s, true
		}
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) { receive(c) })
	sel.AddFuture(child, func(f workflow.Future) { childErr, ended = f.Get(ctx, nil), true })
	for !got && !ended {
		sel.Select(ctx)
	}
	for !got && signals.Len() > 0 {
		// The child ended with its signal still in the channel.
		receive(signals)
	}
	if got {
		return settled, nil
	}
	return endedWithoutSignal(spec.ExportID, childErr), nil
}

// endedWithoutSignal is the outcome of a child export that ended without
// telling how: it was terminated, timed out or canceled before it could.
func endedWithoutSignal(exportID string, err error) contract.ExportSettled {
	s := contract.ExportSettled{ExportID: exportID, Phase: exportd.PhaseFailed}
	switch {
	case err == nil:
		s.Error = &exportd.Failure{Code: exportd.CodeInternal, Message: "the export ended without reporting its cursor"}
	case temporal.IsCanceledError(err):
		s.Phase = exportd.PhaseCanceled
	case temporal.IsTerminatedError(err):
		s.Error = &exportd.Failure{Code: exportd.CodeInternal, Message: "the export was terminated"}
	default:
		s.Error = failureOf(err)
	}
	return s
}

// scheduledSummary is the Web UI's one-line description of a run's
// export.
func scheduledSummary(spec exportd.Spec) string {
	what := "changes since the previous run"
	if spec.Cursor == "" {
		what = "backfill (every current record)"
	}
	return fmt.Sprintf("scheduled change export of merchant %s %s: %s", spec.MerchantID, spec.Dataset, what)
}
