package exportd

import (
	"fmt"
	"slices"
	"time"
)

// Dataset names what an export pages out of the source.
type Dataset string

// The datasets.
const (
	Orders   Dataset = "orders"   // one row per order, items and payments nested
	Payments Dataset = "payments" // one row per transaction
)

// Valid reports whether d is a known dataset.
func (d Dataset) Valid() bool { return d == Orders || d == Payments }

// Format names a file format an export writes.
type Format string

// The formats. Each streams with bounded memory.
const (
	Parquet Format = "parquet"
	Arrow   Format = "arrow"
	JSONL   Format = "jsonl.gz"
	CSV     Format = "csv.gz"
)

// Dialect formats: the file shapes the Clover and Doshii APIs serve.
const (
	// CloverJSON is {"elements": [...]} of Clover-shaped objects, at most
	// 1000 per file.
	CloverJSON Format = "clover-json"
	// DoshiiJSON is a gzip JSON array of Doshii-shaped orders.
	DoshiiJSON Format = "doshii-json.gzip"
)

// Formats lists the general formats in their canonical order.
var Formats = []Format{Parquet, Arrow, JSONL, CSV}

// Valid reports whether f is a known format.
func (f Format) Valid() bool {
	return slices.Contains(Formats, f) || f == CloverJSON || f == DoshiiJSON
}

// Ext returns the file name extension of the format, dot included.
func (f Format) Ext() string {
	switch f {
	case Arrow:
		return ".arrow"
	case Parquet:
		return ".parquet"
	case CloverJSON:
		return ".json"
	case DoshiiJSON:
		return ".json.gz"
	default:
		return "." + string(f)
	}
}

// DefaultMaxRowsPerFile is the part size when a request names none. All
// formats of one export rotate at the same row boundary, so part N of each
// format holds the same records.
const DefaultMaxRowsPerFile = 1_000_000

// Retention bounds how long files are kept after an export succeeds.
const (
	DefaultRetention = 24 * time.Hour
	MaxRetention     = 7 * 24 * time.Hour
)

// Mode is what an export selects: a window of the dataset by created_at
// (the default, written "" or "window"), or the changes since a cursor.
type Mode string

// The modes.
const (
	ModeWindow Mode = ""
	// ModeChanges exports every record of the merchant created, edited or
	// deleted after the mark of the change export Spec.Cursor came from,
	// up to a new mark; without a cursor, every current record (the
	// backfill). README "Keeping a copy in sync" has the guarantee.
	ModeChanges Mode = "changes"
)

// MaxCursorLen bounds a change cursor: its mark lists the transactions in
// progress when it was taken, so it is longer on a busy database.
const MaxCursorLen = 16 << 10

// Spec is what an export asks for, after validation. It is the plain-JSON
// input of ExportWorkflow, so a Spec written by hand starts an export too.
type Spec struct {
	ExportID   string  `json:"exportId"`
	AppID      string  `json:"appId,omitempty"`
	MerchantID string  `json:"merchantId"`
	Dataset    Dataset `json:"dataset"`
	// Mode is ModeWindow (Start and End required) or ModeChanges (Start
	// and End absent, Cursor optional).
	Mode  Mode      `json:"mode,omitempty"`
	Start time.Time `json:"start,omitzero"` // inclusive
	End   time.Time `json:"end,omitzero"`   // exclusive
	// Cursor is, for a change export, the nextCursor of the previous
	// change export of the same merchant, dataset and app, as that
	// export's status gave it; empty for the backfill. The worker opens it
	// (Cursors) and refuses one that is forged or not this export's.
	Cursor         string   `json:"cursor,omitempty"`
	Formats        []Format `json:"formats"`
	MaxRowsPerFile int      `json:"maxRowsPerFile,omitempty"`
	// Parallelism, when set, lowers how many partitions of a large export
	// run at once below the workers' EXPORTD_EXPORT_PARALLELISM.
	Parallelism int      `json:"parallelism,omitempty"`
	Locations   []string `json:"locations,omitempty"`
	Retention   Duration `json:"retention,omitempty"`
	// Webhook, when set, is POSTed the export's status document when it
	// succeeds or fails. The native API sets it from callbackUrl.
	Webhook *Webhook `json:"webhook,omitempty"`
}

// Webhook is where and how an export's completion is announced.
type Webhook struct {
	URL string `json:"url"`
	// Headers are sent as given, as the Doshii dialect lets clients ask;
	// they never override the signature headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Dialect names the status document sent: "" (native), "doshii".
	Dialect string `json:"dialect,omitempty"`
}

// Normalize fills defaults and validates the spec. It returns a
// *ValidationError naming the first bad field.
func (s *Spec) Normalize() error {
	if !ValidID(s.ExportID) {
		return &ValidationError{Field: "exportId", Reason: "must be 1-64 characters of letters, digits, '-' or '_'"}
	}
	if s.MerchantID == "" {
		return &ValidationError{Field: "merchantId", Reason: "is required"}
	}
	if !s.Dataset.Valid() {
		return &ValidationError{Field: "dataset", Reason: fmt.Sprintf("must be %q or %q", Orders, Payments)}
	}
	if err := s.normalizeMode(); err != nil {
		return err
	}
	if len(s.Formats) == 0 {
		s.Formats = []Format{Parquet}
	}
	seen := map[Format]bool{}
	for _, f := range s.Formats {
		if !f.Valid() {
			return &ValidationError{Field: "formats", Reason: fmt.Sprintf("unknown format %q (known: parquet, arrow, jsonl.gz, csv.gz)", f)}
		}
		if seen[f] {
			return &ValidationError{Field: "formats", Reason: fmt.Sprintf("format %q given twice", f)}
		}
		seen[f] = true
	}
	if s.MaxRowsPerFile == 0 {
		s.MaxRowsPerFile = DefaultMaxRowsPerFile
	}
	if s.MaxRowsPerFile < 1 || s.MaxRowsPerFile > 100_000_000 {
		return &ValidationError{Field: "maxRowsPerFile", Reason: "must be between 1 and 100000000"}
	}
	if s.Parallelism < 0 || s.Parallelism > 64 {
		return &ValidationError{Field: "parallelism", Reason: "must be between 1 and 64 (0 or absent: the service's setting)"}
	}
	if s.Retention == 0 {
		s.Retention = Duration(DefaultRetention)
	}
	if s.Webhook != nil && (s.Webhook.URL == "" || len(s.Webhook.URL) > 2048 || len(s.Webhook.Headers) > 50) {
		return &ValidationError{Field: "callbackUrl", Reason: "must be a URL of at most 2048 characters (with at most 50 headers)"}
	}
	if s.Retention < Duration(time.Minute) || s.Retention > Duration(MaxRetention) {
		return &ValidationError{Field: "retention", Reason: fmt.Sprintf("must be between 1m and %s", MaxRetention)}
	}
	return nil
}

// normalizeMode checks the fields that select the records: a window, or
// the changes since a cursor.
func (s *Spec) normalizeMode() error {
	switch s.Mode {
	case ModeWindow, "window":
		s.Mode = ModeWindow
	case ModeChanges:
		switch {
		case !s.Start.IsZero():
			return &ValidationError{Field: "start", Reason: "must not be given with mode \"changes\": a change export selects by cursor, not by time"}
		case !s.End.IsZero():
			return &ValidationError{Field: "end", Reason: "must not be given with mode \"changes\": a change export selects by cursor, not by time"}
		case len(s.Locations) > 0:
			// An order moved out of the chosen locations would vanish from
			// the copy without a delete: a change export takes them all.
			return &ValidationError{Field: "locations", Reason: "must not be given with mode \"changes\": a change export covers every location"}
		case len(s.Cursor) > MaxCursorLen:
			return &ValidationError{Field: "cursor", Reason: "is not a cursor this service issued (too long)"}
		}
		for _, f := range s.Formats {
			if f.Valid() && !slices.Contains(Formats, f) {
				return &ValidationError{Field: "formats", Reason: fmt.Sprintf("format %q cannot carry a change export's deletes; use parquet, arrow, jsonl.gz or csv.gz", f)}
			}
		}
		return nil
	default:
		return &ValidationError{Field: "mode", Reason: fmt.Sprintf("must be \"window\" (the default) or \"changes\", not %q", s.Mode)}
	}
	if s.Cursor != "" {
		return &ValidationError{Field: "cursor", Reason: "is only for mode \"changes\""}
	}
	if s.Start.IsZero() || s.End.IsZero() {
		return &ValidationError{Field: "start", Reason: "start and end are required"}
	}
	s.Start, s.End = s.Start.UTC(), s.End.UTC()
	if !s.Start.Before(s.End) {
		return &ValidationError{Field: "end", Reason: "must be after start (the window is [start, end))"}
	}
	return nil
}

// ValidID reports whether s can name an export: 1-64 letters, digits, '-'
// or '_'. Anything else is refused before it is looked up anywhere.
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ValidationError says which field of a request is wrong and why.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + " " + e.Reason }

// Tally summarises the records of an export.
type Tally struct {
	Locations    int   `json:"locations"`    // distinct locations seen
	Orders       int64 `json:"orders"`       // distinct orders seen
	Transactions int64 `json:"transactions"` // transactions seen
	Amount       int64 `json:"amount"`       // sum of transaction amounts, cents
}

// FileInfo describes one committed result file.
type FileInfo struct {
	Name     string `json:"name"`
	Format   Format `json:"format"`
	Part     int    `json:"part"`
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	FirstKey Key    `json:"firstKey"`
	LastKey  Key    `json:"lastKey"`
}

// SchemaVersion is the version of the exported record layout and manifest.
const SchemaVersion = 1

// Manifest is manifest.json: what an export produced and how to verify it.
type Manifest struct {
	ExportID   string    `json:"exportId"`
	MerchantID string    `json:"merchantId"`
	Dataset    Dataset   `json:"dataset"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	// Mode, Cursor and NextCursor describe a change export: the cursor it
	// started from (empty: the backfill) and the one the next starts from.
	Mode          Mode       `json:"mode,omitempty"`
	Cursor        string     `json:"cursor,omitempty"`
	NextCursor    string     `json:"nextCursor,omitempty"`
	GeneratedAt   time.Time  `json:"generatedAt"`
	SchemaVersion int        `json:"schemaVersion"`
	Rows          int64      `json:"rows"`
	Files         []FileInfo `json:"files"`
	Tally         Tally      `json:"tally"`
	Totals        Totals     `json:"totals"`
}

// Totals sums the money columns of the exported rows.
type Totals struct {
	Subtotal int64 `json:"subtotal,omitempty"`
	Tax      int64 `json:"tax,omitempty"`
	Tip      int64 `json:"tip,omitempty"`
	Total    int64 `json:"total,omitempty"`  // orders: sum of order totals
	Amount   int64 `json:"amount,omitempty"` // payments: sum of amounts
}

// ManifestName is the object name of the manifest within an export.
const ManifestName = "manifest.json"
