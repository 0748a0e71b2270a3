// Command exportd is the bulk-export service: one binary whose
// subcommands run the whole dev stack or each production part.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

// Subcommand summaries, also printed by each subcommand's --help.
const (
	devSummary     = "run PostgreSQL, the Temporal dev server, the worker and the API in one process, seeded with demo data"
	workerSummary  = "run a worker for the exports task queue"
	apiSummary     = "run the HTTP API"
	migrateSummary = "apply the database migrations"
	seedSummary    = "generate deterministic demo data with COPY"
	benchSummary   = "time exports of N seeded orders, through the API, against PostgreSQL's own COPY (the limit)"
	clusterSummary = "run the docker-compose topology natively: PostgreSQL, a Temporal server on it, an S3 server, two workers and two APIs"
	startSummary   = "start an export through Temporal; follow it with a progress bar (--wait), download and verify its files (--out)"
)

var commands = map[string]command{
	"dev":     {devSummary, runDev},
	"cluster": {clusterSummary, runCluster},
	"worker":  {workerSummary, runWorker},
	"api":     {apiSummary, runAPI},
	"migrate": {migrateSummary, runMigrate},
	"seed":    {seedSummary, runSeed},
	"bench":   {benchSummary, runBench},
	"start":   {startSummary, runStart},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "exportd: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], env, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "exportd %s: %v\n", args[0], err)
	return 1
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: exportd <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'exportd <command> --help' for its flags; every flag also reads EXPORTD_<FLAG_NAME>.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
