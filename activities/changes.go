package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
)

// A change export (README "Keeping a copy in sync") reads every page as of
// one mark, a snapshot that the Export attempt holds open on a session of
// its own from the first page to the last. An attempt that ends, for
// whatever reason, loses its mark: no page can be read as of it again. So
// a change export is never partitioned, and each attempt starts over
// under a new mark, discarding what an earlier attempt wrote. Its files
// are then all of one mark, which is what the chain's guarantee needs.

// changeQuery opens the export's cursor, if any, into the query of its
// records. A cursor that this service did not seal for the export's app,
// merchant and dataset is an invalid request.
func (a *Activities) changeQuery(spec exportd.Spec) (postgres.ChangeQuery, error) {
	q := postgres.ChangeQuery{MerchantID: spec.MerchantID, Dataset: spec.Dataset}
	if spec.Cursor == "" {
		return q, nil
	}
	c, err := a.Cursors.Open(spec.Cursor, spec)
	if err != nil {
		return q, err
	}
	q.From = postgres.Snapshot(c.Mark)
	return q, nil
}

// planChanges checks the cursor and estimates the records: the count as
// of a mark of its own, taken now; the Export attempt counts again as of
// its mark and reports that total in its heartbeats.
func (a *Activities) planChanges(ctx context.Context, spec exportd.Spec) (PlanResult, error) {
	q, err := a.changeQuery(spec)
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeInvalidRequest, "checking the cursor", err, nil)
	}
	c, err := a.Source.OpenChanges(ctx)
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "counting the changes", err, nil)
	}
	defer c.Close(context.WithoutCancel(ctx))
	n, err := a.Source.CountChanges(ctx, c, q)
	if err != nil {
		return PlanResult{}, classify(ctx, exportd.CodeSourceError, "counting the changes", err, nil)
	}
	return PlanResult{Total: n, Partitions: 1, Parallelism: 1}, nil
}

// exportChanges is the Export activity of a change export: it discards
// what earlier attempts wrote, takes the export's mark, writes every
// record as of it, and seals the mark into the next cursor.
func (a *Activities) exportChanges(ctx context.Context, in ExportInput) (ExportResult, error) {
	spec := in.Spec
	q, err := a.changeQuery(spec)
	if err != nil {
		return ExportResult{}, classify(ctx, exportd.CodeInvalidRequest, "checking the cursor", err, nil)
	}
	// Discarding many files and counting many rows take longer than the
	// heartbeat timeout: the attempt beats meanwhile, showing what earlier
	// attempts had reached.
	stop := beatWhile(ctx, contract.Heartbeat{Done: in.Shown, Total: in.Total})
	c, total, err := a.startChanges(ctx, spec.ExportID, q)
	stop()
	if err != nil {
		return ExportResult{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	e := newExporter(ctx, a, spec, postgres.Resume{}, total, attemptTag(ctx, in.Attempt))
	e.end, e.shown, e.emptyFiles = 1<<31-1, min(in.Shown, total), true
	if in.Shown > 0 {
		e.heartbeat(a.now())
	}
	if err := a.Source.StreamChanges(ctx, c, q, e.write); err != nil {
		e.abort()
		return ExportResult{}, classify(ctx, exportd.CodeSourceError, "reading the changes", err, &e.beat)
	}
	if err := e.finish(); err != nil {
		e.abort()
		return ExportResult{}, classify(ctx, exportd.CodeStorageError, "writing the files", err, &e.beat)
	}
	next := a.Cursors.Seal(exportd.ChangeCursor{
		Mark: string(c.Mark()), AppID: spec.AppID, MerchantID: spec.MerchantID, Dataset: spec.Dataset, ExportID: spec.ExportID,
	})
	return ExportResult{Rows: e.beat.Rows, Parts: e.beat.Part, FileCount: e.beat.Part * len(spec.Formats), NextCursor: next}, nil
}

// startChanges discards what earlier attempts of the export wrote, then
// takes the export's mark and counts its records as of it. Its errors are
// classified.
func (a *Activities) startChanges(ctx context.Context, exportID string, q postgres.ChangeQuery) (*postgres.Changes, int64, error) {
	// Files first, then their records, as Purge does: a discard cut short
	// is finished by the next attempt.
	if err := a.Store.DeletePrefix(ctx, exportID+"/"); err != nil {
		return nil, 0, classify(ctx, exportd.CodeStorageError, "discarding an earlier attempt's files", err, nil)
	}
	if err := a.Records.Delete(ctx, exportID); err != nil {
		return nil, 0, classify(ctx, exportd.CodeSourceError, "discarding an earlier attempt's records", err, nil)
	}
	c, err := a.Source.OpenChanges(ctx)
	if err != nil {
		return nil, 0, classify(ctx, exportd.CodeSourceError, "taking the export's mark", err, nil)
	}
	total, err := a.Source.CountChanges(ctx, c, q)
	if err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, 0, classify(ctx, exportd.CodeSourceError, "counting the changes", err, nil)
	}
	return c, total, nil
}

// beatWhile heartbeats hb every few seconds until stop is called, for the
// steps of an attempt that report no progress of their own.
func beatWhile(ctx context.Context, hb contract.Heartbeat) (stop func()) {
	activity.RecordHeartbeat(ctx, hb)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, hb)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
