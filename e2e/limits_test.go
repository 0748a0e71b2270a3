package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestHundredExportsRespectCaps submits 100 exports at once with a global
// cap of 3 running exports, 2 per merchant, and a queue limit of 60. It
// samples the admission table throughout: the caps must never be exceeded.
// Refused requests get 429 with Retry-After and are resubmitted after it;
// every accepted export must finish, and its rows must match SQL.
func TestHundredExportsRespectCaps(t *testing.T) {
	s := startDev(t, "--seed-orders", "3000", "--max-running-exports", "3", "--max-running-per-merchant", "2", "--queue-limit", "60")
	app := s.Apps[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, err := pgxpool.New(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()

	var maxGlobal, maxMerchant atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			var global, perMerchant int64
			err := pool.QueryRow(ctx, `SELECT coalesce(sum(c), 0), coalesce(max(c), 0) FROM
				(SELECT count(*) c FROM export_queue WHERE acquired_at IS NOT NULL GROUP BY merchant_id) x`).Scan(&global, &perMerchant)
			if err == nil {
				maxGlobal.Store(max(maxGlobal.Load(), global))
				maxMerchant.Store(max(maxMerchant.Load(), perMerchant))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	type job struct {
		merchant   string
		start, end time.Time
		id         string
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	jobs := make([]*job, 100)
	for i := range jobs {
		start := base.Add(time.Duration(i) * 36 * time.Hour)
		jobs[i] = &job{merchant: app.Merchants[i%2], start: start, end: start.Add(36 * time.Hour)}
	}
	// submit is safe to call from goroutines: it reports, not asserts.
	submit := func(j *job) (int, string) {
		body := fmt.Sprintf(`{"merchantId": %q, "dataset": "orders", "formats": ["jsonl.gz"], "start": %q, "end": %q}`,
			j.merchant, j.start.Format(time.RFC3339), j.end.Format(time.RFC3339))
		req, _ := http.NewRequest(http.MethodPost, s.APIURL+"/v1/exports", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+app.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var doc struct {
			ID string `json:"id"`
		}
		if resp.StatusCode == http.StatusAccepted && json.NewDecoder(resp.Body).Decode(&doc) == nil {
			j.id = doc.ID
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	var wg sync.WaitGroup
	codes := make([]int, len(jobs))
	retries := make([]string, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], retries[i] = submit(j)
		}()
	}
	wg.Wait()
	var refused []*job
	for i, j := range jobs {
		if codes[i] == http.StatusTooManyRequests {
			require.NotEmpty(t, retries[i], "429 carries Retry-After")
			refused = append(refused, j)
			continue
		}
		require.Equal(t, http.StatusAccepted, codes[i], retries[i])
	}
	require.NotEmpty(t, refused, "100 at once exceed a queue limit of 60")
	require.Less(t, len(refused), 100)
	t.Logf("%d accepted, %d refused with 429", 100-len(refused), len(refused))

	// Resubmit refused ones as the queue drains, as a client honouring
	// Retry-After would (faster here, to keep the test short).
	for len(refused) > 0 {
		time.Sleep(200 * time.Millisecond)
		var still []*job
		for _, j := range refused {
			if code, _ := submit(j); code == http.StatusTooManyRequests {
				still = append(still, j)
			}
		}
		refused = still
	}

	for _, j := range jobs {
		doc, _ := waitFor(t, s, app.APIKey, j.id)
		require.Equal(t, "succeeded", doc.Status, "export %s: %+v", j.id, doc.Error)
		var n int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3",
			j.merchant, j.start, j.end).Scan(&n))
		require.Equal(t, n, doc.Progress.Rows, "export %s", j.id)
	}
	cancel()
	<-sampled
	t.Logf("max running at once: %d globally, %d for one merchant", maxGlobal.Load(), maxMerchant.Load())
	require.LessOrEqual(t, maxGlobal.Load(), int64(3))
	require.LessOrEqual(t, maxMerchant.Load(), int64(2))
	require.Positive(t, maxGlobal.Load(), "the sampler saw exports running")
}

// TestServiceHoursRefuse configures service hours that exclude the current
// day: new exports are refused with 503, the hours and Retry-After.
func TestServiceHoursRefuse(t *testing.T) {
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Weekday().String()[:3]
	hours := tomorrow + " 00:00-24:00"
	s := startDev(t, "--seed-orders", "100", "--service-hours", hours)
	app := s.Apps[0]
	var p problem
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": app.Merchants[0], "dataset": "orders", "start": window[0], "end": window[1],
	}, &p)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "urn:exportd:problem:outside-service-hours", p.Type)
	require.Contains(t, p.Detail, hours+" UTC")
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, secs, 0)
	require.LessOrEqual(t, secs, 48*3600, fmt.Sprintf("Retry-After %ds points at the next opening", secs))
}
