package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/worker"
	"github.com/exportd/exportd/workflows"
)

var a *activities.Activities

func testInput() contract.ExportInput {
	return contract.ExportInput{Spec: exportd.Spec{
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
	worker.Register(env, a, workflows.Config{})
	// Admission is immediate unless a test says otherwise.
	env.OnActivity(a.Acquire, mock.Anything, mock.Anything).Return(activities.AcquireResult{Acquired: true}, nil).Maybe()
	env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(activities.ReleaseResult{}, nil).Maybe()
	return env
}

func exportResult(rows int64) activities.ExportResult {
	return activities.ExportResult{Rows: rows, Parts: 1, FileCount: 2}
}

func finalizeResult(rows int64) activities.FinalizeResult {
	return activities.FinalizeResult{Tally: exportd.Tally{Orders: rows, Transactions: 2 * rows, Amount: 1000 * rows, Locations: 2}}
}

func queryState(t *testing.T, env *testsuite.TestWorkflowEnvironment) exportd.State {
	t.Helper()
	v, err := env.QueryWorkflow(contract.QueryStatus)
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
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(finalizeResult(10), nil).Once()
	env.OnActivity(a.Purge, mock.Anything, activities.PurgeInput{ExportID: "exp1"}).Return(activities.PurgeResult{Purged: true}, nil).Once()

	var ready exportd.State
	env.RegisterDelayedCallback(func() { ready = queryState(t, env) }, time.Hour)

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
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
		env.SignalWorkflow(contract.SignalExtend, contract.ExtendSignal{AvailableUntil: start.Add(48 * time.Hour)})
	}, time.Hour)
	var at30h, at49h exportd.State
	env.RegisterDelayedCallback(func() { at30h = queryState(t, env) }, 30*time.Hour)
	// Extending past the maximum retention is capped at creation + max.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalExtend, contract.ExtendSignal{AvailableUntil: start.Add(365 * 24 * time.Hour)})
	}, 40*time.Hour)
	env.RegisterDelayedCallback(func() { at49h = queryState(t, env) }, 49*time.Hour)

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
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

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
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

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
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

			env.ExecuteWorkflow(contract.WorkflowName, testInput())
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
	env.ExecuteWorkflow(contract.WorkflowName, in)
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, exportd.CodeInvalidRequest, app.Type())
	s := queryState(t, env)
	require.Equal(t, exportd.PhaseFailed, s.Phase)
	require.Contains(t, s.Error.Message, "dataset")
}

// TestExportWorkflowRetriesTransientFailures checks that a failure that
// may heal is retried, that the status says so while it waits (attempt,
// last error, next attempt time), and that the retry clears once the step
// succeeds.
func TestExportWorkflowRetriesTransientFailures(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 3}, nil)
	attempts := 0
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ExportInput) (activities.ExportResult, error) {
		attempts++
		if attempts < 3 {
			return activities.ExportResult{}, temporal.NewApplicationErrorWithOptions("reading the source: connection refused",
				exportd.CodeSourceError, temporal.ApplicationErrorOptions{Details: []any{contract.Heartbeat{Done: 2, Rows: 2}}})
		}
		return exportResult(3), nil
	})
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(finalizeResult(3), nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	var waiting, ready exportd.State
	env.RegisterDelayedCallback(func() { waiting = queryState(t, env) }, 1500*time.Millisecond)
	env.RegisterDelayedCallback(func() { ready = queryState(t, env) }, time.Hour)
	start := env.Now()

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 3, attempts)
	require.Equal(t, exportd.PhaseExporting, waiting.Phase)
	require.NotNil(t, waiting.Retry, "a retrying export says so")
	require.Equal(t, "export", waiting.Retry.Step)
	require.Equal(t, 3, waiting.Retry.Attempt)
	require.Equal(t, exportd.CodeSourceError, waiting.Retry.Code)
	require.Contains(t, waiting.Retry.LastError, "connection refused")
	require.True(t, waiting.Retry.NextAttemptAt.After(start), "next attempt at %s", waiting.Retry.NextAttemptAt)
	require.Equal(t, int64(2), waiting.Progress.Rows, "the progress made stays between attempts")
	require.Equal(t, exportd.PhaseReady, ready.Phase)
	require.Nil(t, ready.Retry)
}

// TestExportWorkflowFailureClasses runs each class of failure through the
// workflow: a permanent one ends at once, a transient one that never heals
// ends after the retry bound (with skipped time), and either way the
// export fails with the code, purges, and releases its slot.
func TestExportWorkflowFailureClasses(t *testing.T) {
	permanent := temporal.NewNonRetryableApplicationError(
		"reading the source: orders.tip has type numeric, expected bigint (int8)", exportd.CodeSourceError, nil)
	storage := temporal.NewApplicationError("writing the files: could not commit orders-00000.parquet: disk full", exportd.CodeStorageError)
	unclassified := errors.New("scheduledEventID=5 startedEventID=6 identity=1234@host panic")
	for _, tc := range []struct {
		name     string
		err      error
		code     string
		attempts int // 0: more than one
		minTime  time.Duration
		message  string
	}{
		{"permanent source error ends at once", permanent, exportd.CodeSourceError, 1, 0, "orders.tip"},
		{"storage error ends after the bound", storage, exportd.CodeStorageError, 0, 10 * time.Minute, "disk full"},
		{"unclassified error ends internal, without its text", unclassified, exportd.CodeInternal, 0, 10 * time.Minute, "export kept failing for 10m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			worker.Register(env, a, workflows.Config{RetryFor: 10 * time.Minute})
			env.OnActivity(a.Acquire, mock.Anything, mock.Anything).Return(activities.AcquireResult{Acquired: true}, nil)
			released := 0
			env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(func(context.Context, activities.ReleaseInput) (activities.ReleaseResult, error) {
				released++
				return activities.ReleaseResult{}, nil
			})
			env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 5}, nil)
			attempts := 0
			env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(func(context.Context, activities.ExportInput) (activities.ExportResult, error) {
				attempts++
				return activities.ExportResult{}, tc.err
			})
			env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
			start := env.Now()
			env.ExecuteWorkflow(contract.WorkflowName, testInput())
			require.Error(t, env.GetWorkflowError())
			st := queryState(t, env)
			require.Equal(t, exportd.PhaseFailed, st.Phase)
			require.Equal(t, tc.code, st.Error.Code)
			require.Contains(t, st.Error.Message, tc.message)
			require.NotContains(t, st.Error.Message, "scheduledEventID")
			require.NotContains(t, st.Error.Message, "identity")
			require.Nil(t, st.Retry)
			if tc.attempts > 0 {
				require.Equal(t, tc.attempts, attempts)
			} else {
				require.Greater(t, attempts, 5)
				require.Less(t, attempts, 40, "backoff grows to its cap")
			}
			require.GreaterOrEqual(t, env.Now().Sub(start), tc.minTime)
			require.Equal(t, 1, released, "every ending releases the admission slot")
		})
	}
}

// TestExportWorkflowRetryBoundCountsFromProgress checks that an attempt
// that made progress starts the retry bound afresh: an export that keeps
// moving is never given up on.
func TestExportWorkflowRetryBoundCountsFromProgress(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, a, workflows.Config{RetryFor: 30 * time.Second})
	env.OnActivity(a.Acquire, mock.Anything, mock.Anything).Return(activities.AcquireResult{Acquired: true}, nil)
	env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(activities.ReleaseResult{}, nil)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 100}, nil)
	attempts := 0
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ExportInput) (activities.ExportResult, error) {
		attempts++
		if attempts == 40 {
			return exportResult(100), nil
		}
		// Every fourth attempt commits a part: the failures never run
		// for the whole bound in a row.
		return activities.ExportResult{}, temporal.NewApplicationErrorWithOptions("storage flaky", exportd.CodeStorageError,
			temporal.ApplicationErrorOptions{Details: []any{contract.Heartbeat{Rows: int64(attempts / 4)}}})
	})
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(finalizeResult(100), nil)
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	start := env.Now()
	env.ExecuteWorkflow(contract.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 40, attempts)
	require.Greater(t, env.Now().Sub(start), 30*time.Second, "ran longer than the bound, making progress")
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
	env.ExecuteWorkflow(contract.WorkflowName, in)
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

func startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}
}

// TestExportWorkflowWaitsQueued checks admission: while the queue refuses,
// the export stays QUEUED with its position published; a slot-free signal
// wakes it before its timer; the slot is released once the files are
// written, and the exports the queue names next are woken.
func TestExportWorkflowWaitsQueued(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	worker.Register(env, a, workflows.Config{})
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
	env.OnSignalExternalWorkflow("default-test-namespace", "export-exp2", "", contract.SignalSlotFree, nil).Return(nil).Once()

	var waiting exportd.State
	env.RegisterDelayedCallback(func() { waiting = queryState(t, env) }, 1500*time.Millisecond)
	// The second wait would last 2s; the signal ends it early.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalSlotFree, nil) }, 1500*time.Millisecond)
	var running exportd.State
	env.RegisterDelayedCallback(func() { running = queryState(t, env) }, 2*time.Second)

	env.ExecuteWorkflow(contract.WorkflowName, testInput())
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
			env.ExecuteWorkflow(contract.WorkflowName, in)
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
		return finalizeResult(7), nil
	})
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	env.ExecuteWorkflow(contract.WorkflowName, testInput())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, exportd.PhaseExporting, during.Phase)
	require.Equal(t, exportd.Progress{Rows: 7, Total: 7}, during.Progress, "between Export and READY progress is not 0")
}
