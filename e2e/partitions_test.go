package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd/contract"
)

// TestPartitionsAcrossWorkers runs one large export, partitioned, on two
// `exportd worker` processes beside `exportd dev --worker=false`: both
// write rows of it; one is SIGKILLed mid-export and the other finishes
// its partitions; the files are byte for byte those of the same export
// run by one worker alone. The child workflow's history stays bounded:
// it continues as new after 100 partitions.
func TestPartitionsAcrossWorkers(t *testing.T) {
	s := startDev(t, "--worker=false", "--seed-orders", "120000", "--max-running-exports", "4")
	app := s.Apps[0]
	body := map[string]any{"merchantId": app.Merchants[0], "dataset": "orders", "start": window[0], "end": window[1],
		"formats": []string{"parquet", "jsonl.gz"}, "maxRowsPerFile": 500}

	startWorker := func(name string) (*child, string) {
		addr := freeAddr(t)
		env := map[string]string{"EXPORTD_METRICS_ADDR": addr, "EXPORTD_PARTITION_ROWS": "1000",
			"EXPORTD_EXPORT_PARALLELISM": "4", "EXPORTD_MAX_CONCURRENT_EXPORTS": "2"}
		for k, v := range s.Env {
			env[k] = v
		}
		w := startChild(t, t, s.dataDir, name, childEnv(env), "worker")
		waitHealthy(t, w, "http://"+addr)
		return w, "http://" + addr + "/metrics"
	}
	rows := func(metrics string) float64 {
		resp, err := http.Get(metrics)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		v, _ := metricSum(scrapeMetrics(t, metrics), "exportd_rows_written_total", map[string]string{"format": "parquet"})
		return v
	}

	// One worker alone: the reference.
	w1, m1 := startWorker("worker-1")
	var ref exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, body, &ref)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	waitSucceeded(t, s, app.APIKey, ref.ID, 4*time.Minute)
	want := manifestSums(t, s, app.APIKey, ref.ID)
	require.Len(t, want, 240*2, "120 partitions of 2 parts in 2 formats")

	// Two workers; the second is killed once it has written rows.
	w2, m2 := startWorker("worker-2")
	before1, before2 := rows(m1), rows(m2)
	var doc exportDoc
	resp = call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, body, &doc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	// Progress, sampled throughout, only moves forward and stays within
	// the total, the kill included.
	var samples []float64
	var totals []int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(25 * time.Millisecond):
			}
			var d exportDoc
			if r := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+doc.ID, app.APIKey, nil, &d); r.StatusCode != http.StatusOK {
				continue
			}
			if d.Status == "running" || d.Status == "succeeded" {
				samples = append(samples, float64(d.Progress.Rows))
				totals = append(totals, d.Progress.Total)
			}
			if d.Status == "succeeded" {
				return
			}
		}
	}()
	// Kill worker-2 once it has written rows, while it holds partitions.
	require.Eventually(t, func() bool { return rows(m2) > before2 }, 3*time.Minute, 20*time.Millisecond, "worker-2 never wrote a row")
	var mid exportDoc
	call(t, http.MethodGet, s.APIURL+"/v1/exports/"+doc.ID, app.APIKey, nil, &mid)
	require.Equal(t, "running", mid.Status, "killed mid-export")
	w2.kill(t)
	t.Logf("worker-2 killed at %.1f%% of the export", mid.Progress.Percent)
	waitSucceeded(t, s, app.APIKey, doc.ID, 4*time.Minute)
	close(stopSampling)
	<-sampled
	require.Greater(t, len(samples), 20)
	for i := 1; i < len(samples); i++ {
		require.GreaterOrEqual(t, samples[i], samples[i-1], "progress went back at sample %d of %d", i, len(samples))
		require.LessOrEqual(t, samples[i], float64(totals[i]), "progress past the total")
	}
	require.Greater(t, rows(m1), before1, "worker-1 wrote rows of the export")
	require.Equal(t, want, manifestSums(t, s, app.APIKey, doc.ID), "the same files, byte for byte, whatever ran where")
	// The killed worker's half-written uploads are gone too.
	entries, err := os.ReadDir(filepath.Join(s.Env["EXPORTD_BLOB_DIR"], doc.ID))
	require.NoError(t, err)
	require.Len(t, entries, len(want)+1, "the files and the manifest, no uploads")
	_ = w1

	// The partitions ran in a child workflow that continued as new: no
	// run's history grows with the partition count.
	var c client.Client
	c, err = client.Dial(client.Options{HostPort: s.TemporalAddress, Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	parent := historyLength(t, c, contract.WorkflowID(doc.ID), "")
	require.Less(t, parent, 120, "the export's own history does not hold its partitions")
	runs, longest := 0, 0
	id := contract.PartitionsWorkflowID(doc.ID)
	d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	for run := d.GetWorkflowExecutionInfo().GetExecution().GetRunId(); run != ""; run = previousRun(t, c, id, run) {
		longest = max(longest, historyLength(t, c, id, run))
		runs++
	}
	require.Equal(t, 2, runs, "120 partitions: two runs of the child workflow")
	require.Less(t, longest, 1200, "a run's history is bounded by the partitions it starts")
	t.Logf("history events: export %d, longest partitions run %d, over %d runs", parent, longest, runs)
}

// historyLength counts the events of a workflow run.
func historyLength(t *testing.T, c client.Client, id, run string) int {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		_, err := it.Next()
		require.NoError(t, err)
		n++
	}
	return n
}

// previousRun returns the run that continued as new into run, or "".
func previousRun(t *testing.T, c client.Client, id, run string) string {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	require.True(t, it.HasNext())
	e, err := it.Next()
	require.NoError(t, err)
	return e.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
}

// waitSucceeded polls an export until it succeeds, failing the test if it
// ends otherwise or takes longer than bound.
func waitSucceeded(t *testing.T, s *stack, key, id string, bound time.Duration) exportDoc {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		var doc exportDoc
		resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+id, key, nil, &doc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		switch doc.Status {
		case "succeeded":
			return doc
		case "failed", "canceled", "expired":
			t.Fatalf("export %s ended %s: %+v", id, doc.Status, doc.Error)
		}
		require.True(t, time.Now().Before(deadline), "export %s still %s after %s", id, doc.Status, bound)
		time.Sleep(200 * time.Millisecond)
	}
}

// manifestSums is name -> sha256 of every file in an export's manifest.
func manifestSums(t *testing.T, s *stack, key, id string) map[string]string {
	t.Helper()
	var m manifest
	resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+id+"/manifest", key, nil, &m)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		out[f.Name] = f.SHA256
	}
	return out
}
