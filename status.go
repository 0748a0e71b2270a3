package exportd

import (
	"encoding/json"
	"fmt"
	"time"
)

// Phase is the workflow's view of an export's life.
type Phase string

// The phases: QUEUED -> EXPORTING -> READY -> EXPIRED, or FAILED / CANCELED.
const (
	PhaseQueued    Phase = "QUEUED"
	PhaseExporting Phase = "EXPORTING"
	PhaseReady     Phase = "READY"
	PhaseExpired   Phase = "EXPIRED"
	PhaseFailed    Phase = "FAILED"
	PhaseCanceled  Phase = "CANCELED"
)

// Final reports whether no further phase follows p.
func (p Phase) Final() bool {
	return p == PhaseExpired || p == PhaseFailed || p == PhaseCanceled
}

// Status is the native API's name for a phase.
func (p Phase) Status() string {
	switch p {
	case PhaseQueued:
		return "queued"
	case PhaseExporting:
		return "running"
	case PhaseReady:
		return "succeeded"
	case PhaseExpired:
		return "expired"
	case PhaseFailed:
		return "failed"
	case PhaseCanceled:
		return "canceled"
	}
	return "queued"
}

// Progress is how far the export activity has come.
type Progress struct {
	Rows  int64 `json:"rows"`
	Total int64 `json:"total"`
}

// Percent returns rows done over rows planned, 0-100; an empty export is
// 100% once it has been planned.
func (p Progress) Percent() float64 {
	if p.Total <= 0 {
		return 0
	}
	v := float64(p.Rows) * 100 / float64(p.Total)
	if v > 100 {
		v = 100
	}
	return v
}

// State is what the workflow publishes about an export: kept in the
// workflow memo so that it is readable without a worker, and returned by
// the status query.
type State struct {
	Spec     Spec     `json:"spec"`
	Phase    Phase    `json:"phase"`
	Progress Progress `json:"progress"`
	// QueuePosition counts the exports ahead of a QUEUED one.
	QueuePosition  *int       `json:"queuePosition,omitempty"`
	Tally          *Tally     `json:"tally,omitempty"`
	Rows           int64      `json:"rows"`
	Files          int        `json:"files"`
	CreatedAt      time.Time  `json:"createdAt"`
	StartedAt      *time.Time `json:"startedAt,omitempty"`
	CompletedAt    *time.Time `json:"completedAt,omitempty"`
	AvailableUntil *time.Time `json:"availableUntil,omitempty"`
	Error          *Failure   `json:"error,omitempty"`
	// NextCursor is set when a change export succeeds: the cursor of the
	// next change export of the same merchant, dataset and app.
	NextCursor string `json:"nextCursor,omitempty"`
	// Retry is set while a step is being retried after a failure that
	// may heal; it clears when the step succeeds.
	Retry *Retry `json:"retry,omitempty"`
	// Partitions counts the partitions of a partitioned export, which
	// run in the child workflow PartitionsWorkflowID(exportId); zero or
	// one: the export is not partitioned.
	Partitions int `json:"partitions,omitempty"`
}

// Retry says that an export is retrying a step, why, and when it tries
// next. Retries are bounded: past the bound the export fails.
type Retry struct {
	Step          string    `json:"step"`
	Attempt       int       `json:"attempt"` // the attempt that runs next, 2 or more
	LastError     string    `json:"lastError"`
	Code          string    `json:"code"`
	NextAttemptAt time.Time `json:"nextAttemptAt"`
}

// Failure is an error the user can act on.
type Failure struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// Error codes carried by an Error and by failures. Each API dialect maps
// them, in one table of its own, to its HTTP status and error body.
const (
	// CodeInvalidRequest: the request is wrong; Error.Field names the
	// field when one is to blame.
	CodeInvalidRequest = "invalid_request"
	// CodeUnauthorized: credentials are missing, wrong or expired.
	CodeUnauthorized = "unauthorized"
	// CodeNotFound: no such export, file or merchant for this app; the
	// same answer whether or not it exists for someone else.
	CodeNotFound = "not_found"
	// CodeNotReady: the export has not succeeded yet, so it has no files.
	CodeNotReady = "not_ready"
	// CodeGone: the export expired and its files were deleted.
	CodeGone = "gone"
	// CodeIdempotencyConflict: an idempotency key was reused with a
	// different request.
	CodeIdempotencyConflict = "idempotency_conflict"
	// CodeOverLimit: too many exports are waiting; retry after
	// Error.RetryAfter.
	CodeOverLimit = "over_limit"
	// CodeOutsideHours: new exports are accepted during service hours
	// only; they next open after Error.RetryAfter.
	CodeOutsideHours = "outside_service_hours"
	// CodeUnavailable: a dependency is not answering, or the request
	// was canceled; retrying later may succeed.
	CodeUnavailable  = "unavailable"
	CodeSourceError  = "source_error"
	CodeStorageError = "storage_error"
	CodeInternal     = "internal"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("24h", "90m") and also reads a number of seconds.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"24h\" or a number of seconds")
	}
	if secs < 0 || secs > float64(1<<62)/float64(time.Second) {
		return fmt.Errorf("duration out of range")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
