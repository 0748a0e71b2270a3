package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
)

// partitioned mocks the Export activity of a partitioned export: every
// partition writes 10 rows in 2 files, after fail (if set) says whether
// an attempt fails.
type partitioned struct {
	mu       sync.Mutex
	running  int
	most     int
	attempts map[int][]activities.ExportInput
	fail     func(in activities.ExportInput) error
}

func (p *partitioned) export(ctx context.Context, in activities.ExportInput) (activities.ExportResult, error) {
	p.mu.Lock()
	p.running++
	p.most = max(p.most, p.running)
	p.attempts[in.Partition] = append(p.attempts[in.Partition], in)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	if !in.Partitioned {
		return activities.ExportResult{}, temporal.NewNonRetryableApplicationError("not partitioned", "test", nil)
	}
	if p.fail != nil {
		if err := p.fail(in); err != nil {
			return activities.ExportResult{}, err
		}
	}
	time.Sleep(time.Millisecond) // let partitions overlap
	return activities.ExportResult{Rows: 10, Parts: 1, FileCount: 2}, nil
}

func partitionedEnv(t *testing.T, partitions, parallelism int, fail func(activities.ExportInput) error) (*partitioned, func() exportd.State) {
	t.Helper()
	env := newEnv(t)
	p := &partitioned{attempts: map[int][]activities.ExportInput{}, fail: fail}
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: int64(10 * partitions), Partitions: partitions, Parallelism: parallelism}, nil)
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(p.export)
	env.OnActivity(a.Finalize, mock.Anything, mock.Anything).Return(finalizeResult(int64(10*partitions)), nil).Maybe()
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil)
	var ready exportd.State
	env.RegisterDelayedCallback(func() { ready = queryState(t, env) }, time.Hour)
	env.ExecuteWorkflow(contract.WorkflowName, testInput())
	t.Cleanup(func() { env.AssertExpectations(t) })
	return p, func() exportd.State {
		if !env.IsWorkflowCompleted() {
			t.Fatal("workflow did not complete")
		}
		if env.GetWorkflowError() == nil {
			return ready
		}
		return queryState(t, env)
	}
}

// TestPartitionsFanOut runs 250 partitions 4 at a time: every partition
// runs once, never more than 4 at once, across three runs of the child
// workflow (it continues as new every 100), and the export adds up.
func TestPartitionsFanOut(t *testing.T) {
	p, state := partitionedEnv(t, 250, 4, nil)
	st := state()
	require.Equal(t, exportd.PhaseReady, st.Phase)
	require.Equal(t, int64(2500), st.Rows)
	require.Equal(t, 500, st.Files)
	require.Equal(t, 250, st.Partitions)
	require.Len(t, p.attempts, 250)
	for i := range 250 {
		require.Len(t, p.attempts[i], 1, "partition %d runs once", i)
		require.Equal(t, 1, p.attempts[i][0].Attempt)
	}
	require.LessOrEqual(t, p.most, 4, "parallelism bounds the partitions running at once")
}

// TestPartitionResumes fails one partition's first attempt after it made
// progress: only that partition is retried, from where it was, and the
// export succeeds.
func TestPartitionResumes(t *testing.T) {
	p, state := partitionedEnv(t, 6, 2, func(in activities.ExportInput) error {
		if in.Partition == 3 && in.Attempt == 1 {
			return temporal.NewApplicationErrorWithOptions("reading the source: connection reset", exportd.CodeSourceError,
				temporal.ApplicationErrorOptions{Details: []any{contract.Heartbeat{Done: 7, Rows: 5, Part: 1}}})
		}
		return nil
	})
	st := state()
	require.Equal(t, exportd.PhaseReady, st.Phase)
	require.Equal(t, int64(60), st.Rows)
	require.Len(t, p.attempts[3], 2)
	require.Equal(t, 2, p.attempts[3][1].Attempt)
	require.Equal(t, int64(7), p.attempts[3][1].Shown, "the retry reports no less progress than shown")
	for _, i := range []int{0, 1, 2, 4, 5} {
		require.Len(t, p.attempts[i], 1)
	}
}

// TestPartitionFailureFailsExport fails one partition permanently: the
// export fails with its code and message, the partitions still running
// are canceled, none is started after, and the files are purged.
func TestPartitionFailureFailsExport(t *testing.T) {
	p, state := partitionedEnv(t, 40, 3, func(in activities.ExportInput) error {
		if in.Partition == 4 {
			return temporal.NewNonRetryableApplicationError("reading the source: orders.tip has type numeric, expected bigint (int8)", exportd.CodeSourceError, nil)
		}
		return nil
	})
	st := state()
	require.Equal(t, exportd.PhaseFailed, st.Phase)
	require.Equal(t, exportd.CodeSourceError, st.Error.Code)
	require.Contains(t, st.Error.Message, "orders.tip")
	require.Less(t, len(p.attempts), 40, "no partition starts after the failure")
}

// TestPartitionsCancel cancels an export while its partitions run: the
// running partitions are canceled, the export ends canceled and its
// files are purged.
func TestPartitionsCancel(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 100, Partitions: 10, Parallelism: 3}, nil)
	var mu sync.Mutex
	started := 0
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ExportInput) (activities.ExportResult, error) {
		mu.Lock()
		started++
		mu.Unlock()
		select {
		case <-ctx.Done():
			return activities.ExportResult{}, ctx.Err()
		case <-time.After(time.Second):
			return activities.ExportResult{}, nil
		}
	})
	purged := 0
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(func(context.Context, activities.PurgeInput) (activities.PurgeResult, error) {
		purged++
		return activities.PurgeResult{Purged: true}, nil
	})
	var during exportd.State
	env.RegisterDelayedCallback(func() {
		during = queryState(t, env)
		env.CancelWorkflow()
	}, 100*time.Millisecond) // the clock runs in real time while activities run
	env.ExecuteWorkflow(contract.WorkflowName, testInput())
	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, exportd.PhaseExporting, during.Phase)
	require.Equal(t, 10, during.Partitions)
	require.Equal(t, exportd.PhaseCanceled, queryState(t, env).Phase)
	require.Equal(t, 1, purged, "the purge removes every partition's files")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 3, started, "no partition starts once the export is canceled")
}
