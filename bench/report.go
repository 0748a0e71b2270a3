package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Sample is one timed run: the COPY limit, or one export through the API.
type Sample struct {
	// Seconds is the wall time: COPY start to end, or POST to the GET
	// that first saw "succeeded".
	Seconds float64
	// Activity is how long the Export activity ran, started to completed,
	// from the workflow history; the rest of Seconds is Temporal and the
	// other activities.
	Activity float64
	// Limit is the seconds of the limit timed just before this export,
	// which its ratio is taken against; zero for a limit sample.
	Limit float64
	// Bytes is what COPY sent, or the size of the export's files.
	Bytes int64
	// PeakRSS is the worker's VmHWM (it is restarted for every run),
	// SampledRSS the largest VmRSS seen every 50 ms, and IdleRSS its VmRSS
	// when the run began, in bytes.
	PeakRSS, SampledRSS, IdleRSS int64
	// CPU is CPU seconds used during the run by each part of the stack.
	CPU map[string]float64
	// Scans says how PostgreSQL read the source tables during the run.
	Scans string
}

// CPUParts names the parts of the stack whose CPU a sample records.
var CPUParts = []string{"worker", "postgres", "temporal", "api"}

// Results collects the samples of a bench run.
type Results struct {
	Rows  int64
	Runs  []string // run names in the order measured
	Limit []Sample
	// LimitParts are the COPYs behind each Limit sample.
	LimitParts [][]LimitPart
	Export     map[string][]Sample
	// Naive are the naive pipeline's samples, each with the limit timed
	// just before it.
	Naive []Sample
}

// Rate is a timing and the rows per second it implies.
type Rate struct {
	Seconds  float64 `json:"seconds"`
	RowsPerS float64 `json:"rows_per_s"`
}

// RunSummary is the medians of one run's samples. RatioToLimit is the
// median of the ratios of each sample to the limit timed just before it.
type RunSummary struct {
	Seconds      float64 `json:"seconds"`
	RowsPerS     float64 `json:"rows_per_s"`
	RatioToLimit float64 `json:"ratio_to_limit"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
}

// Summary is the bench's result line, in the shape the benchmark issue
// asks for: medians over the repeats.
type Summary struct {
	Rows  int64                 `json:"rows"`
	Limit Rate                  `json:"limit"`
	Runs  map[string]RunSummary `json:"runs"`
	// Naive is `COPY (FORMAT csv) | gzip -1` of the same queries.
	Naive *RunSummary `json:"naive,omitempty"`
}

// median of one field over samples.
func median(ss []Sample, f func(Sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return Median(xs)
}

func perSecond(n int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// Summary returns the medians.
func (r *Results) Summary() Summary {
	lim := median(r.Limit, func(s Sample) float64 { return s.Seconds })
	out := Summary{Rows: r.Rows, Limit: Rate{Seconds: round(lim, 3), RowsPerS: round(perSecond(r.Rows, lim), 0)},
		Runs: map[string]RunSummary{}}
	for _, name := range r.Runs {
		ss := r.Export[name]
		sec := median(ss, func(s Sample) float64 { return s.Seconds })
		rs := RunSummary{
			Seconds:    round(sec, 3),
			RowsPerS:   round(perSecond(r.Rows, sec), 0),
			PeakRSSMiB: round(median(ss, func(s Sample) float64 { return float64(s.PeakRSS) / MiB }), 1),
		}
		// The median of each export's ratio to the limit timed just before
		// it, which cancels the drift of a shared machine's load; without
		// pairs, the ratio of the medians.
		if ratio := median(ss, func(s Sample) float64 { return s.Limit / s.Seconds }); ratio > 0 {
			rs.RatioToLimit = round(ratio, 3)
		} else if sec > 0 {
			rs.RatioToLimit = round(lim/sec, 3)
		}
		out.Runs[name] = rs
	}
	if len(r.Naive) > 0 {
		sec := median(r.Naive, func(s Sample) float64 { return s.Seconds })
		out.Naive = &RunSummary{Seconds: round(sec, 3), RowsPerS: round(perSecond(r.Rows, sec), 0),
			RatioToLimit: round(median(r.Naive, func(s Sample) float64 { return s.Limit / s.Seconds }), 3)}
	}
	return out
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// WriteTable prints the medians with what explains them: output MB/s, the
// Export activity's share, RSS and the CPU each part of the stack used.
func (r *Results) WriteTable(w io.Writer) {
	sum := r.Summary()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tseconds\trows/s\tx limit\tMB/s\tactivity s\tpeak RSS MiB\tsampled MiB\tCPU s: worker\tpostgres\ttemporal\tapi\truns\t")
	cpu := func(ss []Sample) string {
		var b strings.Builder
		for _, p := range CPUParts {
			fmt.Fprintf(&b, "%.2f\t", median(ss, func(s Sample) float64 { return s.CPU[p] }))
		}
		return b.String()
	}
	mbs := func(ss []Sample) float64 {
		return median(ss, func(s Sample) float64 { return perSecond(s.Bytes, s.Seconds) / 1e6 })
	}
	fmt.Fprintf(tw, "limit (COPY binary)\t%.3f\t%.0f\t%.2f\t%.1f\t-\t-\t-\t%s%d\t\n", sum.Limit.Seconds, sum.Limit.RowsPerS, 1.0,
		mbs(r.Limit), cpu(r.Limit), len(r.Limit))
	for _, name := range r.Runs {
		ss, rs := r.Export[name], sum.Runs[name]
		fmt.Fprintf(tw, "%s\t%.3f\t%.0f\t%.2f\t%.1f\t%.3f\t%.1f\t%.1f\t%s%d\t\n", name, rs.Seconds, rs.RowsPerS, rs.RatioToLimit,
			mbs(ss), median(ss, func(s Sample) float64 { return s.Activity }), rs.PeakRSSMiB,
			median(ss, func(s Sample) float64 { return float64(s.SampledRSS) / MiB }), cpu(ss), len(ss))
	}
	tw.Flush()
	if len(r.LimitParts) > 0 {
		fmt.Fprint(w, "limit = ")
		for i, p := range r.LimitParts[0] {
			sec := make([]float64, 0, len(r.LimitParts))
			for _, ps := range r.LimitParts {
				if i < len(ps) {
					sec = append(sec, ps[i].Seconds)
				}
			}
			if i > 0 {
				fmt.Fprint(w, " + ")
			}
			fmt.Fprintf(w, "COPY %s %.3fs (%d rows, %.1f MB)", p.Name, Median(sec), p.Rows, float64(p.Bytes)/1e6)
		}
		fmt.Fprintln(w, ", one after the other on one connection")
	}
}

// WriteJSON prints the summary as one line.
func (r *Results) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r.Summary())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Latency is the submit -> succeeded time of a small export, repeated.
type Latency struct {
	Orders  int64
	Formats string
	Samples []time.Duration
}

// P returns the p-quantile of the samples.
func (l Latency) P(p float64) time.Duration {
	s := slices.Clone(l.Samples)
	slices.Sort(s)
	return Percentile(s, p)
}

// Target is one of the goals and whether the numbers meet it.
type Target struct {
	What   string
	Goal   string
	Got    string
	Pass   bool
	Margin string // how far from the goal: the ratio got/goal, or goal/got for upper bounds
}

// RatioTargets are the minimum ratios to the limit, per run.
var RatioTargets = map[string]float64{"parquet": 0.85, "arrow": 0.85, "jsonl.gz": 0.85, "csv.gz": 0.85, "all": 0.6}

// FilesSuffix joins a run's formats and a file count in a run name:
// "parquet/files=12000" exports the window as that many parquet files.
const FilesSuffix = "/files="

// WorkersSuffix joins a run's formats and a number of worker processes
// that run it partitioned: "parquet/workers=2".
const WorkersSuffix = "/workers="

// MinFileCountRatio bounds how much slower an export with many small
// files may be than the same export with a few large ones (rows/s, each
// taken against the limit timed before it).
const MinFileCountRatio = 0.8

// Goals of the issue beside the ratios.
const (
	MaxPeakRSSMiB   = 256
	MaxLatencyP50   = 500 * time.Millisecond
	GetRate         = 2000
	MaxGetP99Millis = 50
)

// Targets judges the summary, the small-export latency and the GET load
// test (lat and load may be nil when they were not run) against the issue.
func Targets(sum Summary, lat *Latency, load, running *LoadResult) []Target {
	var ts []Target
	for _, name := range []string{"parquet", "arrow", "jsonl.gz", "csv.gz", "all"} {
		rs, ok := sum.Runs[name]
		if !ok {
			continue
		}
		goal := RatioTargets[name]
		ts = append(ts, Target{What: name + " rows/s vs limit", Goal: fmt.Sprintf(">= %.2gx", goal),
			Got: fmt.Sprintf("%.2fx", rs.RatioToLimit), Pass: rs.RatioToLimit >= goal, Margin: fmt.Sprintf("%.2f of goal", rs.RatioToLimit/goal)})
	}
	if sum.Naive != nil && sum.Naive.RatioToLimit > 0 {
		for _, name := range []string{"jsonl.gz", "csv.gz"} {
			rs, ok := sum.Runs[name]
			if !ok {
				continue
			}
			r := rs.RatioToLimit / sum.Naive.RatioToLimit
			ts = append(ts, Target{What: name + " vs COPY csv | gzip -1", Goal: "> 1.0x",
				Got: fmt.Sprintf("%.2fx", r), Pass: r > 1, Margin: fmt.Sprintf("%.2f of goal", r)})
		}
	}
	if t, ok := fileCountTarget(sum); ok {
		ts = append(ts, t)
	}
	var peak float64
	for _, rs := range sum.Runs {
		peak = max(peak, rs.PeakRSSMiB)
	}
	if len(sum.Runs) > 0 {
		ts = append(ts, Target{What: "worker peak RSS (worst run)", Goal: fmt.Sprintf("<= %d MiB", MaxPeakRSSMiB),
			Got: fmt.Sprintf("%.1f MiB", peak), Pass: peak <= MaxPeakRSSMiB, Margin: fmt.Sprintf("%.2f of budget", peak/MaxPeakRSSMiB)})
	}
	if lat != nil && len(lat.Samples) > 0 {
		p50 := lat.P(0.5)
		ts = append(ts, Target{What: fmt.Sprintf("%d-order export p50 (%d runs)", lat.Orders, len(lat.Samples)), Goal: "< 500ms",
			Got: p50.Round(time.Millisecond).String(), Pass: p50 < MaxLatencyP50,
			Margin: fmt.Sprintf("%.2f of budget", p50.Seconds()/MaxLatencyP50.Seconds())})
	}
	for _, l := range []struct {
		what string
		r    *LoadResult
	}{{"GET /v1/exports/{id} at 2000 req/s", load}, {"GET of a running export at 2000 req/s", running}} {
		if l.r == nil {
			continue
		}
		ok := l.r.PerSecond >= 0.98*GetRate && l.r.P99 < MaxGetP99Millis && l.r.Errors == 0
		ts = append(ts, Target{What: l.what, Goal: "2000 req/s, p99 < 50ms",
			Got: fmt.Sprintf("%.0f req/s, p99 %.1fms, %d errors", l.r.PerSecond, l.r.P99, l.r.Errors), Pass: ok,
			Margin: fmt.Sprintf("p99 %.2f of budget", l.r.P99/MaxGetP99Millis)})
	}
	return ts
}

// fileCountTarget compares the file-count run with the most files to the
// one with the fewest.
func fileCountTarget(sum Summary) (Target, bool) {
	fewest, most := 0, 0
	var few, many RunSummary
	for name, rs := range sum.Runs {
		_, count, ok := strings.Cut(name, FilesSuffix)
		if !ok {
			continue
		}
		var n int
		if _, err := fmt.Sscan(count, &n); err != nil {
			continue
		}
		if fewest == 0 || n < fewest {
			fewest, few = n, rs
		}
		if n > most {
			most, many = n, rs
		}
	}
	if fewest == 0 || most == fewest || few.RatioToLimit == 0 {
		return Target{}, false
	}
	r := many.RatioToLimit / few.RatioToLimit
	return Target{What: fmt.Sprintf("%d files vs %d files, rows/s", most, fewest), Goal: fmt.Sprintf(">= %.1fx", MinFileCountRatio),
		Got: fmt.Sprintf("%.2fx", r), Pass: r >= MinFileCountRatio, Margin: fmt.Sprintf("%.2f of goal", r/MinFileCountRatio)}, true
}

// WriteTargets prints the targets, one a line.
func WriteTargets(w io.Writer, ts []Target) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tgoal\tmeasured\t\tmargin")
	for _, t := range ts {
		verdict := "FAIL"
		if t.Pass {
			verdict = "pass"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.What, t.Goal, t.Got, verdict, t.Margin)
	}
	tw.Flush()
}
