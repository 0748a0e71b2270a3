package activities

import (
	"time"

	"github.com/exportd/exportd"
)

// PlanInput asks how many rows an export will write.
type PlanInput struct {
	Spec exportd.Spec `json:"spec"`
}

// PlanResult is the planned row count, the denominator of percent
// complete, and how the export runs: as one Export, or as Partitions
// partitions (recorded in PostgreSQL) with up to Parallelism at once.
type PlanResult struct {
	Total       int64 `json:"total"`
	Partitions  int   `json:"partitions,omitempty"`
	Parallelism int   `json:"parallelism,omitempty"`
}

// ExportInput asks the Export activity to write an export's data files.
type ExportInput struct {
	Spec  exportd.Spec `json:"spec"`
	Total int64        `json:"total"`
	// Attempt numbers the workflow's attempts at this step, from 1; each
	// is an activity execution of its own, whose uploads it names.
	Attempt int `json:"attempt,omitempty"`
	// Shown is the progress earlier attempts reported; this one reports
	// no less, so progress never goes back.
	Shown int64 `json:"shown,omitempty"`
	// Partitioned exports partition Partition of the export's recorded
	// plan; otherwise the whole window.
	Partitioned bool `json:"partitioned,omitempty"`
	Partition   int  `json:"partition,omitempty"`
}

// ExportResult says how much the Export activity wrote. The files
// themselves are recorded in PostgreSQL as their parts commit: this
// result, like every payload, is the same size for 10 files or 100,000.
type ExportResult struct {
	Rows      int64 `json:"rows"`
	Parts     int   `json:"parts"`
	FileCount int   `json:"fileCount"` // not "files": histories recorded before carry a list there
	// NextCursor is a change export's sealed nextCursor: its mark, which
	// the next change export of the chain starts after.
	NextCursor string `json:"nextCursor,omitempty"`
}

// FinalizeInput asks for the manifest of a finished export; the files
// are read from their records.
type FinalizeInput struct {
	Spec        exportd.Spec `json:"spec"`
	GeneratedAt time.Time    `json:"generatedAt"`
	Attempt     int          `json:"attempt,omitempty"`
	// NextCursor is a change export's, for the manifest.
	NextCursor string `json:"nextCursor,omitempty"`
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
