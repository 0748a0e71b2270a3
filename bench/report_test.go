package bench_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/bench"
)

func TestMedianAndPercentile(t *testing.T) {
	require.Equal(t, 2.0, bench.Median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, bench.Median([]float64{4, 1, 3, 2}))
	require.Equal(t, 0.0, bench.Median(nil))
	sorted := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	require.Equal(t, 5, bench.Percentile(sorted, 0.5))
	require.Equal(t, 10, bench.Percentile(sorted, 0.99))
	require.Equal(t, 1, bench.Percentile(sorted, 0))
}

func TestSummaryPairsEachRunWithItsLimit(t *testing.T) {
	res := &bench.Results{Rows: 1000, Runs: []string{"parquet"},
		Limit: []bench.Sample{{Seconds: 1}, {Seconds: 2}, {Seconds: 4}},
		Export: map[string][]bench.Sample{"parquet": {
			{Seconds: 2, Limit: 1, PeakRSS: 100 * bench.MiB},
			{Seconds: 4, Limit: 2, PeakRSS: 120 * bench.MiB},
			{Seconds: 16, Limit: 4, PeakRSS: 110 * bench.MiB},
		}}}
	sum := res.Summary()
	require.Equal(t, 2.0, sum.Limit.Seconds)
	require.Equal(t, 500.0, sum.Limit.RowsPerS)
	p := sum.Runs["parquet"]
	require.Equal(t, 4.0, p.Seconds)
	require.Equal(t, 250.0, p.RowsPerS)
	// Ratios 0.5, 0.5, 0.25: the median of the pairs, not 2/4 of the medians.
	require.Equal(t, 0.5, p.RatioToLimit)
	require.Equal(t, 110.0, p.PeakRSSMiB)

	var b strings.Builder
	require.NoError(t, res.WriteJSON(&b))
	var shape map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.String()), &shape))
	require.ElementsMatch(t, []string{"rows", "limit", "runs"}, keys(shape))
	require.ElementsMatch(t, []string{"seconds", "rows_per_s"}, keys(shape["limit"].(map[string]any)))
	run := shape["runs"].(map[string]any)["parquet"].(map[string]any)
	require.ElementsMatch(t, []string{"seconds", "rows_per_s", "ratio_to_limit", "peak_rss_mib"}, keys(run))
	require.Equal(t, 1, strings.Count(b.String(), "\n"), "one line")
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestTargets(t *testing.T) {
	sum := bench.Summary{Runs: map[string]bench.RunSummary{
		"parquet":  {RatioToLimit: 0.84, PeakRSSMiB: 100},
		"jsonl.gz": {RatioToLimit: 0.86, PeakRSSMiB: 80},
		"all":      {RatioToLimit: 0.61, PeakRSSMiB: 300},
	}, Naive: &bench.RunSummary{RatioToLimit: 0.9}}
	lat := &bench.Latency{Orders: 1000, Samples: []time.Duration{400 * time.Millisecond, 600 * time.Millisecond, 450 * time.Millisecond}}
	load := &bench.LoadResult{PerSecond: 2000, P99: 49}
	pass := map[string]bool{}
	for _, tg := range bench.Targets(sum, lat, load, nil) {
		pass[tg.What] = tg.Pass
	}
	require.Equal(t, map[string]bool{
		"parquet rows/s vs limit":            false,
		"jsonl.gz rows/s vs limit":           true,
		"jsonl.gz vs COPY csv | gzip -1":     false,
		"all rows/s vs limit":                true,
		"worker peak RSS (worst run)":        false,
		"1000-order export p50 (3 runs)":     true,
		"GET /v1/exports/{id} at 2000 req/s": true,
	}, pass)
}

func TestLimitQueriesQuoteValues(t *testing.T) {
	w := bench.Window{MerchantID: "o'brien", Dataset: exportd.Orders,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}
	qs := bench.LimitQueries(w)
	require.Len(t, qs, 3)
	for _, q := range qs {
		require.Contains(t, q[1], "'o''brien'")
		require.Contains(t, q[1], "'2025-01-01T00:00:00Z'")
		require.Contains(t, q[1], "ORDER BY")
	}
	w.Dataset = exportd.Payments
	require.Len(t, bench.LimitQueries(w), 1)
}

func TestProcessProbes(t *testing.T) {
	rss, peak, err := bench.Memory(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, rss)
	require.GreaterOrEqual(t, peak, rss)

	s := bench.SampleRSS(os.Getpid(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	require.Positive(t, s.Stop())

	cpu, err := bench.TreeCPU(os.Getpid(), 1<<30)
	require.NoError(t, err)
	require.Positive(t, cpu[os.Getpid()])
	require.Zero(t, cpu[1<<30], "a pid that does not exist")
	require.NotEqual(t, "unknown", bench.LoadAverage())
}
