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
	// ScheduledExportWorkflowName is the registered type of the workflow a
	// schedule's action starts: one run of a schedule of change exports,
	// which starts the run's export as its child.
	ScheduledExportWorkflowName = "ScheduledExport"
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
	// scheduleIDPrefix names the Temporal schedules of change exports.
	scheduleIDPrefix = "exports-schedule-"
)

// Search attributes (Keyword) for the Web UI and list filters.
var (
	AttrMerchant = temporal.NewSearchAttributeKeyKeyword("ExportMerchant")
	AttrDataset  = temporal.NewSearchAttributeKeyKeyword("ExportDataset")
	AttrPhase    = temporal.NewSearchAttributeKeyKeyword("ExportPhase")
)

// AttrScheduledStartTime is the time a schedule meant a run to start,
// which Temporal sets on every workflow a schedule starts.
var AttrScheduledStartTime = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

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

// ScheduleID returns the ID of the Temporal schedule of a schedule of
// change exports.
func ScheduleID(scheduleID string) string { return scheduleIDPrefix + scheduleID }

// ScheduledRunWorkflowID is the workflow ID a schedule's action names;
// Temporal appends each run's scheduled time to it.
func ScheduledRunWorkflowID(scheduleID string) string { return ScheduleID(scheduleID) + "-run" }

// ScheduledExportID is the export id of a schedule's run scheduled at at:
// derived, not random, so that a run retried or replayed starts the same
// export rather than a second one.
func ScheduledExportID(scheduleID string, at time.Time) string {
	return scheduleID + "-" + at.UTC().Format("20060102T150405Z")
}

// ScheduledExportInput is the input of a schedule's run: which schedule.
// Everything else (the spec, the chain's cursor) is read from PostgreSQL
// when the run begins, so a schedule's action never changes.
type ScheduledExportInput struct {
	ScheduleID string `json:"scheduleId"`
}

// ScheduledExportResult is how a schedule's run ended: its export, how
// that export settled, and whether its nextCursor became the chain's.
type ScheduledExportResult struct {
	ExportID   string        `json:"exportId,omitempty"`
	Phase      exportd.Phase `json:"phase,omitempty"`
	NextCursor string        `json:"nextCursor,omitempty"`
	Chained    bool          `json:"chained"`
	// Skipped says why no export was started (the schedule was deleted).
	Skipped string `json:"skipped,omitempty"`
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
