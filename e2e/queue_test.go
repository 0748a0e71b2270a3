package e2e

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd/contract"
)

// TestQueueHealsItself is issue 9's wedged queue, with one running slot
// and a 1.5 s slot lease renewed by a reaper every 0.5 s:
//   - A, a slow export, runs far longer than its lease while B waits: the
//     lease is renewed, so B never runs beside A;
//   - B's workflow is terminated while it waits, and a row is left behind
//     by an API that died between enqueue and start: both rows go while A
//     still runs;
//   - once A is done, C, submitted after, runs within a minute.
func TestQueueHealsItself(t *testing.T) {
	const lease = 1500 * time.Millisecond
	s := startDev(t, "--seed-orders", "30000", "--max-running-exports", "1", "--max-running-per-merchant", "1",
		"--slot-lease", lease.String(), "--reap-interval", "500ms")
	app := s.Apps[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, err := pgxpool.New(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()
	tc, err := client.Dial(client.Options{HostPort: s.Env["EXPORTD_TEMPORAL_ADDRESS"]})
	require.NoError(t, err)
	defer tc.Close()

	var maxRunning atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			var n int64
			if pool.QueryRow(ctx, "SELECT count(*) FROM export_queue WHERE acquired_at IS NOT NULL").Scan(&n) == nil {
				maxRunning.Store(max(maxRunning.Load(), n))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	create := func(merchant string, rowsPerFile int) string {
		t.Helper()
		var doc exportDoc
		resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
			"merchantId": merchant, "dataset": "orders", "start": window[0], "end": window[1],
			"formats": []string{"parquet", "arrow", "jsonl.gz", "csv.gz"}, "maxRowsPerFile": rowsPerFile,
		}, &doc)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		return doc.ID
	}
	status := func(id string) string {
		t.Helper()
		var doc exportDoc
		resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+id, app.APIKey, nil, &doc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return doc.Status
	}
	waitStatus := func(id, want string, within time.Duration) time.Duration {
		t.Helper()
		began := time.Now()
		for st := status(id); st != want; st = status(id) {
			require.Contains(t, []string{"queued", "running"}, st, "export %s", id)
			require.Less(t, time.Since(began), within, "export %s still %s", id, st)
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(began)
	}
	queued := func(id string) bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM export_queue WHERE export_id = $1", id).Scan(&n))
		return n > 0
	}

	// A: every order of the first merchant in small parts, slow enough
	// to outlive its lease several times over.
	a := create(app.Merchants[0], 25)
	waitStatus(a, "running", time.Minute)
	aRunning := time.Now()
	b := create(app.Merchants[1], 1000)
	for time.Since(aRunning) < 3*lease {
		require.Equal(t, "queued", status(b), "B waits while A holds the one slot")
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, "running", status(a), "A ran for %s, three leases, on renewals", time.Since(aRunning).Round(time.Millisecond))

	// B is terminated while it waits, and an API that died between
	// enqueue and start left a row older than the reaper's grace period.
	require.NoError(t, tc.TerminateWorkflow(ctx, contract.WorkflowID(b), "", "test: terminated while queued"))
	_, err = pool.Exec(ctx, "INSERT INTO export_queue (export_id, merchant_id, enqueued_at) VALUES ('ghost', $1, now() - interval '40 seconds')", app.Merchants[1])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !queued(b) && !queued("ghost") }, 30*time.Second, 100*time.Millisecond,
		"the rows of a terminated export and of one whose workflow never started are reaped")

	doc, _ := waitFor(t, s, app.APIKey, a)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)
	t.Logf("A ran for %s with a %s lease", time.Since(aRunning).Round(time.Millisecond), lease)

	c := create(app.Merchants[1], 1000)
	took := waitStatus(c, "succeeded", time.Minute)
	t.Logf("C succeeded %s after it was submitted", took.Round(time.Millisecond))
	cancel()
	<-sampled
	require.EqualValues(t, 1, maxRunning.Load(), "never more than one export held a slot")
}
