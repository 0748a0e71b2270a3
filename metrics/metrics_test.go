package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func newTestRegistry() *Registry {
	return New(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// series returns the samples of one metric family, each as its labels.
func series(t *testing.T, r *Registry, name string) []*dto.Metric {
	t.Helper()
	fams, err := r.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

// sample finds the sample of name whose labels are exactly labels.
func sample(t *testing.T, r *Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	for _, m := range series(t, r, name) {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) == len(labels) {
			match := true
			for k, v := range labels {
				if got[k] != v {
					match = false
				}
			}
			if match {
				return m
			}
		}
	}
	t.Fatalf("no %s sample with labels %v", name, labels)
	return nil
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName())
	}
	return out
}

func TestTemporalHandlerCountersGaugesTimers(t *testing.T) {
	r := newTestRegistry()
	h := r.Temporal().WithTags(map[string]string{"namespace": "default", "task_queue": "none"})
	q := h.WithTags(map[string]string{"task_queue": "exports", "operation": "StartWorkflowExecution"})

	q.Counter("temporal_request").Inc(2)
	q.Counter("temporal_request").Inc(3)
	h.WithTags(map[string]string{"operation": "DescribeWorkflowExecution"}).Counter("temporal_request").Inc(1)
	c := sample(t, r, "temporal_request_total", map[string]string{"namespace": "default", "task_queue": "exports", "operation": "StartWorkflowExecution"})
	require.Equal(t, 5.0, c.GetCounter().GetValue())
	c = sample(t, r, "temporal_request_total", map[string]string{"namespace": "default", "task_queue": "none", "operation": "DescribeWorkflowExecution"})
	require.Equal(t, 1.0, c.GetCounter().GetValue())

	g := q.WithTags(map[string]string{"worker_type": "ActivityWorker"}).Gauge("temporal_worker_task_slots_available")
	g.Update(4)
	g.Update(3)
	m := sample(t, r, "temporal_worker_task_slots_available", map[string]string{"namespace": "default", "task_queue": "exports", "operation": "StartWorkflowExecution", "worker_type": "ActivityWorker"})
	require.Equal(t, 3.0, m.GetGauge().GetValue())

	tm := q.Timer("temporal_request_latency")
	tm.Record(250 * time.Millisecond)
	tm.Record(750 * time.Millisecond)
	m = sample(t, r, "temporal_request_latency_seconds", map[string]string{"namespace": "default", "task_queue": "exports", "operation": "StartWorkflowExecution"})
	require.Equal(t, uint64(2), m.GetHistogram().GetSampleCount())
	require.InDelta(t, 1.0, m.GetHistogram().GetSampleSum(), 1e-9)
}

func TestTemporalHandlerNamesAndLabelsAreSanitized(t *testing.T) {
	r := newTestRegistry()
	h := r.Temporal().WithTags(map[string]string{"bad-key": "v", "1st": "x", "le": "y", "__name": "z", "ok": "bad\xffutf8"})
	h.Counter("my.metric-name").Inc(1)
	h.Timer("temporal_poll:latency").Record(time.Second)
	h.Gauge("").Update(1)

	m := sample(t, r, "temporal_my_metric_name_total", map[string]string{"bad_key": "v", "_1st": "x", "tag_le": "y", "tag___name": "z", "ok": "bad\uFFFDutf8"})
	require.Equal(t, 1.0, m.GetCounter().GetValue())
	require.Len(t, series(t, r, "temporal_poll_latency_seconds"), 1, "le is renamed, so histograms accept it")
	require.Len(t, series(t, r, "temporal__"), 1)
}

func TestTemporalHandlerInconsistentTagsDoNotPanic(t *testing.T) {
	r := newTestRegistry()
	h := r.Temporal()
	require.NotPanics(t, func() {
		h.WithTags(map[string]string{"a": "1", "b": "2"}).Counter("temporal_x").Inc(1)
		h.WithTags(map[string]string{"a": "1"}).Counter("temporal_x").Inc(1)           // b missing
		h.WithTags(map[string]string{"a": "1", "c": "3"}).Counter("temporal_x").Inc(1) // c extra, b missing
		h.Counter("temporal_x").Inc(-5)                                                // counters never decrease
		h.Gauge("temporal_x_total").Update(1)                                          // same Prometheus name, other kind
		h.Timer("temporal_x").Record(time.Second)                                      // another name: _seconds
	})
	// The first use fixed the labels; the later ones fit into them.
	for _, m := range series(t, r, "temporal_x_total") {
		require.Equal(t, []string{"a", "b"}, labelNames(m))
	}
	require.Equal(t, 1.0, sample(t, r, "temporal_x_total", map[string]string{"a": "1", "b": "2"}).GetCounter().GetValue())
	require.Equal(t, 2.0, sample(t, r, "temporal_x_total", map[string]string{"a": "1", "b": ""}).GetCounter().GetValue())
	require.Equal(t, 0.0, sample(t, r, "temporal_x_total", map[string]string{"a": "", "b": ""}).GetCounter().GetValue())
	require.Len(t, series(t, r, "temporal_x_seconds"), 1)
}

func TestTemporalHandlerConcurrentUse(t *testing.T) {
	r := newTestRegistry()
	h := r.Temporal().WithTags(map[string]string{"namespace": "default"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				h.WithTags(map[string]string{"worker": strings.Repeat("w", i%2+1)}).Counter("temporal_poll").Inc(1)
			}
		})
	}
	wg.Wait()
	var total float64
	for _, m := range series(t, r, "temporal_poll_total") {
		total += m.GetCounter().GetValue()
	}
	require.Equal(t, 800.0, total)
}

func TestNilRegistryRecordsNothing(t *testing.T) {
	var r *Registry
	require.NotPanics(t, func() {
		r.FileCommitted("orders", "parquet", 1, 2)
		r.PartCommitted("orders")
		r.ExportAttempt("orders", "succeeded", time.Second)
		r.HTTPRequest("/healthz", "GET", 200, time.Millisecond)
		r.WatchExports(func(context.Context) (map[string]int64, error) { return nil, nil })
		r.WatchQueue(nil)
	})
	require.Nil(t, r.Temporal(), "a nil handler makes the SDK use its no-op handler")
}

func TestExportMetrics(t *testing.T) {
	r := newTestRegistry()
	r.FileCommitted("orders", "parquet", 100, 4096)
	r.FileCommitted("orders", "parquet", 50, 1024)
	r.FileCommitted("orders", "csv.gz", 150, 9000)
	r.PartCommitted("orders")
	r.ExportAttempt("orders", "succeeded", 3*time.Second)
	r.HTTPRequest("GET /v1/exports/{id}", "GET", 200, 10*time.Millisecond)
	r.HTTPRequest("", "BREW", 404, time.Millisecond)

	require.Equal(t, 150.0, sample(t, r, "exportd_rows_written_total", map[string]string{"dataset": "orders", "format": "parquet"}).GetCounter().GetValue())
	require.Equal(t, 5120.0, sample(t, r, "exportd_bytes_written_total", map[string]string{"dataset": "orders", "format": "parquet"}).GetCounter().GetValue())
	require.Equal(t, 9000.0, sample(t, r, "exportd_bytes_written_total", map[string]string{"dataset": "orders", "format": "csv.gz"}).GetCounter().GetValue())
	require.Equal(t, 1.0, sample(t, r, "exportd_export_parts_committed_total", map[string]string{"dataset": "orders"}).GetCounter().GetValue())
	require.Equal(t, uint64(1), sample(t, r, "exportd_export_duration_seconds", map[string]string{"dataset": "orders", "outcome": "succeeded"}).GetHistogram().GetSampleCount())
	require.Equal(t, 1.0, sample(t, r, "exportd_http_requests_total", map[string]string{"route": "GET /v1/exports/{id}", "method": "GET", "code": "200"}).GetCounter().GetValue())
	require.Equal(t, 1.0, sample(t, r, "exportd_http_requests_total", map[string]string{"route": "unmatched", "method": "other", "code": "404"}).GetCounter().GetValue())
	require.Equal(t, uint64(1), sample(t, r, "exportd_http_request_duration_seconds", map[string]string{"route": "unmatched"}).GetHistogram().GetSampleCount())
}

func TestWatchExportsCachesAndSurvivesErrors(t *testing.T) {
	r := newTestRegistry()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	calls := 0
	var fail error
	r.WatchExports(func(ctx context.Context) (map[string]int64, error) {
		calls++
		_, ok := ctx.Deadline()
		require.True(t, ok, "a scrape-time read has a deadline")
		return map[string]int64{"succeeded": int64(calls), "queued": 2}, fail
	})
	r.WatchExports(func(context.Context) (map[string]int64, error) { panic("a second watch is ignored") })

	require.Len(t, series(t, r, "exportd_exports"), len(Statuses), "every status has a series, zero included")
	require.Equal(t, 1.0, sample(t, r, "exportd_exports", map[string]string{"status": "succeeded"}).GetGauge().GetValue())
	require.Equal(t, 2.0, sample(t, r, "exportd_exports", map[string]string{"status": "queued"}).GetGauge().GetValue())
	require.Equal(t, 0.0, sample(t, r, "exportd_exports", map[string]string{"status": "expired"}).GetGauge().GetValue())
	now = now.Add(DefaultCacheTTL - time.Second)
	series(t, r, "exportd_exports")
	require.Equal(t, 1, calls, "scrapes within the cache period reuse the counts")

	now = now.Add(2 * time.Second)
	fail = errors.New("temporal unreachable")
	require.Empty(t, series(t, r, "exportd_exports"), "a failed read leaves the gauges out")
	require.Equal(t, 1.0, sample(t, r, "exportd_metrics_source_errors_total", map[string]string{"source": "temporal"}).GetCounter().GetValue())
	require.Equal(t, 2, calls)

	now = now.Add(DefaultCacheTTL)
	fail = nil
	require.Equal(t, 3.0, sample(t, r, "exportd_exports", map[string]string{"status": "succeeded"}).GetGauge().GetValue())
}

type fakeQueue struct{ waiting, running int }

func (q fakeQueue) Depth(context.Context) (int, int, error) { return q.waiting, q.running, nil }

func TestWatchQueueAndExposition(t *testing.T) {
	r := newTestRegistry()
	r.WatchQueue(fakeQueue{waiting: 7, running: 4})
	r.Temporal().WithTags(map[string]string{"namespace": "default"}).Counter("temporal_request").Inc(1)

	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(b)
	for _, line := range []string{
		"exportd_queue_depth 7",
		"exportd_exports_running 4",
		`temporal_request_total{namespace="default"} 1`,
		"# TYPE go_goroutines gauge",
	} {
		require.Contains(t, text, line+"\n")
	}
}
