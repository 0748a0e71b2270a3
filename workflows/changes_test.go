package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
)

func changeInput() contract.ExportInput {
	return contract.ExportInput{Spec: exportd.Spec{ExportID: "chg1", MerchantID: "M1", Dataset: exportd.Orders,
		Mode: exportd.ModeChanges, Cursor: "c1.prev.sig", Formats: []exportd.Format{exportd.JSONL}}}
}

// parentOfExport starts an export as its child, as a scheduled run does,
// and returns what the export settled with.
func parentOfExport(ctx workflow.Context, in contract.ExportInput) (contract.ExportSettled, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: contract.WorkflowID(in.Spec.ExportID), ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	child := workflow.ExecuteChildWorkflow(cctx, contract.WorkflowName, in)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return contract.ExportSettled{}, err
	}
	var settled contract.ExportSettled
	workflow.GetSignalChannel(ctx, contract.SignalExportSettled).Receive(ctx, &settled)
	return settled, nil
}

// TestChangeExportSettlesItsParent checks that a change export started
// as a child tells its parent its nextCursor once READY (long before its
// files expire), and that the cursor is in its state and manifest input.
func TestChangeExportSettlesItsParent(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(parentOfExport)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{Total: 7}, nil).Once()
	env.OnActivity(a.Export, mock.Anything, mock.Anything).Return(activities.ExportResult{Rows: 5, Parts: 1, FileCount: 1, NextCursor: "c1.next.sig"}, nil).Once()
	env.OnActivity(a.Finalize, mock.Anything, mock.MatchedBy(func(in activities.FinalizeInput) bool {
		return in.NextCursor == "c1.next.sig" && in.Spec.Cursor == "c1.prev.sig"
	})).Return(finalizeResult(5), nil).Once()
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Maybe()

	env.ExecuteWorkflow(parentOfExport, changeInput())
	require.NoError(t, env.GetWorkflowError())
	var settled contract.ExportSettled
	require.NoError(t, env.GetWorkflowResult(&settled))
	require.Equal(t, contract.ExportSettled{ExportID: "chg1", Phase: exportd.PhaseReady, NextCursor: "c1.next.sig", Rows: 5}, settled)
}

// TestFailedChangeExportSettlesItsParent checks that a failed export tells
// its parent the failure, and no cursor.
func TestFailedChangeExportSettlesItsParent(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(parentOfExport)
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.PlanResult{},
		temporal.NewNonRetryableApplicationError("checking the cursor: cursor was issued to another app", exportd.CodeInvalidRequest, nil)).Once()
	env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(activities.PurgeResult{Purged: true}, nil).Maybe()

	env.ExecuteWorkflow(parentOfExport, changeInput())
	require.NoError(t, env.GetWorkflowError())
	var settled contract.ExportSettled
	require.NoError(t, env.GetWorkflowResult(&settled))
	require.Equal(t, exportd.PhaseFailed, settled.Phase)
	require.Empty(t, settled.NextCursor)
	require.Equal(t, exportd.CodeInvalidRequest, settled.Error.Code)
	require.Contains(t, settled.Error.Message, "cursor")
}
