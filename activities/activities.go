// Package activities holds the side effects of an export: counting the
// source, writing and committing the files, the manifest, and the purge.
package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

// Activities holds the dependencies of the export activities; the worker
// registers its methods.
type Activities struct {
	Source Source
	Store  blob.Store
	Logger *slog.Logger
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
		return PlanResult{}, fmt.Errorf("error counting rows: %w", err)
	}
	return PlanResult{Total: n}, nil
}

// Export writes an export's data files in one pass over the source,
// resuming after the last part committed by an earlier attempt.
func (a *Activities) Export(ctx context.Context, in ExportInput) (res ExportResult, err error) {
	log := a.exportLogger(ctx, in.Spec)
	started := a.now()
	defer func() { a.observeExport(ctx, log, in.Spec, started, res, err) }()
	var cp Checkpoint
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &cp); err != nil {
			log.Warn("unreadable checkpoint, starting over", "error", err)
			cp = Checkpoint{}
		}
	}
	cp.Total = in.Total
	// Parts an earlier attempt wrote but never committed are discarded;
	// parts it committed after its last heartbeat are written again, to
	// the same bytes.
	if err := a.Store.DeleteUploads(ctx, in.Spec.ExportID+"/"); err != nil {
		return ExportResult{}, fmt.Errorf("error discarding uncommitted parts: %w", err)
	}
	e := newExporter(ctx, a, in.Spec, cp, fmt.Sprintf("attempt%d", activity.GetInfo(ctx).Attempt))
	if cp.Rows > 0 {
		log.Info("resuming export", "part", cp.Part, "rows", cp.Rows, "cursor", cp.Cursor)
	}
	if err := a.Source.Stream(ctx, query(in.Spec, cp.Cursor), e.write); err != nil {
		e.abort()
		return ExportResult{}, fmt.Errorf("error exporting: %w", err)
	}
	if err := e.finish(); err != nil {
		e.abort()
		return ExportResult{}, err
	}
	return ExportResult{Files: e.cp.Files, Rows: e.cp.Rows, Tally: e.cp.Tally, Totals: e.cp.Totals}, nil
}

// Finalize writes manifest.json. Its content depends only on the export,
// so a retried Finalize writes the same bytes.
func (a *Activities) Finalize(ctx context.Context, in FinalizeInput) (FinalizeResult, error) {
	spec, out := in.Spec, in.Export
	m := exportd.Manifest{
		ExportID:      spec.ExportID,
		MerchantID:    spec.MerchantID,
		Dataset:       spec.Dataset,
		Start:         spec.Start,
		End:           spec.End,
		GeneratedAt:   in.GeneratedAt.UTC(),
		SchemaVersion: exportd.SchemaVersion,
		Rows:          out.Rows,
		Files:         out.Files,
		Tally:         out.Tally,
		Totals:        out.Totals,
	}
	if m.Files == nil {
		m.Files = []exportd.FileInfo{}
	}
	if spec.Dataset == exportd.Payments && out.Rows > 0 {
		// Distinct orders of a payments export would need a set as large
		// as the export in the checkpoint; the database counts them over
		// exactly the exported range instead.
		n, err := a.Source.DistinctOrders(ctx, query(spec, exportd.Key{}), lastKey(out.Files))
		if err != nil {
			return FinalizeResult{}, fmt.Errorf("error counting distinct orders: %w", err)
		}
		m.Tally.Orders = n
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return FinalizeResult{}, fmt.Errorf("error encoding manifest: %w", err)
	}
	body = append(body, '\n')
	up, err := a.Store.Create(ctx, spec.ExportID+"/"+exportd.ManifestName, fmt.Sprintf("attempt%d", activity.GetInfo(ctx).Attempt))
	if err != nil {
		return FinalizeResult{}, fmt.Errorf("error creating manifest: %w", err)
	}
	if _, err := bytes.NewReader(body).WriteTo(up); err != nil {
		_ = up.Abort()
		return FinalizeResult{}, fmt.Errorf("error writing manifest: %w", err)
	}
	if err := up.Commit(); err != nil {
		return FinalizeResult{}, fmt.Errorf("error committing manifest: %w", err)
	}
	sum := sha256.Sum256(body)
	return FinalizeResult{Tally: m.Tally, Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// Purge deletes every file of an export, committed or not.
func (a *Activities) Purge(ctx context.Context, in PurgeInput) (PurgeResult, error) {
	if in.ExportID == "" || !blob.ValidKey(in.ExportID) {
		return PurgeResult{}, fmt.Errorf("invalid export id %q", in.ExportID)
	}
	if err := a.Store.DeletePrefix(ctx, in.ExportID+"/"); err != nil {
		return PurgeResult{}, fmt.Errorf("error purging export: %w", err)
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

func lastKey(files []exportd.FileInfo) exportd.Key {
	var k exportd.Key
	for _, f := range files {
		if f.Rows > 0 && k.Less(f.LastKey) {
			k = f.LastKey
		}
	}
	return k
}
