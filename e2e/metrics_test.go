package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scrapeMetrics reads a Prometheus text exposition.
func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

var (
	promSampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	promLabelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// metricSum sums the samples of name whose labels include want, and says
// whether there was any.
func metricSum(text, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		m := promSampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, p := range promLabelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// manifestSizes is the part of manifest.json the metrics are checked
// against.
type manifestSizes struct {
	Rows  int64 `json:"rows"`
	Files []struct {
		Format string `json:"format"`
		Rows   int64  `json:"rows"`
		Bytes  int64  `json:"bytes"`
	} `json:"files"`
}

// TestMetricsAndAccessLog runs an export on the dev stack and reads it
// back from the API's /metrics (the in-process worker shares the
// registry) and from the access log.
func TestMetricsAndAccessLog(t *testing.T) {
	s := startDev(t, "--seed-orders", "2000")
	app := s.Apps[0]
	formats := []string{"parquet", "csv.gz", "jsonl.gz"}
	var created exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": app.Merchants[0], "dataset": "orders", "start": window[0], "end": window[1],
		"formats": formats, "maxRowsPerFile": 700,
	}, &created)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	doc, _ := waitFor(t, s, app.APIKey, created.ID)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)
	var m manifestSizes
	resp = call(t, http.MethodGet, s.APIURL+"/v1/exports/"+created.ID+"/manifest", app.APIKey, nil, &m)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// A query string that must never reach the log.
	resp = call(t, http.MethodGet, s.APIURL+"/v1/exports/"+created.ID+"?access_token=e2e-query-secret", app.APIKey, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Visibility counts are cached for 10 s and indexed asynchronously:
	// the export shows as succeeded within a few scrapes.
	var text string
	require.Eventually(t, func() bool {
		text = scrapeMetrics(t, s.APIURL+"/metrics")
		v, _ := metricSum(text, "exportd_exports", map[string]string{"status": "succeeded"})
		return v >= 1
	}, 45*time.Second, time.Second, "exportd_exports{status=\"succeeded\"} never reached 1")
	for _, status := range []string{"queued", "running", "failed", "canceled", "expired"} {
		_, ok := metricSum(text, "exportd_exports", map[string]string{"status": status})
		require.True(t, ok, "exportd_exports{status=%q} is missing", status)
	}

	// Rows and bytes written, per format, are the manifest's.
	rows, size := map[string]int64{}, map[string]int64{}
	for _, f := range m.Files {
		rows[f.Format] += f.Rows
		size[f.Format] += f.Bytes
	}
	for _, f := range formats {
		l := map[string]string{"dataset": "orders", "format": f}
		v, ok := metricSum(text, "exportd_rows_written_total", l)
		require.True(t, ok, "no rows counted for %s", f)
		require.Equal(t, float64(rows[f]), v, f)
		require.Equal(t, float64(m.Rows), v, f)
		v, _ = metricSum(text, "exportd_bytes_written_total", l)
		require.Equal(t, float64(size[f]), v, f)
	}
	v, _ := metricSum(text, "exportd_export_duration_seconds_count", map[string]string{"dataset": "orders", "outcome": "succeeded"})
	require.Equal(t, 1.0, v)
	v, _ = metricSum(text, "exportd_export_parts_committed_total", map[string]string{"dataset": "orders"})
	require.Equal(t, float64(len(m.Files)/len(formats)), v)

	// Queue gauges, from PostgreSQL.
	v, ok := metricSum(text, "exportd_queue_depth", nil)
	require.True(t, ok)
	require.Zero(t, v)
	_, ok = metricSum(text, "exportd_exports_running", nil)
	require.True(t, ok)

	// HTTP metrics by route pattern, never by raw path.
	v, _ = metricSum(text, "exportd_http_requests_total", map[string]string{"route": "/v1/exports/{id}", "method": "GET", "code": "200"})
	require.GreaterOrEqual(t, v, 2.0)
	require.NotContains(t, text, created.ID)

	// The Temporal SDK's metrics: the client's requests and the worker's
	// polls, slots and activity executions.
	v, _ = metricSum(text, "temporal_request_total", map[string]string{"operation": "StartWorkflowExecution", "namespace": "default"})
	require.GreaterOrEqual(t, v, 1.0)
	v, _ = metricSum(text, "temporal_long_request_total", map[string]string{"operation": "PollActivityTaskQueue"})
	require.GreaterOrEqual(t, v, 1.0)
	v, _ = metricSum(text, "temporal_activity_execution_latency_seconds_count", map[string]string{"activity_type": "Export", "workflow_type": "ExportWorkflow"})
	require.Equal(t, 1.0, v)
	_, ok = metricSum(text, "temporal_worker_task_slots_available", map[string]string{"worker_type": "ActivityWorker", "task_queue": "exports"})
	require.True(t, ok)

	// The access log names the export and the app, never the query.
	logText, err := os.ReadFile(filepath.Join(s.dataDir, "exportd.log"))
	require.NoError(t, err)
	require.NotContains(t, string(logText), "e2e-query-secret")
	require.NotContains(t, string(logText), app.APIKey)
	var access, attempt bool
	sc := bufio.NewScanner(strings.NewReader(string(logText)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `msg="http request"`) && strings.Contains(line, "path=/v1/exports/"+created.ID+" ") &&
			strings.Contains(line, "export_id="+created.ID) && strings.Contains(line, "app_id=") {
			access = true
		}
		if strings.Contains(line, `msg="export attempt finished"`) && strings.Contains(line, "export_id="+created.ID) &&
			strings.Contains(line, "merchant="+app.Merchants[0]) && strings.Contains(line, "workflow_id=export-"+created.ID) {
			attempt = true
		}
	}
	require.True(t, access, "no access log line with export_id and app_id for %s", created.ID)
	require.True(t, attempt, "no Export attempt log line with export_id, merchant and workflow_id")
}

// metricsFreeAddr returns a loopback address nothing listens on.
func metricsFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestWorkerMetricsAndHealth runs `exportd worker` apart from the dev
// stack, as a deployment does, and reads its own /metrics and /healthz.
func TestWorkerMetricsAndHealth(t *testing.T) {
	s := startDev(t, "--seed-orders", "1000", "--worker=false")
	app := s.Apps[0]
	addr := metricsFreeAddr(t)
	bin := buildExportd(t)
	cmd := exec.Command(bin, "worker")
	cmd.Env = append(os.Environ(), "EXPORTD_METRICS_ADDR="+addr)
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(s.dataDir, "worker.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("exportd worker output:\n%s", tail(b, 8000))
		}
	})

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 200*time.Millisecond, "the worker's /healthz never answered 200")

	var created exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": app.Merchants[0], "dataset": "orders", "start": window[0], "end": window[1], "formats": []string{"jsonl.gz"},
	}, &created)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	doc, _ := waitFor(t, s, app.APIKey, created.ID)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)

	text := scrapeMetrics(t, "http://"+addr+"/metrics")
	v, _ := metricSum(text, "exportd_rows_written_total", map[string]string{"dataset": "orders", "format": "jsonl.gz"})
	require.Equal(t, float64(doc.Progress.Rows), v)
	v, _ = metricSum(text, "temporal_activity_execution_latency_seconds_count", map[string]string{"activity_type": "Export"})
	require.Equal(t, 1.0, v)
	_, ok := metricSum(text, "exportd_exports", nil)
	require.False(t, ok, "visibility counts are the API's, not every worker's")

	// The API's own Temporal client reports too.
	api := scrapeMetrics(t, s.APIURL+"/metrics")
	v, _ = metricSum(api, "temporal_request_total", map[string]string{"operation": "DescribeWorkflowExecution"})
	require.GreaterOrEqual(t, v, 1.0)
	_, ok = metricSum(api, "exportd_rows_written_total", nil)
	require.False(t, ok, "the API wrote no files")
}
