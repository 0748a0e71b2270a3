// Package starter starts and reads exports through Temporal. The HTTP API
// uses it, and so can any Go service that wants exports without HTTP:
// StartExport, Wait with progress callbacks, then Download and Verify the
// files against their manifest (sizes and sha256).
package starter

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
)

// ErrNotFound is returned for an export that does not exist.
var ErrNotFound = errors.New("export not found")

// ErrExists is returned by Start when an export with that ID was started
// before; the caller decides whether the earlier one is the same request.
var ErrExists = errors.New("export already exists")

// Start validates spec and starts its workflow. The spec's ExportID must
// be set; it becomes the workflow ID's suffix.
func Start(ctx context.Context, c client.Client, spec exportd.Spec) (exportd.State, error) {
	if err := spec.Normalize(); err != nil {
		return exportd.State{}, err
	}
	state := exportd.State{Spec: spec, Phase: exportd.PhaseQueued, CreatedAt: time.Now().UTC()}
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       contract.WorkflowID(spec.ExportID),
		TaskQueue:                                contract.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The memo and search attributes are there from the first moment,
		// so the export is listed and described before a worker picks it up.
		Memo: map[string]any{contract.MemoState: state},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.AttrMerchant.ValueSet(spec.MerchantID),
			contract.AttrDataset.ValueSet(string(spec.Dataset)),
			contract.AttrPhase.ValueSet(string(exportd.PhaseQueued)),
		),
		StaticSummary: Summary(spec),
	}, contract.WorkflowName, contract.ExportInput{Spec: spec})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return exportd.State{}, ErrExists
	}
	if err != nil {
		return exportd.State{}, fmt.Errorf("error starting export workflow: %w", err)
	}
	return state, nil
}

// StartExport starts an export of spec and returns its id, which names it
// to Wait, Download, Describe and the HTTP API. An empty spec.ExportID gets
// a random one. For an id that was used before it returns that id with
// ErrExists, so a caller that reuses ids to make retries safe can compare
// the earlier export's spec (Describe) and wait for it instead.
func StartExport(ctx context.Context, c client.Client, spec exportd.Spec) (string, error) {
	if spec.ExportID == "" {
		spec.ExportID = NewID()
	}
	if _, err := Start(ctx, c, spec); err != nil {
		if errors.Is(err, ErrExists) {
			return spec.ExportID, err
		}
		return "", err
	}
	return spec.ExportID, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random export id in the API's format. It lives here
// rather than in package exports, which imports starter.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "x" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// Summary is the one-line description the Web UI shows for an export.
func Summary(s exportd.Spec) string {
	formats := make([]string, len(s.Formats))
	for i, f := range s.Formats {
		formats[i] = string(f)
	}
	if s.Mode == exportd.ModeChanges {
		what := "changes since the cursor"
		if s.Cursor == "" {
			what = "backfill"
		}
		return fmt.Sprintf("%s change export of merchant %s, %s, as %s", s.Dataset, s.MerchantID, what, strings.Join(formats, ", "))
	}
	return fmt.Sprintf("%s export of merchant %s, %s to %s, as %s",
		s.Dataset, s.MerchantID, s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), strings.Join(formats, ", "))
}

// Describe reads an export's state from Temporal without needing a
// worker: the phase from the memo, live progress from the heartbeat of
// the pending Export activity.
func Describe(ctx context.Context, c client.Client, exportID string) (exportd.State, error) {
	resp, err := c.DescribeWorkflowExecution(ctx, contract.WorkflowID(exportID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return exportd.State{}, ErrNotFound
	}
	if err != nil {
		return exportd.State{}, fmt.Errorf("error describing export workflow: %w", err)
	}
	info := resp.GetWorkflowExecutionInfo()
	s, err := stateOf(info.GetMemo(), info.GetStatus())
	if err != nil {
		return exportd.State{}, err
	}
	if s.Phase == exportd.PhaseExporting && s.Partitions > 1 {
		return partitionsProgress(ctx, c, s)
	}
	for _, hb := range exportHeartbeats(resp.GetPendingActivities()) {
		s.Progress.Rows = max(hb.Done, s.Progress.Rows)
		if hb.Total > 0 {
			// A change export counts again as of its own mark.
			s.Progress.Total = hb.Total
		}
	}
	return s, nil
}

// exportHeartbeats returns the last heartbeats of the pending Export
// activities.
func exportHeartbeats(pending []*workflowpb.PendingActivityInfo) []contract.Heartbeat {
	var out []contract.Heartbeat
	for _, pa := range pending {
		if pa.GetActivityType().GetName() != "Export" || pa.GetHeartbeatDetails() == nil {
			continue
		}
		var hb contract.Heartbeat
		if err := converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &hb); err == nil {
			out = append(out, hb)
		}
	}
	return out
}

// partitionsProgress adds the live progress of a partitioned export: the
// rows of its finished partitions, from the child workflow's memo, and
// the heartbeats of its running ones. A retry under way in a partition
// shows as the export's retry.
func partitionsProgress(ctx context.Context, c client.Client, s exportd.State) (exportd.State, error) {
	resp, err := c.DescribeWorkflowExecution(ctx, contract.PartitionsWorkflowID(s.Spec.ExportID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return s, nil // not started yet
	}
	if err != nil {
		return s, fmt.Errorf("error describing the partitions of export %s: %w", s.Spec.ExportID, err)
	}
	var p contract.PartitionsProgress
	if f, ok := resp.GetWorkflowExecutionInfo().GetMemo().GetFields()[contract.MemoPartitions]; ok {
		if err := converter.GetDefaultDataConverter().FromPayload(f, &p); err != nil {
			return s, fmt.Errorf("error decoding the progress of export %s: %w", s.Spec.ExportID, err)
		}
	}
	// Finished partitions, running ones by their heartbeats, and those
	// between attempts (or whose new attempt has not beaten yet) by what
	// they had shown.
	rows := p.Rows
	beating := map[int]bool{}
	for _, hb := range exportHeartbeats(resp.GetPendingActivities()) {
		rows += max(hb.Done, p.Shown[hb.Partition])
		beating[hb.Partition] = true
	}
	for part, shown := range p.Shown {
		if !beating[part] {
			rows += shown
		}
	}
	s.Progress.Rows = max(s.Progress.Rows, rows)
	if p.Retry != nil && s.Retry == nil {
		s.Retry = p.Retry
	}
	return s, nil
}

// stateOf decodes the memo's state and reconciles it with the workflow's
// own status, for executions that ended without publishing (terminated by
// an operator, timed out).
func stateOf(memo *commonpb.Memo, status enumspb.WorkflowExecutionStatus) (exportd.State, error) {
	var s exportd.State
	p, ok := memo.GetFields()[contract.MemoState]
	if !ok {
		return s, fmt.Errorf("export workflow has no %q memo", contract.MemoState)
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return s, fmt.Errorf("error decoding export state: %w", err)
	}
	if s.Phase.Final() {
		return s, nil
	}
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		s.Phase = exportd.PhaseFailed
		s.Error = &exportd.Failure{Code: "terminated", Message: "the export was terminated by an operator", Retryable: true}
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		s.Phase = exportd.PhaseFailed
		s.Error = &exportd.Failure{Code: "timeout", Message: "the export did not finish in time", Retryable: true}
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		s.Phase = exportd.PhaseCanceled
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		s.Phase = exportd.PhaseFailed
		if s.Error == nil {
			s.Error = &exportd.Failure{Code: exportd.CodeInternal, Message: "the export failed", Retryable: true}
		}
	}
	return s, nil
}

// Cancel asks an export to stop; a READY export has its files purged
// early. Canceling a finished export is a no-op.
func Cancel(ctx context.Context, c client.Client, exportID string) error {
	err := c.CancelWorkflow(ctx, contract.WorkflowID(exportID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil // already closed
	}
	if err != nil {
		return fmt.Errorf("error canceling export workflow: %w", err)
	}
	return nil
}

// Extend moves a READY export's expiry (capped at the maximum retention).
func Extend(ctx context.Context, c client.Client, exportID string, until time.Time) error {
	err := c.SignalWorkflow(ctx, contract.WorkflowID(exportID), "", contract.SignalExtend, contract.ExtendSignal{AvailableUntil: until})
	if err != nil {
		return fmt.Errorf("error signaling export workflow: %w", err)
	}
	return nil
}

// ListQuery filters List.
type ListQuery struct {
	MerchantID string
	Phase      exportd.Phase
	PageSize   int
	PageToken  []byte
}

// List returns exports from Temporal visibility, newest first, with the
// state in their memo (progress is as of the last phase change).
func List(ctx context.Context, c client.Client, q ListQuery) ([]exportd.State, []byte, error) {
	query := fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowName)
	if q.MerchantID != "" {
		query += fmt.Sprintf(" AND ExportMerchant = '%s'", escape(q.MerchantID))
	}
	if q.Phase != "" {
		query += fmt.Sprintf(" AND ExportPhase = '%s'", escape(string(q.Phase)))
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: query, PageSize: int32(q.PageSize), NextPageToken: q.PageToken,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("error listing export workflows: %w", err)
	}
	out := make([]exportd.State, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		s, err := stateOf(e.GetMemo(), e.GetStatus())
		if err != nil {
			continue // not one of ours
		}
		out = append(out, s)
	}
	return out, resp.GetNextPageToken(), nil
}

// escape makes s safe inside a single-quoted visibility query literal.
func escape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
