package devenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// TemporalNamespace is the namespace the dev server creates and exportd
// uses; the CLI always creates "default", so nothing else needs setting up.
const TemporalNamespace = "default"

// DefaultSearchAttributes are the Keyword attributes of section 4 of the
// spec; they must match contract.SearchAttributeNames, which devenv does
// not import, to stay a package about dev servers only.
var DefaultSearchAttributes = []string{"ExportMerchant", "ExportDataset", "ExportPhase"}

// Temporal runs the pinned Temporal CLI dev server as a child process, with
// its state in a SQLite file under DataDir so that a restart keeps the
// workflows: `exportd dev` and the fault-injection tests rely on that.
type Temporal struct {
	// Bin is the temporal binary to run; when empty, ToolsDir/temporal and
	// then `temporal` on PATH are tried.
	Bin string
	// ToolsDir is where `make tools` installs the pinned CLI
	// (<repo>/.tools/bin); the caller knows where the repository is.
	ToolsDir string
	// DataDir holds temporal.db, temporal.log and the ports in use.
	DataDir string
	// SearchAttributes are registered as Keyword at every start; nil means
	// DefaultSearchAttributes.
	SearchAttributes []string
	// Logger receives what devenv does, not the server's own output, which
	// goes to DataDir/temporal.log; nil discards.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the server to answer; zero means a
	// minute, enough for a cold start on a slow CI machine.
	StartTimeout time.Duration
	// StopTimeout bounds the graceful shutdown before SIGKILL; zero means
	// ten seconds.
	StopTimeout time.Duration

	mu    sync.Mutex
	run   *temporalRun // nil when stopped
	ports temporalPorts
}

// temporalRun is one server process; a restart makes a new one.
type temporalRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the exit status, written before done is closed
}

// kill ends the whole process group, whatever the server spawned too.
func (r *temporalRun) kill(log *slog.Logger) {
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		log.Warn("could not kill temporal dev server", "pid", r.cmd.Process.Pid, "err", err)
	}
}

// temporalPorts is what temporal-ports.json keeps between starts.
type temporalPorts struct {
	Frontend int `json:"frontend"`
	UI       int `json:"ui"`
	HTTP     int `json:"http"`
	Metrics  int `json:"metrics"`
}

const (
	temporalDBFile    = "temporal.db"
	temporalLogFile   = "temporal.log"
	temporalPortsFile = "temporal-ports.json"
)

// Start launches the server and returns once the frontend answers, the
// namespace exists and the search attributes are visible, so that a
// worker or an API started next never races the server.
func (t *Temporal) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.run != nil {
		return errors.New("temporal dev server already started")
	}
	if t.DataDir == "" {
		return errors.New("temporal dev server needs a DataDir")
	}
	bin, err := t.binary()
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(t.DataDir)
	if err != nil {
		return fmt.Errorf("error resolving data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("error creating data dir: %w", err)
	}

	prev := loadPorts(filepath.Join(dataDir, temporalPortsFile))
	// The server exits while starting when a port was taken before it
	// bound it: one of ours, or one of the internal ports the CLI picks at
	// random at every start. Another try keeps the ports that are still
	// free (FreePorts replaces the others), above all the frontend's, so
	// that workers and APIs holding the address of a restarted server
	// reconnect to it; fresh ports would strand them.
	for attempt := 0; ; attempt++ {
		err = t.launch(ctx, bin, dataDir, prev)
		if err == nil || attempt == 2 || ctx.Err() != nil || !errors.Is(err, errExited) {
			return err
		}
		t.logger().Warn("temporal dev server exited while starting, retrying", "err", err)
	}
}

// errExited marks a server that died before it was ready.
var errExited = errors.New("temporal dev server exited")

func (t *Temporal) launch(ctx context.Context, bin, dataDir string, prev temporalPorts) error {
	p, err := FreePorts([]int{prev.Frontend, prev.UI, prev.HTTP, prev.Metrics})
	if err != nil {
		return err
	}
	ports := temporalPorts{Frontend: p[0], UI: p[1], HTTP: p[2], Metrics: p[3]}
	args := t.args(dataDir, ports)

	logPath := filepath.Join(dataDir, temporalLogFile)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("error opening temporal log: %w", err)
	}
	fmt.Fprintf(logFile, "--- %s exportd devenv: %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dataDir
	cmd.Env = temporalEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group, so Stop reaches anything it spawns; and death
	// with us, so a crashed `dev` leaves no server holding the SQLite file.
	cmd.SysProcAttr = ChildProcAttr(syscall.SIGKILL)
	started := time.Now()
	run := &temporalRun{cmd: cmd, done: make(chan struct{})}
	// Pdeathsig fires when the forking thread exits, and the Go runtime
	// retires a thread whenever a goroutine that locked it exits (as the
	// PostgreSQL launcher's does when that server stops): forked from an
	// ordinary goroutine, the server would be killed by an unrelated
	// restart. So the fork happens on a goroutine locked to its thread for
	// the server's whole life, as launchPostgres does.
	forked := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			forked <- err
			return
		}
		forked <- nil
		run.err = cmd.Wait()
		logFile.Close()
		close(run.done)
	}()
	if err := <-forked; err != nil {
		logFile.Close()
		return fmt.Errorf("error starting %s: %w", bin, err)
	}
	t.run, t.ports = run, ports

	if err := savePorts(filepath.Join(dataDir, temporalPortsFile), ports); err != nil {
		t.logger().Warn("could not save temporal ports; the next start may pick new ones", "err", err)
	}

	if err := t.waitReady(ctx, run); err != nil {
		run.kill(t.logger())
		<-run.done
		t.run = nil
		return fmt.Errorf("%w (server log %s:\n%s)", err, logPath, logTail(logPath, 10))
	}
	t.logger().Info("temporal dev server ready",
		"address", t.address(), "ui", t.uiURL(), "pid", cmd.Process.Pid,
		"took", time.Since(started).Round(time.Millisecond), "log", logPath)
	return nil
}

func (t *Temporal) args(dataDir string, p temporalPorts) []string {
	args := []string{
		"server", "start-dev",
		"--db-filename", filepath.Join(dataDir, temporalDBFile),
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(p.Frontend),
		"--ui-port", strconv.Itoa(p.UI),
		"--http-port", strconv.Itoa(p.HTTP),
		"--metrics-port", strconv.Itoa(p.Metrics),
		"--namespace", TemporalNamespace,
		"--log-level", "warn",
		// WAL with synchronous=NORMAL survives a killed server (the fault
		// tests kill it) and skips an fsync per history event, which on a
		// slow disk costs about a second per workflow step.
		"--sqlite-pragma", "journal_mode=wal",
		"--sqlite-pragma", "synchronous=normal",
		// A worker that completes a workflow task starts the activities it
		// schedules itself, instead of each waiting about 45 ms for the
		// matching service to hand it out: a small export runs five.
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
	}
	for _, name := range t.searchAttributes() {
		args = append(args, "--search-attribute", name+"=Keyword")
	}
	return args
}

// temporalEnv drops TEMPORAL_* variables, which the CLI reads as flag
// defaults, so that a developer's shell cannot point the server elsewhere.
func temporalEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls rather than parsing the server's output, which is not a
// stable interface across CLI versions.
func (t *Temporal) waitReady(ctx context.Context, run *temporalRun) error {
	timeout := t.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var c client.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if c == nil {
			c, last = t.dial(ctx)
		}
		if c != nil {
			if last = t.checkReady(ctx, c); last == nil {
				return nil
			}
		}
		select {
		case <-run.done:
			return fmt.Errorf("%w before it was ready: %v", errExited, run.err)
		case <-ctx.Done():
			return fmt.Errorf("temporal dev server not ready after %s: %w (last: %v)", timeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (t *Temporal) dial(ctx context.Context) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return client.DialContext(ctx, client.Options{
		HostPort:  t.address(),
		Namespace: TemporalNamespace,
		// Refused connections are expected while the server boots.
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
}

func (t *Temporal) checkReady(ctx context.Context, c client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("error checking health: %w", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: TemporalNamespace}); err != nil {
		return fmt.Errorf("error describing namespace: %w", err)
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: TemporalNamespace})
	if err != nil {
		return fmt.Errorf("error listing search attributes: %w", err)
	}
	for _, name := range t.searchAttributes() {
		if resp.GetCustomAttributes()[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			return fmt.Errorf("search attribute %s not registered as Keyword yet", name)
		}
	}
	return nil
}

// Stop interrupts the server so that it closes SQLite cleanly, and kills
// it if it has not exited after StopTimeout or when ctx ends. It returns
// once the process is gone; stopping a stopped server does nothing.
func (t *Temporal) Stop(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	run := t.run
	if run == nil {
		return nil
	}
	t.run = nil
	select {
	case <-run.done:
		if run.err != nil {
			return fmt.Errorf("%w on its own: %w", errExited, run.err)
		}
		return nil
	default:
	}

	timeout := t.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	pid := run.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.logger().Warn("could not interrupt temporal dev server", "pid", pid, "err", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-run.done:
		return nil
	case <-timer.C:
		t.logger().Warn("temporal dev server ignored SIGINT, killing it", "pid", pid, "after", timeout)
	case <-ctx.Done():
	}
	run.kill(t.logger())
	<-run.done
	return nil
}

// Address is the frontend's host:port for client.Dial; it changes only
// when the previous port was taken by something else.
func (t *Temporal) Address() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.address()
}

func (t *Temporal) address() string {
	if t.ports.Frontend == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.ports.Frontend))
}

// UIURL is where an operator opens the Web UI.
func (t *Temporal) UIURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.uiURL()
}

func (t *Temporal) uiURL() string {
	if t.ports.UI == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(t.ports.UI))
}

// Done is closed when the server process exits, so `exportd dev` can shut
// down instead of serving with no workflow engine; nil before Start.
func (t *Temporal) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.run == nil {
		return nil
	}
	return t.run.done
}

func (t *Temporal) searchAttributes() []string {
	if t.SearchAttributes != nil {
		return t.SearchAttributes
	}
	return DefaultSearchAttributes
}

func (t *Temporal) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// binary prefers what the caller names over PATH, because only the pinned
// CLI is known to work with this project's SDK.
// The path is made absolute: the server runs in DataDir, where a path
// relative to the caller's working directory names nothing.
func (t *Temporal) binary() (string, error) {
	if t.Bin != "" {
		if _, err := os.Stat(t.Bin); err != nil {
			return "", fmt.Errorf("temporal CLI not found at %s, run `make tools` to install it: %w", t.Bin, err)
		}
		return filepath.Abs(t.Bin)
	}
	if t.ToolsDir != "" {
		p := filepath.Join(t.ToolsDir, "temporal")
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p)
		}
	}
	p, err := exec.LookPath("temporal")
	if err != nil {
		where := "on PATH"
		if t.ToolsDir != "" {
			where = "in " + t.ToolsDir + " or on PATH"
		}
		return "", fmt.Errorf("temporal CLI not found %s, run `make tools` to install the pinned version: %w", where, err)
	}
	t.logger().Warn("using the temporal CLI from PATH, not the pinned one; run `make tools` if it misbehaves", "path", p)
	return p, nil
}

func loadPorts(path string) temporalPorts {
	var p temporalPorts
	b, err := os.ReadFile(path)
	if err != nil {
		return p
	}
	if json.Unmarshal(b, &p) != nil {
		return temporalPorts{}
	}
	return p
}

func savePorts(path string, p temporalPorts) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// logTail returns the last lines of the server log, which is where the
// reason for a failed start is.
func logTail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 8 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	parts := bytes.Split(b, []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}
