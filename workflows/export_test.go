package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/worker"
	"github.com/exportd/exportd/workflows"
)

var a *activities.Activities

func testInput() workflows.ExportInput {
	return workflows.ExportInput{Spec: exportd.Spec{
		ExportID:   "exp1",
		MerchantID: "M1",
		Dataset:    exportd.Orders,
		Start:      time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		End:        time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC),
		Formats:    []exportd.Format{exportd.Parquet, exportd.CSV},
	}}
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, a)
	// Admission is immediate unless a test says otherwise.
	env.OnActivity(a.Acquire, mock.Anything, mock.Anything).Return(activities.AcquireResult{Acquired: true}, nil).Maybe()
	env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(activities.ReleaseResult{}, nil).Maybe()
	return env
}

func exportResult(rows int64) activities.ExportResult {
	return activities.ExportResult{
		Rows:  rows,
		Files: []exportd.FileInfo{{Name: "orders-00000.parquet", Rows: rows}, {Name: "orders-00000.csv.gz", Rows: rows}},
		Tally: exportd.Tally{Orders: rows, Transactions: 2 * rows, Amount: 1000 * rows, Locations: 2},
	}
}

func queryState(t *testing.T, env *testsuite.TestWorkflowEnvironment) exportd.State {
	t.Helper()
	v, err := env.QueryWorkflow(workflows.QueryStatus)
	require.NoError(t, err)
	var s exportd.State
	require.NoError(t, v.Get(&s))
	return s
}

func TestExportWorkflowHappyPathExpires(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 10}, nil).Once()
	env.OnActivity(a.Export, mock.Anything, mock.MatchedBy(func(in activities.ExportInput) bool {
		return in.Total == 10 && in.Spec.MaxRowsPerFile == exportd.DefaultMaxRowsPerFile && in.Spec.ExportID == "exp1"
	})).Return(exportResult(10), nil).Once()
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FinalizeInput) (activities.FinalizeResult, error) {
		return activities.FinalizeResult{Tally: in.Export.Tally}, nil
	}).Once()
	env.OnActivity(a.Purge, mock.Anything, activities.PurgeInput{ExportID: "exp1"}).Return(activities.PurgeResult{Purged: true}, nil).Once()

	var ready exportd.State
	env.RegisterDelayedCallback(func() { ready = queryState(t, env) }, time.Hour)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, exportd.PhaseReady, ready.Phase)
	require.Equal(t, int64(10), ready.Rows)
	require.Equal(t, 2, ready.Files)
	require.Equal(t, exportd.Progress{Rows: 10, Total: 10}, ready.Progress)
	require.NotNil(t, ready.AvailableUntil)
	require.Equal(t, ready.CompletedAt.Add(exportd.DefaultRetention), *ready.AvailableUntil)
	require.Equal(t, int64(20), ready.Tally.Transactions)

	var res workflows.ExportResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, exportd.PhaseExpired, res.Phase)
	require.Equal(t, int64(10), res.Rows)
	require.Equal(t, exportd.PhaseExpired, queryState(t, env).Phase)
	env.AssertExpectations(t)
}

func TestExportWorkflowExtendSignal(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 1}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(1), nil)
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Once()

	start := env.Now()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalExtend, workflows.ExtendSignal{AvailableUntil: start.Add(48 * time.Hour)})
	}, time.Hour)
	var at30h, at49h exportd.State
	env.RegisterDelayedCallback(func() { at30h = queryState(t, env) }, 30*time.Hour)
	// Extending past the maximum retention is capped at creation + max.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalExtend, workflows.ExtendSignal{AvailableUntil: start.Add(365 * 24 * time.Hour)})
	}, 40*time.Hour)
	env.RegisterDelayedCallback(func() { at49h = queryState(t, env) }, 49*time.Hour)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, exportd.PhaseReady, at30h.Phase)
	require.Equal(t, exportd.PhaseReady, at49h.Phase)
	require.WithinDuration(t, start.Add(exportd.MaxRetention), *at49h.AvailableUntil, time.Second)
	require.WithinDuration(t, start.Add(exportd.MaxRetention), env.Now(), time.Minute)
	env.AssertExpectations(t)
}

func TestExportWorkflowCancelPurges(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 1000}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).After(2*time.Hour).Return(exportResult(1000), nil)
	env.OnActivity(a.Purge, mock.Anything, activities.PurgeInput{ExportID: "exp1"}).Return(activities.PurgeResult{Purged: true}, nil).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &canceled)
	require.Equal(t, exportd.PhaseCanceled, queryState(t, env).Phase)
	env.AssertExpectations(t)
}

func TestExportWorkflowCancelWhileReadyExpires(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 1}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(1), nil)
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	s := queryState(t, env)
	require.Equal(t, exportd.PhaseExpired, s.Phase)
	require.WithinDuration(t, env.Now(), *s.AvailableUntil, time.Minute)
	env.AssertExpectations(t)
}

func TestExportWorkflowFailureMapping(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		code      string
		retryable bool
	}{
		{"application error keeps its type", temporal.NewNonRetryableApplicationError("merchant source unreadable", exportd.CodeSourceError, nil), exportd.CodeSourceError, true},
		{"invalid request is not retryable", temporal.NewNonRetryableApplicationError("bad window", exportd.CodeInvalidRequest, nil), exportd.CodeInvalidRequest, false},
		{"untyped error is internal", temporal.NewNonRetryableApplicationError("boom", "", nil), exportd.CodeInternal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 5}, nil)
			env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(activities.ExportResult{}, tt.err)
			env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Maybe()

			env.ExecuteWorkflow(workflows.WorkflowName, testInput())
			require.Error(t, env.GetWorkflowError())
			s := queryState(t, env)
			require.Equal(t, exportd.PhaseFailed, s.Phase)
			require.NotNil(t, s.Error)
			require.Equal(t, tt.code, s.Error.Code)
			require.Equal(t, tt.retryable, s.Error.Retryable)
		})
	}
}

func TestExportWorkflowRejectsInvalidInput(t *testing.T) {
	env := newEnv(t)
	in := testInput()
	in.Dataset = "customers"
	env.ExecuteWorkflow(workflows.WorkflowName, in)
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, exportd.CodeInvalidRequest, app.Type())
	s := queryState(t, env)
	require.Equal(t, exportd.PhaseFailed, s.Phase)
	require.Contains(t, s.Error.Message, "dataset")
}

// TestExportWorkflowResumesFromHeartbeat checks the plumbing a crash relies
// on: the retried Export attempt sees the checkpoint the first one
// heartbeated, under the workflow's own retry policy.
func TestExportWorkflowResumesFromHeartbeat(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 3}, nil)
	var seen []activities.Checkpoint
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ExportInput) (activities.ExportResult, error) {
		var cp activities.Checkpoint
		if activity.HasHeartbeatDetails(ctx) {
			require.NoError(t, activity.GetHeartbeatDetails(ctx, &cp))
		}
		seen = append(seen, cp)
		if activity.GetInfo(ctx).Attempt == 1 {
			activity.RecordHeartbeat(ctx, activities.Checkpoint{Part: 1, Rows: 2, Cursor: exportd.Key{ID: 42}})
			return activities.ExportResult{}, errors.New("worker lost its connection")
		}
		return exportResult(3), nil
	})
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, seen, 2)
	require.Equal(t, activities.Checkpoint{}, seen[0])
	require.Equal(t, 1, seen[1].Part)
	require.Equal(t, int64(42), seen[1].Cursor.ID)
}

func TestExportWorkflowIDFromWorkflowID(t *testing.T) {
	env := newEnv(t)
	env.SetStartWorkflowOptions(startOptions("export-byhand"))
	in := testInput()
	in.ExportID = ""
	env.OnActivity(a.Plan, mock.Anything, mock.MatchedBy(func(in activities.PlanInput) bool { return in.Spec.ExportID == "byhand" })).Return(activities.PlanResult{}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(0), nil)
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
	env.OnActivity(a.Purge, mock.Anything, activities.PurgeInput{ExportID: "byhand"}).Return(activities.PurgeResult{Purged: true}, nil)
	env.ExecuteWorkflow(workflows.WorkflowName, in)
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

func startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}
}

// TestExportWorkflowWaitsQueued checks admission: while the queue refuses,
// the export stays QUEUED with its position published; a slot-free signal
// wakes it before its timer; the slot is released once the files are
// written, and the exports the queue names next are woken.
func TestExportWorkflowWaitsQueued(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, a)
	tries := 0
	env.OnActivity(a.Acquire, mock.Anything, mock.MatchedBy(func(in activities.AcquireInput) bool {
		return in.ExportID == "exp1" && in.MerchantID == "M1"
	})).Return(func(context.Context, activities.AcquireInput) (activities.AcquireResult, error) {
		tries++
		switch tries {
		case 1:
			return activities.AcquireResult{Position: 3}, nil
		case 2:
			return activities.AcquireResult{Position: 1}, nil
		}
		return activities.AcquireResult{Acquired: true}, nil
	})
	env.OnActivity(a.Release, mock.Anything, activities.ReleaseInput{ExportID: "exp1"}).Return(activities.ReleaseResult{Next: []string{"exp2"}}, nil).Once()
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 1}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(1), nil)
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	env.OnSignalExternalWorkflow("default-test-namespace", "export-exp2", "", workflows.SignalSlotFree, nil).Return(nil).Once()

	var waiting exportd.State
	env.RegisterDelayedCallback(func() { waiting = queryState(t, env) }, 1500*time.Millisecond)
	// The second wait would last 2s; the signal ends it early.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalSlotFree, nil) }, 1500*time.Millisecond)
	var running exportd.State
	env.RegisterDelayedCallback(func() { running = queryState(t, env) }, 2*time.Second)

	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, exportd.PhaseQueued, waiting.Phase)
	require.NotNil(t, waiting.QueuePosition)
	require.Equal(t, 1, *waiting.QueuePosition)
	require.Equal(t, 3, tries)
	require.Equal(t, exportd.PhaseReady, running.Phase, "woken by the signal at 1.5s, not by its 2s timer")
	require.Nil(t, running.QueuePosition)
	env.AssertExpectations(t)
}

func TestExportWorkflowNotifiesWebhook(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  bool
		phase exportd.Phase
	}{{"on success", false, exportd.PhaseReady}, {"on failure", true, exportd.PhaseFailed}} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			in := testInput()
			in.Webhook = &exportd.Webhook{URL: "https://example.com/hook", Headers: map[string]string{"X-Token": "t"}}
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 4}, nil)
			if tc.fail {
				env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(activities.ExportResult{},
					temporal.NewNonRetryableApplicationError("source gone", exportd.CodeSourceError, nil))
			} else {
				env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(4), nil)
				env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(activities.FinalizeResult{}, nil)
			}
			env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
			var notified []exportd.State
			env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyInput) (activities.NotifyResult, error) {
				notified = append(notified, in.State)
				return activities.NotifyResult{Status: 204}, nil
			})
			env.ExecuteWorkflow(workflows.WorkflowName, in)
			require.Equal(t, tc.fail, env.GetWorkflowError() != nil)
			require.Len(t, notified, 1)
			require.Equal(t, tc.phase, notified[0].Phase)
			require.Equal(t, "https://example.com/hook", notified[0].Spec.Webhook.URL)
		})
	}
}

func TestExportWorkflowPublishesProgressAfterExport(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 7}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(exportResult(7), nil)
	var during exportd.State
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(func(context.Context, activities.FinalizeInput) (activities.FinalizeResult, error) {
		during = queryState(t, env)
		return activities.FinalizeResult{}, nil
	})
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	env.ExecuteWorkflow(workflows.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, exportd.PhaseExporting, during.Phase)
	require.Equal(t, exportd.Progress{Rows: 7, Total: 7}, during.Progress, "between Export and READY progress is not 0")
}
