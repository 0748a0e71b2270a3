package starter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/starter"
)

// poll is one answer of describeClient: a memo state, the workflow's
// status, an optional Export heartbeat, or an error.
type poll struct {
	state     exportd.State
	status    enumspb.WorkflowExecutionStatus
	heartbeat *contract.Heartbeat
	err       error
}

// describeClient answers DescribeWorkflowExecution from a script, as
// Temporal would for an export moving through its phases; the last
// answer repeats. Any other method panics through the nil interface.
type describeClient struct {
	client.Client
	t     *testing.T
	polls []poll
	calls int
}

func (c *describeClient) DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	require.Equal(c.t, contract.WorkflowID("x1"), workflowID)
	p := c.polls[min(c.calls, len(c.polls)-1)]
	c.calls++
	if p.err != nil {
		return nil, p.err
	}
	dc := converter.GetDefaultDataConverter()
	memo, err := dc.ToPayload(p.state)
	require.NoError(c.t, err)
	status := p.status
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		status = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	resp := &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
			Memo:   &commonpb.Memo{Fields: map[string]*commonpb.Payload{contract.MemoState: memo}},
			Status: status,
		},
	}
	if p.heartbeat != nil {
		details, err := dc.ToPayloads(*p.heartbeat)
		require.NoError(c.t, err)
		resp.PendingActivities = []*workflowpb.PendingActivityInfo{{
			ActivityType: &commonpb.ActivityType{Name: "Export"}, HeartbeatDetails: details,
		}}
	}
	return resp, nil
}

func state(phase exportd.Phase, rows, total int64) exportd.State {
	return exportd.State{Spec: exportd.Spec{ExportID: "x1", MerchantID: "m1"}, Phase: phase,
		Progress: exportd.Progress{Rows: rows, Total: total}}
}

func TestWaitReportsProgressUntilReady(t *testing.T) {
	c := &describeClient{t: t, polls: []poll{
		{state: state(exportd.PhaseQueued, 0, 0)},
		{state: state(exportd.PhaseExporting, 0, 1000)},
		{state: state(exportd.PhaseExporting, 0, 1000), heartbeat: &contract.Heartbeat{Done: 400, Total: 1000}},
		{state: state(exportd.PhaseReady, 1000, 1000)},
		{err: errors.New("polled after READY")},
	}}
	var seen []exportd.Progress
	var phases []exportd.Phase
	st, err := starter.Wait(context.Background(), c, "x1", starter.WaitOptions{
		Interval: time.Millisecond,
		OnProgress: func(s exportd.State) {
			seen = append(seen, s.Progress)
			phases = append(phases, s.Phase)
		},
	})
	require.NoError(t, err)
	require.Equal(t, exportd.PhaseReady, st.Phase)
	require.Equal(t, []exportd.Progress{{Total: 0}, {Total: 1000}, {Rows: 400, Total: 1000}, {Rows: 1000, Total: 1000}}, seen)
	require.Equal(t, []exportd.Phase{exportd.PhaseQueued, exportd.PhaseExporting, exportd.PhaseExporting, exportd.PhaseReady}, phases)
	require.Equal(t, 4, c.calls)
}

func TestWaitEnded(t *testing.T) {
	failed := state(exportd.PhaseFailed, 10, 1000)
	failed.Error = &exportd.Failure{Code: exportd.CodeSourceError, Message: "the source database refused the query"}
	for _, tc := range []struct {
		name  string
		last  poll
		phase exportd.Phase
		msg   string
	}{
		{"failed", poll{state: failed}, exportd.PhaseFailed, "export x1 failed: source_error: the source database refused the query"},
		{"canceled", poll{state: state(exportd.PhaseCanceled, 0, 0)}, exportd.PhaseCanceled, "export x1 was canceled"},
		{"expired", poll{state: state(exportd.PhaseExpired, 5, 5)}, exportd.PhaseExpired, "export x1 has expired: its files were purged"},
		// A workflow that ended without publishing its phase, as an
		// operator's terminate leaves it.
		{"terminated", poll{state: state(exportd.PhaseExporting, 10, 1000), status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED},
			exportd.PhaseFailed, "export x1 failed: terminated: the export was terminated by an operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &describeClient{t: t, polls: []poll{{state: state(exportd.PhaseExporting, 0, 1000)}, tc.last}}
			calls := 0
			st, err := starter.Wait(context.Background(), c, "x1", starter.WaitOptions{
				Interval: time.Millisecond, OnProgress: func(exportd.State) { calls++ },
			})
			var ended *starter.EndedError
			require.ErrorAs(t, err, &ended)
			require.EqualError(t, err, tc.msg)
			require.Equal(t, tc.phase, ended.State.Phase)
			require.Equal(t, tc.phase, st.Phase)
			require.Equal(t, 2, calls, "OnProgress sees the final state too")
		})
	}
}

func TestWaitNotFound(t *testing.T) {
	c := &describeClient{t: t, polls: []poll{{err: serviceerror.NewNotFound("workflow not found")}}}
	_, err := starter.Wait(context.Background(), c, "x1", starter.WaitOptions{})
	require.ErrorIs(t, err, starter.ErrNotFound)
}

func TestWaitStopsWithContextNotExport(t *testing.T) {
	c := &describeClient{t: t, polls: []poll{{state: state(exportd.PhaseExporting, 1, 1000)}}}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := starter.Wait(ctx, c, "x1", starter.WaitOptions{
		Interval:   time.Millisecond,
		OnProgress: func(exportd.State) { cancel() },
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, exportd.PhaseExporting, st.Phase, "the last state read comes back with the error")
	require.Equal(t, 1, c.calls)
}
