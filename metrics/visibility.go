package metrics

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
)

// ExportsByStatus counts export workflows in Temporal visibility by the
// API's status, one CountWorkflow per status: visibility groups counts by
// ExecutionStatus only, not by search attribute. workflowType and
// phaseAttribute are the workflow's registered name and its phase search
// attribute (contract.WorkflowName, contract.AttrPhase).
//
// An export whose workflow closed without publishing a final phase
// (terminated, timed out) still carries its last phase; it counts as
// failed, as the API shows it.
func ExportsByStatus(c client.Client, workflowType, phaseAttribute string) CountExports {
	base := fmt.Sprintf("WorkflowType = '%s'", quote(workflowType))
	phase := func(p exportd.Phase) string { return fmt.Sprintf("%s = '%s'", phaseAttribute, p) }
	live := func(p exportd.Phase) string { return phase(p) + " AND ExecutionStatus = 'Running'" }
	queries := []struct {
		status string
		where  string
	}{
		{exportd.PhaseQueued.Status(), live(exportd.PhaseQueued)},
		{exportd.PhaseExporting.Status(), live(exportd.PhaseExporting)},
		{exportd.PhaseReady.Status(), live(exportd.PhaseReady)},
		{exportd.PhaseFailed.Status(), phase(exportd.PhaseFailed)},
		{exportd.PhaseFailed.Status(), fmt.Sprintf("%s IN ('%s', '%s', '%s') AND ExecutionStatus != 'Running'",
			phaseAttribute, exportd.PhaseQueued, exportd.PhaseExporting, exportd.PhaseReady)},
		{exportd.PhaseCanceled.Status(), phase(exportd.PhaseCanceled)},
		{exportd.PhaseExpired.Status(), phase(exportd.PhaseExpired)},
	}
	return func(ctx context.Context) (map[string]int64, error) {
		out := make(map[string]int64, len(Statuses))
		for _, q := range queries {
			resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: base + " AND " + q.where})
			if err != nil {
				return nil, fmt.Errorf("error counting %s exports: %w", q.status, err)
			}
			out[q.status] += resp.GetCount()
		}
		return out, nil
	}
}

// quote escapes s for a single-quoted visibility query literal.
func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}
