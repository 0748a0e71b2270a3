package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/starter"
)

// startFlags describe the export `exportd start` asks for, and how far to
// follow it.
type startFlags struct {
	id, merchant, dataset, formats string
	from, to                       timeValue
	maxRowsPerFile                 int
	changes                        bool
	cursor                         string
	wait                           bool
	out                            string
}

func (f *startFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.merchant, "merchant", "", "merchant to export (required)")
	fs.StringVar(&f.dataset, "dataset", string(exportd.Orders), "orders or payments")
	fs.Var(&f.from, "from", "start of the window, inclusive: RFC 3339 or a date (midnight UTC) (required unless --changes)")
	fs.Var(&f.to, "to", "end of the window, exclusive: RFC 3339 or a date (midnight UTC) (required unless --changes)")
	fs.BoolVar(&f.changes, "changes", false, "a change export: every order created, edited or deleted since --cursor (no --from/--to); without --cursor, the backfill of every current one")
	fs.StringVar(&f.cursor, "cursor", "", "with --changes: the nextCursor the previous change export of this merchant and dataset printed")
	fs.StringVar(&f.formats, "format", string(exportd.Parquet), "comma-separated formats: parquet, arrow, jsonl.gz, csv.gz")
	fs.IntVar(&f.maxRowsPerFile, "max-rows-per-file", 0, "rows per part file (0: the server's default)")
	fs.StringVar(&f.id, "id", "", "export id (default: random); a rerun with the same id and request follows the existing export")
	fs.BoolVar(&f.wait, "wait", false, "follow the export with a progress bar until its files are ready")
	fs.StringVar(&f.out, "out", "", "download the files into this directory and verify their sha256 (implies --wait; needs the worker's blob store)")
}

// spec is the export the flags ask for, validated.
func (f *startFlags) spec() (exportd.Spec, error) {
	spec := exportd.Spec{ExportID: f.id, MerchantID: f.merchant, Dataset: exportd.Dataset(f.dataset),
		Start: time.Time(f.from), End: time.Time(f.to), MaxRowsPerFile: f.maxRowsPerFile, Cursor: f.cursor}
	if f.changes {
		spec.Mode = exportd.ModeChanges
		if !f.from.IsZero() || !f.to.IsZero() {
			return spec, errors.New("invalid export: --from and --to select a window; a change export (--changes) selects by --cursor")
		}
	}
	for _, s := range strings.Split(f.formats, ",") {
		if s = strings.TrimSpace(s); s != "" {
			spec.Formats = append(spec.Formats, exportd.Format(s))
		}
	}
	if spec.ExportID == "" {
		spec.ExportID = starter.NewID()
	}
	if err := spec.Normalize(); err != nil {
		return spec, fmt.Errorf("invalid export: %w", err)
	}
	return spec, nil
}

// runStart starts an export through Temporal, as a Go service would with
// package starter, and with --wait or --out follows it to the end.
func runStart(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("start", stderr)
	var c conn
	c.register(fs, true, true)
	var f startFlags
	f.register(fs)
	fs.Usage = usage(fs, startSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	for _, req := range []struct {
		name  string
		unset bool
	}{{"--merchant", f.merchant == ""}, {"--from", f.from.IsZero() && !f.changes}, {"--to", f.to.IsZero() && !f.changes}} {
		if req.unset {
			fmt.Fprintf(stderr, "exportd start: %s is required (see --help)\n", req.name)
			return errUsage
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "exportd start: unexpected argument %q (see --help)\n", fs.Arg(0))
		return errUsage
	}
	// Bad input fails here, before anything is dialed.
	spec, err := f.spec()
	if err != nil {
		return err
	}
	var store blob.Store
	if f.out != "" {
		st, closeStore, err := openDownloadStore(ctx, &c)
		if err != nil {
			return err
		}
		defer closeStore()
		store = st
	}
	h, err := c.handler(stderr, slog.LevelWarn) // SDK chatter would break the bar
	if err != nil {
		return err
	}
	cl, err := c.client(slog.New(h))
	if err != nil {
		return err
	}
	defer cl.Close()

	id, err := starter.StartExport(ctx, cl, spec)
	switch {
	case errors.Is(err, starter.ErrExists):
		prev, err := starter.Describe(ctx, cl, id)
		if err != nil {
			return err
		}
		if !exports.SameRequest(prev.Spec, spec) {
			return fmt.Errorf("export %s already exists with a different request; choose another --id", id)
		}
		fmt.Fprintf(stdout, "export %s already started with this request (workflow %s)\n", id, contract.WorkflowID(id))
	case err != nil:
		return err
	default:
		fmt.Fprintf(stdout, "export %s started (workflow %s)\n", id, contract.WorkflowID(id))
	}
	if !f.wait && f.out == "" {
		return nil
	}

	bar := newProgress(stderr)
	st, err := starter.Wait(ctx, cl, id, starter.WaitOptions{OnProgress: bar.update})
	bar.stop()
	if ctx.Err() != nil {
		return fmt.Errorf("stopped waiting; export %s goes on (cancel it with DELETE /v1/exports/%s)", id, id)
	}
	if err != nil {
		return err
	}
	printReady(stdout, st)
	if f.out == "" {
		return nil
	}
	return downloadTo(ctx, stdout, store, id, f.out)
}

// openDownloadStore opens the worker's blob store for --out. A local
// store would create a missing directory and then find no exports in it,
// so a wrong --blob-dir is refused here with a hint instead.
func openDownloadStore(ctx context.Context, c *conn) (blob.Store, func(), error) {
	if c.blobBackend == "local" {
		if _, err := os.Stat(c.blobDir); err != nil {
			return nil, nil, fmt.Errorf("--out needs the worker's blob store: --blob-dir (EXPORTD_BLOB_DIR): %w", err)
		}
	}
	return c.store(ctx)
}

func printReady(w io.Writer, st exportd.State) {
	until := "-"
	if st.AvailableUntil != nil {
		until = st.AvailableUntil.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "export %s %s: %d rows in %s, available until %s\n",
		st.Spec.ExportID, st.Phase.Status(), st.Rows, files(st.Files), until)
	if t := st.Tally; t != nil {
		fmt.Fprintf(w, "tally: %d orders, %d locations, %d transactions, amount %d (cents)\n",
			t.Orders, t.Locations, t.Transactions, t.Amount)
	}
	if st.NextCursor != "" {
		fmt.Fprintf(w, "next change export: --changes --cursor %s\n", st.NextCursor)
	}
}

// downloadTo downloads and verifies the files, then lists each one with
// its sha256 and whether it matched.
func downloadTo(ctx context.Context, w io.Writer, store blob.Store, id, dir string) error {
	fmt.Fprintf(w, "downloading to %s\n", dir)
	m, err := starter.Download(ctx, store, id, dir)
	var verr *starter.VerifyError
	if err != nil && !errors.As(err, &verr) {
		return err
	}
	bad := map[string]starter.Mismatch{}
	if verr != nil {
		for _, mm := range verr.Mismatches {
			bad[mm.File.Name] = mm
		}
	}
	for _, f := range m.Files {
		verdict := "ok"
		if mm, ok := bad[f.Name]; ok {
			verdict = "MISMATCH: " + strings.TrimPrefix(mm.String(), f.Name+": ")
		}
		fmt.Fprintf(w, "  %-24s %-9s %9d rows %12d bytes  sha256 %s  %s\n", f.Name, f.Format, f.Rows, f.Bytes, f.SHA256, verdict)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s downloaded, each matches its sha256 in %s\n", files(len(m.Files)), filepath.Join(dir, exportd.ManifestName))
	return nil
}

func files(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

// progress draws an export's progress on stderr: a spinner while it is
// queued and its rows are not yet counted, then a bar of rows done of rows
// planned with the rate and the time left, finished at the row count the
// export ends with.
type progress struct {
	w       io.Writer
	spinner *progressbar.ProgressBar // until the rows are counted
	desc    string                   // the spinner's, redrawn on change
	bar     *progressbar.ProgressBar // from then on
	// The rate is measured from the bar's first frame: the rows already
	// done then (an export followed late, or fast) are not counted in it,
	// as the bar's own rate would.
	since time.Time
	from  int64
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, desc: "queued"}
	p.spinner = progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(p.desc),
		progressbar.OptionSetElapsedTime(true),
		// Without its own goroutine the spinner moves when Wait polls,
		// and nothing draws after it is cleared.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	_ = p.spinner.RenderBlank()
	return p
}

func (p *progress) update(st exportd.State) {
	if p.bar != nil && p.bar.IsFinished() {
		return
	}
	rows, total := st.Progress.Rows, max(st.Progress.Total, st.Progress.Rows)
	if st.Phase == exportd.PhaseReady {
		// The rows exported, not those planned, are the end of the bar.
		rows, total = st.Rows, st.Rows
	}
	if total <= 0 {
		if p.bar == nil {
			p.spin(st)
		}
		return
	}
	if p.bar == nil {
		_ = p.spinner.Clear()
		_ = p.spinner.Exit()
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
		p.since, p.from = time.Now(), rows
	}
	if total != p.bar.GetMax64() {
		p.bar.ChangeMax64(total)
	}
	p.bar.Describe(p.rate(rows, total))
	_ = p.bar.Set64(rows)
}

// spin shows the phase, and the queue position while queued.
func (p *progress) spin(st exportd.State) {
	desc := st.Phase.Status()
	if st.QueuePosition != nil && *st.QueuePosition > 0 {
		desc = fmt.Sprintf("queued, %d ahead", *st.QueuePosition)
	}
	if desc == p.desc {
		_ = p.spinner.Add(1) // turns the spinner
		return
	}
	p.desc = desc
	p.spinner.Describe(desc)
}

// rate describes the rows per second since the bar's first frame, and
// the time left at that rate, or the time taken once done.
func (p *progress) rate(rows, total int64) string {
	elapsed := time.Since(p.since)
	if rows <= p.from || elapsed < 100*time.Millisecond {
		return "rows"
	}
	perSec := float64(rows-p.from) / elapsed.Seconds()
	if rows >= total {
		return fmt.Sprintf("rows, %.0f/s, done in %s", perSec, elapsed.Round(100*time.Millisecond))
	}
	left := time.Duration(float64(total-rows) / perSec * float64(time.Second))
	return fmt.Sprintf("rows, %.0f/s, ETA %s", perSec, left.Round(time.Second))
}

// stop leaves the bar's last frame on its own line (a finished bar's
// completion has ended it already), or clears the spinner of an export
// that never counted any rows.
func (p *progress) stop() {
	switch {
	case p.bar == nil:
		_ = p.spinner.Clear()
		_ = p.spinner.Exit()
	case !p.bar.IsFinished():
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}

// timeValue is a flag holding an instant: RFC 3339, or a date meaning
// midnight UTC.
type timeValue time.Time

func (t *timeValue) String() string {
	if t == nil || time.Time(*t).IsZero() {
		return ""
	}
	return time.Time(*t).Format(time.RFC3339)
}

func (t *timeValue) Set(s string) error {
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		*t = timeValue(v)
		return nil
	}
	if v, err := time.Parse(time.DateOnly, s); err == nil {
		*t = timeValue(v)
		return nil
	}
	return errors.New("want RFC 3339 (2025-01-01T00:00:00Z) or a date (2025-01-01)")
}

// IsZero reports whether the flag was left unset.
func (t *timeValue) IsZero() bool { return time.Time(*t).IsZero() }
