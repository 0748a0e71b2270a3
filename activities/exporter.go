package activities

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/format"
)

// exporter routes the records of one Export attempt into part files. All
// formats rotate at the same row boundary, so a part is committed for
// every format at once and the checkpoint has a single cursor.
type exporter struct {
	ctx  context.Context
	a    *Activities
	spec exportd.Spec
	tag  string

	cp        Checkpoint // as of the last commit
	tally     exportd.Tally
	totals    exportd.Totals
	locations map[string]struct{}
	part      *part // open part, nil between parts
	lastBeat  time.Time
}

// part is one part number being written in every requested format.
type part struct {
	rows        int64
	first, last exportd.Key
	files       []*partFile
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
}

func (f *partFile) Write(p []byte) (int, error) {
	n, err := f.up.Write(p)
	f.sum.Write(p[:n])
	f.n += int64(n)
	return n, err
}

func newExporter(ctx context.Context, a *Activities, spec exportd.Spec, cp Checkpoint, tag string) *exporter {
	e := &exporter{ctx: ctx, a: a, spec: spec, tag: tag, cp: cp, tally: cp.Tally, totals: cp.Totals,
		locations: make(map[string]struct{}, len(cp.Locations)), lastBeat: a.now()}
	for _, l := range cp.Locations {
		e.locations[l] = struct{}{}
	}
	e.cp.Done = cp.Rows
	return e
}

// write is the Stream callback: it splits a page at part boundaries.
func (e *exporter) write(b *exportd.Batch) error {
	limit := int64(e.spec.MaxRowsPerFile)
	for i, n := 0, b.Len(); i < n; {
		if e.part == nil {
			if err := e.open(); err != nil {
				return err
			}
		}
		k := int(min(int64(n-i), limit-e.part.rows))
		s := b.Slice(i, i+k)
		for _, f := range e.part.files {
			if err := f.w.Write(s); err != nil {
				return fmt.Errorf("error writing %s: %w", f.name, err)
			}
		}
		e.account(s)
		if e.part.rows == 0 {
			e.part.first = s.Key(0)
		}
		e.part.last = s.Key(k - 1)
		e.part.rows += int64(k)
		e.cp.Done += int64(k)
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
		// A stopping worker hands the export on at once: the heartbeat
		// holds the last committed part, so another worker resumes there
		// instead of waiting out the heartbeat timeout.
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
	if e.part == nil && e.cp.Part == 0 {
		if err := e.open(); err != nil {
			return err
		}
	}
	if e.part != nil {
		return e.commit()
	}
	return nil
}

func (e *exporter) open() error {
	p := &part{}
	for _, f := range e.spec.Formats {
		name := fmt.Sprintf("%s-%05d%s", e.spec.Dataset, e.cp.Part, f.Ext())
		up, err := e.a.Store.Create(e.ctx, e.spec.ExportID+"/"+name, e.tag)
		if err != nil {
			p.abort()
			return fmt.Errorf("error creating %s: %w", name, err)
		}
		pf := &partFile{format: f, name: name, up: up, sum: sha256.New()}
		pf.buf = bufio.NewWriterSize(pf, 256<<10)
		pf.w, err = format.New(f, e.spec.Dataset, pf.buf)
		if err != nil {
			_ = up.Abort()
			p.abort()
			return fmt.Errorf("error creating %s writer: %w", f, err)
		}
		p.files = append(p.files, pf)
	}
	e.part = p
	return nil
}

// commit closes and commits every file of the open part, then records the
// new resume point in a heartbeat.
func (e *exporter) commit() error {
	p := e.part
	infos := make([]exportd.FileInfo, 0, len(p.files))
	for _, f := range p.files {
		if err := f.w.Close(); err != nil {
			return fmt.Errorf("error closing %s: %w", f.name, err)
		}
		if err := f.buf.Flush(); err != nil {
			return fmt.Errorf("error flushing %s: %w", f.name, err)
		}
		infos = append(infos, exportd.FileInfo{
			Name: f.name, Format: f.format, Part: e.cp.Part, Rows: p.rows, Bytes: f.n,
			SHA256: hex.EncodeToString(f.sum.Sum(nil)), FirstKey: p.first, LastKey: p.last,
		})
	}
	for _, f := range p.files {
		if err := f.up.Commit(); err != nil {
			return fmt.Errorf("error committing %s: %w", f.name, err)
		}
		e.a.Metrics.FileCommitted(string(e.spec.Dataset), string(f.format), p.rows, f.n)
	}
	e.a.Metrics.PartCommitted(string(e.spec.Dataset))
	e.part = nil
	e.cp.Files = append(e.cp.Files, infos...)
	e.cp.Part++
	e.cp.Rows += p.rows
	if p.rows > 0 {
		e.cp.Cursor = p.last
	}
	e.cp.Tally = e.tally
	e.cp.Tally.Locations = len(e.locations)
	e.cp.Totals = e.totals
	e.cp.Locations = make([]string, 0, len(e.locations))
	for l := range e.locations {
		e.cp.Locations = append(e.cp.Locations, l)
	}
	slices.Sort(e.cp.Locations)
	e.heartbeat(e.a.now())
	return nil
}

func (e *exporter) heartbeat(now time.Time) {
	activity.RecordHeartbeat(e.ctx, e.cp)
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

// account adds a slice of records to the running tally and totals.
func (e *exporter) account(b *exportd.Batch) {
	if b.Dataset == exportd.Payments {
		for i := range b.Payments {
			p := &b.Payments[i]
			e.tally.Transactions++
			e.tally.Amount += p.Amount
			e.totals.Amount += p.Amount
			e.location(p.LocationID)
		}
		return
	}
	for i := range b.Orders {
		o := &b.Orders[i]
		e.tally.Orders++
		e.totals.Subtotal += o.Subtotal
		e.totals.Tax += o.Tax
		if o.Tip != nil {
			e.totals.Tip += *o.Tip
		}
		e.totals.Total += o.Total
		for j := range o.Payments {
			e.tally.Transactions++
			e.tally.Amount += o.Payments[j].Amount
		}
		e.location(o.LocationID)
	}
}

func (e *exporter) location(id *string) {
	if id == nil {
		return
	}
	if _, ok := e.locations[*id]; !ok {
		e.locations[*id] = struct{}{}
	}
}

func (e *exporter) progressEvery() time.Duration {
	if e.a.ProgressEvery > 0 {
		return e.a.ProgressEvery
	}
	return 2 * time.Second
}
