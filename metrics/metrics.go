// Package metrics is exportd's Prometheus instrumentation: one registry
// per process holding the export, HTTP and queue metrics, and, through an
// adapter, the Temporal SDK's own metrics.
package metrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is a process's metrics. Its own registry, not Prometheus's
// global default, so tests and the one-process dev stack can hold several
// without collisions. Every recording method is a no-op on a nil
// *Registry, so a component without metrics takes nil.
type Registry struct {
	reg    *prometheus.Registry
	logger *slog.Logger

	rowsWritten    *prometheus.CounterVec
	bytesWritten   *prometheus.CounterVec
	partsCommitted *prometheus.CounterVec
	exportDuration *prometheus.HistogramVec
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	sourceErrors   *prometheus.CounterVec

	sdk *sdkMetrics

	// cacheTTL is how long a scrape-time count (Temporal visibility,
	// PostgreSQL) is reused, so scrapes from several Prometheus servers
	// cost one query per period.
	cacheTTL time.Duration
	now      func() time.Time
	watchMu  sync.Mutex
	watching map[string]bool
}

// DefaultCacheTTL is how long counts read from Temporal and PostgreSQL at
// scrape time are reused.
const DefaultCacheTTL = 10 * time.Second

// New returns a registry with exportd's metrics, the Go runtime and
// process collectors, and room for the Temporal SDK's metrics. Errors of
// scrape-time sources go to log; nil means slog.Default.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	r := &Registry{
		reg:    reg,
		logger: log,
		rowsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_rows_written_total",
			Help: "Rows written to committed part files, by dataset and file format; a part rewritten by a retried attempt counts again.",
		}, []string{"dataset", "format"}),
		bytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_bytes_written_total",
			Help: "Bytes of committed part files, by dataset and file format.",
		}, []string{"dataset", "format"}),
		partsCommitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_export_parts_committed_total",
			Help: "Parts committed by the Export activity (one part holds the same rows in every requested format).",
		}, []string{"dataset"}),
		exportDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exportd_export_duration_seconds",
			Help:    "Wall time of each Export activity attempt, by dataset and outcome (succeeded, failed, canceled, interrupted).",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400},
		}, []string{"dataset", "outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_http_requests_total",
			Help: "HTTP requests served by the API, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exportd_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern; downloads include the transfer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_metrics_source_errors_total",
			Help: "Scrape-time reads that failed, by source (temporal, postgres); the gauges they feed are left out of that scrape.",
		}, []string{"source"}),
		cacheTTL: DefaultCacheTTL,
		now:      time.Now,
		watching: map[string]bool{},
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.rowsWritten, r.bytesWritten, r.partsCommitted, r.exportDuration,
		r.httpRequests, r.httpDuration, r.sourceErrors,
	)
	r.sdk = &sdkMetrics{reg: reg, logger: log, vecs: map[string]*sdkVec{}}
	return r
}

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails leaves its metrics out instead of failing the
// whole scrape.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(r.logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Gatherer exposes the registry to tests and to other exposition paths.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// FileCommitted counts a committed part file's rows and bytes.
func (r *Registry) FileCommitted(dataset, format string, rows, bytes int64) {
	if r == nil {
		return
	}
	r.rowsWritten.WithLabelValues(dataset, format).Add(float64(max(rows, 0)))
	r.bytesWritten.WithLabelValues(dataset, format).Add(float64(max(bytes, 0)))
}

// PartCommitted counts a committed part.
func (r *Registry) PartCommitted(dataset string) {
	if r == nil {
		return
	}
	r.partsCommitted.WithLabelValues(dataset).Inc()
}

// ExportAttempt records how long an Export activity attempt ran and how
// it ended.
func (r *Registry) ExportAttempt(dataset, outcome string, d time.Duration) {
	if r == nil {
		return
	}
	r.exportDuration.WithLabelValues(dataset, outcome).Observe(d.Seconds())
}

// HTTPRequest records a served request. route must be the mux pattern,
// never the raw path, so that ids in paths do not make a series each.
func (r *Registry) HTTPRequest(route, method string, code int, d time.Duration) {
	if r == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	r.httpRequests.WithLabelValues(route, httpMethod(method), strconv.Itoa(code)).Inc()
	r.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// httpMethod bounds the method label: clients may send any token.
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
