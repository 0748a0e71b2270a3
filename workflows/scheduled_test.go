package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/workflows"
)

// scheduledAt is the time the schedule meant the run to start.
var scheduledAt = time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)

// runEnv returns an environment for one ScheduledExport of schedule s1
// started by a schedule at scheduledAt, whose export, when child is not
// nil, is child instead of the real ExportWorkflow.
func runEnv(t *testing.T, child func(workflow.Context, contract.ExportInput) (workflows.ExportResult, error)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var env *testsuite.TestWorkflowEnvironment
	if child == nil {
		env = newEnv(t)
	} else {
		var s testsuite.WorkflowTestSuite
		env = s.NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(workflows.ScheduledExport, workflow.RegisterOptions{Name: contract.ScheduledExportWorkflowName})
		env.RegisterWorkflowWithOptions(child, workflow.RegisterOptions{Name: contract.WorkflowName})
		env.RegisterActivity(a)
	}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: contract.ScheduledRunWorkflowID("s1") + "-2025-03-01T06:00:00Z"})
	// Later than the scheduled time: the run is named after the latter.
	env.SetStartTime(scheduledAt.Add(3 * time.Second))
	require.NoError(t, env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(contract.AttrScheduledStartTime.ValueSet(scheduledAt))))
	return env
}

// runSpec is the spec BeginScheduledRun returns for a run from cursor.
func runSpec(cursor string) exportd.Spec {
	return exportd.Spec{ExportID: contract.ScheduledExportID("s1", scheduledAt), AppID: "app1", MerchantID: "M1",
		Dataset: exportd.Orders, Mode: exportd.ModeChanges, Cursor: cursor, Formats: []exportd.Format{exportd.JSONL}}
}

func onBegin(env *testsuite.TestWorkflowEnvironment, res activities.BeginScheduledRunResult) {
	env.OnActivity(a.BeginScheduledRun, mock.Anything, activities.BeginScheduledRunInput{
		ScheduleID: "s1", ExportID: "s1-20250301T060000Z", ScheduledAt: scheduledAt,
	}).Return(res, nil).Once()
}

// settlingExport is a child export that tells its parent it settled with
// s, then lives on for a day as a READY export does, or ends with err at
// once when err is set.
func settlingExport(s contract.ExportSettled, err error) func(workflow.Context, contract.ExportInput) (workflows.ExportResult, error) {
	return func(ctx workflow.Context, in contract.ExportInput) (workflows.ExportResult, error) {
		s.ExportID = in.Spec.ExportID
		p := workflow.GetInfo(ctx).ParentWorkflowExecution
		if serr := workflow.SignalExternalWorkflow(ctx, p.ID, p.RunID, contract.SignalExportSettled, s).Get(ctx, nil); serr != nil {
			return workflows.ExportResult{}, serr
		}
		if err != nil {
			return workflows.ExportResult{}, err
		}
		return workflows.ExportResult{Phase: exportd.PhaseExpired}, workflow.Sleep(ctx, 24*time.Hour)
	}
}

// TestScheduledRunChainsTheCursor runs the real export workflow as the
// run's child: once the export is READY (long before its files expire)
// the run records it with its nextCursor, which becomes the chain's.
func TestScheduledRunChainsTheCursor(t *testing.T) {
	env := runEnv(t, nil)
	onBegin(env, activities.BeginScheduledRunResult{Spec: new(runSpec("c1.prev.sig"))})
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 7}, nil).Once()
	env.OnActivity(a.Export, mock.Anything, mock.MatchedBy(func(in activities.ExportInput) bool {
		return in.Spec.Cursor == "c1.prev.sig" && in.Spec.AppID == "app1" && in.Spec.ExportID == "s1-20250301T060000Z"
	})).Return(activities.ExportResult{Rows: 5, Parts: 1, FileCount: 1, NextCursor: "c1.next.sig"}, nil).Once()
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(finalizeResult(5), nil).Once()
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Maybe()
	env.OnActivity(a.SettleScheduledRun, mock.Anything, activities.SettleScheduledRunInput{ExportSettled: contract.ExportSettled{
		ExportID: "s1-20250301T060000Z", Phase: exportd.PhaseReady, NextCursor: "c1.next.sig", Rows: 5,
	}}).Return(activities.SettleScheduledRunResult{Chained: true}, nil).Once()

	env.ExecuteWorkflow(contract.ScheduledExportWorkflowName, contract.ScheduledExportInput{ScheduleID: "s1"})
	require.NoError(t, env.GetWorkflowError())
	var res contract.ScheduledExportResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, contract.ScheduledExportResult{ExportID: "s1-20250301T060000Z", Phase: exportd.PhaseReady,
		NextCursor: "c1.next.sig", Chained: true}, res)
	env.AssertExpectations(t)
}

// TestScheduledRunFailedLeavesTheCursor checks that a run whose export
// failed records the failure without a cursor (so the chain's stays and
// the next run exports the interval again), and fails with the export's
// code, so the Web UI shows the run failed.
func TestScheduledRunFailedLeavesTheCursor(t *testing.T) {
	fail := &exportd.Failure{Code: exportd.CodeSourceError, Message: "the source went away", Retryable: true}
	env := runEnv(t, settlingExport(contract.ExportSettled{Phase: exportd.PhaseFailed, Error: fail},
		temporal.NewNonRetryableApplicationError("the source went away", exportd.CodeSourceError, nil)))
	onBegin(env, activities.BeginScheduledRunResult{Spec: new(runSpec(""))})
	env.OnActivity(a.SettleScheduledRun, mock.Anything, activities.SettleScheduledRunInput{ExportSettled: contract.ExportSettled{
		ExportID: "s1-20250301T060000Z", Phase: exportd.PhaseFailed, Error: fail,
	}}).Return(activities.SettleScheduledRunResult{}, nil).Once()

	env.ExecuteWorkflow(contract.ScheduledExportWorkflowName, contract.ScheduledExportInput{ScheduleID: "s1"})
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, exportd.CodeSourceError, app.Type())
	require.Contains(t, app.Message(), "the source went away")
	env.AssertExpectations(t)
}

// TestScheduledRunChildEndsWithoutSignal checks that an export that ends
// without telling its parent (terminated, or failing before it could)
// settles the run from how the child ended.
func TestScheduledRunChildEndsWithoutSignal(t *testing.T) {
	env := runEnv(t, func(ctx workflow.Context, in contract.ExportInput) (workflows.ExportResult, error) {
		return workflows.ExportResult{}, temporal.NewNonRetryableApplicationError("orders.tip has type numeric", exportd.CodeSourceError, nil)
	})
	onBegin(env, activities.BeginScheduledRunResult{Spec: new(runSpec("c1.prev.sig"))})
	env.OnActivity(a.SettleScheduledRun, mock.Anything, mock.MatchedBy(func(in activities.SettleScheduledRunInput) bool {
		return in.Phase == exportd.PhaseFailed && in.NextCursor == "" && in.Error != nil &&
			in.Error.Code == exportd.CodeSourceError && in.Error.Message == "orders.tip has type numeric"
	})).Return(activities.SettleScheduledRunResult{}, nil).Once()

	env.ExecuteWorkflow(contract.ScheduledExportWorkflowName, contract.ScheduledExportInput{ScheduleID: "s1"})
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// TestScheduledRunPrefersTheSignal checks that an export that signals and
// ends at once (a canceled export) settles the run from the signal, which
// says more than the child's end.
func TestScheduledRunPrefersTheSignal(t *testing.T) {
	env := runEnv(t, settlingExport(contract.ExportSettled{Phase: exportd.PhaseCanceled, Rows: 3}, temporal.NewCanceledError()))
	onBegin(env, activities.BeginScheduledRunResult{Spec: new(runSpec("c1.prev.sig"))})
	env.OnActivity(a.SettleScheduledRun, mock.Anything, activities.SettleScheduledRunInput{ExportSettled: contract.ExportSettled{
		ExportID: "s1-20250301T060000Z", Phase: exportd.PhaseCanceled, Rows: 3,
	}}).Return(activities.SettleScheduledRunResult{}, nil).Once()

	env.ExecuteWorkflow(contract.ScheduledExportWorkflowName, contract.ScheduledExportInput{ScheduleID: "s1"})
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// TestScheduledRunOfDeletedSchedule checks that a run of a schedule
// deleted meanwhile starts no export and does not fail.
func TestScheduledRunOfDeletedSchedule(t *testing.T) {
	started := false
	env := runEnv(t, func(ctx workflow.Context, in contract.ExportInput) (workflows.ExportResult, error) {
		started = true
		return workflows.ExportResult{}, nil
	})
	onBegin(env, activities.BeginScheduledRunResult{Skipped: "the schedule was deleted"})

	env.ExecuteWorkflow(contract.ScheduledExportWorkflowName, contract.ScheduledExportInput{ScheduleID: "s1"})
	require.NoError(t, env.GetWorkflowError())
	var res contract.ScheduledExportResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, "the schedule was deleted", res.Skipped)
	require.False(t, started)
}
