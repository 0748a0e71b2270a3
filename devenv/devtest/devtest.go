// Package devtest runs the real `exportd dev` binary for end-to-end tests
// in any package: the dialect packages test their clients against it
// exactly as users would.
package devtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Info is dev.json: how to reach the stack and act as its demo apps.
type Info struct {
	APIURL          string            `json:"api_url"`
	TemporalAddress string            `json:"temporal_address"`
	TemporalUIURL   string            `json:"temporal_ui_url"`
	DatabaseURL     string            `json:"database_url"`
	Apps            []App             `json:"apps"`
	Env             map[string]string `json:"env"`
}

// App is a demo app and its credentials.
type App struct {
	Name         string   `json:"name"`
	AppID        string   `json:"app_id"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	APIKey       string   `json:"api_key"`
	Merchants    []string `json:"merchants"`
}

// Start runs `exportd dev` with args in a fresh data dir and returns
// dev.json once the stack serves; the stack is stopped at cleanup, and
// its output is logged if the test failed.
func Start(t testing.TB, args ...string) Info {
	t.Helper()
	root := RepoRoot(t)
	temporal := os.Getenv("EXPORTD_TEMPORAL_BIN")
	if temporal == "" {
		temporal = filepath.Join(root, ".tools", "bin", "temporal")
	}
	if _, err := os.Stat(temporal); err != nil {
		t.Fatalf("the Temporal CLI is missing (%v): run `make tools`", err)
	}
	bin := Binary(t)
	dataDir := ReachableTempDir(t)
	logf, err := os.Create(filepath.Join(dataDir, "exportd-dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"dev", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0",
		"--temporal-bin", temporal}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("exportd dev did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("exportd dev output:\n%s", Tail(b, 8000))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var info Info
		b, err := os.ReadFile(filepath.Join(dataDir, "dev.json"))
		if err == nil && json.Unmarshal(b, &info) == nil && info.APIURL != "" {
			return info
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("exportd dev exited before it was ready (%v):\n%s", exitErr, Tail(b, 8000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("exportd dev not ready within 2 minutes")
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary builds ./cmd/exportd once per test binary, into a fixed place
// named after the module root so repeated runs overwrite it.
func Binary(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	buildOnce.Do(func() {
		sum := sha256.Sum256([]byte(root))
		dir, err := os.MkdirTemp("", "exportd-devtest-"+hex.EncodeToString(sum[:6])+"-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "exportd")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/exportd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// RepoRoot is the module root: the nearest directory above the working
// directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ReachableTempDir is a temporary data dir the postgres OS user can enter,
// which t.TempDir (0700 under a 0700 parent) is not when tests run as root.
func ReachableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Tail returns the last n bytes of b.
func Tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
