package metrics

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Temporal returns the handler to pass as client.Options.MetricsHandler:
// the SDK's counters, gauges and timers become Prometheus series in this
// registry, named temporal_* as in Temporal's Grafana dashboards
// (counters end in _total, timers are histograms in _seconds), with the
// SDK's tags as labels. A nil registry returns nil, which the SDK treats
// as no metrics.
func (r *Registry) Temporal() client.MetricsHandler {
	if r == nil {
		return nil
	}
	return sdkHandler{m: r.sdk}
}

// temporalBuckets spans RPCs (milliseconds) to activity executions
// (an export can run for an hour or more).
var temporalBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

type sdkKind int

const (
	sdkCounter sdkKind = iota
	sdkGauge
	sdkTimer
)

// sdkMetrics registers a vector per metric name the first time the SDK
// uses the name. Prometheus wants one label set per name, while the SDK
// may use a name with different tags: the first use fixes the labels,
// later uses fill missing labels with "" and drop extra tags.
type sdkMetrics struct {
	reg    prometheus.Registerer
	logger *slog.Logger

	mu   sync.Mutex
	vecs map[string]*sdkVec // by Prometheus name
}

// sdkVec is one name's vector; a nil collector means the name could not
// be registered and is dropped.
type sdkVec struct {
	kind    sdkKind
	labels  []string
	counter *prometheus.CounterVec
	gauge   *prometheus.GaugeVec
	timer   *prometheus.HistogramVec
}

// vec returns the vector for name, registering it with the labels of
// tags if it is new, or nil if the name is unusable.
func (m *sdkMetrics) vec(kind sdkKind, name string, tags map[string]string) *sdkVec {
	promName := metricName(kind, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.vecs[promName]; ok {
		if v.kind != kind {
			return nil
		}
		return v
	}
	v := &sdkVec{kind: kind, labels: slices.Sorted(maps.Keys(tags))}
	m.vecs[promName] = v
	if err := v.register(m.reg, promName, name); err != nil {
		v.counter, v.gauge, v.timer = nil, nil, nil
		m.logger.Warn("dropping a Temporal SDK metric", "metric", promName, "error", err)
	}
	return v
}

func (v *sdkVec) register(reg prometheus.Registerer, promName, sdkName string) (err error) {
	defer func() {
		// Vector constructors panic on what they cannot represent; an
		// SDK metric must never take the worker down.
		if p := recover(); p != nil {
			err = &registerPanic{p}
		}
	}()
	help := "Temporal SDK metric " + sdkName + "."
	var c prometheus.Collector
	switch v.kind {
	case sdkCounter:
		v.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: promName, Help: help}, v.labels)
		c = v.counter
	case sdkGauge:
		v.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: promName, Help: help}, v.labels)
		c = v.gauge
	case sdkTimer:
		v.timer = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: promName, Help: help + " Seconds.", Buckets: temporalBuckets}, v.labels)
		c = v.timer
	}
	return reg.Register(c)
}

type registerPanic struct{ p any }

func (e *registerPanic) Error() string { return fmt.Sprint("invalid metric: ", e.p) }

// values lists tags' values in the vector's label order.
func (v *sdkVec) values(tags map[string]string) []string {
	out := make([]string, len(v.labels))
	for i, l := range v.labels {
		out[i] = strings.ToValidUTF8(tags[l], "\uFFFD")
	}
	return out
}

// sdkHandler is a client.MetricsHandler with a set of tags, keyed by
// label name.
type sdkHandler struct {
	m    *sdkMetrics
	tags map[string]string
}

// WithTags returns a handler whose tags are h's, overridden by tags.
func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	for k, v := range tags {
		merged[labelName(k)] = v
	}
	return sdkHandler{m: h.m, tags: merged}
}

// Counter returns the counter for name with h's tags.
func (h sdkHandler) Counter(name string) client.MetricsCounter {
	if v := h.m.vec(sdkCounter, name, h.tags); v != nil && v.counter != nil {
		if c, err := v.counter.GetMetricWithLabelValues(v.values(h.tags)...); err == nil {
			return counterFunc(func(d int64) {
				if d > 0 { // a Prometheus counter panics on a decrease
					c.Add(float64(d))
				}
			})
		}
	}
	return nop{}
}

// Gauge returns the gauge for name with h's tags.
func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	if v := h.m.vec(sdkGauge, name, h.tags); v != nil && v.gauge != nil {
		if g, err := v.gauge.GetMetricWithLabelValues(v.values(h.tags)...); err == nil {
			return gaugeFunc(g.Set)
		}
	}
	return nop{}
}

// Timer returns the timer for name with h's tags, a histogram in seconds.
func (h sdkHandler) Timer(name string) client.MetricsTimer {
	if v := h.m.vec(sdkTimer, name, h.tags); v != nil && v.timer != nil {
		if o, err := v.timer.GetMetricWithLabelValues(v.values(h.tags)...); err == nil {
			return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
		}
	}
	return nop{}
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

type nop struct{}

func (nop) Inc(int64)            {}
func (nop) Update(float64)       {}
func (nop) Record(time.Duration) {}

// metricName turns an SDK metric name into a Prometheus one: valid
// characters, the temporal_ prefix, and the unit suffix of its kind.
func metricName(kind sdkKind, name string) string {
	n := sanitize(name)
	if !strings.HasPrefix(n, "temporal_") {
		n = "temporal_" + n
	}
	switch kind {
	case sdkCounter:
		if !strings.HasSuffix(n, "_total") {
			n += "_total"
		}
	case sdkTimer:
		if !strings.HasSuffix(n, "_seconds") {
			n += "_seconds"
		}
	}
	return n
}

// labelName turns an SDK tag key into a Prometheus label name. Names
// Prometheus reserves (__*, and le and quantile, which histograms and
// summaries use) get a tag_ prefix.
func labelName(key string) string {
	n := sanitize(key)
	if strings.HasPrefix(n, "__") || n == "le" || n == "quantile" {
		n = "tag_" + n
	}
	return n
}

// sanitize maps s onto [a-zA-Z_][a-zA-Z0-9_]*.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 1)
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
		default:
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
