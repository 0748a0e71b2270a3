package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/exportd/exportd/worker"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeTemporal answers DescribeWorkflowExecution from a table of workflow
// statuses and records signals. A workflow not in the table is not found.
type fakeTemporal struct {
	mu       sync.Mutex
	statuses map[string]enumspb.WorkflowExecutionStatus
	broken   map[string]bool
	down     bool // every question fails
	asked    int
	signals  []string
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, workflowID, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if f.down || f.broken[workflowID] {
		return nil, serviceerror.NewUnavailable("frontend unavailable")
	}
	st, ok := f.statuses[workflowID]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: st},
	}, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, workflowID, _, signal string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if signal != contract.SignalSlotFree {
		return errors.New("unexpected signal " + signal)
	}
	f.signals = append(f.signals, workflowID)
	return nil
}

func (f *fakeTemporal) set(workflowID string, st enumspb.WorkflowExecutionStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[workflowID] = st
}

const (
	running    = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	terminated = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
	completed  = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
)

func TestReaperPass(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 2, Lease: time.Minute}
	old := time.Now().Add(-time.Hour)
	enqueue := func(id string, at time.Time) {
		t.Helper()
		ok, _, err := q.Enqueue(ctx, id, "M-"+id, at, 0)
		require.NoError(t, err)
		require.True(t, ok)
	}
	acquire := func(id string) {
		t.Helper()
		adm, err := q.TryAcquire(ctx, id, "M-"+id, old, l)
		require.NoError(t, err)
		require.True(t, adm.Acquired, id)
	}
	// Two slots: live (open workflow) and killed (terminated while it ran).
	enqueue("live", old)
	enqueue("killed", old.Add(time.Second))
	acquire("live")
	acquire("killed")
	enqueue("done", old.Add(2*time.Second))   // waiting, workflow completed
	enqueue("lost", old.Add(3*time.Second))   // waiting, workflow never started
	enqueue("flaky", old.Add(4*time.Second))  // waiting, Temporal cannot say
	enqueue("byhand", old.Add(5*time.Second)) // waiting, started as workflow "byhand"
	enqueue("next", old.Add(6*time.Second))   // waiting, open
	enqueue("young", time.Now())              // the API is about to start it
	_, err := q.Pool.Exec(ctx, "UPDATE export_queue SET lease_until = now() + interval '1 second' WHERE export_id = 'live'")
	require.NoError(t, err)

	tc := &fakeTemporal{
		statuses: map[string]enumspb.WorkflowExecutionStatus{
			contract.WorkflowID("live"):   running,
			contract.WorkflowID("killed"): terminated,
			contract.WorkflowID("done"):   completed,
			contract.WorkflowID("flaky"):  running,
			"byhand":                      running,
			contract.WorkflowID("next"):   running,
		},
		broken: map[string]bool{contract.WorkflowID("flaky"): true},
	}
	r := &worker.Reaper{Queue: q, Temporal: tc, Limits: l, Every: time.Hour, Grace: time.Minute}
	res, err := r.Pass(ctx)
	require.NoError(t, err)
	require.True(t, res.Ran)
	require.ElementsMatch(t, []string{"killed", "done", "lost"}, res.Reaped)
	require.Equal(t, 1, res.Renewed, "live holds the one open slot")

	entries, err := q.Entries(ctx)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.ExportID)
	}
	require.Equal(t, []string{"live", "flaky", "byhand", "next", "young"}, left)
	var leaseLeft time.Duration
	require.NoError(t, q.Pool.QueryRow(ctx, `SELECT extract(epoch FROM lease_until - now())::float8 * interval '1 second'
		FROM export_queue WHERE export_id = 'live'`).Scan(&leaseLeft))
	require.Greater(t, leaseLeft, 50*time.Second, "renewed to a minute from now")
	// Freeing killed's slot wakes the first waiting export in line.
	require.Contains(t, tc.signals, contract.WorkflowID("flaky"))

	res, err = r.Pass(ctx)
	require.NoError(t, err)
	require.False(t, res.Ran, "a pass ran less than Every/2 ago")
}

// TestReaperRunFreesAWedgedQueue is the scenario: with one slot,
// A runs and B waits; B's workflow is terminated; A ends. C, enqueued
// after, is stuck behind B's row until the running reaper removes it and
// wakes C.
func TestReaperRunFreesAWedgedQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 1, Lease: time.Minute}
	tc := &fakeTemporal{statuses: map[string]enumspb.WorkflowExecutionStatus{}}
	now := time.Now()
	for i, id := range []string{"A", "B"} {
		tc.set(contract.WorkflowID(id), running)
		_, err := q.TryAcquire(ctx, id, "M", now.Add(time.Duration(i)*time.Millisecond), l)
		require.NoError(t, err)
	}
	tc.set(contract.WorkflowID("B"), terminated)
	_, err := q.Release(ctx, "A", l)
	require.NoError(t, err)
	tc.set(contract.WorkflowID("A"), completed)
	tc.set(contract.WorkflowID("C"), running)
	adm, err := q.TryAcquire(ctx, "C", "M", now.Add(time.Second), l)
	require.NoError(t, err)
	require.False(t, adm.Acquired, "B's row is ahead of C")

	r := &worker.Reaper{Queue: q, Temporal: tc, Limits: l, Every: 50 * time.Millisecond}
	stopped := make(chan struct{})
	go func() { r.Run(ctx); close(stopped) }()
	require.Eventually(t, func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		return len(tc.signals) > 0
	}, 10*time.Second, 10*time.Millisecond, "C is woken")
	require.Equal(t, contract.WorkflowID("C"), tc.signals[0])
	adm, err = q.TryAcquire(ctx, "C", "M", now.Add(time.Second), l)
	require.NoError(t, err)
	require.True(t, adm.Acquired)
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestReaperPassStopsWhenTemporalIsAway: with Temporal down, a pass
// gives up after a few questions and leaves every row alone.
func TestReaperPassStopsWhenTemporalIsAway(t *testing.T) {
	ctx := context.Background()
	q := &postgres.Queue{Pool: pgtest.New(t)}
	l := postgres.Limits{Global: 1, Lease: time.Minute}
	for i := range 10 {
		_, err := q.TryAcquire(ctx, fmt.Sprintf("e%d", i), "M", time.Now().Add(-time.Hour), l)
		require.NoError(t, err)
	}
	tc := &fakeTemporal{down: true}
	r := &worker.Reaper{Queue: q, Temporal: tc, Limits: l}
	res, err := r.Pass(ctx)
	require.Error(t, err)
	require.True(t, res.Ran)
	require.Equal(t, 3, tc.asked)
	entries, err := q.Entries(ctx)
	require.NoError(t, err)
	require.Len(t, entries, 10)
}
