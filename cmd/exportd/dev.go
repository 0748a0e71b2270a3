package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/wiring"
)

func runDev(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	var lf logFlags
	lf.register(fs)
	var cfg wiring.StackConfig
	fs.StringVar(&cfg.DataDir, "data-dir", ".data", "directory for PostgreSQL, Temporal, result files and dev.json; kept between runs")
	fs.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:8080", "address the HTTP API listens on (port 0 picks a free one)")
	fs.IntVar(&cfg.SeedOrders, "seed-orders", 20_000, "orders generated for the first demo merchant on the first run")
	fs.BoolVar(&cfg.Worker, "worker", true, "run the worker in this process (false: start `exportd worker` with dev.json's env)")
	fs.StringVar(&cfg.TemporalBin, "temporal-bin", "", "Temporal CLI binary (default: .tools/bin/temporal, then PATH)")
	var ex exportFlags
	ex.register(fs)
	var lim limitFlags
	lim.register(fs)
	var adm admissionFlags
	adm.register(fs)
	demo := fs.Bool("demo", false, "once ready, run one export through the HTTP API and show it step by step")
	fs.Usage = usage(fs, devSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := lim.check(); err != nil {
		return err
	}
	// The terminal shows the banner, the demo and warnings; the full log
	// goes to a file in the data dir.
	log, logFile, err := lf.fileLogger(cfg.DataDir, "exportd.log", stderr)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logPath := logFile.Name()
	cfg.Logger = log
	cfg.ToolsDir = toolsDir()
	cfg.Limits, cfg.QueueLimit = lim.limits(), adm.queueLimit
	cfg.RetryFor, cfg.PartitionRows, cfg.Parallelism = ex.retryFor, ex.partitionRows, ex.parallelism
	cfg.Reaper = lim.reaper()
	if cfg.Hours, err = exports.ParseHours(adm.serviceHours); err != nil {
		return err
	}

	stack := &wiring.Stack{Config: cfg}
	defer func() {
		fmt.Fprintln(stdout, "stopping...")
		if err := stack.Close(); err != nil {
			log.Warn("stopping the stack", "error", err)
		}
	}()
	started := time.Now()
	if err := stack.Start(ctx); err != nil {
		return err
	}
	info := stack.Info
	fmt.Fprintf(stdout, `
exportd dev is ready (%s)

  API            %s
  Temporal UI    %s
  Temporal       %s
  PostgreSQL     %s
  dev.json       %s
  log            %s

`, time.Since(started).Round(time.Millisecond), info.APIURL, info.TemporalUIURL, info.TemporalAddress,
		info.DatabaseURL, filepath.Join(stack.Config.DataDir, wiring.InfoFile), logPath)
	// Keys stay out of the terminal, which ends up in logs and CI output;
	// dev.json has them.
	for _, app := range info.Apps {
		fmt.Fprintf(stdout, "  app %-12q api key %s... (in dev.json)  merchants %v\n", app.Name, app.APIKey[:min(len(app.APIKey), 8)], app.Merchants)
	}
	fmt.Fprintln(stdout)
	if *demo {
		if err := runDemo(ctx, stdout, stack); err != nil {
			return fmt.Errorf("demo export: %w", err)
		}
	}
	fmt.Fprintln(stdout, "running; press Ctrl-C to stop")
	select {
	case <-ctx.Done():
	case <-stack.Temporal.Done():
		return fmt.Errorf("the Temporal dev server exited; see %s", filepath.Join(stack.Config.DataDir, "temporal.log"))
	}
	return nil
}

// toolsDir is where `make tools` builds the Temporal CLI: .tools/bin next
// to the bin/ directory holding this executable, or under the working
// directory. It is absolute, because the tools run in the data dir.
func toolsDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Join(filepath.Dir(filepath.Dir(exe)), ".tools", "bin")
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	dir, err := filepath.Abs(filepath.Join(".tools", "bin"))
	if err != nil {
		return filepath.Join(".tools", "bin")
	}
	return dir
}
