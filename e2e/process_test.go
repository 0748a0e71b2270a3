package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/devenv"
)

// Tests that run exportd subcommands as separate processes share one
// binary, built once per test binary into a fixed place under the
// temporary directory (named after the module root, so repeated runs
// overwrite it instead of leaving copies behind).
var (
	sharedBinOnce sync.Once
	sharedBin     string
	sharedBinErr  error
)

func exportdBin(t *testing.T) string {
	t.Helper()
	bin, err := buildShared(repoRoot(t))
	require.NoError(t, err)
	return bin
}

// buildShared builds the shared binary once; it reports rather than
// asserts, so that a test may start the build on another goroutine while
// it does something else.
func buildShared(root string) (string, error) {
	sharedBinOnce.Do(func() {
		sum := sha256.Sum256([]byte(root))
		dir := filepath.Join(os.TempDir(), "exportd-e2e-"+hex.EncodeToString(sum[:6]))
		if sharedBinErr = os.MkdirAll(dir, 0o755); sharedBinErr != nil {
			return
		}
		sharedBin = filepath.Join(dir, "exportd")
		cmd := exec.Command("go", "build", "-o", sharedBin, "./cmd/exportd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			sharedBinErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	return sharedBin, sharedBinErr
}

// workerMetricsAddr is where test workers serve metrics: a port of their
// own, since the default (:9090) allows one worker per machine and the
// tests run several at once.
const workerMetricsAddr = "127.0.0.1:0"

// child is one exportd subcommand running as its own process group.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{} // closed once the process has exited
	err     error         // the exit status, set before done is closed
}

// childEnv is this process's environment without any EXPORTD_* variable,
// plus exactly the given ones: a child sees the configuration the test
// means and nothing a developer's shell (or the Makefile) exported.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXPORTD_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// startChild runs `exportd <args>` with env, logging to logDir/name.log.
// The child is killed (its whole process group) when owner ends, and its
// log is shown when owner failed; owner is t, or a parent test whose
// stack outlives subtest t. It dies with the test binary too: the
// parent-death signal fires when the forking thread exits, so the fork
// happens on a goroutine locked to its thread for the child's whole life,
// as devenv does for its servers.
func startChild(t, owner *testing.T, logDir, name string, env []string, args ...string) *child {
	t.Helper()
	bin := exportdBin(t)
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = devenv.ChildProcAttr(syscall.SIGKILL)
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.started = time.Now()
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	require.NoError(t, <-started, "starting %s", name)
	owner.Cleanup(func() {
		c.killGroup()
		if owner.Failed() {
			b, _ := os.ReadFile(logPath)
			owner.Logf("%s output (pid %d):\n%s", name, cmd.Process.Pid, tail(b, 6000))
		}
	})
	return c
}

// kill ends the child at once, as a crash or the OOM killer would.
func (c *child) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Kill())
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die within 10s of SIGKILL", c.name)
	}
}

// killGroup ends the child and anything it started, and waits for it.
func (c *child) killGroup() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// terminate sends SIGTERM, as a process supervisor stopping the service
// would, and returns how long the child took to exit; it fails the test
// when that exceeds bound.
func (c *child) terminate(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-c.done:
	case <-time.After(bound):
		t.Fatalf("%s did not exit within %s of SIGTERM", c.name, bound)
	}
	return time.Since(began)
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// freeAddr is a loopback address nothing listens on, for an `exportd api`.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// waitHealthy polls url's /healthz until it answers 200, failing the test
// when the process exits first or after a minute.
func waitHealthy(t *testing.T, c *child, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(c.logPath)
			t.Fatalf("%s exited before serving (%v):\n%s", c.name, c.err, tail(b, 6000))
		case <-ctx.Done():
			t.Fatalf("%s not healthy at %s within a minute", c.name, url)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestSeparateProcesses runs `exportd dev --worker=false` and joins it
// with an `exportd worker` and a second `exportd api`, each configured by
// nothing but dev.json's "env" (plus the address the API listens on).
// Until the worker joins, an export waits queued; then exports through
// either API succeed, each API serves the other's exports and files, the
// same request gives the same bytes, and both processes stop cleanly on
// SIGTERM.
func TestSeparateProcesses(t *testing.T) {
	t.Parallel()
	s := startDev(t, "--worker=false", "--seed-orders", "3000")
	app := s.Apps[0]
	for _, k := range []string{"EXPORTD_DATABASE_URL", "EXPORTD_TEMPORAL_ADDRESS", "EXPORTD_BLOB_DIR", "EXPORTD_MASTER_KEY"} {
		require.NotEmpty(t, s.Env[k], "dev.json env lacks %s", k)
	}
	body := map[string]any{"merchantId": app.Merchants[0], "dataset": "orders", "start": window[0], "end": window[1],
		"formats": []string{"parquet", "csv.gz"}, "maxRowsPerFile": 1000}

	var first exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, body, &first)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Never(t, func() bool {
		var d exportDoc
		call(t, http.MethodGet, s.APIURL+"/v1/exports/"+first.ID, app.APIKey, nil, &d)
		return d.Status != "queued"
	}, time.Second, 100*time.Millisecond, "an export ran although dev has no worker")

	wenv := map[string]string{"EXPORTD_METRICS_ADDR": workerMetricsAddr}
	for k, v := range s.Env {
		wenv[k] = v
	}
	worker := startChild(t, t, s.dataDir, "worker", childEnv(wenv), "worker")
	began := time.Now()
	doc, _ := waitFor(t, s, app.APIKey, first.ID)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)
	require.Equal(t, int64(3000), doc.Progress.Rows)
	t.Logf("the queued export succeeded %s after `exportd worker` started", time.Since(began).Round(time.Millisecond))

	addr := freeAddr(t)
	env := map[string]string{"EXPORTD_API_ADDR": addr}
	for k, v := range s.Env {
		env[k] = v
	}
	api := startChild(t, t, s.dataDir, "api", childEnv(env), "api")
	other := *s
	other.APIURL = "http://" + addr
	waitHealthy(t, api, other.APIURL)
	resp = call(t, http.MethodGet, other.APIURL+"/readyz", "", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the second API reaches PostgreSQL and Temporal")

	// The second API authenticates the same key, sees the export made
	// through the first, and serves its files from the shared blob dir.
	var seen exportDoc
	resp = call(t, http.MethodGet, other.APIURL+"/v1/exports/"+first.ID, app.APIKey, nil, &seen)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "succeeded", seen.Status)
	require.Len(t, seen.Files, 6, "3 parts x 2 formats")
	sums := map[string]string{}
	for _, f := range seen.Files {
		resp, b := download(t, other.APIURL+"/v1/exports/"+first.ID+"/files/"+f.Name, app.APIKey, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, f.Name)
		sum := sha256.Sum256(b)
		require.Equal(t, f.SHA256, hex.EncodeToString(sum[:]), f.Name)
		sums[f.Name] = f.SHA256
	}

	// An export through the second API runs on the separate worker too,
	// and the first API sees it; the same request gives the same files.
	var second exportDoc
	resp = call(t, http.MethodPost, other.APIURL+"/v1/exports", app.APIKey, body, &second)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	doc, _ = waitFor(t, &other, app.APIKey, second.ID)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)
	doc, _ = waitFor(t, s, app.APIKey, second.ID)
	require.Equal(t, "succeeded", doc.Status)
	got := map[string]string{}
	for _, f := range doc.Files {
		got[f.Name] = f.SHA256
	}
	require.Equal(t, sums, got)

	// Both stop cleanly when asked.
	wexit := worker.terminate(t, 15*time.Second)
	require.NoError(t, worker.err, "worker exit status")
	aexit := api.terminate(t, 15*time.Second)
	require.NoError(t, api.err, "api exit status")
	t.Logf("on SIGTERM the idle worker exited in %s, the API in %s", wexit.Round(time.Millisecond), aexit.Round(time.Millisecond))
}
