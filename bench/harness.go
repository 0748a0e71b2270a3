package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/devenv"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/wiring"
)

// Config is what a bench run measures, and where it reports.
type Config struct {
	DataDir        string
	Orders         int
	Repeat         int
	Runs           []string
	Dataset        exportd.Dataset
	MaxRowsPerFile int
	SkipLoad       bool
	LoadDuration   time.Duration
	LoadRate       float64
	LoadClients    int
	LatencyExports int
	LatencyOrders  int
	LatencyFormats []exportd.Format
	CPUProfileDir  string
	TraceDir       string
	KeepFiles      bool
	Poll           time.Duration
	TemporalBin    string
	// ScalePartitionRows is the partition size of the scale-out runs.
	ScalePartitionRows int64
	// ToolsDir is where `make tools` put the Temporal CLI.
	ToolsDir string
	// WorkerCommand and LoadCommand start a worker process (`exportd
	// bench _worker`) and the load generator (`exportd bench _load`);
	// flags are appended.
	WorkerCommand, LoadCommand []string
	// Out takes the report, Progress what happens meanwhile, LogFile the
	// full log and the worker processes' output; Logger writes to both.
	Out, Progress io.Writer
	LogFile       *os.File
	Logger        *slog.Logger
}

// seedWindow is the window postgres.Seed fills by default.
var seedWindow = [2]time.Time{
	time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
}

// Run starts a dev stack of its own (no in-process worker) in
// cfg.DataDir, times cfg.Runs against PostgreSQL's own COPY of the same
// window, and writes the report to cfg.Out. It is `exportd bench`.
func Run(ctx context.Context, cfg Config) error {
	b := &bencher{cfg: cfg, out: cfg.Out, progress: cfg.Progress, logFile: cfg.LogFile, log: cfg.Logger}
	return b.run(ctx)
}

// runSpec is what one bench run exports: formats, and either a file
// count or a number of worker processes running it partitioned.
type runSpec struct {
	formats []exportd.Format
	files   int // 0: the part size of --max-rows-per-file
	workers int // 0: one worker, unpartitioned
}

// ParseRun checks a run name: "FORMAT" or "all", optionally followed by
// FilesSuffix and a file count ("parquet/files=12000") or by
// WorkersSuffix and a worker count ("parquet/workers=2").
func ParseRun(run string) (runSpec, error) {
	name, rest := run, ""
	var n *int
	var r runSpec
	for _, suf := range []struct {
		s string
		n *int
	}{{FilesSuffix, &r.files}, {WorkersSuffix, &r.workers}} {
		if a, b, ok := strings.Cut(run, suf.s); ok {
			name, rest, n = a, b, suf.n
		}
	}
	if n != nil {
		v, err := strconv.Atoi(rest)
		if err != nil || v < 1 {
			return r, fmt.Errorf("run %q: the count must be a positive whole number", run)
		}
		*n = v
	}
	var err error
	r.formats, err = runFormats(name)
	return r, err
}

// runFormats returns the formats of a run: one format, or "all" four.
func runFormats(run string) ([]exportd.Format, error) {
	if run == "all" {
		return exportd.Formats, nil
	}
	if f := exportd.Format(run); slices.Contains(exportd.Formats, f) {
		return []exportd.Format{f}, nil
	}
	return nil, fmt.Errorf("unknown run %q: a format (parquet, arrow, jsonl.gz, csv.gz) or all", run)
}

// ParseFormats reads a comma-separated list of formats, or all.
func ParseFormats(s string) ([]exportd.Format, error) {
	var fs []exportd.Format
	for f := range strings.SplitSeq(s, ",") {
		one, err := runFormats(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		fs = append(fs, one...)
	}
	return fs, nil
}

// bencher runs one `exportd bench`.
type bencher struct {
	cfg      Config
	out      io.Writer // the report
	progress io.Writer // what happens meanwhile
	logFile  *os.File  // also takes the worker children's output
	log      *slog.Logger

	stack  *wiring.Stack
	key    string // the bench app's API key
	window Window
	rows   int64    // in the window
	env    []string // the worker children's environment
	pids   map[string]int
}

func (b *bencher) printf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

func (b *bencher) run(ctx context.Context) error {
	var err error
	started := time.Now()
	loadBefore := LoadAverage()
	b.stack = &wiring.Stack{Config: wiring.StackConfig{DataDir: b.cfg.DataDir, APIAddr: "127.0.0.1:0", SeedOrders: 2_000,
		Worker: false, TemporalBin: b.cfg.TemporalBin, ToolsDir: b.cfg.ToolsDir, Logger: b.log}}
	defer func() {
		if err := b.stack.Close(); err != nil {
			b.log.Warn("stopping the stack", "error", err)
		}
	}()
	if err := b.stack.Start(ctx); err != nil {
		return err
	}
	b.printf("stack up in %s: API %s, Temporal %s, PostgreSQL %s", time.Since(started).Round(time.Millisecond),
		b.stack.Info.APIURL, b.stack.Info.TemporalAddress, b.stack.Info.DatabaseURL)
	b.env = os.Environ()
	for k, v := range b.stack.Info.Env {
		b.env = append(b.env, k+"="+v)
	}
	if err := b.findProcesses(); err != nil {
		return err
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}

	res := &Results{Runs: b.cfg.Runs, Export: map[string][]Sample{}}
	if res.Rows, err = (&postgres.Source{Pool: b.stack.Pool}).Count(ctx, b.query()); err != nil {
		return err
	}
	b.rows = res.Rows
	b.printf("warming up: one untimed COPY of the window")
	if _, err := b.limit(ctx); err != nil {
		return err
	}
	// On a shared machine the load drifts from minute to minute: each
	// export is timed right after a limit of its own, and its ratio is
	// taken against that one.
	for rep := 1; rep <= b.cfg.Repeat; rep++ {
		for _, run := range b.cfg.Runs {
			l, parts, err := b.limitSample(ctx)
			if err != nil {
				return err
			}
			res.Limit = append(res.Limit, l)
			res.LimitParts = append(res.LimitParts, parts)
			b.printf("%d/%d limit     %7.3fs  %s; load average %s", rep, b.cfg.Repeat, l.Seconds, describeParts(parts), LoadAverage())
			s, err := b.exportSample(ctx, run, rep)
			if err != nil {
				return fmt.Errorf("%s: %w", run, err)
			}
			s.Limit = l.Seconds
			res.Export[run] = append(res.Export[run], s)
			b.printf("%d/%d %-9s %7.3fs  %.0f rows/s, %.2fx its limit, activity %.3fs, RSS idle %.1f peak %.1f MiB, CPU s: worker %.2f postgres %.2f temporal %.2f api %.2f; scans: %s",
				rep, b.cfg.Repeat, run, s.Seconds, float64(res.Rows)/s.Seconds, s.Limit/s.Seconds, s.Activity, float64(s.IdleRSS)/MiB, float64(s.PeakRSS)/MiB,
				s.CPU["worker"], s.CPU["postgres"], s.CPU["temporal"], s.CPU["api"], s.Scans)
		}
	}

	// The naive pipeline a user would write instead, timed once per
	// repeat, each right after a limit of its own.
	for range b.cfg.Repeat {
		l, _, err := b.limitSample(ctx)
		if err != nil {
			return err
		}
		sec, err := b.naive(ctx)
		if err != nil {
			return fmt.Errorf("naive pipeline: %w", err)
		}
		res.Naive = append(res.Naive, Sample{Seconds: sec, Limit: l.Seconds})
		b.printf("naive     %7.3fs  COPY (FORMAT csv) | gzip -1, %.2fx its limit", sec, l.Seconds/sec)
	}

	var lat *Latency
	var lastID string
	if b.cfg.LatencyExports > 0 {
		if lat, lastID, err = b.latency(ctx); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	var loads []LoadResult
	var running *LoadResult
	if !b.cfg.SkipLoad && lastID != "" {
		if loads, err = b.loadTest(ctx, lastID, []float64{0, b.cfg.LoadRate}); err != nil {
			return fmt.Errorf("load test: %w", err)
		}
		if running, err = b.loadRunning(ctx); err != nil {
			return fmt.Errorf("load test of a running export: %w", err)
		}
	}

	sum := res.Summary()
	b.saveSummary(sum)
	fmt.Fprintf(b.out, "\nexportd bench: %s of merchant %s, %s..%s, %d orders; median of %d; %d CPUs (GOMAXPROCS %d), %s\n\n",
		b.cfg.Dataset, b.window.MerchantID, b.window.Start.Format(time.DateOnly), b.window.End.Format(time.DateOnly),
		res.Rows, b.cfg.Repeat, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(b.out, "build %s; load average when the bench started: %s, when it ended: %s\n\n", buildRevision(), loadBefore, LoadAverage())
	res.WriteTable(b.out)
	fmt.Fprintln(b.out, "(seconds: POST /v1/exports to the GET that saw succeeded; activity: the Export activity alone, scheduled to completed; CPU s: used during the run by the worker process, the PostgreSQL cluster, the Temporal dev server, and this process, which serves the API)")
	if lat != nil {
		fmt.Fprintf(b.out, "\n%d-order export (%s), submit -> succeeded over %d runs: p50 %s, p90 %s, max %s\n",
			lat.Orders, lat.Formats, len(lat.Samples), lat.P(0.5).Round(time.Millisecond),
			lat.P(0.9).Round(time.Millisecond), lat.P(1).Round(time.Millisecond))
	}
	var open *LoadResult
	for i, l := range loads {
		mode := "closed loop, back to back"
		if l.Offered > 0 {
			mode = fmt.Sprintf("open loop at %.0f req/s", l.Offered)
			open = &loads[i]
		}
		fmt.Fprintf(b.out, "GET /v1/exports/{id}, %s, %d clients, %.1fs: %.0f req/s, p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.1fms, %d errors %s\n",
			mode, l.Clients, l.Seconds, l.PerSecond, l.P50, l.P90, l.P99, l.Max, l.Errors, l.FirstError)
	}
	if one, ok := sum.Runs[string(exportd.Parquet)+WorkersSuffix+"1"]; ok {
		for name, rs := range sum.Runs {
			if _, n, ok := strings.Cut(name, WorkersSuffix); ok && n != "1" && one.RowsPerS > 0 {
				fmt.Fprintf(b.out, "scale-out: %s workers %.2fx the rows/s of 1 worker, peak RSS %.1f vs %.1f MiB (the worst worker)\n",
					n, rs.RowsPerS/one.RowsPerS, rs.PeakRSSMiB, one.PeakRSSMiB)
			}
		}
	}
	b.compareSizes(sum)
	fmt.Fprintln(b.out)
	if running != nil {
		l := running
		fmt.Fprintf(b.out, "GET /v1/exports/{id} of a running export, open loop at %.0f req/s, %d clients, %.1fs: %.0f req/s, p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.1fms, %d errors %s\n",
			l.Offered, l.Clients, l.Seconds, l.PerSecond, l.P50, l.P90, l.P99, l.Max, l.Errors, l.FirstError)
	}
	WriteTargets(b.out, Targets(sum, lat, open, running))
	fmt.Fprintln(b.out)
	return res.WriteJSON(b.out)
}

// buildRevision names the commit this binary was built from, and whether
// the tree had uncommitted changes: the code the numbers belong to.
func buildRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = " with uncommitted changes"
		}
	}
	return rev + dirty
}

func describeParts(parts []LimitPart) string {
	var s []string
	for _, p := range parts {
		s = append(s, fmt.Sprintf("%s %.3fs", p.Name, p.Seconds))
	}
	return strings.Join(s, ", ")
}

// findProcesses finds the PostgreSQL and Temporal servers among this
// process's children, to account for their CPU.
func (b *bencher) findProcesses() error {
	kids, err := Children(os.Getpid())
	if err != nil {
		return err
	}
	b.pids = map[string]int{}
	for pid, comm := range kids {
		switch comm {
		case "postgres", "temporal":
			b.pids[comm] = pid
		}
	}
	if b.pids["postgres"] == 0 || b.pids["temporal"] == 0 {
		b.log.Warn("could not find the PostgreSQL or Temporal process; their CPU is not reported", "children", kids)
	}
	return nil
}

// cpu snapshots the CPU seconds used so far by each part of the stack.
func (b *bencher) cpu(worker int) map[string]float64 {
	pids := []int{b.pids["postgres"], b.pids["temporal"]}
	if worker > 0 {
		pids = append(pids, worker)
	}
	tree, err := TreeCPU(pids...)
	if err != nil {
		return nil
	}
	out := map[string]float64{"postgres": tree[b.pids["postgres"]], "temporal": tree[b.pids["temporal"]]}
	if worker > 0 {
		out["worker"] = tree[worker]
	}
	out["api"], _ = ProcessCPU(os.Getpid())
	return out
}

func cpuSince(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// prepare seeds the bench merchant (once per order count) and makes sure
// the bench app exists, has a key and installed the merchant.
func (b *bencher) prepare(ctx context.Context) error {
	m := postgres.SeedMerchant{ID: fmt.Sprintf("bench-%d", b.cfg.Orders), Name: fmt.Sprintf("Bench %d", b.cfg.Orders),
		Timezone: "America/Chicago", Currency: "USD", Locations: 5, Orders: b.cfg.Orders}
	b.window = Window{MerchantID: m.ID, Dataset: b.cfg.Dataset, Start: seedWindow[0], End: seedWindow[1]}
	b.printf("seeding %s with %d orders (skipped when present)", m.ID, m.Orders)
	res, err := postgres.Seed(ctx, b.stack.Pool, postgres.SeedOptions{Seed: 1, Merchants: []postgres.SeedMerchant{m},
		Start: seedWindow[0], End: seedWindow[1]})
	if err != nil {
		return fmt.Errorf("error seeding the bench merchant: %w", err)
	}
	if sm := res.Merchants[0]; !sm.Skipped {
		b.printf("seeded %d orders, %d items, %d transactions in %s; vacuuming", sm.Orders, sm.Items, sm.Transactions, sm.Elapsed.Round(time.Millisecond))
		// A fresh load has no visibility map and no hint bits: the first
		// reader would pay for both inside a timed run.
		if _, err := b.stack.Pool.Exec(ctx, "VACUUM (ANALYZE) orders, order_items, transactions"); err != nil {
			return fmt.Errorf("error vacuuming: %w", err)
		}
	}

	key, err := wiring.LoadOrCreateKey(filepath.Join(b.stack.Config.DataDir, "master.key"))
	if err != nil {
		return err
	}
	sealer, err := postgres.NewSealer(key)
	if err != nil {
		return err
	}
	access := &postgres.Access{Pool: b.stack.Pool, Sealer: sealer}
	path := filepath.Join(b.stack.Config.DataDir, "json")
	var app struct {
		AppID  string `json:"app_id"`
		APIKey string `json:"api_key"`
	}
	if raw, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(raw, &app)
	}
	if a, err := access.AppByAPIKey(ctx, app.APIKey); err != nil || a.ID != app.AppID {
		creds, err := access.CreateApp(ctx, "Bench App")
		if err != nil {
			return fmt.Errorf("error creating the bench app: %w", err)
		}
		k, err := access.CreateAPIKey(ctx, creds.ID)
		if err != nil {
			return fmt.Errorf("error creating the bench key: %w", err)
		}
		app.AppID, app.APIKey = creds.ID, k.Key
		if err := wiring.WriteJSONFile(path, app); err != nil {
			return err
		}
	}
	b.key = app.APIKey
	return access.Install(ctx, app.AppID, m.ID)
}

func (b *bencher) query() postgres.Query {
	return postgres.Query{MerchantID: b.window.MerchantID, Dataset: b.window.Dataset, Start: b.window.Start, End: b.window.End}
}

func (b *bencher) limit(ctx context.Context) ([]LimitPart, error) {
	conn, err := b.stack.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error acquiring connection: %w", err)
	}
	defer conn.Release()
	return CopyLimit(ctx, conn.Conn().PgConn(), b.window)
}

// naive runs the naive pipeline into a scratch directory.
func (b *bencher) naive(ctx context.Context) (float64, error) {
	dir, err := os.MkdirTemp(b.cfg.DataDir, "naive-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	conn, err := b.stack.Pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("error acquiring connection: %w", err)
	}
	defer conn.Release()
	return NaivePipeline(ctx, conn.Conn().PgConn(), b.window, dir)
}

func (b *bencher) limitSample(ctx context.Context) (Sample, []LimitPart, error) {
	before := b.cpu(0)
	start := time.Now()
	parts, err := b.limit(ctx)
	if err != nil {
		return Sample{}, nil, err
	}
	s := Sample{Seconds: time.Since(start).Seconds(), CPU: cpuSince(before, b.cpu(0))}
	for _, p := range parts {
		s.Bytes += p.Bytes
	}
	return s, parts, nil
}

// exportSample times one export of the window through the API, with a
// fresh worker process whose peak RSS is then the run's alone.
func (b *bencher) exportSample(ctx context.Context, run string, rep int) (Sample, error) {
	spec, _ := ParseRun(run)
	formats, files := spec.formats, spec.files
	maxRows := b.cfg.MaxRowsPerFile
	if files > 0 {
		maxRows = int((b.rows + int64(files) - 1) / int64(files))
	}
	// Runs export one partition, so their figures compare with the limit's
	// one stream; scale-out runs partition the window over their workers.
	env := []string{"EXPORTD_PARTITION_ROWS=0"}
	workers := 1
	if spec.workers > 0 {
		workers = spec.workers
		rows := b.cfg.ScalePartitionRows
		if rows <= 0 {
			rows = max(b.rows/8, 1)
		}
		env = []string{"EXPORTD_PARTITION_ROWS=" + strconv.FormatInt(rows, 10), "EXPORTD_EXPORT_PARALLELISM=8", "EXPORTD_MAX_CONCURRENT_EXPORTS=2"}
		if maxRows <= 0 || int64(maxRows) > rows {
			maxRows = int(rows) // partitions are whole parts
		}
	}
	var ws []*workerProc
	defer func() {
		for _, w := range ws {
			w.stop()
		}
	}()
	for i := range workers {
		w, err := b.startWorker(ctx, fmt.Sprintf("%s-%d-%d", strings.NewReplacer("/", "-", "=", "").Replace(run), rep, i+1), env)
		if err != nil {
			return Sample{}, err
		}
		ws = append(ws, w)
	}
	w := ws[0]

	idle, _, err := Memory(w.pid())
	if err != nil {
		return Sample{}, err
	}
	scansBefore := Scans(ctx, b.stack.Pool)
	rss := SampleRSS(w.pid(), 50*time.Millisecond)
	before := b.cpu(w.pid())
	start := time.Now()
	doc, err := b.export(ctx, formats, maxRows, b.window.Start, b.window.End)
	elapsed := time.Since(start)
	sampled := rss.Stop()
	if err != nil {
		return Sample{}, err
	}
	s := Sample{Seconds: elapsed.Seconds(), IdleRSS: idle, SampledRSS: sampled, CPU: cpuSince(before, b.cpu(w.pid()))}
	var peaks []string
	for i, w := range ws {
		_, peak, err := Memory(w.pid())
		if err != nil {
			return s, err
		}
		s.PeakRSS = max(s.PeakRSS, peak)
		peaks = append(peaks, fmt.Sprintf("worker %d %.1f MiB", i+1, float64(peak)/MiB))
	}
	if len(ws) > 1 {
		b.printf("%s: peak RSS %s", run, strings.Join(peaks, ", "))
	}
	var m exportd.Manifest
	if _, err := Call(ctx, http.MethodGet, b.stack.Info.APIURL+"/v1/exports/"+doc.ID+"/manifest", b.key, "", &m); err != nil {
		return s, fmt.Errorf("error reading the manifest of %s: %w", doc.ID, err)
	}
	var rows int64
	for _, f := range m.Files {
		s.Bytes += f.Bytes
		if f.Format == formats[0] {
			rows += f.Rows
		}
	}
	if rows != b.rows || m.Rows != b.rows {
		return s, fmt.Errorf("export %s: the manifest's files hold %d rows, %d in all; the window has %d", doc.ID, rows, m.Rows, b.rows)
	}
	if files > 0 && len(m.Files) != files*len(formats) {
		b.printf("NOTE: export %s has %d files, asked for %d", doc.ID, len(m.Files), files*len(formats))
	}
	var attempts int32
	if spec.workers > 0 {
		// Partitions run in the child workflow: no Export activity here.
	} else if s.Activity, attempts, err = ExportActivity(ctx, b.stack.Client, contract.WorkflowID(doc.ID)); err != nil {
		b.log.Warn("no Export activity timing", "export", doc.ID, "error", err)
	}
	if attempts > 1 {
		b.printf("WARNING: export %s took %d attempts of the Export activity (see %s)", doc.ID, attempts, b.logFile.Name())
	}
	if !b.cfg.KeepFiles {
		if err := b.purge(ctx, doc.ID); err != nil {
			return s, err
		}
	}
	// Read after the purge: a backend reports its statistics when idle.
	s.Scans = ScansSince(scansBefore, Scans(ctx, b.stack.Pool))
	return s, nil
}

// export submits an export through the API and polls it until it
// succeeds.
func (b *bencher) export(ctx context.Context, formats []exportd.Format, maxRows int, start, end time.Time) (StatusDoc, error) {
	req := map[string]any{"merchantId": b.window.MerchantID, "dataset": b.window.Dataset,
		"start": start.Format(time.RFC3339Nano), "end": end.Format(time.RFC3339Nano), "formats": formats}
	if maxRows > 0 {
		req["maxRowsPerFile"] = maxRows
	}
	body, err := json.Marshal(req)
	if err != nil {
		return StatusDoc{}, err
	}
	api := b.stack.Info.APIURL + "/v1/exports"
	var doc StatusDoc
	if _, err := Call(ctx, http.MethodPost, api, b.key, string(body), &doc); err != nil {
		return doc, err
	}
	// Every poll is a DescribeWorkflowExecution, which costs Temporal and
	// the API CPU that the export then lacks: poll every --poll at first,
	// then every 1% of the time elapsed (at most 250 ms), which keeps the
	// error within 1% or --poll, whichever is larger.
	submitted := time.Now()
	for doc.Status != "succeeded" {
		switch doc.Status {
		case "failed", "canceled", "expired":
			return doc, fmt.Errorf("export %s ended %s: %+v", doc.ID, doc.Status, doc.Error)
		}
		select {
		case <-ctx.Done():
			return doc, ctx.Err()
		case <-time.After(max(b.cfg.Poll, min(time.Since(submitted)/100, 250*time.Millisecond))):
		}
		if _, err := Call(ctx, http.MethodGet, api+"/"+doc.ID, b.key, "", &doc); err != nil {
			return doc, err
		}
	}
	return doc, nil
}

// purge deletes a finished export's files and waits until it is expired,
// so the purge does not run into the next timed run.
func (b *bencher) purge(ctx context.Context, id string) error {
	url := b.stack.Info.APIURL + "/v1/exports/" + id
	var doc StatusDoc
	if _, err := Call(ctx, http.MethodDelete, url, b.key, "", &doc); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); doc.Status != "expired"; {
		if time.Now().After(deadline) {
			return fmt.Errorf("export %s not purged within a minute (%s)", id, doc.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		// While the purge runs the manifest may already be gone: 410.
		if status, err := Call(ctx, http.MethodGet, url, b.key, "", &doc); err != nil && status != http.StatusGone {
			return err
		}
	}
	return nil
}

// latency times small exports one after the other on one worker; it
// returns the last export's id for the load test.
func (b *bencher) latency(ctx context.Context) (*Latency, string, error) {
	start := b.window.Start.AddDate(0, 0, 7)
	var end time.Time
	table := "orders"
	if b.window.Dataset == exportd.Payments {
		table = "transactions"
	}
	err := b.stack.Pool.QueryRow(ctx, "SELECT created_at FROM "+table+" WHERE merchant_id = $1 AND created_at >= $2 ORDER BY created_at, id OFFSET $3 LIMIT 1",
		b.window.MerchantID, start, b.cfg.LatencyOrders).Scan(&end)
	if err != nil {
		return nil, "", fmt.Errorf("error finding a window of %d rows: %w", b.cfg.LatencyOrders, err)
	}
	q := b.query()
	q.Start, q.End = start, end
	n, err := (&postgres.Source{Pool: b.stack.Pool}).Count(ctx, q)
	if err != nil {
		return nil, "", err
	}
	var names []string
	for _, f := range b.cfg.LatencyFormats {
		names = append(names, string(f))
	}
	lat := &Latency{Orders: n, Formats: strings.Join(names, ", ")}
	w, err := b.startWorker(ctx, "latency", nil)
	if err != nil {
		return nil, "", err
	}
	defer w.stop()
	var id string
	for i := range b.cfg.LatencyExports {
		t := time.Now()
		doc, err := b.export(ctx, b.cfg.LatencyFormats, b.cfg.MaxRowsPerFile, start, end)
		if err != nil {
			return nil, "", err
		}
		d := time.Since(t)
		lat.Samples = append(lat.Samples, d)
		id = doc.ID
		act, _, _ := ExportActivity(ctx, b.stack.Client, contract.WorkflowID(id))
		b.printf("latency %2d/%d  %d rows in %s (Export activity %.3fs)", i+1, b.cfg.LatencyExports, n, d.Round(time.Millisecond), act)
	}
	if tl, err := Timeline(ctx, b.stack.Client, contract.WorkflowID(id)); err == nil {
		b.printf("timeline of the last small export, from the workflow start (ms):\n%s", tl)
	}
	return lat, id, nil
}

// loadTest runs the load generator, a second process, against GET
// /v1/exports/{id}: first closed loop (what the API sustains at most),
// then open loop at the target rate.
func (b *bencher) loadTest(ctx context.Context, id string, rates []float64) ([]LoadResult, error) {
	var out []LoadResult
	for _, rate := range rates {
		lc := b.cfg.LoadCommand
		cmd := exec.CommandContext(ctx, lc[0], append(lc[1:len(lc):len(lc)],
			"--url", b.stack.Info.APIURL+"/v1/exports/"+id, "--key", b.key,
			"--clients", fmt.Sprint(b.cfg.LoadClients), "--rate", fmt.Sprint(rate), "--duration", b.cfg.LoadDuration.String())...)
		cmd.Stderr = b.logFile
		b.printf("load test: %s", strings.Join(cmd.Args[len(lc)-1:], " "))
		before := b.cpu(0)
		stopProfile, err := b.profileSelf(fmt.Sprintf("api-load-%.0f.pprof", rate))
		if err != nil {
			return nil, err
		}
		raw, err := cmd.Output()
		stopProfile()
		if err != nil {
			return nil, fmt.Errorf("load generator: %w", err)
		}
		var r LoadResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("load generator said %q: %w", raw, err)
		}
		c := cpuSince(before, b.cpu(0))
		gen := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		b.printf("load test: %.0f req/s, p50 %.2fms, p99 %.2fms, %d errors; CPU s: api %.2f postgres %.2f temporal %.2f load generator %.2f",
			r.PerSecond, r.P50, r.P99, r.Errors, c["api"], c["postgres"], c["temporal"], gen.Seconds())
		out = append(out, r)
	}
	return out, nil
}

// loadRunning load-tests GET /v1/exports/{id} of an export while it runs:
// the whole window in all four formats on a worker of its own, loaded
// once it shows progress, at the target rate. It says so when the export
// finished before the load test did.
func (b *bencher) loadRunning(ctx context.Context) (*LoadResult, error) {
	w, err := b.startWorker(ctx, "load-running", []string{"EXPORTD_PARTITION_ROWS=0"})
	if err != nil {
		return nil, err
	}
	defer w.stop()
	body, err := json.Marshal(map[string]any{"merchantId": b.window.MerchantID, "dataset": b.window.Dataset,
		"start": b.window.Start.Format(time.RFC3339Nano), "end": b.window.End.Format(time.RFC3339Nano), "formats": exportd.Formats})
	if err != nil {
		return nil, err
	}
	api := b.stack.Info.APIURL + "/v1/exports"
	var doc StatusDoc
	if _, err := Call(ctx, http.MethodPost, api, b.key, string(body), &doc); err != nil {
		return nil, err
	}
	for doc.Status != "running" || doc.Progress.Rows == 0 {
		if doc.Status == "succeeded" || doc.Status == "failed" {
			return nil, fmt.Errorf("export %s ended %s before it could be loaded; use more --orders", doc.ID, doc.Status)
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := Call(ctx, http.MethodGet, api+"/"+doc.ID, b.key, "", &doc); err != nil {
			return nil, err
		}
	}
	loads, err := b.loadTest(ctx, doc.ID, []float64{b.cfg.LoadRate})
	if err != nil {
		return nil, err
	}
	if _, err := Call(ctx, http.MethodGet, api+"/"+doc.ID, b.key, "", &doc); err != nil {
		return nil, err
	}
	if doc.Status != "running" {
		b.printf("NOTE: the running export %s was %s by the end of its load test: part of the load read a finished export", doc.ID, doc.Status)
	}
	for doc.Status == "queued" || doc.Status == "running" {
		time.Sleep(100 * time.Millisecond)
		if _, err := Call(ctx, http.MethodGet, api+"/"+doc.ID, b.key, "", &doc); err != nil {
			return nil, err
		}
	}
	if err := b.purge(ctx, doc.ID); err != nil {
		return nil, err
	}
	return &loads[0], nil
}

// profileSelf starts a CPU profile of this process, which serves the API,
// when profiles are asked for; the returned func stops it.
func (b *bencher) profileSelf(name string) (func(), error) {
	if b.cfg.CPUProfileDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(b.cfg.CPUProfileDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(b.cfg.CPUProfileDir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// saveSummary keeps the summary of this order count next to the data, so
// runs at other counts can be compared (peak RSS should stay flat).
func (b *bencher) saveSummary(sum Summary) {
	path := filepath.Join(b.stack.Config.DataDir, fmt.Sprintf("bench-%s-%d.json", b.cfg.Dataset, b.cfg.Orders))
	if err := wiring.WriteJSONFile(path, sum); err != nil {
		b.log.Warn("could not save the summary", "error", err)
	}
}

// compareSizes prints peak RSS against the saved summaries of other order
// counts.
func (b *bencher) compareSizes(sum Summary) {
	paths, _ := filepath.Glob(filepath.Join(b.stack.Config.DataDir, fmt.Sprintf("bench-%s-*.json", b.cfg.Dataset)))
	for _, p := range paths {
		var other Summary
		raw, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(raw, &other) != nil || other.Rows == sum.Rows {
			continue
		}
		var parts []string
		for _, run := range b.cfg.Runs {
			o, ok := other.Runs[run]
			if !ok || o.PeakRSSMiB == 0 {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.1f vs %.1f MiB (%+.0f%%)", run, sum.Runs[run].PeakRSSMiB, o.PeakRSSMiB,
				100*(sum.Runs[run].PeakRSSMiB/o.PeakRSSMiB-1)))
		}
		if len(parts) > 0 {
			fmt.Fprintf(b.out, "peak RSS, %d rows vs %d rows (saved %s): %s\n", sum.Rows, other.Rows, filepath.Base(p), strings.Join(parts, "; "))
		}
	}
}

// workerProc is an `exportd worker` child process.
type workerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// startWorker starts a worker process with the stack's environment and
// waits until it polls both task queues. Its profile and trace, if asked
// for, are named after the run.
func (b *bencher) startWorker(ctx context.Context, name string, env []string) (*workerProc, error) {
	args := slices.Clone(b.cfg.WorkerCommand[1:])
	for _, o := range []struct{ dir, flag, ext string }{
		{b.cfg.CPUProfileDir, "--cpuprofile", ".pprof"}, {b.cfg.TraceDir, "--trace", ".trace"},
	} {
		if o.dir == "" {
			continue
		}
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, o.flag, filepath.Join(o.dir, name+o.ext))
	}
	cmd := exec.Command(b.cfg.WorkerCommand[0], args...)
	// Workers of one run side by side each serve metrics on a port of
	// their own.
	cmd.Env = append(slices.Clip(b.env), append([]string{"EXPORTD_METRICS_ADDR=127.0.0.1:0"}, env...)...)
	cmd.Stdout, cmd.Stderr = b.logFile, b.logFile
	// Its own process group keeps a terminal's Ctrl-C away: stop decides.
	cmd.SysProcAttr = devenv.ChildProcAttr(syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("error starting the worker: %w", err)
	}
	w := &workerProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	identity := fmt.Sprintf("%d@", cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for _, tq := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		for {
			resp, err := b.stack.Client.DescribeTaskQueue(ctx, contract.TaskQueue, tq)
			if err == nil && slices.ContainsFunc(resp.GetPollers(), func(p *taskqueuepb.PollerInfo) bool {
				return strings.HasPrefix(p.GetIdentity(), identity)
			}) {
				break
			}
			select {
			case <-w.done:
				return nil, errors.New("the worker exited at start; see " + b.logFile.Name())
			case <-ctx.Done():
				w.stop()
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				w.stop()
				return nil, errors.New("the worker did not poll within a minute")
			}
		}
	}
	return w, nil
}

// stop interrupts the worker, which drains and writes its profile, and
// kills it if it takes too long.
func (w *workerProc) stop() {
	_ = w.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}
