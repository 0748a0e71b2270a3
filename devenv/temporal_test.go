package devenv_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/exportd/exportd/devenv"
)

// toolsDir is where `make tools` puts the pinned CLI. The test fails rather
// than skips without it: a skipped test would hide a broken dev setup.
func toolsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".tools", "bin"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "temporal")); err != nil {
		t.Fatalf("the pinned temporal CLI is missing (%v): run `make tools`", err)
	}
	return dir
}

func dial(t *testing.T, tp *devenv.Temporal) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  tp.Address(),
		Namespace: devenv.TemporalNamespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func TestTemporalStartStopKeepsWorkflows(t *testing.T) {
	ctx := context.Background()
	tp := &devenv.Temporal{
		ToolsDir: toolsDir(t),
		DataDir:  t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	t.Cleanup(func() { require.NoError(t, tp.Stop(context.Background())) })

	began := time.Now()
	require.NoError(t, tp.Start(ctx))
	t.Logf("cold start took %s", time.Since(began).Round(time.Millisecond))
	require.Error(t, tp.Start(ctx), "second Start while running")

	c := dial(t, tp)
	_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
	require.NoError(t, err)
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: devenv.TemporalNamespace})
	require.NoError(t, err)
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: devenv.TemporalNamespace})
	require.NoError(t, err)
	for _, name := range devenv.DefaultSearchAttributes {
		require.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs.GetCustomAttributes()[name], name)
	}

	res, err := http.Get(tp.UIURL())
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "web UI at %s", tp.UIURL())

	// No worker polls this queue, so the execution stays open across the
	// restart, which is what a crashed `dev` run leaves behind.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "devenv-restart-test",
		TaskQueue: "devenv-no-worker",
	}, "NoSuchWorkflow", "input")
	require.NoError(t, err)

	addr, ui := tp.Address(), tp.UIURL()
	began = time.Now()
	require.NoError(t, tp.Stop(ctx))
	t.Logf("stop took %s", time.Since(began).Round(time.Millisecond))
	require.NoError(t, tp.Stop(ctx), "second Stop")
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	require.Error(t, err, "server still answers after Stop")

	began = time.Now()
	require.NoError(t, tp.Start(ctx))
	t.Logf("warm start took %s", time.Since(began).Round(time.Millisecond))
	require.Equal(t, addr, tp.Address(), "frontend port kept")
	require.Equal(t, ui, tp.UIURL(), "UI port kept")

	c2 := dial(t, tp)
	desc, err := c2.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	info := desc.GetWorkflowExecutionInfo()
	require.Equal(t, "NoSuchWorkflow", info.GetType().GetName())
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, info.GetStatus())
}

func TestTemporalMissingBinary(t *testing.T) {
	dir := t.TempDir()
	tp := &devenv.Temporal{Bin: filepath.Join(dir, "no-such-temporal"), DataDir: dir}
	err := tp.Start(context.Background())
	require.ErrorContains(t, err, "make tools")
	require.NoError(t, tp.Stop(context.Background()))
}

func TestTemporalServerDiesWhileStarting(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "temporal")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho 'address already in use' >&2\nexit 3\n"), 0o755))
	tp := &devenv.Temporal{Bin: bin, DataDir: filepath.Join(dir, "data")}
	err := tp.Start(context.Background())
	require.ErrorContains(t, err, "exited before it was ready")
	require.ErrorContains(t, err, "address already in use", "the log tail explains the failure")
	require.Nil(t, tp.Done())
	require.NoError(t, tp.Stop(context.Background()))
}

func TestTemporalStartTimeoutKills(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "temporal")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\ntrap '' INT\nexec sleep 60\n"), 0o755))
	tp := &devenv.Temporal{Bin: bin, DataDir: dir, StartTimeout: 500 * time.Millisecond}
	began := time.Now()
	err := tp.Start(context.Background())
	require.ErrorContains(t, err, "not ready after")
	require.Less(t, time.Since(began), 10*time.Second, "the hung server was killed")
}

// TestTemporalRelativeBinary names the CLI relative to the working
// directory, as `bin/exportd dev --temporal-bin .tools/bin/temporal` run
// from the repository does: the server starts in the data dir, so the path
// must be resolved before, or the start fails with "no such file".
func TestTemporalRelativeBinary(t *testing.T) {
	repo := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(repo, ".tools", "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, ".tools", "bin", "temporal"),
		[]byte("#!/bin/sh\necho 'the relative CLI ran' >&2\nexit 3\n"), 0o755))
	t.Chdir(repo)
	for name, tp := range map[string]*devenv.Temporal{
		"Bin":      {Bin: filepath.Join(".tools", "bin", "temporal"), DataDir: filepath.Join(t.TempDir(), "data")},
		"ToolsDir": {ToolsDir: filepath.Join(".tools", "bin"), DataDir: filepath.Join(t.TempDir(), "data")},
	} {
		err := tp.Start(context.Background())
		require.ErrorContains(t, err, "the relative CLI ran", name)
		require.NotContains(t, err.Error(), "no such file", name)
	}
}
