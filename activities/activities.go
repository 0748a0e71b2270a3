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
	Stream(ctx context.Context, q postgres.Query, fn func(*exportd.Batch) error) error
	DistinctOrders(ctx context.Context, q postgres.Query, through exportd.Key) (int64, error)
}

// Records is where an export's committed parts and files are recorded;
// *postgres.Files implements it.
type Records interface {
	CommitPart(ctx context.Context, p postgres.Part) error
	Resume(ctx context.Context, exportID string) (postgres.Resume, error)
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
}

// Plan counts the rows an export will write.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (PlanResult, error) {
	n, err := a.Source.Count(ctx, query(in.Spec, exportd.Key{}))
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "counting the rows", err, nil)
	}
	return PlanResult{Total: n}, nil
}

// Export writes an export's data files in one pass over the source,
// resuming after the last part an earlier attempt recorded.
func (a *Activities) Export(ctx context.Context, in ExportInput) (res ExportResult, err error) {
	log := a.exportLogger(ctx, in.Spec)
	started := a.now()
	defer func() { a.observeExport(ctx, log, in.Spec, started, res, err) }()
	from, err := a.Records.Resume(ctx, in.Spec.ExportID)
	if err != nil {
		return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading where to resume", err, nil)
	}
	// Parts an earlier attempt wrote but never recorded are discarded, or
	// written again to the same bytes.
	if err := a.Store.DeleteUploads(ctx, in.Spec.ExportID+"/"); err != nil {
		return ExportResult{}, classify(ctx, exportd.CodeStorageError, "discarding uncommitted parts", err, nil)
	}
	e := newExporter(ctx, a, in.Spec, from, in.Total, attemptTag(ctx, in.Attempt))
	if from.Rows > 0 {
		log.Info("resuming export", "part", from.Part, "rows", from.Rows, "cursor", from.Cursor)
	}
	// Progress shows at once, the resumed rows included.
	e.heartbeat(a.now())
	if err := a.Source.Stream(ctx, query(in.Spec, from.Cursor), e.write); err != nil {
		e.abort()
		return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading the source", err, &e.beat)
	}
	if err := e.finish(); err != nil {
		e.abort()
		return ExportResult{}, classify(ctx, exportd.CodeStorageError, "writing the files", err, &e.beat)
	}
	return ExportResult{Rows: e.beat.Rows, Parts: e.beat.Part, FileCount: e.beat.Part * len(in.Spec.Formats)}, nil
}

// Finalize writes manifest.json from the export's recorded files,
// streaming them, so the manifest is complete however many there are.
// Its content depends only on the export, so a retried Finalize writes
// the same bytes.
func (a *Activities) Finalize(ctx context.Context, in FinalizeInput) (FinalizeResult, error) {
	spec := in.Spec
	sum, err := a.Records.Summary(ctx, spec.ExportID)
	if err != nil {
		return FinalizeResult{}, classify(ctx, exportd.CodeSourceError, "reading the recorded files", err, nil)
	}
	tally := sum.Tally
	if spec.Dataset == exportd.Payments && sum.Rows > 0 {
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
