// Package worker wires the export workflow and activities onto the
// exports task queue.
package worker

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	sdkworker "go.temporal.io/sdk/worker"

	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/workflows"
)

// Options tunes a worker.
type Options struct {
	// MaxConcurrentExports bounds the export activities this worker runs
	// at once; zero means two, one per core of a small machine.
	MaxConcurrentExports int
	// Workflow is the export workflow's configuration (its retry bound).
	Workflow workflows.Config
}

// New returns a worker, not yet started, that runs ExportWorkflow and the
// methods of a on contract.TaskQueue.
func New(c client.Client, a *activities.Activities, o Options) sdkworker.Worker {
	if o.MaxConcurrentExports <= 0 {
		o.MaxConcurrentExports = 2
	}
	w := sdkworker.New(c, contract.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityExecutionSize: o.MaxConcurrentExports,
		// A stopping worker lets a running export reach its next heartbeat
		// instead of dropping it mid-part.
		WorkerStopTimeout: 10 * time.Second,
		// The SDK otherwise holds heartbeats back for 0.8 x the heartbeat
		// timeout (16 s): the checkpoint after each commit and the
		// progress would reach Temporal that late, so a crashed attempt
		// would resume up to 16 s behind its last commit and percent
		// complete would move once per 16 s. Not much lower: the SDK
		// gives a heartbeat RPC this long before it cancels the attempt,
		// and at 1 s a loaded Temporal caused needless retries.
		MaxHeartbeatThrottleInterval: 5 * time.Second,
	})
	Register(w, a, o.Workflow)
	return w
}

// Register registers the export workflow, configured by cfg, the
// scheduled run of change exports and the activities on r; replay and workflow tests use it so they see the same
// names as production.
func Register(r sdkworker.Registry, a *activities.Activities, cfg workflows.Config) {
	r.RegisterWorkflowWithOptions(cfg.Export, workflow.RegisterOptions{Name: contract.WorkflowName})
	r.RegisterWorkflowWithOptions(cfg.ExportPartitions, workflow.RegisterOptions{Name: contract.PartitionsWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ScheduledExport, workflow.RegisterOptions{Name: contract.ScheduledExportWorkflowName})
	r.RegisterActivity(a)
}
