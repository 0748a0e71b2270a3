package activities

import (
	"time"

	"github.com/exportd/exportd"
)

// PlanInput asks how many rows an export will write.
type PlanInput struct {
	Spec exportd.Spec `json:"spec"`
}

// PlanResult is the planned row count, the denominator of percent complete.
type PlanResult struct {
	Total int64 `json:"total"`
}

// ExportInput asks the Export activity to write an export's data files.
type ExportInput struct {
	Spec  exportd.Spec `json:"spec"`
	Total int64        `json:"total"`
}

// ExportResult describes the committed data files and what they hold.
type ExportResult struct {
	Files  []exportd.FileInfo `json:"files"`
	Rows   int64              `json:"rows"`
	Tally  exportd.Tally      `json:"tally"`
	Totals exportd.Totals     `json:"totals"`
}

// Checkpoint is the Export activity's heartbeat detail. Everything but
// Done describes the last committed part, which is where a retried attempt
// resumes; Done counts rows read so far, for percent complete.
type Checkpoint struct {
	// Done and Total come first so operators see progress at the top of
	// the heartbeat details in the Web UI; fields decode by name.
	Done      int64              `json:"done"`
	Total     int64              `json:"total"`
	Cursor    exportd.Key        `json:"cursor"`
	Part      int                `json:"part"` // next part number
	Rows      int64              `json:"rows"` // rows committed
	Tally     exportd.Tally      `json:"tally"`
	Totals    exportd.Totals     `json:"totals"`
	Locations []string           `json:"locations,omitempty"` // distinct, sorted
	Files     []exportd.FileInfo `json:"files"`
}

// FinalizeInput asks for the manifest of a finished export.
type FinalizeInput struct {
	Spec        exportd.Spec `json:"spec"`
	Export      ExportResult `json:"export"`
	GeneratedAt time.Time    `json:"generatedAt"`
}

// FinalizeResult describes the committed manifest. It carries the final
// tally, not the manifest, to keep the workflow history small.
type FinalizeResult struct {
	Tally  exportd.Tally `json:"tally"`
	Bytes  int64         `json:"bytes"`
	SHA256 string        `json:"sha256"`
}

// PurgeInput names the export whose files are deleted.
type PurgeInput struct {
	ExportID string `json:"exportId"`
}

// PurgeResult confirms a purge.
type PurgeResult struct {
	Purged bool `json:"purged"`
}
