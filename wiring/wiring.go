// Package wiring builds the service's parts from configuration, once:
// the PostgreSQL pool, the access store with its sealer, the blob store,
// the Temporal client, the export Service, the activities, the worker and
// its queue reaper, and the HTTP API server. `exportd worker`, `exportd
// api`, the one-process dev stack (Stack) and the bench all use it, so a
// new dependency is added here and nowhere else.
package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/api"
	"github.com/exportd/exportd/blob"
	s3blob "github.com/exportd/exportd/blob/s3"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/webhook"
	"github.com/exportd/exportd/worker"
	"github.com/exportd/exportd/workflows"
)

// Labels of the keys derived from the master key, one per use.
const (
	signerKeyLabel = "signed download URLs"
	tokenKeyLabel  = "elastic path access tokens"
	cursorKeyLabel = "change export cursors"
)

// Config is what the shared dependencies are opened from.
type Config struct {
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	Blob              BlobConfig
	// MasterKey (32 bytes) encrypts app client secrets; the signing and
	// token keys are derived from it.
	MasterKey []byte
	Logger    *slog.Logger
	// Metrics receives the SDK's metrics and is watched by the API and
	// the activities; nil records none.
	Metrics *metrics.Registry
	// Admission is the API's refusals of new exports.
	Admission Admission
}

// BlobConfig chooses where result files are stored.
type BlobConfig struct {
	Backend string // local or s3
	Dir     string // local
	S3      s3blob.Config
}

// Open opens the configured blob store; close releases it.
func (c BlobConfig) Open(ctx context.Context) (st blob.Store, close func(), err error) {
	switch c.Backend {
	case "local":
		l, err := blob.NewLocal(c.Dir)
		if err != nil {
			return nil, nil, err
		}
		return l, func() { l.Close() }, nil
	case "s3":
		s, err := s3blob.New(ctx, c.S3)
		if err != nil {
			return nil, nil, err
		}
		return s, func() {}, nil
	}
	return nil, nil, fmt.Errorf("--blob-backend must be local or s3, not %q", c.Backend)
}

// Dial connects to Temporal, sending the SDK's logs to log and its metrics
// to mh (nil: none).
func Dial(address, namespace string, log *slog.Logger, mh client.MetricsHandler) (client.Client, error) {
	cl, err := client.Dial(client.Options{
		HostPort: address, Namespace: namespace,
		Logger:         sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		MetricsHandler: mh,
	})
	if err != nil {
		return nil, fmt.Errorf("error connecting to Temporal at %s: %w", address, err)
	}
	return cl, nil
}

// Deps are the dependencies worker, API, dev stack and bench share,
// opened once by Open and released by Close.
type Deps struct {
	Config Config
	Pool   *pgxpool.Pool
	Store  blob.Store
	Client client.Client
	Access *postgres.Access

	service *exports.Service
	closes  []func()
}

// Open connects to PostgreSQL, the blob store and Temporal and unseals
// the access store.
func Open(ctx context.Context, cfg Config) (d *Deps, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d = &Deps{Config: cfg}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	sealer, err := postgres.NewSealer(cfg.MasterKey)
	if err != nil {
		return d, err
	}
	if d.Pool, err = postgres.Open(ctx, cfg.DatabaseURL); err != nil {
		return d, err
	}
	d.closes = append(d.closes, d.Pool.Close)
	d.Access = &postgres.Access{Pool: d.Pool, Sealer: sealer}
	store, closeStore, err := cfg.Blob.Open(ctx)
	if err != nil {
		return d, err
	}
	d.Store = store
	d.closes = append(d.closes, closeStore)
	if d.Client, err = Dial(cfg.TemporalAddress, cfg.TemporalNamespace, cfg.Logger, cfg.Metrics.Temporal()); err != nil {
		return d, err
	}
	d.closes = append(d.closes, d.Client.Close)
	return d, nil
}

// Close releases what Open opened, last first.
func (d *Deps) Close() {
	for i := len(d.closes) - 1; i >= 0; i-- {
		d.closes[i]()
	}
	d.closes = nil
}

// Admission is the API's refusals of new exports, and whether callback
// URLs may be private.
type Admission struct {
	QueueLimit           int
	Hours                exports.Hours
	AllowPrivateWebhooks bool
}

// Service returns the export engine over these dependencies; the
// worker's webhook renderer and the API share it.
func (d *Deps) Service() *exports.Service {
	if d.service == nil {
		adm := d.Config.Admission
		d.service = &exports.Service{Temporal: d.Client, Access: d.Access, Store: d.Store,
			Index: &postgres.Files{Pool: d.Pool}, Queue: &postgres.Queue{Pool: d.Pool},
			Signer:     &exports.Signer{Key: exports.DeriveKey(d.Config.MasterKey, signerKeyLabel)},
			QueueLimit: adm.QueueLimit, Hours: adm.Hours, AllowPrivateWebhooks: adm.AllowPrivateWebhooks,
			Cursors: d.Cursors(), Schedules: &postgres.Schedules{Pool: d.Pool}, Logger: d.Config.Logger}
	}
	return d.service
}

// WorkerConfig is how a worker runs exports.
type WorkerConfig struct {
	// MaxConcurrentExports bounds the activities the worker runs at once.
	MaxConcurrentExports int
	// RetryFor bounds how long an export retries failures that may heal.
	RetryFor time.Duration
	// PartitionRows and Parallelism split large exports into partitions;
	// see activities.Activities.
	PartitionRows int64
	Parallelism   int
	// Limits cap running exports.
	Limits postgres.Limits
	// PublicURL is the API's base URL, for links in webhook bodies.
	PublicURL string
	// AllowPrivateWebhooks delivers to loopback and private addresses.
	AllowPrivateWebhooks bool
}

// Activities returns the export activities over these dependencies.
func (d *Deps) Activities(w WorkerConfig) *activities.Activities {
	return &activities.Activities{
		Source: &postgres.Source{Pool: d.Pool}, Store: d.Store, Records: &postgres.Files{Pool: d.Pool}, Logger: d.Config.Logger,
		PartitionRows: w.PartitionRows, Parallelism: w.Parallelism,
		Queue: &postgres.Queue{Pool: d.Pool}, Limits: w.Limits,
		Webhooks: webhook.NewSender(w.AllowPrivateWebhooks),
		Renderer: api.WebhookRenderer{Service: d.Service(), PublicURL: w.PublicURL},
		Secrets:  d.Access, Metrics: d.Config.Metrics,
		Cursors:   d.Cursors(),
		Schedules: &postgres.Schedules{Pool: d.Pool},
	}
}

// Cursors seals and opens change-export cursors; API and workers derive
// the same key from the master key.
func (d *Deps) Cursors() exportd.Cursors {
	return exportd.Cursors{Key: exports.DeriveKey(d.Config.MasterKey, cursorKeyLabel)}
}

// Worker returns a worker, not yet started, running the export workflows
// and Activities(w) on the exports task queue.
func (d *Deps) Worker(w WorkerConfig) sdkworker.Worker {
	return worker.New(d.Client, d.Activities(w),
		worker.Options{MaxConcurrentExports: w.MaxConcurrentExports, Workflow: workflows.Config{RetryFor: w.RetryFor}})
}

// StartReaper runs r (nil: nothing) until the returned stop is called,
// which waits for a pass under way to end.
func (d *Deps) StartReaper(r *worker.Reaper) (stop func()) {
	if r == nil {
		return func() {}
	}
	r.Queue, r.Temporal, r.Logger = &postgres.Queue{Pool: d.Pool}, d.Client, d.Config.Logger.With("component", "queue-reaper")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Ready is the /readyz check: PostgreSQL and Temporal both answer.
func (d *Deps) Ready(ctx context.Context) error {
	if err := d.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if _, err := d.Client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

// APIServer returns the HTTP API over Service(), with the server's own
// timeouts so a slow client cannot hold a connection open forever. It
// also has Metrics watch the exports and the admission queue.
func (d *Deps) APIServer(publicURL string) *http.Server {
	log := d.Config.Logger
	if reg := d.Config.Metrics; reg != nil {
		reg.WatchExports(metrics.ExportsByStatus(d.Client, contract.WorkflowName, contract.AttrPhase.GetName()))
		reg.WatchQueue(&postgres.Queue{Pool: d.Pool})
	}
	return &http.Server{
		Handler: api.Router(api.Config{
			Service: d.Service(), Logger: log, PublicURL: publicURL,
			TokenKey: exports.DeriveKey(d.Config.MasterKey, tokenKeyLabel),
			Ready:    d.Ready,
			Metrics:  d.Config.Metrics,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
