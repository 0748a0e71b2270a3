//go:build cluster

package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd/devenv/devtest"
)

// The export both stacks run: every order of the first demo merchant, in
// all four formats, in parts of partRows so that it takes long enough to
// kill a worker and restart Temporal in the middle of it.
const (
	seedOrders = 100_000
	partRows   = 10_000
	exportBody = `{"merchantId": "cafe-lumiere", "dataset": "orders", "start": "2020-01-01T00:00:00Z",
		"end": "2030-01-01T00:00:00Z", "formats": ["parquet", "arrow", "jsonl.gz", "csv.gz"], "maxRowsPerFile": 10000}`
)

// clusterInfo is the part of cluster.json the test reads.
type clusterInfo struct {
	devtest.Info
	APIURLs []string `json:"api_urls"`
	Workers []struct {
		PID        int    `json:"pid"`
		MetricsURL string `json:"metrics_url"`
	} `json:"workers"`
	TemporalPID int `json:"temporal_pid"`
}

// TestTopology runs `exportd cluster` as `make cluster` does and `exportd
// dev` beside it, and runs the same export on both.
func TestTopology(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	dataDir, wait := startCluster(t)
	dev := devtest.Start(t, "--seed-orders", strconv.Itoa(seedOrders))
	c := wait()
	t.Logf("both stacks ready after %s", time.Since(began).Round(time.Millisecond))
	require.Len(t, c.APIURLs, 2)
	require.Len(t, c.Workers, 2)
	api1, api2 := c.APIURLs[0], c.APIURLs[1]
	key := c.Apps[0].APIKey
	for _, w := range c.Workers {
		fetch(t, w.MetricsURL+"/healthz", "")
	}

	// The reference: the same export on `exportd dev`.
	devID := create(t, dev.APIURL, dev.Apps[0].APIKey, "reference")
	devDoc := waitStatus(t, dev.APIURL, dev.Apps[0].APIKey, devID, "succeeded", 3*time.Minute)
	want := map[string]string{}
	for _, f := range devDoc.Files {
		want[f.Name] = download(t, dev.APIURL+"/v1/exports/"+devID+"/files/"+f.Name, dev.Apps[0].APIKey)
	}
	require.Len(t, want, 4*seedOrders/partRows)

	tc, err := client.Dial(client.Options{HostPort: c.TemporalAddress, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()

	// Created through API 1, read through API 2.
	id := create(t, api1, key, "topology")
	waitRows(t, api2, key, id)
	victim, first := exportWorker(t, ctx, tc, id, "")
	other := 0
	for _, w := range c.Workers {
		if w.PID != victim {
			other = w.PID
		}
	}
	require.NotZero(t, other, "the export runs on pid %d, which is not one of the cluster's workers %+v", victim, c.Workers)
	require.NoError(t, syscall.Kill(victim, syscall.SIGKILL))
	killed := time.Now()
	t.Logf("SIGKILLed worker %d mid-export", victim)

	// The other worker takes the Export activity over once its heartbeat
	// times out.
	survivor, _ := exportWorker(t, ctx, tc, id, first)
	require.Equal(t, other, survivor, "the retry runs on the surviving worker")
	t.Logf("worker %d resumed the export %s after the kill", other, time.Since(killed).Round(time.Millisecond))

	// Temporal is restarted while that attempt runs: the cluster restarts
	// the server when it exits, on the same ports.
	require.Equal(t, "running", get(t, api1, key, id).Status)
	require.NoError(t, syscall.Kill(c.TemporalPID, syscall.SIGTERM))
	restarted := time.Now()
	require.Eventually(t, func() bool {
		var now clusterInfo
		return readJSON(filepath.Join(dataDir, "cluster.json"), &now) == nil && now.TemporalPID != c.TemporalPID && now.TemporalPID != 0
	}, 2*time.Minute, 200*time.Millisecond, "the Temporal server was not restarted")
	t.Logf("Temporal server restarted in %s", time.Since(restarted).Round(time.Millisecond))

	doc := waitStatus(t, api2, key, id, "succeeded", 3*time.Minute)
	require.Equal(t, int64(seedOrders), doc.Progress.Rows)
	require.Len(t, doc.Files, len(want))

	// Byte-identical to `exportd dev`'s, downloaded through API 2.
	for _, f := range doc.Files {
		require.Equal(t, want[f.Name], download(t, api2+"/v1/exports/"+id+"/files/"+f.Name, key), f.Name)
	}
	// Signed URLs issued by API 1 work on API 2, without credentials.
	doc1 := get(t, api1, key, id)
	for _, f := range doc1.Files[:4] {
		require.True(t, strings.HasPrefix(f.SignedURL, api1), f.SignedURL)
		u := api2 + strings.TrimPrefix(f.SignedURL, api1)
		require.Equal(t, want[f.Name], download(t, u, ""), "signed URL of API 1 on API 2: %s", f.Name)
	}
	// Listed through API 2, from Temporal's visibility.
	var list struct {
		Exports []struct{ ID, Status string }
	}
	getJSON(t, api2+"/v1/exports?merchantId=cafe-lumiere", key, &list)
	require.Contains(t, fmt.Sprint(list.Exports), id)

	// Visibility is PostgreSQL's: the ExportMerchant query answers from
	// the temporal_visibility database.
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: "ExportMerchant = 'cafe-lumiere' AND WorkflowId = 'export-" + id + "'"})
	require.NoError(t, err)
	require.Len(t, resp.GetExecutions(), 1)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, resp.GetExecutions()[0].GetStatus(), "a ready export waits for expiry")
	var rows int
	visibility := strings.Replace(strings.Replace(c.DatabaseURL, "exportd:", "temporal:", 1), "/exportd?", "/temporal_visibility?", 1)
	conn, err := pgx.Connect(ctx, visibility)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM executions_visibility WHERE workflow_id = $1", "export-"+id).Scan(&rows))
	require.Equal(t, 1, rows, "the export's row in temporal_visibility")
	t.Logf("topology test took %s", time.Since(began).Round(time.Millisecond))
}

// startCluster starts `exportd cluster` with make cluster's tools and
// returns its data dir and a function that waits for cluster.json.
func startCluster(t *testing.T) (string, func() clusterInfo) {
	t.Helper()
	root := devtest.RepoRoot(t)
	tools := filepath.Join(root, ".tools")
	bin := devtest.Binary(t)
	fakes3 := filepath.Join(filepath.Dir(bin), "fakes3")
	build := exec.Command("go", "build", "-o", fakes3, "./cmd/fakes3")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/fakes3:\n%s", out)
	server := filepath.Join(tools, "bin", "temporal-server")
	sqlTool := filepath.Join(tools, "bin", "temporal-sql-tool")
	schema := filepath.Join(tools, "temporal-schema", "1.31.0", "postgresql", "v12")
	for _, p := range []string{server, sqlTool, schema} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run `make test-cluster`, which builds the Temporal server and its tools", err)
		}
	}
	args := []string{"cluster", "--api-addrs", "127.0.0.1:0,127.0.0.1:0", "--seed-orders", strconv.Itoa(seedOrders),
		"--temporal-server-bin", server, "--temporal-sql-tool", sqlTool, "--temporal-schema-dir", schema,
		"--s3-bin", fakes3, "--deploy-dir", filepath.Join(root, "deploy")}
	dataDir := devtest.ReachableTempDir(t)
	logf, err := os.Create(filepath.Join(dataDir, "exportd-cluster.out"))
	require.NoError(t, err)
	cmd := exec.Command(bin, append(args, "--data-dir", dataDir)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("exportd cluster did not stop within 90s of SIGINT")
		}
		if t.Failed() {
			for _, f := range []string{"exportd-cluster.out", "cluster/worker-1.log", "cluster/worker-2.log", "cluster/api-1.log", "cluster/temporal-server.log"} {
				b, _ := os.ReadFile(filepath.Join(dataDir, f))
				t.Logf("%s:\n%s", f, devtest.Tail(b, 3000))
			}
		}
	})
	return dataDir, func() clusterInfo {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			var info clusterInfo
			if readJSON(filepath.Join(dataDir, "cluster.json"), &info) == nil && len(info.APIURLs) > 0 {
				return info
			}
			select {
			case <-exited:
				b, _ := os.ReadFile(logf.Name())
				t.Fatalf("exportd cluster exited before it was ready (%v):\n%s", exitErr, devtest.Tail(b, 8000))
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("exportd cluster not ready within 3 minutes")
			}
		}
	}
}

// exportWorker waits until an Export activity of the export other than
// the one named before (its activity ID; "" for any) has started, and
// returns the pid of the worker running it, from its identity ("pid@host@",
// the Go SDK's default), and its activity ID. The
// workflow retries the step itself, so each attempt is an activity of its
// own with an ID of its own.
func exportWorker(t *testing.T, ctx context.Context, tc client.Client, id, before string) (int, string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		desc, err := tc.DescribeWorkflowExecution(ctx, "export-"+id, "")
		if err == nil {
			for _, a := range desc.GetPendingActivities() {
				last = fmt.Sprintf("%s %s %s %q", a.GetActivityType().GetName(), a.GetActivityId(), a.GetState(), a.GetLastWorkerIdentity())
				if a.GetActivityType().GetName() == "Export" && a.GetActivityId() != before &&
					a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && a.GetLastWorkerIdentity() != "" {
					pid, err := strconv.Atoi(strings.SplitN(a.GetLastWorkerIdentity(), "@", 2)[0])
					require.NoError(t, err, "worker identity %q", a.GetLastWorkerIdentity())
					return pid, a.GetActivityId()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no Export activity after %q started (last: %s)", before, last)
	return 0, ""
}

// exportDoc is the part of GET /v1/exports/{id} the test reads.
type exportDoc struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Progress struct {
		Rows int64 `json:"rows"`
	} `json:"progress"`
	Files []struct {
		Name      string `json:"name"`
		SignedURL string `json:"signedUrl"`
	} `json:"files"`
}

func create(t *testing.T, api, key, idem string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, api+"/v1/exports", strings.NewReader(exportBody))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", idem)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	var doc exportDoc
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc.ID
}

func get(t *testing.T, api, key, id string) exportDoc {
	t.Helper()
	var doc exportDoc
	getJSON(t, api+"/v1/exports/"+id, key, &doc)
	return doc
}

func waitRows(t *testing.T, api, key, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		doc := get(t, api, key, id)
		require.NotEqual(t, "succeeded", doc.Status, "the export finished before it could be disturbed")
		return doc.Progress.Rows > 0
	}, 2*time.Minute, 20*time.Millisecond)
}

func waitStatus(t *testing.T, api, key, id, status string, timeout time.Duration) exportDoc {
	t.Helper()
	var doc exportDoc
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if doc = get(t, api, key, id); doc.Status == status {
			return doc
		}
		require.NotContains(t, []string{"failed", "canceled", "expired"}, doc.Status)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("export %s is %s after %s, want %s", id, doc.Status, timeout, status)
	return doc
}

func getJSON(t *testing.T, u, key string, v any) {
	t.Helper()
	b := fetch(t, u, key)
	require.NoError(t, json.Unmarshal(b, v), "%s", b)
}

// download returns the sha256 of what u serves.
func download(t *testing.T, u, key string) string {
	t.Helper()
	sum := sha256.Sum256(fetch(t, u, key))
	return hex.EncodeToString(sum[:])
}

func fetch(t *testing.T, u, key string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, u)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, resp.Body)
	require.NoError(t, err, u)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, devtest.Tail(buf.Bytes(), 500))
	return buf.Bytes()
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
