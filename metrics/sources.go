package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exportd/exportd"
)

// Statuses are the native API's export statuses, in phase order: the
// label values of exportd_exports.
var Statuses = []string{
	exportd.PhaseQueued.Status(),
	exportd.PhaseExporting.Status(),
	exportd.PhaseReady.Status(),
	exportd.PhaseFailed.Status(),
	exportd.PhaseCanceled.Status(),
	exportd.PhaseExpired.Status(),
}

// CountExports counts exports by status (the keys of Statuses).
type CountExports func(ctx context.Context) (map[string]int64, error)

// QueueDepth reads the admission queue; *postgres.Queue implements it.
type QueueDepth interface {
	// Depth returns how many exports wait for a slot and how many hold one.
	Depth(ctx context.Context) (waiting, running int, err error)
}

// sourceTimeout bounds one scrape-time read, so a hung dependency cannot
// hold a scrape past Prometheus's own timeout.
const sourceTimeout = 5 * time.Second

// WatchExports adds exportd_exports{status}, read from count at scrape
// time and reused for the cache period. Each registry watches once.
func (r *Registry) WatchExports(count CountExports) {
	if r == nil || count == nil || !r.watch("exports") {
		return
	}
	desc := prometheus.NewDesc("exportd_exports", "Exports by status, as Temporal visibility lists them (closed ones for as long as the namespace retains them).", []string{"status"}, nil)
	c := &cached[map[string]int64]{r: r, source: "temporal", fetch: count}
	r.reg.MustRegister(collectorFunc{descs: []*prometheus.Desc{desc}, collect: func(ch chan<- prometheus.Metric) {
		counts, err := c.get()
		if err != nil {
			return
		}
		for _, s := range Statuses {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}})
}

// WatchQueue adds exportd_queue_depth and exportd_exports_running, read
// from q at scrape time and reused for the cache period.
func (r *Registry) WatchQueue(q QueueDepth) {
	if r == nil || q == nil || !r.watch("queue") {
		return
	}
	waitingDesc := prometheus.NewDesc("exportd_queue_depth", "Exports waiting for a running slot (status queued, admitted by the API).", nil, nil)
	runningDesc := prometheus.NewDesc("exportd_exports_running", "Running slots held across all workers.", nil, nil)
	c := &cached[[2]int]{r: r, source: "postgres", fetch: func(ctx context.Context) ([2]int, error) {
		w, n, err := q.Depth(ctx)
		return [2]int{w, n}, err
	}}
	r.reg.MustRegister(collectorFunc{descs: []*prometheus.Desc{waitingDesc, runningDesc}, collect: func(ch chan<- prometheus.Metric) {
		v, err := c.get()
		if err != nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(v[0]))
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(v[1]))
	}})
}

// watch reports whether name is watched for the first time.
func (r *Registry) watch(name string) bool {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watching[name] {
		return false
	}
	r.watching[name] = true
	return true
}

// cached reuses the result of fetch, error included, for the registry's
// cache period. Concurrent scrapes wait for one read.
type cached[T any] struct {
	r      *Registry
	source string
	fetch  func(context.Context) (T, error)

	mu  sync.Mutex
	at  time.Time
	val T
	err error
}

func (c *cached[T]) get() (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.r.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.r.cacheTTL {
		return c.val, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	c.val, c.err = c.fetch(ctx)
	c.at = now
	if c.err != nil {
		c.r.sourceErrors.WithLabelValues(c.source).Inc()
		c.r.logger.Warn("metrics source failed; its gauges are left out of the scrape", slog.String("source", c.source), slog.Any("error", c.err))
	}
	return c.val, c.err
}

// collectorFunc is a collector over fixed descriptors.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
