package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TemporalServer runs the pinned Temporal server (go.temporal.io/server's
// cmd/server, not the CLI's dev server) with PostgreSQL persistence and
// SQL visibility, as docker-compose.yml runs the temporalio/server image.
// The schema must exist already (deploy/temporal/setup-schema.sh).
type TemporalServer struct {
	// Bin is the server binary.
	Bin string
	// DataDir holds the generated config, the log and the ports.
	DataDir string
	// DBHost, DBPort, DBUser and DBPassword reach the temporal and
	// temporal_visibility databases.
	DBHost     string
	DBPort     int
	DBUser     string
	DBPassword string
	// DynamicConfigFile is the server's dynamic config; empty for none.
	DynamicConfigFile string
	// NumHistoryShards is fixed when the cluster first starts; 4 when zero.
	NumHistoryShards int
	// Retention is the namespace's; 7 days when zero.
	Retention time.Duration
	// SearchAttributes are registered as Keyword; nil means
	// DefaultSearchAttributes.
	SearchAttributes []string
	// Logger receives what the launcher does; the server logs to
	// DataDir/temporal-server.log.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the frontend; two minutes when zero.
	StartTimeout time.Duration

	proc  *Process
	ports serverPorts
}

// serverPorts are the server's listeners, kept between starts so that
// clients holding the frontend address reconnect after a restart.
type serverPorts struct {
	Frontend, FrontendHTTP, FrontendMembership int
	History, HistoryMembership                 int
	Matching, MatchingMembership               int
	Worker, WorkerMembership                   int
	Metrics                                    int
}

func (p serverPorts) list() []int {
	return []int{p.Frontend, p.FrontendHTTP, p.FrontendMembership, p.History, p.HistoryMembership,
		p.Matching, p.MatchingMembership, p.Worker, p.WorkerMembership, p.Metrics}
}

const (
	temporalServerConfig = "temporal-server.yaml"
	temporalServerLog    = "temporal-server.log"
	temporalServerPorts  = "temporal-server-ports.json"
)

// Start writes the config, launches the server and returns once the
// frontend answers, the namespace exists and the search attributes are
// registered: what the compose stack's temporal-namespace and
// temporal-search-attributes jobs do. A server that exited may be started
// again; it keeps its ports while they are free.
func (s *TemporalServer) Start(ctx context.Context) error {
	if s.proc != nil && !s.proc.Exited() {
		return errors.New("temporal server already running")
	}
	bin, err := filepath.Abs(s.Bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("temporal server not found at %s, run `make cluster-tools`: %w", s.Bin, err)
	}
	dir, err := filepath.Abs(s.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("error creating %s: %w", dir, err)
	}
	var prev serverPorts
	_ = readJSON(filepath.Join(dir, temporalServerPorts), &prev)
	free, err := lowFreePorts(prev.list())
	if err != nil {
		return err
	}
	s.ports = serverPorts{free[0], free[1], free[2], free[3], free[4], free[5], free[6], free[7], free[8], free[9]}
	if err := writeJSON(filepath.Join(dir, temporalServerPorts), s.ports); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, temporalServerConfig)
	if err := s.writeConfig(cfgPath); err != nil {
		return err
	}
	s.proc = &Process{Name: "temporal server", Path: bin, Dir: dir, Env: temporalEnv(),
		Args:    []string{"--config-file", cfgPath, "--allow-no-auth", "start"},
		LogPath: filepath.Join(dir, temporalServerLog)}
	began := time.Now()
	if err := s.proc.Start(); err != nil {
		return err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.proc.Stop(5 * time.Second)
		return fmt.Errorf("%w\n%s", err, logTail(s.proc.LogPath, 20))
	}
	s.logger().Info("temporal server ready", "address", s.Address(), "took", time.Since(began).Round(time.Millisecond),
		"log", s.proc.LogPath)
	return nil
}

// Stop stops the server gracefully (SIGTERM), killing it after 20 s.
func (s *TemporalServer) Stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Stop(20 * time.Second)
}

// Address is the frontend's host:port.
func (s *TemporalServer) Address() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ports.Frontend))
}

// Pid is the server's process id, 0 before Start.
func (s *TemporalServer) Pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// Done is closed when the server exits; nil before Start.
func (s *TemporalServer) Done() <-chan struct{} {
	if s.proc == nil {
		return nil
	}
	return s.proc.Done()
}

func (s *TemporalServer) waitReady(ctx context.Context) error {
	timeout := s.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = s.setUp(ctx); last == nil {
			return nil
		}
		select {
		case <-s.proc.Done():
			return fmt.Errorf("temporal server exited before it was ready: %v", s.proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("temporal server not ready after %s: %w (last: %v)", timeout, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// setUp checks the cluster's health and creates the namespace and the
// search attributes where missing.
func (s *TemporalServer) setUp(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{HostPort: s.Address(), Namespace: TemporalNamespace,
		Logger: discardSDKLogger()})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CheckHealth(dctx, &client.CheckHealthRequest{}); err != nil {
		return err
	}
	ws, ops := c.WorkflowService(), c.OperatorService()
	created := false
	if _, err := ws.DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: TemporalNamespace}); err != nil {
		var nf *serviceerror.NamespaceNotFound
		if !errors.As(err, &nf) {
			return fmt.Errorf("error describing namespace: %w", err)
		}
		retention := s.Retention
		if retention <= 0 {
			retention = 7 * 24 * time.Hour
		}
		if _, err := ws.RegisterNamespace(dctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: TemporalNamespace, WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		}); err != nil {
			var exists *serviceerror.NamespaceAlreadyExists
			if !errors.As(err, &exists) {
				return fmt.Errorf("error creating namespace: %w", err)
			}
		}
		created = true
		s.logger().Info("created the Temporal namespace", "namespace", TemporalNamespace)
	}
	resp, err := ops.ListSearchAttributes(dctx, &operatorservice.ListSearchAttributesRequest{Namespace: TemporalNamespace})
	if err != nil {
		return fmt.Errorf("error listing search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range s.searchAttributes() {
		if resp.GetCustomAttributes()[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) > 0 {
		if _, err := ops.AddSearchAttributes(dctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: TemporalNamespace, SearchAttributes: missing,
		}); err != nil {
			return fmt.Errorf("error adding search attributes: %w", err)
		}
		created = true
		s.logger().Info("registered search attributes", "names", s.searchAttributes())
	}
	if created {
		// Frontends see a new namespace and new attributes once their
		// namespace cache refreshes (10 s at most), as the compose job
		// waits too; a start before that would be refused.
		s.logger().Info("waiting for the frontend's namespace cache to refresh")
		select {
		case <-time.After(11 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *TemporalServer) searchAttributes() []string {
	if s.SearchAttributes != nil {
		return s.SearchAttributes
	}
	return DefaultSearchAttributes
}

func (s *TemporalServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *TemporalServer) writeConfig(path string) error {
	shards := s.NumHistoryShards
	if shards <= 0 {
		shards = 4
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("error writing temporal server config: %w", err)
	}
	defer f.Close()
	return serverConfig.Execute(f, map[string]any{
		"P": s.ports, "Shards": shards, "DynamicConfig": s.DynamicConfigFile,
		"DBAddr": net.JoinHostPort(s.DBHost, strconv.Itoa(s.DBPort)), "DBUser": s.DBUser, "DBPassword": s.DBPassword,
	})
}

// serverConfig follows the server release's config/development-postgres12.yaml
// and docker/config_template.yaml, on loopback ports chosen at start.
var serverConfig = template.Must(template.New("config").Parse(`# Written by exportd cluster at every start; edits are lost.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.DBAddr}}"
        connectProtocol: tcp
        user: "{{.DBUser}}"
        password: "{{.DBPassword}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.DBAddr}}"
        connectProtocol: tcp
        user: "{{.DBUser}}"
        password: "{{.DBPassword}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:{{.P.Metrics}}"
services:
  frontend:
    rpc:
      grpcPort: {{.P.Frontend}}
      httpPort: {{.P.FrontendHTTP}}
      membershipPort: {{.P.FrontendMembership}}
      bindOnIP: 127.0.0.1
  history:
    rpc:
      grpcPort: {{.P.History}}
      membershipPort: {{.P.HistoryMembership}}
      bindOnIP: 127.0.0.1
  matching:
    rpc:
      grpcPort: {{.P.Matching}}
      membershipPort: {{.P.MatchingMembership}}
      bindOnIP: 127.0.0.1
  worker:
    rpc:
      grpcPort: {{.P.Worker}}
      membershipPort: {{.P.WorkerMembership}}
      bindOnIP: 127.0.0.1
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{.P.Frontend}}"
      httpAddress: "127.0.0.1:{{.P.FrontendHTTP}}"
dcRedirectionPolicy:
  policy: noop
{{- if .DynamicConfig}}
dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 60s
{{- end}}
`))

func discardSDKLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lowFreePorts is FreePorts below 32768: the server stores its membership
// ports in a smallint column, and the kernel's ephemeral range starts at
// 32768, so ports are probed at random in [10000, 32768) instead.
func lowFreePorts(prefer []int) ([]int, error) {
	ports := make([]int, len(prefer))
	for i, p := range prefer {
		for try := 0; ; try++ {
			if try == 200 {
				return nil, errors.New("error finding a free port below 32768")
			}
			if p <= 0 || p >= 32768 || try > 0 {
				p = 10000 + rand.IntN(32768-10000)
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			defer l.Close()
			ports[i] = p
			break
		}
	}
	return ports, nil
}
