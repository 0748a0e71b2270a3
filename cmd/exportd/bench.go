package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/bench"
)

func runBench(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	// Hidden roles of the child processes the bench starts.
	if len(args) > 0 {
		switch args[0] {
		case "_worker":
			return runBenchWorker(ctx, args[1:], env, stdout, stderr)
		case "_load":
			return runBenchLoad(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("bench", stderr)
	var lf logFlags
	lf.register(fs)
	var cfg bench.Config
	fs.StringVar(&cfg.DataDir, "data-dir", filepath.Join(".data", "bench"), "directory for the bench's own stack; seeded data is kept and reused between runs")
	fs.IntVar(&cfg.Orders, "orders", 1_000_000, "orders of the bench merchant (seeded once per count, as merchant bench-<orders>)")
	fs.IntVar(&cfg.Repeat, "repeat", 3, "times each run is repeated; the report shows medians")
	runs := fs.String("formats", "parquet,arrow,jsonl.gz,csv.gz,all", "runs, in order: formats exported alone, and all for the four formats in one pass")
	dataset := fs.String("dataset", "orders", "dataset exported: orders or payments")
	fs.IntVar(&cfg.MaxRowsPerFile, "max-rows-per-file", 0, "part size of the exports (0: the service default)")
	scaleWorkers := fs.String("scale-workers", "1,2", `worker processes of the scale-out runs, which export the window as parquet, partitioned ("": none)`)
	fs.Int64Var(&cfg.ScalePartitionRows, "scale-partition-rows", 0, "partition size of the scale-out runs (0: an eighth of the window)")
	fileCounts := fs.String("file-counts", "12,12000", `file counts of the file-count runs, which export the window as that many parquet files: `+
		`their rows/s must not fall with the count ("": none)`)
	fs.BoolVar(&cfg.SkipLoad, "skip-load", false, "skip the HTTP load test of GET /v1/exports/{id}")
	fs.DurationVar(&cfg.LoadDuration, "load-duration", 10*time.Second, "duration of each HTTP load test")
	fs.Float64Var(&cfg.LoadRate, "load-rate", bench.GetRate, "requests per second offered by the open-loop load test")
	fs.IntVar(&cfg.LoadClients, "load-clients", 64, "concurrent keep-alive connections of the load generator")
	fs.IntVar(&cfg.LatencyExports, "latency-exports", 20, "small exports timed for the submit -> succeeded latency (0 skips)")
	fs.IntVar(&cfg.LatencyOrders, "latency-orders", 1000, "orders in the window of each small export")
	latFormats := fs.String("latency-formats", "parquet,arrow,jsonl.gz,csv.gz", "formats of the small exports")
	fs.StringVar(&cfg.CPUProfileDir, "cpuprofile-dir", "", "write a CPU profile of the worker for every run into this directory")
	fs.StringVar(&cfg.TraceDir, "trace-dir", "", "write a Go execution trace of the worker for every run into this directory (large)")
	fs.BoolVar(&cfg.KeepFiles, "keep-files", false, "keep the files of the timed exports (default: purge each after it is timed)")
	fs.DurationVar(&cfg.Poll, "poll", 25*time.Millisecond, "how often an export's status is polled while it is timed, at least (later every 1% of the time elapsed)")
	fs.StringVar(&cfg.TemporalBin, "temporal-bin", "", "Temporal CLI binary (default: .tools/bin/temporal, then PATH)")
	fs.Usage = usage(fs, benchSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	cfg.Dataset = exportd.Dataset(*dataset)
	if !cfg.Dataset.Valid() {
		return fmt.Errorf("unknown dataset %q", *dataset)
	}
	for r := range strings.SplitSeq(*runs, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if _, err := bench.ParseRun(r); err != nil {
			return err
		}
		cfg.Runs = append(cfg.Runs, r)
	}
	for n := range strings.SplitSeq(*scaleWorkers, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		r := string(exportd.Parquet) + bench.WorkersSuffix + n
		if _, err := bench.ParseRun(r); err != nil {
			return err
		}
		cfg.Runs = append(cfg.Runs, r)
	}
	for n := range strings.SplitSeq(*fileCounts, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		r := string(exportd.Parquet) + bench.FilesSuffix + n
		if _, err := bench.ParseRun(r); err != nil {
			return err
		}
		cfg.Runs = append(cfg.Runs, r)
	}
	var err error
	if cfg.LatencyFormats, err = bench.ParseFormats(*latFormats); err != nil {
		return err
	}
	if cfg.Orders < 1 || cfg.Repeat < 1 {
		return errors.New("--orders and --repeat must be positive")
	}

	logger, logFile, err := lf.fileLogger(cfg.DataDir, "exportd.log", stderr)
	if err != nil {
		return err
	}
	defer logFile.Close()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("error finding this executable: %w", err)
	}
	cfg.ToolsDir = toolsDir()
	cfg.WorkerCommand = []string{exe, "bench", "_worker"}
	cfg.LoadCommand = []string{exe, "bench", "_load"}
	cfg.Out, cfg.Progress, cfg.LogFile = stdout, stderr, logFile
	cfg.Logger = logger
	return bench.Run(ctx, cfg)
}

// runBenchWorker is `exportd bench _worker`: `exportd worker`, optionally
// under the CPU profiler.
func runBenchWorker(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("bench _worker", stderr)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here")
	traceFile := fs.String("trace", "", "write an execution trace here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return runWorker(ctx, fs.Args(), env, stdout, stderr)
}

// runBenchLoad is `exportd bench _load`: the load generator, printing its
// result as JSON.
func runBenchLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench _load", stderr)
	url := fs.String("url", "", "URL to GET")
	key := fs.String("key", "", "API key")
	var cfg bench.LoadConfig
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent connections")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered requests per second (0: closed loop)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.URL = *url
	cfg.Header = http.Header{"Authorization": {"Bearer " + *key}}
	res, err := bench.Load(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}
