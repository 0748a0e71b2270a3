package workflows

import (
	"strings"

	"go.temporal.io/sdk/temporal"
)

// Names shared by the workflow, the worker, the API and the starter, so
// that none of them spells a string the others must match.
const (
	// TaskQueue is where export workflows and activities run.
	TaskQueue = "exports"
	// WorkflowName is the registered type name of ExportWorkflow.
	WorkflowName = "ExportWorkflow"
	// QueryStatus returns the export's exportd.State.
	QueryStatus = "status"
	// SignalExtend moves availableUntil; its argument is an ExtendSignal.
	SignalExtend = "extend"
	// SignalSlotFree wakes a queued export when a running one releases its
	// slot; it carries nothing.
	SignalSlotFree = "slot-free"
	// MemoState is the memo field holding the export's exportd.State, read
	// by the API through DescribeWorkflowExecution without a worker.
	MemoState = "state"
	// workflowIDPrefix makes export workflows recognisable in a namespace
	// shared with other workflows.
	workflowIDPrefix = "export-"
)

// Search attributes (Keyword) for the Web UI and list filters.
var (
	AttrMerchant = temporal.NewSearchAttributeKeyKeyword("ExportMerchant")
	AttrDataset  = temporal.NewSearchAttributeKeyKeyword("ExportDataset")
	AttrPhase    = temporal.NewSearchAttributeKeyKeyword("ExportPhase")
)

// SearchAttributeNames lists the search attributes a namespace must have.
var SearchAttributeNames = []string{"ExportMerchant", "ExportDataset", "ExportPhase"}

// WorkflowID returns the workflow ID of an export.
func WorkflowID(exportID string) string { return workflowIDPrefix + exportID }

// ExportIDFromWorkflowID returns the export ID of a workflow ID. A workflow
// started by hand under another ID uses that whole ID as its export ID.
func ExportIDFromWorkflowID(id string) string {
	return strings.TrimPrefix(id, workflowIDPrefix)
}
