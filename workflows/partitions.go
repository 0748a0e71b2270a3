package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
)

// partitionsPerRun bounds the partitions one run of the child workflow
// starts before it continues as new, so its history stays bounded however
// many partitions an export has: about six events a partition.
const partitionsPerRun = 100

// PartitionsInput is the child workflow's input: the export, its plan,
// and where this run of the workflow starts.
type PartitionsInput struct {
	Spec        exportd.Spec `json:"spec"`
	Total       int64        `json:"total"`
	Partitions  int          `json:"partitions"`
	Parallelism int          `json:"parallelism"`
	// Next is the first partition this run starts; Rows and FileCount
	// are what the partitions before it wrote.
	Next      int   `json:"next"`
	Rows      int64 `json:"rows"`
	FileCount int   `json:"fileCount"`
	// RetryFor is the parent's recorded retry bound.
	RetryFor time.Duration `json:"retryFor"`
}

// PartitionsResult is what all partitions wrote.
type PartitionsResult struct {
	Rows      int64 `json:"rows"`
	FileCount int   `json:"fileCount"`
}

// partitions runs a partitioned export's partitions in the child
// workflow and returns what they wrote. Canceling the export cancels the
// child, and with it every running partition.
func (r *run) partitions(ctx workflow.Context, plan activities.PlanResult) (PartitionsResult, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    contract.PartitionsWorkflowID(r.state.Spec.ExportID),
		StaticSummary: fmt.Sprintf("%d partitions of export %s, %d at a time", plan.Partitions, r.state.Spec.ExportID, plan.Parallelism),
	})
	in := PartitionsInput{Spec: r.state.Spec, Total: plan.Total, Partitions: plan.Partitions,
		Parallelism: max(plan.Parallelism, 1), RetryFor: r.retryBound(ctx)}
	var res PartitionsResult
	err := workflow.ExecuteChildWorkflow(cctx, contract.PartitionsWorkflowName, in).Get(ctx, &res)
	return res, err
}

// ExportPartitions runs partitions [in.Next, in.Partitions) of an
// export, in.Parallelism at a time on any worker, each a step retried
// like the unpartitioned Export and resumed from the parts it recorded.
// After partitionsPerRun partitions it continues as new. The first
// failure cancels the partitions still running and fails the workflow
// with that failure's code.
func (c Config) ExportPartitions(ctx workflow.Context, in PartitionsInput) (PartitionsResult, error) {
	var a *activities.Activities
	end := min(in.Next+partitionsPerRun, in.Partitions)
	progress := contract.PartitionsProgress{Rows: in.Rows, Shown: map[int]int64{}}
	publish := func() error {
		return workflow.UpsertMemo(ctx, map[string]any{contract.MemoPartitions: progress})
	}
	if err := publish(); err != nil {
		return PartitionsResult{}, err
	}
	bound := func(workflow.Context) time.Duration { return in.RetryFor }
	if in.RetryFor <= 0 {
		bound = func(ctx workflow.Context) time.Duration { return recordBound(ctx, c.RetryFor) }
	}

	runCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	res := PartitionsResult{Rows: in.Rows, FileCount: in.FileCount}
	var firstErr error
	running := 0
	done := workflow.NewChannel(ctx)
	next := in.Next
	for next < end || running > 0 {
		for running < in.Parallelism && next < end && firstErr == nil {
			p := next
			next++
			running++
			s := step{name: fmt.Sprintf("partition %d", p), opts: exportOptions(in.Spec, fmt.Sprintf("partition %d of %d", p+1, in.Partitions)),
				fn: a.Export, bound: bound,
				input: func(n int, last contract.Heartbeat) any {
					return activities.ExportInput{Spec: in.Spec, Total: in.Total, Attempt: n, Shown: last.Done, Partitioned: true, Partition: p}
				},
				retried: func(ctx workflow.Context, retry *exportd.Retry, last contract.Heartbeat) error {
					progress.Retry = retry
					progress.Shown[p] = max(progress.Shown[p], last.Done)
					return publish()
				}}
			workflow.Go(runCtx, func(gctx workflow.Context) {
				var out activities.ExportResult
				err := s.run(gctx, &out)
				done.Send(gctx, partitionDone{partition: p, out: out, err: err})
			})
		}
		if running == 0 {
			break
		}
		var d partitionDone
		done.Receive(ctx, &d)
		running--
		if d.err != nil {
			if firstErr == nil {
				firstErr = d.err
				cancel() // the others stop; their results are drained below
			}
			continue
		}
		res.Rows += d.out.Rows
		res.FileCount += d.out.FileCount
		progress.Rows = res.Rows
		progress.Retry = nil
		delete(progress.Shown, d.partition)
		if err := publish(); err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	if firstErr != nil {
		return PartitionsResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return PartitionsResult{}, err
	}
	if end < in.Partitions {
		in.Next, in.Rows, in.FileCount = end, res.Rows, res.FileCount
		if in.RetryFor <= 0 {
			in.RetryFor = bound(ctx)
		}
		return PartitionsResult{}, workflow.NewContinueAsNewError(ctx, contract.PartitionsWorkflowName, in)
	}
	return res, nil
}

type partitionDone struct {
	partition int
	out       activities.ExportResult
	err       error
}
