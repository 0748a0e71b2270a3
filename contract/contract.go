// Package contract holds what crosses the Temporal boundary between the
// export workflows and their clients: the task queue, the workflow, query,
// signal, memo and search attribute names, the workflow IDs, and the
// payloads a client sends or decodes. The worker (workflows, activities)
// and its clients (starter, api, exportd) import it, so none of them spells
// a string the others must match; it imports only the root exportd package
// and the Temporal SDK's temporal package, so a service that only starts
// and follows exports (package starter) does not link the engine.
package contract

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
)

const (
	// TaskQueue is where export workflows and activities run.
	TaskQueue = "exports"
	// WorkflowName is the registered type name of the export workflow.
	WorkflowName = "ExportWorkflow"
	// PartitionsWorkflowName is the registered type of the child workflow
	// that runs a partitioned export's partitions.
	PartitionsWorkflowName = "ExportPartitions"
	// QueryStatus returns the export's exportd.State.
	QueryStatus = "status"
	// SignalExtend moves availableUntil; its argument is an ExtendSignal.
	SignalExtend = "extend"
	// SignalSlotFree wakes a queued export when a running one releases its
	// slot; it carries nothing.
	SignalSlotFree = "slot-free"
	// SignalExportSettled is sent by an export workflow started as a child
	// (a scheduled change export's run) to its parent when the export
	// succeeds, fails or is canceled, so the parent need not wait for the
	// files to expire; it carries an ExportSettled.
	SignalExportSettled = "export-settled"
	// MemoState is the memo field holding the export's exportd.State, read
	// by the API through DescribeWorkflowExecution without a worker.
	MemoState = "state"
	// MemoPartitions is the child workflow's memo field holding its
	// PartitionsProgress, read by the API for live progress.
	MemoPartitions = "partitions"
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

// PartitionsWorkflowID names the child workflow of an export.
func PartitionsWorkflowID(exportID string) string { return WorkflowID(exportID) + "-partitions" }

// ExportIDFromWorkflowID returns the export ID of a workflow ID. A workflow
// started by hand under another ID uses that whole ID as its export ID.
func ExportIDFromWorkflowID(id string) string {
	return strings.TrimPrefix(id, workflowIDPrefix)
}

// ExportInput is the export workflow's input: the export's spec as plain
// JSON, so `temporal workflow start --input '{"merchantId": ...}'` starts
// one too. When exportId is empty the workflow ID names the export.
type ExportInput struct {
	exportd.Spec
}

// ExtendSignal moves an export's expiry. The new time is capped at the
// export's creation plus exportd.MaxRetention.
type ExtendSignal struct {
	AvailableUntil time.Time `json:"availableUntil"`
}

// ExportSettled tells a parent workflow how its child export ended its
// work: READY (NextCursor set for a change export), FAILED (Error set) or
// CANCELED.
type ExportSettled struct {
	ExportID   string           `json:"exportId"`
	Phase      exportd.Phase    `json:"phase"`
	NextCursor string           `json:"nextCursor,omitempty"`
	Rows       int64            `json:"rows"`
	Error      *exportd.Failure `json:"error,omitempty"`
}

// PartitionsProgress is the child workflow's memo: the rows of finished
// partitions, and a retry under way, if any. Running partitions add their
// heartbeats.
type PartitionsProgress struct {
	Rows  int64          `json:"rows"`
	Retry *exportd.Retry `json:"retry,omitempty"`
	// Shown holds the progress of partitions between two attempts, which
	// have no heartbeat to read, by partition: so progress never drops.
	Shown map[int]int64 `json:"shown,omitempty"`
}

// Heartbeat is the Export activity's heartbeat detail: progress only.
// Where a retried attempt resumes is read from the parts recorded in
// PostgreSQL, not from here, so a lost heartbeat loses nothing.
type Heartbeat struct {
	// Done and Total come first so operators see progress at the top of
	// the heartbeat details in the Web UI; fields decode by name.
	Done  int64 `json:"done"`  // rows read so far
	Total int64 `json:"total"` // rows planned
	Part  int   `json:"part"`  // parts committed
	Rows  int64 `json:"rows"`  // rows committed
	// Partition is the partition of a partitioned export this attempt
	// writes, for progress readers that add partitions up.
	Partition int `json:"partition,omitempty"`
}
