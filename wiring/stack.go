package wiring

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/devenv"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/worker"
)

// StackConfig configures the one-process dev stack.
type StackConfig struct {
	// DataDir holds everything: the PostgreSQL cluster, Temporal's SQLite
	// file, the result files, the master key and dev.json.
	DataDir string
	// APIAddr is where the HTTP API listens; port 0 picks a free one.
	APIAddr string
	// SeedOrders is how many orders the first demo merchant gets.
	SeedOrders int
	// Worker runs the worker in this process; false leaves it to a
	// separate `exportd worker`.
	Worker bool
	// TemporalBin is the Temporal CLI binary; empty looks in ToolsDir,
	// then on PATH.
	TemporalBin string
	// ToolsDir is where `make tools` put the Temporal CLI.
	ToolsDir string
	// InfoPath is the dev.json of an earlier run, whose demo app keys are
	// kept; DataDir/dev.json when empty (`exportd cluster` has its own).
	InfoPath string
	// Logger receives the stack's logs.
	Logger *slog.Logger
	// NoSync runs PostgreSQL without fsync, for tests.
	NoSync bool
	// Limits cap running exports; QueueLimit and Hours refuse new ones.
	Limits     postgres.Limits
	QueueLimit int
	Hours      exports.Hours
	// RetryFor bounds how long an export retries failures that may heal.
	RetryFor time.Duration
	// PartitionRows and Parallelism split large exports into partitions
	// that run concurrently; see activities.Activities.
	PartitionRows int64
	Parallelism   int
	// Reaper is the in-process worker's queue reaper (its limits and
	// interval; Start gives it the queue, client and logger); nil runs
	// none.
	Reaper *worker.Reaper
}

// Stack is PostgreSQL, the Temporal dev server, the worker and the API in
// one process, as `exportd dev` runs them.
type Stack struct {
	Config   StackConfig
	Postgres *devenv.Postgres
	Temporal *devenv.Temporal
	Pool     *pgxpool.Pool
	Client   client.Client
	Info     Info
	// Metrics is served at the API's /metrics; the API, the in-process
	// worker and their Temporal client all record into it.
	Metrics *metrics.Registry

	deps       *Deps
	worker     sdkworker.Worker
	stopReaper func()
	server     *http.Server
}

// Info is dev.json: how to reach the stack and act as its demo apps.
type Info struct {
	APIURL          string            `json:"api_url"`
	TemporalAddress string            `json:"temporal_address"`
	TemporalUIURL   string            `json:"temporal_ui_url"`
	DatabaseURL     string            `json:"database_url"`
	Apps            []AppInfo         `json:"apps"`
	Env             map[string]string `json:"env"`
}

// AppInfo is a demo app and its credentials.
type AppInfo struct {
	Name         string   `json:"name"`
	AppID        string   `json:"app_id"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	APIKey       string   `json:"api_key"`
	Merchants    []string `json:"merchants"`
}

// InfoFile is the name of dev.json within the data dir.
const InfoFile = "dev.json"

// Start brings the stack up and writes dev.json once it serves.
func (s *Stack) Start(ctx context.Context) error {
	cfg := &s.Config
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("error resolving data dir: %w", err)
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("error creating data dir: %w", err)
	}
	masterKey, err := LoadOrCreateKey(filepath.Join(dir, "master.key"))
	if err != nil {
		return err
	}

	pgDir := PostgresDir(dir, log)
	log.Info("starting PostgreSQL", "dir", filepath.Join(pgDir, "postgres"))
	s.Postgres = &devenv.Postgres{Dir: pgDir, Log: log, NoSync: cfg.NoSync}
	if err := s.Postgres.Start(ctx); err != nil {
		return fmt.Errorf("error starting PostgreSQL: %w", err)
	}
	log.Info("starting the Temporal dev server")
	s.Temporal = &devenv.Temporal{Bin: cfg.TemporalBin, ToolsDir: cfg.ToolsDir, DataDir: dir, Logger: log,
		SearchAttributes: contract.SearchAttributeNames}
	if err := s.Temporal.Start(ctx); err != nil {
		return fmt.Errorf("error starting Temporal: %w", err)
	}

	s.Metrics = metrics.New(log)
	blobDir := filepath.Join(dir, "blobs")
	// Dev delivers webhooks to loopback, where a developer's receiver runs.
	if s.deps, err = Open(ctx, Config{
		DatabaseURL: s.Postgres.URL(), TemporalAddress: s.Temporal.Address(), TemporalNamespace: devenv.TemporalNamespace,
		Blob: BlobConfig{Backend: "local", Dir: blobDir}, MasterKey: masterKey, Logger: log, Metrics: s.Metrics,
		Admission: Admission{QueueLimit: cfg.QueueLimit, Hours: cfg.Hours, AllowPrivateWebhooks: true},
	}); err != nil {
		return err
	}
	s.Pool, s.Client = s.deps.Pool, s.deps.Client
	if err := postgres.Migrate(ctx, s.Pool); err != nil {
		return err
	}
	apps, err := s.SeedDemo(ctx, s.deps.Access)
	if err != nil {
		return err
	}

	addr := cfg.APIAddr
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s (set --api-addr to another address): %w", addr, err)
	}
	apiURL := "http://" + ln.Addr().String()
	if cfg.Worker {
		s.worker = s.deps.Worker(WorkerConfig{MaxConcurrentExports: cfg.Limits.Global + 2, RetryFor: cfg.RetryFor,
			PartitionRows: cfg.PartitionRows, Parallelism: cfg.Parallelism, Limits: cfg.Limits,
			PublicURL: apiURL, AllowPrivateWebhooks: true})
		if err := s.worker.Start(); err != nil {
			return fmt.Errorf("error starting worker: %w", err)
		}
		s.stopReaper = s.deps.StartReaper(cfg.Reaper)
	}
	s.server = s.deps.APIServer(apiURL)
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "error", err)
		}
	}()

	s.Info = Info{
		APIURL:          apiURL,
		TemporalAddress: s.Temporal.Address(),
		TemporalUIURL:   s.Temporal.UIURL(),
		DatabaseURL:     s.Postgres.URL(),
		Apps:            apps,
		Env: map[string]string{
			"EXPORTD_DATABASE_URL":          s.Postgres.URL(),
			"EXPORTD_TEMPORAL_ADDRESS":      s.Temporal.Address(),
			"EXPORTD_BLOB_DIR":              blobDir,
			"EXPORTD_MASTER_KEY":            hex.EncodeToString(masterKey),
			"EXPORTD_PUBLIC_URL":            apiURL,
			"EXPORTD_WEBHOOK_ALLOW_PRIVATE": "true",
		},
	}
	return WriteJSONFile(filepath.Join(dir, InfoFile), s.Info)
}

// PostgresDir is where the cluster lives: in the data dir, unless we run
// as root and the postgres OS user cannot reach it (a clone under /root,
// say); then in a directory under /var/tmp named after the data dir, so a
// second run finds the same cluster.
func PostgresDir(dataDir string, log *slog.Logger) string {
	err := devenv.ClusterReachable(dataDir)
	if err == nil {
		return dataDir
	}
	sum := sha256.Sum256([]byte(dataDir))
	alt := filepath.Join(os.TempDir(), "exportd-postgres-"+hex.EncodeToString(sum[:6]))
	if filepath.Dir(alt) == "/tmp" {
		alt = filepath.Join("/var/tmp", filepath.Base(alt))
	}
	log.Warn("the postgres OS user cannot reach the data dir; keeping the PostgreSQL cluster elsewhere", "reason", err, "cluster_dir", alt)
	return alt
}

// Close stops everything in reverse order: API (draining requests),
// queue reaper, worker, client, blob store, pool, Temporal, PostgreSQL.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if s.server != nil {
		errs = append(errs, s.server.Shutdown(ctx))
	}
	if s.stopReaper != nil {
		s.stopReaper()
	}
	if s.worker != nil {
		s.worker.Stop()
	}
	if s.deps != nil {
		s.deps.Close()
	}
	if s.Temporal != nil {
		errs = append(errs, s.Temporal.Stop(ctx))
	}
	if s.Postgres != nil {
		errs = append(errs, s.Postgres.Stop(ctx))
	}
	return errors.Join(errs...)
}

// LoadOrCreateKey reads the hex master key at path, or creates one.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is not a 32-byte hex key", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("error reading master key: %w", err)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("error writing master key: %w", err)
	}
	return k, nil
}

// WriteJSONFile writes v as indented JSON to path, atomically.
func WriteJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("error writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
