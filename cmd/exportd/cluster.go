package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/devenv"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/wiring"
)

// Development values of the roles and the S3 account, the defaults of
// docker-compose.yml. The cluster's PostgreSQL trusts loopback connections,
// so the passwords are set but not checked.
const (
	clusterExportdPassword  = "exportd-dev-password"
	clusterTemporalPassword = "temporal-dev-password"
	clusterS3Bucket         = "exports"
	clusterS3AccessKey      = "exportd"
	clusterS3SecretKey      = "exportd-dev-secret"
	clusterWorkers          = 2
)

// ClusterConfig says where the cluster's parts are.
type ClusterConfig struct {
	// DataDir holds cluster.json; the cluster's state is in DataDir/cluster.
	DataDir string
	// APIAddrs are the listen addresses of the API processes, one each;
	// port 0 picks a free one.
	APIAddrs []string
	// SeedOrders is how many orders the first demo merchant gets.
	SeedOrders int
	// TemporalServerBin, SQLTool and SchemaDir are the pinned Temporal
	// server, its temporal-sql-tool and the release's
	// schema/postgresql/v12 directory.
	TemporalServerBin, SQLTool, SchemaDir string
	// S3Bin is the fakes3 binary.
	S3Bin string
	// DeployDir is the repository's deploy/, whose scripts and dynamic
	// config the compose stack mounts and the cluster runs.
	DeployDir string
	// Exportd is the exportd binary the workers and APIs run.
	Exportd string
	// Logger receives the launcher's log.
	Logger *slog.Logger
}

// ClusterInfo is cluster.json: dev.json's fields, plus every API and
// worker and the processes a test may restart.
type ClusterInfo struct {
	wiring.Info
	APIURLs     []string            `json:"api_urls"`
	Workers     []ClusterWorkerInfo `json:"workers"`
	TemporalPID int                 `json:"temporal_pid"`
	S3Endpoint  string              `json:"s3_endpoint"`
}

// ClusterWorkerInfo is one `exportd worker` process.
type ClusterWorkerInfo struct {
	PID        int    `json:"pid"`
	MetricsURL string `json:"metrics_url"`
}

// ClusterInfoFile is cluster.json's name within the data dir.
const ClusterInfoFile = "cluster.json"

// Cluster is docker-compose.yml's topology as child processes.
type Cluster struct {
	Config   ClusterConfig
	Postgres *devenv.Postgres
	Temporal *devenv.TemporalServer
	Info     ClusterInfo

	dir     string // DataDir/cluster
	s3      *devenv.Process
	workers []*devenv.Process
	apis    []*devenv.Process

	mu        sync.Mutex // guards Info and the Temporal restarts against Close
	closing   bool
	superDone chan struct{}
	stopSuper context.CancelFunc
}

// Start brings up the parts in docker-compose.yml's order and writes
// cluster.json once every API is ready.
func (c *Cluster) Start(ctx context.Context) error {
	cfg := &c.Config
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	c.dir = filepath.Join(dataDir, "cluster")
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("error creating %s: %w", c.dir, err)
	}
	for _, f := range []*string{&cfg.TemporalServerBin, &cfg.SQLTool, &cfg.SchemaDir, &cfg.S3Bin, &cfg.DeployDir, &cfg.Exportd} {
		if *f, err = filepath.Abs(*f); err != nil {
			return err
		}
		if _, err := os.Stat(*f); err != nil {
			return fmt.Errorf("%w (run `make cluster`, which builds it)", err)
		}
	}
	key, err := wiring.LoadOrCreateKey(filepath.Join(c.dir, "master.key"))
	if err != nil {
		return err
	}

	// postgres: one server, three databases and two roles.
	c.Postgres = &devenv.Postgres{Dir: wiring.PostgresDir(c.dir, log), Database: "postgres", Log: log,
		Settings: map[string]string{"max_connections": "200"}}
	if err := c.Postgres.Start(ctx); err != nil {
		return fmt.Errorf("error starting PostgreSQL: %w", err)
	}
	pgURL, _ := url.Parse(c.Postgres.DatabaseURL("postgres"))
	pgPort, _ := strconv.Atoi(pgURL.Port())
	if err := c.initDatabases(ctx, pgPort); err != nil {
		return err
	}
	// temporal-schema
	log.Info("creating and updating Temporal's schema")
	if err := c.script(ctx, "temporal-schema", filepath.Join(cfg.DeployDir, "temporal", "setup-schema.sh"),
		"POSTGRES_SEEDS=127.0.0.1", "DB_PORT="+strconv.Itoa(pgPort), "POSTGRES_USER=temporal",
		"SQL_PASSWORD="+clusterTemporalPassword, "TEMPORAL_SQL_TOOL="+cfg.SQLTool, "TEMPORAL_SCHEMA_DIR="+cfg.SchemaDir,
	); err != nil {
		return err
	}
	// temporal, temporal-namespace, temporal-search-attributes
	log.Info("starting the Temporal server")
	c.Temporal = &devenv.TemporalServer{Bin: cfg.TemporalServerBin, DataDir: c.dir,
		DBHost: "127.0.0.1", DBPort: pgPort, DBUser: "temporal", DBPassword: clusterTemporalPassword,
		DynamicConfigFile: filepath.Join(cfg.DeployDir, "temporal", "dynamicconfig.yaml"),
		SearchAttributes:  contract.SearchAttributeNames, Logger: log}
	if err := c.Temporal.Start(ctx); err != nil {
		return fmt.Errorf("error starting the Temporal server: %w", err)
	}
	// minio, minio-setup: the bucket is made by the server itself.
	s3Port, err := devenv.FreePort()
	if err != nil {
		return err
	}
	s3Endpoint := net.JoinHostPort("127.0.0.1", strconv.Itoa(s3Port))
	c.s3 = &devenv.Process{Name: "s3", Path: cfg.S3Bin, Dir: c.dir, Env: childEnv(),
		Args:    []string{"--addr", s3Endpoint, "--db", filepath.Join(c.dir, "s3.bolt"), "--bucket", clusterS3Bucket},
		LogPath: filepath.Join(c.dir, "s3.log")}
	if err := c.s3.Start(); err != nil {
		return err
	}
	if err := waitHTTP(ctx, c.s3, "http://"+s3Endpoint+"/"+clusterS3Bucket, false); err != nil {
		return err
	}

	// exportd-migrate, then the demo data and apps as `exportd dev` has them.
	dbURL := fmt.Sprintf("postgres://exportd:%s@127.0.0.1:%d/exportd?sslmode=disable", clusterExportdPassword, pgPort)
	log.Info("running exportd migrate")
	migrate := exec.CommandContext(ctx, cfg.Exportd, "migrate")
	migrate.Env = append(childEnv(), "EXPORTD_DATABASE_URL="+dbURL, "EXPORTD_LOG_FORMAT=json")
	if out, err := migrate.CombinedOutput(); err != nil {
		return fmt.Errorf("exportd migrate: %w\n%s", err, out)
	}
	apps, err := c.seed(ctx, dbURL)
	if err != nil {
		return err
	}

	apiURLs, apiAddrs, err := listenAddrs(cfg.APIAddrs)
	if err != nil {
		return err
	}
	env := map[string]string{
		"EXPORTD_DATABASE_URL":       dbURL,
		"EXPORTD_TEMPORAL_ADDRESS":   c.Temporal.Address(),
		"EXPORTD_TEMPORAL_NAMESPACE": devenv.TemporalNamespace,
		"EXPORTD_MASTER_KEY":         hex.EncodeToString(key),
		"EXPORTD_PUBLIC_URL":         apiURLs[0],
		"EXPORTD_BLOB_BACKEND":       "s3",
		"EXPORTD_S3_ENDPOINT":        s3Endpoint,
		"EXPORTD_S3_BUCKET":          clusterS3Bucket,
		"EXPORTD_S3_ACCESS_KEY":      clusterS3AccessKey,
		"EXPORTD_S3_SECRET_KEY":      clusterS3SecretKey,
		"EXPORTD_S3_REGION":          "us-east-1",
		"EXPORTD_S3_USE_SSL":         "false",
		"EXPORTD_LOG_FORMAT":         "json",
	}
	// exportd-worker x2
	var workers []ClusterWorkerInfo
	for i := range clusterWorkers {
		port, err := devenv.FreePort()
		if err != nil {
			return err
		}
		metricsURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		w := c.exportd(fmt.Sprintf("worker-%d", i+1), "worker", env,
			"EXPORTD_METRICS_ADDR=127.0.0.1:"+strconv.Itoa(port),
			"EXPORTD_MAX_RUNNING_EXPORTS="+strconv.Itoa(4*clusterWorkers))
		if err := w.Start(); err != nil {
			return err
		}
		c.workers = append(c.workers, w)
		workers = append(workers, ClusterWorkerInfo{PID: w.Pid(), MetricsURL: metricsURL})
	}
	// exportd-api, on two ports: the compose stack runs one and says how
	// to run more behind a load balancer.
	for i, addr := range apiAddrs {
		a := c.exportd(fmt.Sprintf("api-%d", i+1), "api", env, "EXPORTD_API_ADDR="+addr, "EXPORTD_PUBLIC_URL=")
		if err := a.Start(); err != nil {
			return err
		}
		c.apis = append(c.apis, a)
	}
	for i, w := range c.workers {
		if err := waitHTTP(ctx, w, workers[i].MetricsURL+"/healthz", true); err != nil {
			return err
		}
	}
	for i, a := range c.apis {
		if err := waitHTTP(ctx, a, apiURLs[i]+"/readyz", true); err != nil {
			return err
		}
	}

	c.Info = ClusterInfo{
		Info: wiring.Info{APIURL: apiURLs[0], TemporalAddress: c.Temporal.Address(), DatabaseURL: dbURL,
			Apps: apps, Env: env},
		APIURLs: apiURLs, Workers: workers, TemporalPID: c.Temporal.Pid(), S3Endpoint: s3Endpoint,
	}
	if err := c.writeInfo(); err != nil {
		return err
	}
	superCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopSuper, c.superDone = cancel, make(chan struct{})
	go c.superviseTemporal(superCtx)
	return nil
}

// initDatabases runs deploy/postgres/init-databases.sh, as the postgres
// image does on its first start, once: when the exportd role is missing.
func (c *Cluster) initDatabases(ctx context.Context, port int) error {
	conn, err := pgx.Connect(ctx, c.Postgres.DatabaseURL("postgres"))
	if err != nil {
		return fmt.Errorf("error connecting to PostgreSQL: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'exportd')").Scan(&exists)
	conn.Close(ctx)
	if err != nil || exists {
		return err
	}
	c.Config.Logger.Info("creating the exportd and temporal roles and the exportd database")
	psqlDir, err := psqlDir()
	if err != nil {
		return err
	}
	return c.script(ctx, "init-databases", filepath.Join(c.Config.DeployDir, "postgres", "init-databases.sh"),
		"PATH="+psqlDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(port), "POSTGRES_USER=postgres", "POSTGRES_DB=postgres",
		"DB_EXPORTD_PASSWORD="+clusterExportdPassword, "DB_TEMPORAL_PASSWORD="+clusterTemporalPassword)
}

// psqlDir is the directory of the psql client the init script calls.
func psqlDir() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return filepath.Dir(p), nil
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(m) > 0 {
		return filepath.Dir(m[len(m)-1]), nil
	}
	return "", errors.New("psql not found: install PostgreSQL's client (Debian: postgresql-client)")
}

// script runs one of deploy/'s shell scripts, as its compose job does,
// logging to <name>.log.
func (c *Cluster) script(ctx context.Context, name, path string, env ...string) error {
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", path)
	cmd.Dir = c.dir
	cmd.Env = append(childEnv(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s (%s): %w\n%s", name, path, err, tail(b, 4000))
	}
	return nil
}

// seed loads the demo merchants and apps through the exportd role.
func (c *Cluster) seed(ctx context.Context, dbURL string) ([]wiring.AppInfo, error) {
	pool, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	key, err := wiring.LoadOrCreateKey(filepath.Join(c.dir, "master.key"))
	if err != nil {
		return nil, err
	}
	sealer, err := postgres.NewSealer(key)
	if err != nil {
		return nil, err
	}
	s := &wiring.Stack{Pool: pool, Config: wiring.StackConfig{DataDir: c.dir, SeedOrders: c.Config.SeedOrders,
		Logger: c.Config.Logger, InfoPath: filepath.Join(c.Config.DataDir, ClusterInfoFile)}}
	return s.SeedDemo(ctx, &postgres.Access{Pool: pool, Sealer: sealer})
}

// exportd is an exportd subcommand as a child process with env and extra
// settings.
func (c *Cluster) exportd(name, command string, env map[string]string, extra ...string) *devenv.Process {
	e := childEnv()
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	return &devenv.Process{Name: name, Path: c.Config.Exportd, Args: []string{command}, Dir: c.dir,
		Env: append(e, extra...), LogPath: filepath.Join(c.dir, name+".log")}
}

// superviseTemporal restarts the Temporal server whenever it exits, as
// the compose service's restart policy does, on the same ports, so that
// workers and APIs reconnect.
func (c *Cluster) superviseTemporal(ctx context.Context) {
	defer close(c.superDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Temporal.Done():
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		c.Config.Logger.Warn("the Temporal server exited; restarting it")
		for ctx.Err() == nil {
			err := c.Temporal.Start(ctx)
			if err == nil {
				break
			}
			c.Config.Logger.Error("restarting the Temporal server", "error", err)
			time.Sleep(time.Second)
		}
		c.Info.TemporalPID = c.Temporal.Pid()
		if err := c.writeInfo(); err != nil {
			c.Config.Logger.Warn("could not update cluster.json", "error", err)
		}
		c.mu.Unlock()
	}
}

func (c *Cluster) writeInfo() error {
	return wiring.WriteJSONFile(filepath.Join(c.Config.DataDir, ClusterInfoFile), c.Info)
}

// Close stops everything, the APIs first and PostgreSQL last.
func (c *Cluster) Close() error {
	// Cancel first: a restart in progress holds mu until its Start
	// returns, which the cancellation makes immediate.
	if c.stopSuper != nil {
		c.stopSuper()
	}
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if c.superDone != nil {
		<-c.superDone
	}
	var errs []error
	for _, group := range [][]*devenv.Process{c.apis, c.workers, {c.s3}} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range group {
			if p == nil {
				continue
			}
			wg.Go(func() {
				if err := p.Stop(40 * time.Second); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if c.Temporal != nil {
		errs = append(errs, c.Temporal.Stop())
	}
	if c.Postgres != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs = append(errs, c.Postgres.Stop(ctx))
	}
	return errors.Join(errs...)
}

// listenAddrs turns listen addresses into URLs, choosing free ports for
// port 0 here, since the processes that listen report nothing back.
func listenAddrs(addrs []string) (urls, resolved []string, err error) {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid API address %q: %w", a, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "0" {
			p, err := devenv.FreePort()
			if err != nil {
				return nil, nil, err
			}
			port = strconv.Itoa(p)
		}
		resolved = append(resolved, net.JoinHostPort(host, port))
		urls = append(urls, "http://"+net.JoinHostPort(host, port))
	}
	if len(urls) == 0 {
		return nil, nil, errors.New("no API address")
	}
	return urls, resolved, nil
}

// waitHTTP polls u until it answers (200 when ok200), the process exits,
// or a minute passes.
func waitHTTP(ctx context.Context, p *devenv.Process, u string, ok200 bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !ok200 || resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", u, resp.Status)
		}
		last = err
		select {
		case <-p.Done():
			b, _ := os.ReadFile(p.LogPath)
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.Name, p.Err(), tail(b, 4000))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", p.Name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// childEnv is this process's environment without EXPORTD_* and TEMPORAL_*
// variables, so that a developer's shell cannot reconfigure a part.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXPORTD_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// temporalRelease is the pinned Temporal server release the Makefile
// builds; its schema files are copied next to the tools.
const temporalRelease = "1.31.0"

func runCluster(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("cluster", stderr)
	var lf logFlags
	lf.register(fs)
	var cfg ClusterConfig
	tools := toolsDir()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fs.StringVar(&cfg.DataDir, "data-dir", ".data", "directory for cluster.json; the cluster's state goes in its cluster/ subdirectory")
	apiAddrs := fs.String("api-addrs", "127.0.0.1:8080,127.0.0.1:8081", "comma-separated listen addresses, one `exportd api` each (port 0 picks a free one)")
	fs.IntVar(&cfg.SeedOrders, "seed-orders", 20_000, "orders generated for the first demo merchant on the first run")
	fs.StringVar(&cfg.TemporalServerBin, "temporal-server-bin", filepath.Join(tools, "temporal-server"), "the pinned Temporal server")
	fs.StringVar(&cfg.SQLTool, "temporal-sql-tool", filepath.Join(tools, "temporal-sql-tool"), "the pinned temporal-sql-tool")
	fs.StringVar(&cfg.SchemaDir, "temporal-schema-dir", filepath.Join(filepath.Dir(tools), "temporal-schema", temporalRelease, "postgresql", "v12"),
		"the pinned release's schema/postgresql/v12")
	fs.StringVar(&cfg.S3Bin, "s3-bin", filepath.Join(filepath.Dir(exe), "fakes3"), "the S3 server (fakes3)")
	fs.StringVar(&cfg.DeployDir, "deploy-dir", deployDir(exe), "the repository's deploy/ directory")
	fs.Usage = usage(fs, clusterSummary)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	cfg.APIAddrs = strings.Split(*apiAddrs, ",")
	cfg.Exportd = exe
	logger, logFile, err := lf.fileLogger(cfg.DataDir, "cluster.log", stderr)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logPath := logFile.Name()
	cfg.Logger = logger

	c := &Cluster{Config: cfg}
	defer func() {
		fmt.Fprintln(stdout, "stopping...")
		if err := c.Close(); err != nil {
			cfg.Logger.Warn("stopping the cluster", "error", err)
		}
	}()
	started := time.Now()
	if err := c.Start(ctx); err != nil {
		return err
	}
	info, dir := c.Info, c.dir
	fmt.Fprintf(stdout, "\nexportd cluster is ready (%s)\n\n", time.Since(started).Round(time.Millisecond))
	for i, u := range info.APIURLs {
		fmt.Fprintf(stdout, "  API %d          %s  (log %s)\n", i+1, u, filepath.Join(dir, fmt.Sprintf("api-%d.log", i+1)))
	}
	for i, w := range info.Workers {
		fmt.Fprintf(stdout, "  worker %d       pid %d, %s/metrics  (log %s)\n", i+1, w.PID, w.MetricsURL, filepath.Join(dir, fmt.Sprintf("worker-%d.log", i+1)))
	}
	fmt.Fprintf(stdout, `  Temporal       %s, PostgreSQL persistence and visibility  (log %s)
  S3             http://%s, bucket %s  (log %s)
  PostgreSQL     %s (databases exportd, temporal, temporal_visibility)
  cluster.json   %s
  log            %s

`, info.TemporalAddress, filepath.Join(dir, "temporal-server.log"), info.S3Endpoint, clusterS3Bucket,
		filepath.Join(dir, "s3.log"), info.DatabaseURL, filepath.Join(cfg.DataDir, ClusterInfoFile), logPath)
	for _, app := range info.Apps {
		fmt.Fprintf(stdout, "  app %-12q api key %s... (in cluster.json)  merchants %v\n", app.Name, app.APIKey[:min(len(app.APIKey), 8)], app.Merchants)
	}
	fmt.Fprintln(stdout, "\nrunning; press Ctrl-C to stop")
	<-ctx.Done()
	return nil
}

// deployDir is the repository's deploy/ next to the bin/ holding exe, or
// under the working directory.
func deployDir(exe string) string {
	dir := filepath.Join(filepath.Dir(filepath.Dir(exe)), "deploy")
	if _, err := os.Stat(filepath.Join(dir, "temporal", "setup-schema.sh")); err == nil {
		return dir
	}
	if abs, err := filepath.Abs("deploy"); err == nil {
		return abs
	}
	return "deploy"
}
