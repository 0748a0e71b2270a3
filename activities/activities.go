// Package activities holds the side effects of an export: counting the
// source, writing and committing the files, the manifest, and the purge.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/webhook"
)

// Source is the PostgreSQL side of an export; *postgres.Source implements
// it, and tests wrap it to inject faults.
type Source interface {
	Count(ctx context.Context, q postgres.Query) (int64, error)
	Boundaries(ctx context.Context, q postgres.Query, size int64) ([]exportd.Key, error)
	Stream(ctx context.Context, q postgres.Query, fn func(*exportd.Batch) error) error
	DistinctOrders(ctx context.Context, q postgres.Query, through exportd.Key) (int64, error)
	// Change exports (README "Keeping a copy in sync").
	OpenChanges(ctx context.Context) (*postgres.Changes, error)
	CountChanges(ctx context.Context, c *postgres.Changes, q postgres.ChangeQuery) (int64, error)
	StreamChanges(ctx context.Context, c *postgres.Changes, q postgres.ChangeQuery, fn func(*exportd.Batch) error) error
}

// Records is where an export's committed parts and files are recorded;
// *postgres.Files implements it.
type Records interface {
	CommitParts(ctx context.Context, ps []postgres.Part) error
	ResumeRange(ctx context.Context, exportID string, from, to int) (postgres.Resume, error)
	SavePartitions(ctx context.Context, exportID string, ps []postgres.Partition) error
	Partition(ctx context.Context, exportID string, index int) (postgres.Partition, error)
	Summary(ctx context.Context, exportID string) (postgres.Summary, error)
	Each(ctx context.Context, exportID string, fn func(exportd.FileInfo) error) error
	Delete(ctx context.Context, exportID string) error
}

// Activities holds the dependencies of the export activities; the worker
// registers its methods.
type Activities struct {
	Source  Source
	Store   blob.Store
	Records Records
	Logger  *slog.Logger
	// Now is the clock that paces progress heartbeats.
	Now func() time.Time
	// ProgressEvery is how often the Export activity reports rows read
	// between part commits; zero means two seconds.
	ProgressEvery time.Duration
	// Queue admits exports within Limits; nil admits every export at once.
	Queue  Queue
	Limits postgres.Limits
	// Webhooks delivers, Renderer writes and Secrets signs export
	// webhooks; without them an export that asks for one fails to notify.
	Webhooks *webhook.Sender
	Renderer Renderer
	Secrets  Secrets
	// Metrics counts rows and bytes committed and times Export attempts;
	// nil records nothing.
	Metrics *metrics.Registry
	// PartitionRows is the target size of a partition; an export with
	// more rows is split into partitions that run concurrently, each a
	// whole number of parts. Zero never partitions.
	PartitionRows int64
	// Parallelism bounds the partitions of one export running at once;
	// a request may ask for fewer. Zero means DefaultParallelism.
	Parallelism int
	// Cursors seals the nextCursor of change exports and opens the cursor
	// they start from; the API shares its key.
	Cursors exportd.Cursors
	// Schedules keeps the spec, cursor and runs of schedules of change
	// exports; nil fails every scheduled run.
	Schedules ScheduleStore
}

// Partitioning defaults.
const (
	DefaultPartitionRows = 1_000_000
	DefaultParallelism   = 4
)

// Plan counts the rows an export will write and, for an export larger
// than a partition, splits its window into partitions of equal rows along
// the export's key order, recorded in PostgreSQL. Boundaries are taken
// from the data at whole parts, so the same data and request give the
// same partitions, and the same files as an unpartitioned export.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (PlanResult, error) {
	spec := in.Spec
	if spec.Mode == exportd.ModeChanges {
		return a.planChanges(ctx, spec)
	}
	q := query(spec, exportd.Key{})
	n, err := a.Source.Count(ctx, q)
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "counting the rows", err, nil)
	}
	res := PlanResult{Total: n, Partitions: 1, Parallelism: a.parallelism(spec)}
	size := partitionSize(a.PartitionRows, spec.MaxRowsPerFile)
	if size == 0 || n <= size {
		return res, nil
	}
	keys, err := a.Source.Boundaries(ctx, q, size)
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "planning partitions", err, nil)
	}
	per := int(size / int64(spec.MaxRowsPerFile))
	ps := make([]postgres.Partition, len(keys))
	for i, k := range keys {
		ps[i] = postgres.Partition{Index: i, Through: k, Rows: size, BasePart: i * per, Parts: per}
		if i > 0 {
			ps[i].After = keys[i-1]
		}
	}
	// The last partition takes what the count says is left, and owns
	// every part number after its first: nothing follows it.
	last := &ps[len(ps)-1]
	last.Rows = max(n-int64(len(ps)-1)*size, 0)
	last.Parts = 0
	if len(ps) == 1 {
		return res, nil
	}
	if err := a.Records.SavePartitions(ctx, spec.ExportID, ps); err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "recording partitions", err, nil)
	}
	res.Partitions = len(ps)
	return res, nil
}

// partitionSize is the partition size for a target and a part size: the
// target rounded to whole parts, at least one part; zero for no target.
func partitionSize(target int64, rowsPerFile int) int64 {
	if target <= 0 || rowsPerFile <= 0 {
		return 0
	}
	parts := max((target+int64(rowsPerFile)/2)/int64(rowsPerFile), 1)
	return parts * int64(rowsPerFile)
}

func (a *Activities) parallelism(spec exportd.Spec) int {
	p := a.Parallelism
	if p <= 0 {
		p = DefaultParallelism
	}
	if spec.Parallelism > 0 {
		p = min(p, spec.Parallelism)
	}
	return p
}

// Export writes an export's data files, or one partition's, in one pass
// over the source, resuming after the last part an earlier attempt
// recorded.
func (a *Activities) Export(ctx context.Context, in ExportInput) (res ExportResult, err error) {
	log := a.exportLogger(ctx, in.Spec)
	started := a.now()
	defer func() { a.observeExport(ctx, log, in.Spec, started, res, err) }()
	if in.Spec.Mode == exportd.ModeChanges {
		return a.exportChanges(ctx, in)
	}
	bounds := postgres.Partition{Parts: 0}
	if in.Partitioned {
		if bounds, err = a.Records.Partition(ctx, in.Spec.ExportID, in.Partition); err != nil {
			return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading the partition", err, nil)
		}
		log = log.With("partition", in.Partition)
	}
	to := 1<<31 - 1
	if bounds.Parts > 0 {
		to = bounds.BasePart + bounds.Parts
	}
	from, err := a.Records.ResumeRange(ctx, in.Spec.ExportID, bounds.BasePart, to)
	if err != nil {
		return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading where to resume", err, nil)
	}
	// Parts an earlier attempt wrote but never recorded are written
	// again, to the same bytes, under this attempt's upload names; the
	// uploads an attempt left behind are discarded here when the export
	// is one activity, or by Finalize when partitions run side by side
	// and one partition's attempt must not delete another's.
	if !in.Partitioned {
		if err := a.Store.DeleteUploads(ctx, in.Spec.ExportID+"/"); err != nil {
			return ExportResult{}, classify(ctx, exportd.CodeStorageError, "discarding uncommitted parts", err, nil)
		}
	}
	e := newExporter(ctx, a, in.Spec, from, in.Total, attemptTag(ctx, in.Attempt))
	e.first, e.end, e.shown = bounds.BasePart, to, in.Shown
	e.beat.Partition = in.Partition
	e.emptyFiles = !in.Partitioned
	if from.Rows > 0 {
		log.Info("resuming export", "part", from.Part, "rows", from.Rows, "cursor", from.Cursor)
	}
	// A resumed attempt shows its progress at once. A fresh one waits for
	// rows to report: the SDK sends the first heartbeat at once and holds
	// the next ones back for seconds, so a first heartbeat of zero rows
	// would hide the progress of a short export.
	if from.Rows > 0 || in.Shown > 0 {
		e.heartbeat(a.now())
	}
	q := query(in.Spec, from.Cursor)
	if from.Cursor.IsZero() {
		q.After = bounds.After
	}
	q.Through = bounds.Through
	if err := a.Source.Stream(ctx, q, e.write); err != nil {
		e.abort()
		// What was committed is recorded if the database allows, so the
		// next attempt need not write it again.
		_ = e.record()
		return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading the source", err, &e.beat)
	}
	if err := e.finish(); err != nil {
		e.abort()
		return ExportResult{}, classify(ctx, exportd.CodeStorageError, "writing the files", err, &e.beat)
	}
	return ExportResult{Rows: e.beat.Rows, Parts: e.beat.Part - e.first, FileCount: (e.beat.Part - e.first) * len(in.Spec.Formats)}, nil
}

// Finalize writes manifest.json from the export's recorded files,
// streaming them, so the manifest is complete however many there are.
// Its content depends only on the export, so a retried Finalize writes
// the same bytes.
func (a *Activities) Finalize(ctx context.Context, in FinalizeInput) (FinalizeResult, error) {
	spec := in.Spec
	if err := a.Store.DeleteUploads(ctx, spec.ExportID+"/"); err != nil {
		return FinalizeResult{}, classify(ctx, exportd.CodeStorageError, "discarding uncommitted parts", err, nil)
	}
	sum, err := a.Records.Summary(ctx, spec.ExportID)
	if err != nil {
		return FinalizeResult{}, classify(ctx, exportd.CodeSourceError, "reading the recorded files", err, nil)
	}
	tally := sum.Tally
	if spec.Dataset == exportd.Payments && sum.Rows > 0 && spec.Mode != exportd.ModeChanges {
		// Distinct orders of a payments export are not a sum over parts;
		// the database counts them over exactly the exported range.
		n, err := a.Source.DistinctOrders(ctx, query(spec, exportd.Key{}), sum.LastKey)
		if err != nil {
			return FinalizeResult{}, classify(ctx, exportd.CodeSourceError, "counting distinct orders", err, nil)
		}
		tally.Orders = n
	}
	m := exportd.Manifest{
		ExportID:      spec.ExportID,
		MerchantID:    spec.MerchantID,
		Dataset:       spec.Dataset,
		Start:         spec.Start,
		End:           spec.End,
		Mode:          spec.Mode,
		Cursor:        spec.Cursor,
		NextCursor:    in.NextCursor,
		GeneratedAt:   in.GeneratedAt.UTC(),
		SchemaVersion: exportd.SchemaVersion,
		Rows:          sum.Rows,
		Tally:         tally,
		Totals:        sum.Totals,
	}
	up, err := a.Store.Create(ctx, spec.ExportID+"/"+exportd.ManifestName, attemptTag(ctx, in.Attempt))
	if err != nil {
		return FinalizeResult{}, classify(ctx, exportd.CodeStorageError, "creating the manifest", err, nil)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(up, h)}
	if err := writeManifest(cw, m, func(fn func(exportd.FileInfo) error) error {
		return a.Records.Each(ctx, spec.ExportID, fn)
	}); err != nil {
		_ = up.Abort()
		return FinalizeResult{}, classify(ctx, exportd.CodeStorageError, "writing the manifest", err, nil)
	}
	if err := up.Commit(); err != nil {
		return FinalizeResult{}, classify(ctx, exportd.CodeStorageError, "committing the manifest", err, nil)
	}
	return FinalizeResult{Tally: tally, Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Purge deletes every file of an export, committed or not.
func (a *Activities) Purge(ctx context.Context, in PurgeInput) (PurgeResult, error) {
	if in.ExportID == "" || !blob.ValidKey(in.ExportID) {
		return PurgeResult{}, fmt.Errorf("invalid export id %q", in.ExportID)
	}
	if err := a.Store.DeletePrefix(ctx, in.ExportID+"/"); err != nil {
		return PurgeResult{}, classify(ctx, exportd.CodeStorageError, "deleting the files", err, nil)
	}
	// The record goes after the files: a purge cut short in between is
	// retried and still finds what to delete.
	if err := a.Records.Delete(ctx, in.ExportID); err != nil {
		return PurgeResult{}, classify(ctx, exportd.CodeSourceError, "forgetting the files", err, nil)
	}
	return PurgeResult{Purged: true}, nil
}

func (a *Activities) logger(ctx context.Context) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	info := activity.GetInfo(ctx)
	return l.With("workflow_id", info.WorkflowExecution.ID, "activity", info.ActivityType.Name, "attempt", info.Attempt)
}

// attemptTag names an attempt's uploads: the workflow's attempt number
// when it retries the step itself, else Temporal's.
func attemptTag(ctx context.Context, attempt int) string {
	return fmt.Sprintf("attempt%d", max(attempt, int(activity.GetInfo(ctx).Attempt)))
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func query(s exportd.Spec, after exportd.Key) postgres.Query {
	return postgres.Query{
		MerchantID: s.MerchantID,
		Dataset:    s.Dataset,
		Start:      s.Start,
		End:        s.End,
		Locations:  s.Locations,
		After:      after,
	}
}
