package activities

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/format"
	"github.com/exportd/exportd/postgres"
)

// exporter routes the records of one Export attempt into part files. All
// formats rotate at the same row boundary, so a part is committed for
// every format at once and the checkpoint has a single cursor.
type exporter struct {
	ctx  context.Context
	a    *Activities
	spec exportd.Spec
	tag  string

	beat     contract.Heartbeat // progress; Part and Rows as of the last commit
	part     *part              // open part, nil between parts
	lastBeat time.Time
	// pending are the parts committed to the blob store but not yet
	// recorded; beat.Rows counts recorded rows only, the resume point.
	pending    []postgres.Part
	lastRecord time.Time

	// first and end bound the part numbers this export (or partition)
	// owns; its last part takes every row left, so rows added to the
	// window after planning never spill into the next partition's.
	first, end int
	// shown is the progress earlier attempts reported.
	shown int64
	// emptyFiles writes one empty file per format when no row came.
	emptyFiles bool
}

// part is one part number being written in every requested format, with
// its share of the tally.
type part struct {
	rows        int64
	first, last exportd.Key
	files       []*partFile
	w           *format.Parallel // every file's format writer, each on a goroutine of its own
	tally       exportd.Tally
	totals      exportd.Totals
	locations   map[string]struct{}
}

// partFile is one format's file of a part: format writer -> buffer ->
// (upload, sha256, byte count).
type partFile struct {
	format exportd.Format
	name   string
	up     blob.Upload
	sum    hash.Hash
	n      int64
	buf    *bufio.Writer
	w      format.Writer
	err    error // the blob store's write error, if any
}

func (f *partFile) Write(p []byte) (int, error) {
	n, err := f.up.Write(p)
	f.sum.Write(p[:n])
	f.n += int64(n)
	if err != nil && f.err == nil {
		f.err = err
	}
	return n, err
}

// failed classifies an error from writing the file: the blob store's own
// errors are storage errors, whatever the format writer wrapped them in;
// anything else is the writer's and ends the export as internal.
func (f *partFile) failed(err error) error {
	if f.err != nil {
		return exportd.StorageError(f.err, "could not write %s to the blob store", f.name)
	}
	return &exportd.Error{Code: exportd.CodeInternal, Message: fmt.Sprintf("could not encode %s", f.name), Err: err}
}

func newExporter(ctx context.Context, a *Activities, spec exportd.Spec, from postgres.Resume, total int64, tag string) *exporter {
	return &exporter{ctx: ctx, a: a, spec: spec, tag: tag, lastBeat: a.now(), lastRecord: a.now(),
		beat: contract.Heartbeat{Done: from.Rows, Total: total, Part: from.Part, Rows: from.Rows}}
}

// write is the Stream callback: it splits a page at part boundaries.
func (e *exporter) write(b *exportd.Batch) error {
	for i, n := 0, b.Len(); i < n; {
		if e.part == nil {
			if err := e.open(); err != nil {
				return err
			}
		}
		limit := int64(e.spec.MaxRowsPerFile)
		if e.beat.Part == e.end-1 {
			limit = math.MaxInt64
		}
		k := int(min(int64(n-i), limit-e.part.rows))
		s := b.Slice(i, i+k)
		if err := e.part.w.Write(s); err != nil {
			return e.part.failed(err)
		}
		e.part.account(s)
		if e.part.rows == 0 {
			e.part.first = s.Key(0)
		}
		e.part.last = s.Key(k - 1)
		e.part.rows += int64(k)
		e.beat.Done += int64(k)
		i += k
		if e.part.rows == limit {
			if err := e.commit(); err != nil {
				return err
			}
		}
	}
	if now := e.a.now(); now.Sub(e.lastBeat) >= e.progressEvery() {
		e.heartbeat(now)
	}
	select {
	case <-activity.GetWorkerStopChannel(e.ctx):
		// A stopping worker hands the export on at once, its committed
		// parts recorded, so another worker resumes after them instead of
		// waiting out the heartbeat timeout.
		if err := e.record(); err != nil {
			return err
		}
		e.heartbeat(e.a.now())
		return errWorkerStopping
	default:
	}
	return e.ctx.Err()
}

// errWorkerStopping ends an attempt whose worker is shutting down; the
// retry resumes from the checkpoint.
var errWorkerStopping = errors.New("worker stopping; the export resumes from its last committed part")

// finish commits the last part. An export with no rows still gets one
// valid, empty file per format, so clients always have a schema to read.
func (e *exporter) finish() error {
	if e.part == nil && e.beat.Part == 0 && e.emptyFiles {
		if err := e.open(); err != nil {
			return err
		}
	}
	if e.part != nil {
		if err := e.commit(); err != nil {
			return err
		}
	}
	return e.record()
}

func (e *exporter) open() error {
	p := &part{locations: map[string]struct{}{}}
	for _, f := range e.spec.Formats {
		name := fmt.Sprintf("%s-%05d%s", e.spec.Dataset, e.beat.Part, f.Ext())
		up, err := e.a.Store.Create(e.ctx, e.spec.ExportID+"/"+name, e.tag)
		if err != nil {
			p.abort()
			return exportd.StorageError(err, "could not create %s in the blob store", name)
		}
		pf := &partFile{format: f, name: name, up: up, sum: sha256.New()}
		pf.buf = bufio.NewWriterSize(pf, 256<<10)
		pf.w, err = newWriter(e.spec, f, pf.buf)
		if err != nil {
			_ = up.Abort()
			p.abort()
			return fmt.Errorf("error creating %s writer: %w", f, err)
		}
		p.files = append(p.files, pf)
	}
	ws := make([]format.Writer, len(p.files))
	for i, f := range p.files {
		ws[i] = f.w
	}
	p.w = format.NewParallel(ws...)
	e.part = p
	return nil
}

// newWriter returns the format writer of one of the export's files: a
// change export's carry the op and deleted_at columns.
func newWriter(spec exportd.Spec, f exportd.Format, w io.Writer) (format.Writer, error) {
	if spec.Mode == exportd.ModeChanges {
		return format.NewChanges(f, spec.Dataset, w)
	}
	return format.New(f, spec.Dataset, w)
}

// failed classifies the error of one of the part's writers.
func (p *part) failed(err error) error {
	var we *format.WriterError
	if errors.As(err, &we) && we.Index < len(p.files) {
		return p.files[we.Index].failed(we.Err)
	}
	return err
}

// commit closes and commits every file of the open part, records the
// part in PostgreSQL, then reports the progress in a heartbeat. A crash
// between the blob commit and the record leaves the part unrecorded: the
// next attempt writes it again, to the same bytes, and records it once.
func (e *exporter) commit() error {
	p := e.part
	rec := postgres.Part{
		ExportID: e.spec.ExportID, Part: e.beat.Part, Rows: p.rows, FirstKey: p.first, LastKey: p.last,
		Tally: p.tally, Totals: p.totals, Locations: make([]string, 0, len(p.locations)),
		Files: make([]exportd.FileInfo, 0, len(p.files)),
	}
	if err := p.w.Close(); err != nil {
		return p.failed(err)
	}
	for _, f := range p.files {
		if err := f.buf.Flush(); err != nil {
			return f.failed(err)
		}
		rec.Files = append(rec.Files, exportd.FileInfo{
			Name: f.name, Format: f.format, Part: e.beat.Part, Rows: p.rows, Bytes: f.n,
			SHA256: hex.EncodeToString(f.sum.Sum(nil)), FirstKey: p.first, LastKey: p.last,
		})
	}
	for _, f := range p.files {
		if err := f.up.Commit(); err != nil {
			return exportd.StorageError(err, "could not commit %s to the blob store", f.name)
		}
	}
	for l := range p.locations {
		rec.Locations = append(rec.Locations, l)
	}
	slices.Sort(rec.Locations)
	now := e.a.now()
	rec.CommittedAt = now.UTC()
	for _, f := range rec.Files {
		e.a.Metrics.FileCommitted(string(e.spec.Dataset), string(f.Format), f.Rows, f.Bytes)
	}
	e.a.Metrics.PartCommitted(string(e.spec.Dataset))
	e.part = nil
	e.beat.Part++
	e.pending = append(e.pending, rec)
	if len(e.pending) >= recordBatch || now.Sub(e.lastRecord) >= recordEvery {
		return e.record()
	}
	return nil
}

// Parts are recorded in batches, so that an export of many small files
// pays one PostgreSQL transaction per batch rather than one a file: at most
// recordBatch parts, or what recordEvery gathered. A crash loses at most a
// batch of records, whose parts the next attempt writes again to the same
// bytes.
const (
	recordBatch = 64
	recordEvery = time.Second
)

// record records the parts committed since the last record, then reports
// the new resume point in a heartbeat.
func (e *exporter) record() error {
	if len(e.pending) == 0 {
		return nil
	}
	if err := e.a.Records.CommitParts(e.ctx, e.pending); err != nil {
		return exportd.SourceError(err, false, "could not record parts %d to %d in PostgreSQL", e.pending[0].Part, e.pending[len(e.pending)-1].Part)
	}
	for _, p := range e.pending {
		e.beat.Rows += p.Rows
	}
	e.pending = e.pending[:0]
	now := e.a.now()
	e.lastRecord = now
	e.heartbeat(now)
	return nil
}

func (e *exporter) heartbeat(now time.Time) {
	hb := e.beat
	hb.Done = max(hb.Done, e.shown)
	activity.RecordHeartbeat(e.ctx, hb)
	e.lastBeat = now
}

// abort discards the open part's uploads.
func (e *exporter) abort() {
	if e.part != nil {
		e.part.abort()
		e.part = nil
	}
}

func (p *part) abort() {
	for _, f := range p.files {
		_ = f.up.Abort()
	}
}

// account adds a slice of records to the part's tally and totals.
func (p *part) account(b *exportd.Batch) {
	if b.Dataset == exportd.Payments {
		for i := range b.Payments {
			x := &b.Payments[i]
			if x.Op == exportd.OpDelete {
				continue // a change export's delete: no data to tally
			}
			p.tally.Transactions++
			p.tally.Amount += x.Amount
			p.totals.Amount += x.Amount
			p.location(x.LocationID)
		}
		return
	}
	for i := range b.Orders {
		o := &b.Orders[i]
		if o.Op == exportd.OpDelete {
			continue
		}
		p.tally.Orders++
		p.totals.Subtotal += o.Subtotal
		p.totals.Tax += o.Tax
		if o.Tip != nil {
			p.totals.Tip += *o.Tip
		}
		p.totals.Total += o.Total
		for j := range o.Payments {
			p.tally.Transactions++
			p.tally.Amount += o.Payments[j].Amount
		}
		p.location(o.LocationID)
	}
}

func (p *part) location(id *string) {
	if id == nil {
		return
	}
	if _, ok := p.locations[*id]; !ok {
		p.locations[*id] = struct{}{}
	}
}

func (e *exporter) progressEvery() time.Duration {
	if e.a.ProgressEvery > 0 {
		return e.a.ProgressEvery
	}
	return 2 * time.Second
}
