package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/blob"
	s3blob "github.com/exportd/exportd/blob/s3"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/wiring"
	"github.com/exportd/exportd/worker"
)

// conn holds the connection flags shared by worker, api, migrate and seed.
type conn struct {
	logFlags
	databaseURL string
	temporal    string
	namespace   string
	blobBackend string
	blobDir     string
	s3          s3blob.Config
	masterKey   string
}

func (c *conn) register(fs *flag.FlagSet, temporal, blobs bool) {
	c.logFlags.register(fs)
	fs.StringVar(&c.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/exportd", "PostgreSQL connection URL")
	if temporal {
		fs.StringVar(&c.temporal, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
		fs.StringVar(&c.namespace, "temporal-namespace", "default", "Temporal namespace")
	}
	if blobs {
		fs.StringVar(&c.blobBackend, "blob-backend", "local", "where result files are stored: local (--blob-dir) or s3 (--s3-*)")
		fs.StringVar(&c.blobDir, "blob-dir", "./exports", "directory where result files are stored (local backend)")
		fs.StringVar(&c.s3.Endpoint, "s3-endpoint", "s3.amazonaws.com", "S3-compatible endpoint, host[:port] without scheme")
		fs.StringVar(&c.s3.Bucket, "s3-bucket", "exports", "bucket for result files")
		fs.StringVar(&c.s3.AccessKey, "s3-access-key", "", "S3 access key")
		fs.StringVar(&c.s3.SecretKey, "s3-secret-key", "", "S3 secret key")
		fs.StringVar(&c.s3.Region, "s3-region", "us-east-1", "S3 region")
		fs.BoolVar(&c.s3.UseSSL, "s3-use-ssl", true, "use HTTPS to reach the S3 endpoint")
		fs.StringVar(&c.s3.Prefix, "s3-prefix", "", "key prefix inside the bucket")
		fs.StringVar(&c.masterKey, "master-key", "", "hex-encoded 32-byte key that encrypts app client secrets")
	}
}

func (c *conn) pool(ctx context.Context) (*pgxpool.Pool, error) {
	return postgres.Open(ctx, c.databaseURL)
}

func (c *conn) client(log *slog.Logger) (client.Client, error) {
	return wiring.Dial(c.temporal, c.namespace, log, nil)
}

// store opens the configured blob store; close releases it.
func (c *conn) store(ctx context.Context) (st blob.Store, close func(), err error) {
	return c.blob().Open(ctx)
}

func (c *conn) blob() wiring.BlobConfig {
	return wiring.BlobConfig{Backend: c.blobBackend, Dir: c.blobDir, S3: c.s3}
}

func (c *conn) key() ([]byte, error) {
	k, err := hex.DecodeString(c.masterKey)
	if err != nil || len(k) != 32 {
		return nil, errors.New("--master-key (EXPORTD_MASTER_KEY) must be 64 hex characters (32 bytes)")
	}
	return k, nil
}

// open opens what worker and api share, recording SDK metrics into reg
// (nil: none).
func (c *conn) open(ctx context.Context, log *slog.Logger, reg *metrics.Registry, adm wiring.Admission) (*wiring.Deps, error) {
	key, err := c.key()
	if err != nil {
		return nil, err
	}
	return wiring.Open(ctx, wiring.Config{DatabaseURL: c.databaseURL, TemporalAddress: c.temporal, TemporalNamespace: c.namespace,
		Blob: c.blob(), MasterKey: key, Logger: log, Metrics: reg, Admission: adm})
}

func runWorker(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", stderr)
	var c conn
	c.register(fs, true, true)
	maxExports := fs.Int("max-concurrent-exports", 4, "activities this worker runs at once")
	var ex exportFlags
	ex.register(fs)
	var lim limitFlags
	lim.register(fs)
	publicURL := fs.String("public-url", "http://127.0.0.1:8080", "the API's externally visible base URL, for links in webhook bodies")
	allowPrivate := fs.Bool("webhook-allow-private", false, "deliver webhooks to loopback and private addresses (development only)")
	metricsAddr := fs.String("metrics-addr", ":9090", `address serving the worker's /metrics and /healthz ("": none)`)
	memLimit := fs.Int64("memory-limit-mib", 200, "soft limit of the Go heap in MiB, which the garbage collector keeps to (0: none; GOMEMLIMIT, when set, wins)")
	fs.Usage = usage(fs, workerSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := lim.check(); err != nil {
		return err
	}
	if *memLimit > 0 && env("GOMEMLIMIT") == "" {
		// Parts of files of many formats come and go as garbage; without a
		// limit the heap grows to twice what is live before the collector
		// runs.
		debug.SetMemoryLimit(*memLimit << 20)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	var reg *metrics.Registry
	if *metricsAddr != "" {
		reg = metrics.New(log)
	}
	d, err := c.open(ctx, log, reg, wiring.Admission{})
	if err != nil {
		return err
	}
	defer d.Close()
	w := d.Worker(wiring.WorkerConfig{MaxConcurrentExports: *maxExports, RetryFor: ex.retryFor,
		PartitionRows: ex.partitionRows, Parallelism: ex.parallelism, Limits: lim.limits(),
		PublicURL: *publicURL, AllowPrivateWebhooks: *allowPrivate})
	var running atomic.Bool
	if *metricsAddr != "" {
		stop, err := serveWorkerHTTP(*metricsAddr, reg, log, func(ctx context.Context) error {
			if !running.Load() {
				return errors.New("the worker is not running")
			}
			return d.Ready(ctx)
		})
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("worker running", "task_queue", "exports", "temporal", c.temporal)
	running.Store(true)
	defer running.Store(false)
	defer d.StartReaper(lim.reaper())()
	return w.Run(interruptOn(ctx))
}

// interruptOn adapts a context to the worker's interrupt channel.
func interruptOn(ctx context.Context) <-chan any {
	ch := make(chan any, 1)
	go func() {
		<-ctx.Done()
		ch <- struct{}{}
	}()
	return ch
}

func runAPI(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("api", stderr)
	var c conn
	c.register(fs, true, true)
	addr := fs.String("api-addr", ":8080", "address the HTTP API listens on")
	publicURL := fs.String("public-url", "", "externally visible base URL for links (default: from each request's Host)")
	var adm admissionFlags
	adm.register(fs)
	allowPrivate := fs.Bool("webhook-allow-private", false, "accept callback URLs on loopback and private addresses (development only)")
	fs.Usage = usage(fs, apiSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	hours, err := exports.ParseHours(adm.serviceHours)
	if err != nil {
		return err
	}
	reg := metrics.New(log)
	d, err := c.open(ctx, log, reg, wiring.Admission{QueueLimit: adm.queueLimit, Hours: hours, AllowPrivateWebhooks: *allowPrivate})
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", *addr, err)
	}
	srv := d.APIServer(*publicURL)
	log.Info("API listening", "addr", ln.Addr().String())
	return serve(ctx, srv, ln)
}

// exportFlags are a worker's settings of how one export runs.
type exportFlags struct {
	retryFor      time.Duration
	partitionRows int64
	parallelism   int
}

func (e *exportFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&e.retryFor, "retry-for", time.Hour, "how long an export retries failures that may heal (storage, lost connections) before it fails")
	fs.Int64Var(&e.partitionRows, "partition-rows", activities.DefaultPartitionRows, "target rows of a partition: a larger export is split into partitions that run concurrently on any worker (0: never)")
	fs.IntVar(&e.parallelism, "export-parallelism", activities.DefaultParallelism, "partitions of one export running at once, at most; a request may ask for fewer")
}

// limitFlags cap running exports; workers enforce them, and their queue
// reapers keep the admission table true to Temporal.
type limitFlags struct {
	global, perMerchant int
	lease, reapEvery    time.Duration
}

func (l *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.global, "max-running-exports", 4, "exports running at once across all workers (0: no cap); set to workers x --max-concurrent-exports")
	fs.IntVar(&l.perMerchant, "max-running-per-merchant", 2, "exports of one merchant running at once (0: no cap)")
	fs.DurationVar(&l.lease, "slot-lease", 5*time.Minute, "a running slot not renewed for this long is taken back; the queue reaper renews it while the export's workflow is open")
	fs.DurationVar(&l.reapEvery, "reap-interval", worker.DefaultReapEvery, "time between queue reaper passes, which remove admission rows of ended or missing workflows and renew slot leases (0: none here; another worker must run one)")
}

// check refuses a lease that could run out between two renewals.
func (l *limitFlags) check() error {
	if l.lease > 0 && l.reapEvery > 0 && l.lease < 3*l.reapEvery {
		return fmt.Errorf("--slot-lease (%s) must be at least 3 x --reap-interval (%s), or slots of running exports expire between renewals", l.lease, l.reapEvery)
	}
	return nil
}

func (l *limitFlags) limits() postgres.Limits {
	return postgres.Limits{Global: l.global, PerMerchant: l.perMerchant, Lease: l.lease}
}

// reaper is the queue reaper of a worker with these flags, or nil when
// --reap-interval is 0 (another worker must then run one).
func (l *limitFlags) reaper() *worker.Reaper {
	if l.reapEvery <= 0 {
		return nil
	}
	return &worker.Reaper{Limits: l.limits(), Every: l.reapEvery}
}

// admissionFlags are the API's refusals: queue limit and service hours.
type admissionFlags struct {
	queueLimit   int
	serviceHours string
}

func (a *admissionFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&a.queueLimit, "queue-limit", 1000, "refuse new exports (429, Retry-After) while this many wait (0: no limit)")
	fs.StringVar(&a.serviceHours, "service-hours", "", `accept new exports only in these UTC weekday windows, e.g. "Mon-Fri 08:00-18:00; Sat 10:00-14:00" (empty: always)`)
}

// serve runs srv until ctx ends, then drains in-flight requests.
func serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func runMigrate(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	var c conn
	c.register(fs, false, false)
	fs.Usage = usage(fs, migrateSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func runSeed(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("seed", stderr)
	var c conn
	c.register(fs, false, false)
	orders := fs.Int("orders", 10_000, "orders per merchant")
	seed := fs.Uint64("seed", 1, "random seed; the same seed makes the same data")
	fs.Usage = usage(fs, seedSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	_, err = postgres.Seed(ctx, pool, postgres.SeedOptions{
		Seed: *seed, OrdersPerMerchant: *orders,
		Progress: func(m postgres.SeededMerchant) {
			if m.Skipped {
				fmt.Fprintf(stdout, "%-16s already has orders, skipped\n", m.ID)
				return
			}
			fmt.Fprintf(stdout, "%-16s %9d orders %9d items %9d transactions in %s (%.0f orders/s)\n",
				m.ID, m.Orders, m.Items, m.Transactions, m.Elapsed.Round(time.Millisecond), float64(m.Orders)/m.Elapsed.Seconds())
		},
	})
	return err
}
