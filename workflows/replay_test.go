package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/workflows"
)

// TestReplayRecordedHistories replays histories recorded from the real dev
// stack (`temporal workflow show --output json`): one export that ran to
// EXPIRED, one deleted while READY, a partitioned one and its child
// workflow's, and one whose Plan was retried while PostgreSQL was down;
// and two runs of a schedule (ScheduledExport): one whose export
// succeeded and chained, one whose merchant had uninstalled the app. A
// change to ExportWorkflow or ScheduledExport that would break running
// executions fails here; such a change needs
// workflow.GetVersion, and a new recording added beside the old ones.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/history_*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := sdkworker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.ExportWorkflow, workflow.RegisterOptions{Name: contract.WorkflowName})
			r.RegisterWorkflowWithOptions(workflows.Config{}.ExportPartitions, workflow.RegisterOptions{Name: contract.PartitionsWorkflowName})
			r.RegisterWorkflowWithOptions(workflows.ScheduledExport, workflow.RegisterOptions{Name: contract.ScheduledExportWorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
