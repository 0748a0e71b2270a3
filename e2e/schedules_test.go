package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd/contract"
)

// scheduleDoc is the part of a schedule's document the tests read.
type scheduleDoc struct {
	ID          string     `json:"id"`
	MerchantID  string     `json:"merchantId"`
	Every       string     `json:"every"`
	Paused      bool       `json:"paused"`
	Note        string     `json:"note"`
	NextRunAt   *time.Time `json:"nextRunAt"`
	Cursor      string     `json:"cursor"`
	Running     int        `json:"running"`
	SkippedRuns int        `json:"skippedRuns"`
	Runs        []runDoc   `json:"runs"`
}

type runDoc struct {
	ExportID    string    `json:"exportId"`
	ScheduledAt time.Time `json:"scheduledAt"`
	Cursor      string    `json:"cursor"`
	NextCursor  string    `json:"nextCursor"`
	Status      string    `json:"status"`
	Rows        int64     `json:"rows"`
	Chained     bool      `json:"chained"`
	StartedAt   time.Time `json:"startedAt"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestSchedulesOfChangeExports creates a schedule of change exports every
// minute through the API and drives it with Temporal's trigger (so the
// test need not wait for the clock): the backfill and two more runs, with
// edits, inserts and deletes of orders between them. Each run is an
// export of its own that succeeded, each starts from the previous one's
// nextCursor, and replaying their files gives the current orders. Then
// pause, resume and delete; refusals name their field, and another app
// sees a 404. Every response is checked against the OpenAPI document.
func TestSchedulesOfChangeExports(t *testing.T) {
	s := startDev(t, "--seed-orders", "600")
	o := loadOpenAPI(t, s)
	apps := devApps(t, s)
	app, other := apps[0], apps[1]
	merchant := app.Merchants[0]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	tc, err := client.Dial(client.Options{HostPort: s.TemporalAddress, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	schedulesURL := s.APIURL + "/v1/schedules"

	// Refusals: each a problem document naming the field, nothing created.
	base := `"merchantId": "` + merchant + `", "dataset": "orders", "formats": ["jsonl.gz"]`
	for _, r := range []struct {
		body, field string
		status      int
	}{
		{`{` + base + `}`, "every", 400},
		{`{` + base + `, "every": "1h", "cron": "0 * * * *"}`, "every", 400},
		{`{` + base + `, "every": "30s"}`, "every", 400},
		{`{` + base + `, "every": "soon"}`, "every", 400},
		{`{` + base + `, "cron": "61 * * * *"}`, "cron", 400},
		{`{` + base + `, "cron": "* * * *"}`, "cron", 400},
		{`{"merchantId": "` + merchant + `", "dataset": "refunds", "every": "1h"}`, "dataset", 400},
		{`{"merchantId": "` + merchant + `", "dataset": "orders", "formats": ["xlsx"], "every": "1h"}`, "formats", 400},
		{`{"merchantId": "` + merchant + `", "dataset": "orders", "formats": ["clover-json"], "every": "1h"}`, "formats", 400},
		{`{` + base + `, "every": "1h", "callbackUrl": "ftp://example.com/x"}`, "callbackUrl", 400},
		{`{` + base + `, "every": "1h", "start": "2025-01-01T00:00:00Z"}`, "start", 400},
		{`{` + base + `, "every": 60}`, "every", 400},
		{`{"merchantId": "` + other.Merchants[0] + `", "dataset": "orders", "every": "1h"}`, "merchantId", 404},
	} {
		status, ct, b := raw(t, http.MethodPost, schedulesURL, app.APIKey, r.body)
		require.Equal(t, r.status, status, "%s: %s", r.body, b)
		o.check(t, "/v1/schedules", "POST", status, ct, b)
		var p problem
		require.NoError(t, json.Unmarshal(b, &p))
		require.Equal(t, r.field, p.Field, "%s: %s", r.body, b)
	}

	// Cron expressions the API accepts, Temporal accepts too; a schedule
	// created paused runs nothing, not even the backfill.
	for _, cron := range []string{"*/15 9-17 * jan,jul mon-fri", "0 0 * * 7", "5 4 1,15 * *", "0 3 * * SUN-SAT/2"} {
		status, ct, b := raw(t, http.MethodPost, schedulesURL, app.APIKey, `{`+base+`, "cron": "`+cron+`", "paused": true}`)
		require.Equal(t, http.StatusCreated, status, "%s: %s", cron, b)
		o.check(t, "/v1/schedules", "POST", status, ct, b)
		var d scheduleDoc
		require.NoError(t, json.Unmarshal(b, &d))
		require.True(t, d.Paused)
		require.Nil(t, d.NextRunAt)
		require.Empty(t, d.Runs)
		status, _, b = raw(t, http.MethodDelete, schedulesURL+"/"+d.ID, app.APIKey, "")
		require.Equal(t, http.StatusNoContent, status, "%s", b)
	}

	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	getSchedule := func(key, id string) (int, scheduleDoc) {
		t.Helper()
		status, ct, b := raw(t, http.MethodGet, schedulesURL+"/"+id+"?runs=50", key, "")
		o.check(t, "/v1/schedules/{id}", "GET", status, ct, b)
		var d scheduleDoc
		if status == http.StatusOK {
			require.NoError(t, json.Unmarshal(b, &d))
		}
		return status, d
	}
	// settledAfter waits until a run that began after t has settled and
	// no run is under way, and returns the schedule.
	settledAfter := func(id string, after time.Time) scheduleDoc {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			status, d := getSchedule(app.APIKey, id)
			require.Equal(t, http.StatusOK, status)
			done := d.Running == 0 && len(d.Runs) > 0
			found := false
			for _, r := range d.Runs {
				done = done && r.Status != "running"
				found = found || !r.StartedAt.Before(after)
			}
			if done && found {
				t.Logf("a run %s after %s settled", time.Since(after).Round(time.Millisecond), after.Format("15:04:05.000"))
				return d
			}
			require.True(t, time.Now().Before(deadline), "no run after %s settled: %+v", after, d)
			time.Sleep(200 * time.Millisecond)
		}
	}
	applied := map[string]bool{}
	cp := map[int64]copyOrder{}
	// replay applies the runs not applied yet, oldest first, each an
	// export that succeeded, and checks the copy against SQL.
	replay := func(d scheduleDoc) {
		t.Helper()
		for i := len(d.Runs) - 1; i >= 0; i-- {
			r := d.Runs[i]
			if applied[r.ExportID] {
				continue
			}
			applied[r.ExportID] = true
			require.Equal(t, "succeeded", r.Status, "run %s: %+v", r.ExportID, r.Error)
			require.True(t, r.Chained, "run %s", r.ExportID)
			var doc changeDoc
			resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+r.ExportID, app.APIKey, nil, &doc)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "succeeded", doc.Status)
			require.Equal(t, "changes", doc.Mode)
			require.Equal(t, r.Cursor, doc.Cursor)
			require.Equal(t, r.NextCursor, doc.NextCursor)
			require.Equal(t, r.Rows, doc.Progress.Rows)
			apply(t, cp, changeRecords(t, app.APIKey, doc))
		}
		require.Equal(t, currentOrders(t, db, merchant), cp, "the runs replay to the current orders")
		require.Equal(t, d.Runs[0].NextCursor, d.Cursor, "the chain's cursor is the newest run's")
	}

	// Create: the first run, the backfill, starts at once.
	created := time.Now()
	status, ct, b := raw(t, http.MethodPost, schedulesURL, app.APIKey,
		`{`+base+`, "every": "1m", "maxRowsPerFile": 250, "retention": "2h"}`)
	require.Equal(t, http.StatusCreated, status, "%s", b)
	o.check(t, "/v1/schedules", "POST", status, ct, b)
	var sched scheduleDoc
	require.NoError(t, json.Unmarshal(b, &sched))
	id := sched.ID
	require.Equal(t, "1m", sched.Every)
	require.False(t, sched.Paused)
	require.NotNil(t, sched.NextRunAt)
	require.Equal(t, "changes of merchant "+merchant+" orders every 1m", sched.Note)
	handle := tc.ScheduleClient().GetHandle(ctx, contract.ScheduleID(id))
	desc, err := handle.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	merchantAttr, ok := desc.TypedSearchAttributes.GetKeyword(contract.AttrMerchant)
	require.True(t, ok)
	require.Equal(t, merchant, merchantAttr)

	d := settledAfter(id, created)
	require.Empty(t, d.Runs[len(d.Runs)-1].Cursor, "the first run is the backfill")
	replay(d)
	require.Len(t, cp, 600)

	// Edits, a new order and deletes, then a run triggered by hand;
	// BUFFER_ONE so that a run the clock started meanwhile cannot make
	// the trigger skipped. Twice.
	ids := func(n, offset int) []int64 {
		rows, err := db.Query(ctx, "SELECT id FROM orders WHERE merchant_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3", merchant, n, offset)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return ids
	}
	// Temporal names a run after its second and starts one per name, so
	// a trigger in the second of another run (the one before, or the
	// clock's at hh:mm:00) would start nothing: trigger in a fresh second.
	trigger := func(newest runDoc) scheduleDoc {
		t.Helper()
		edited := time.Now()
		for now := time.Now(); now.Truncate(time.Second).Equal(newest.ScheduledAt.Truncate(time.Second)) ||
			now.Second() == 59 || now.Second() == 0; now = time.Now() {
			time.Sleep(now.Truncate(time.Second).Add(1100 * time.Millisecond).Sub(now))
		}
		require.NoError(t, handle.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE}))
		return settledAfter(id, edited)
	}
	for _, id := range ids(3, 50) {
		exec("UPDATE orders SET note = 'edited by the schedule test', total = total + 7, updated_at = clock_timestamp() WHERE id = $1", id)
	}
	exec(`INSERT INTO orders (id, merchant_id, location_id, created_at, updated_at, state, currency, subtotal, tax, tip, total, customer_ref, note)
		SELECT 990000101, merchant_id, location_id, now(), now(), 'open', currency, 0, 0, NULL, 0, NULL, 'new' FROM orders WHERE merchant_id = $1 LIMIT 1`, merchant)
	for _, id := range ids(2, 300) {
		exec("DELETE FROM transactions WHERE order_id = $1", id)
		exec("DELETE FROM order_items WHERE order_id = $1", id)
		exec("DELETE FROM orders WHERE id = $1", id)
	}
	d = trigger(d.Runs[0])
	replay(d)

	exec("UPDATE orders SET note = 'edited twice', updated_at = clock_timestamp() WHERE id = 990000101")
	exec("DELETE FROM orders WHERE id = $1", ids(1, 10)[0])
	d = trigger(d.Runs[0])
	replay(d)

	// The chain: oldest first, each run started from the previous one's
	// nextCursor.
	require.GreaterOrEqual(t, len(d.Runs), 3)
	for i := len(d.Runs) - 1; i > 0; i-- {
		require.NotEmpty(t, d.Runs[i].NextCursor)
		require.Equal(t, d.Runs[i].NextCursor, d.Runs[i-1].Cursor, "run %s starts where %s ended", d.Runs[i-1].ExportID, d.Runs[i].ExportID)
	}

	// Another app: 404 for every route, as for a schedule that does not
	// exist, and its list is empty.
	for _, m := range []struct{ method, body string }{{"GET", ""}, {"PATCH", `{"paused": true}`}, {"DELETE", ""}} {
		status, ct, b := raw(t, m.method, schedulesURL+"/"+id, other.APIKey, m.body)
		require.Equal(t, http.StatusNotFound, status, "%s: %s", m.method, b)
		o.check(t, "/v1/schedules/{id}", m.method, status, ct, b)
		status, _, nb := raw(t, m.method, schedulesURL+"/snosuchschedule", app.APIKey, m.body)
		require.Equal(t, http.StatusNotFound, status)
		require.Equal(t, problemDetail(t, b, id), problemDetail(t, nb, "snosuchschedule"), "the same answer as for no schedule")
	}
	status, ct, b = raw(t, http.MethodGet, schedulesURL, other.APIKey, "")
	require.Equal(t, http.StatusOK, status)
	o.check(t, "/v1/schedules", "GET", status, ct, b)
	require.NotContains(t, string(b), id)
	status, ct, b = raw(t, http.MethodGet, schedulesURL, app.APIKey, "")
	require.Equal(t, http.StatusOK, status)
	o.check(t, "/v1/schedules", "GET", status, ct, b)
	require.Contains(t, string(b), id)
	status, _, b = raw(t, http.MethodPatch, schedulesURL+"/"+id, app.APIKey, `{"note": "no paused"}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "paused", problemField(t, b))

	// Pause: Temporal's schedule is paused with the note, and no run
	// starts; resume.
	runs := len(d.Runs)
	status, ct, b = raw(t, http.MethodPatch, schedulesURL+"/"+id, app.APIKey, `{"paused": true, "note": "paused by the e2e test"}`)
	require.Equal(t, http.StatusOK, status, "%s", b)
	o.check(t, "/v1/schedules/{id}", "PATCH", status, ct, b)
	_, d = getSchedule(app.APIKey, id)
	require.True(t, d.Paused)
	require.Nil(t, d.NextRunAt)
	require.Equal(t, "paused by the e2e test", d.Note)
	desc, err = handle.Describe(ctx)
	require.NoError(t, err)
	require.True(t, desc.Schedule.State.Paused)
	time.Sleep(2 * time.Second)
	_, d = getSchedule(app.APIKey, id)
	require.Len(t, d.Runs, runs, "no run while paused")
	status, ct, b = raw(t, http.MethodPatch, schedulesURL+"/"+id, app.APIKey, `{"paused": false}`)
	require.Equal(t, http.StatusOK, status, "%s", b)
	o.check(t, "/v1/schedules/{id}", "PATCH", status, ct, b)
	require.NoError(t, json.Unmarshal(b, &d))
	require.False(t, d.Paused)
	require.NotNil(t, d.NextRunAt)
	require.WithinDuration(t, time.Now(), *d.NextRunAt, time.Minute+5*time.Second)

	// Delete: gone from the API and from Temporal; its runs' exports stay.
	status, _, b = raw(t, http.MethodDelete, schedulesURL+"/"+id, app.APIKey, "")
	require.Equal(t, http.StatusNoContent, status, "%s", b)
	status, _ = getSchedule(app.APIKey, id)
	require.Equal(t, http.StatusNotFound, status)
	_, err = handle.Describe(ctx)
	var missing *serviceerror.NotFound
	require.ErrorAs(t, err, &missing, "the Temporal schedule is gone")
	for exportID := range applied {
		var doc exportDoc
		resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+exportID, app.APIKey, nil, &doc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "succeeded", doc.Status)
	}
	status, _, _ = raw(t, http.MethodDelete, schedulesURL+"/"+id, app.APIKey, "")
	require.Equal(t, http.StatusNotFound, status)
}

// problemDetail is a problem's detail with the id it names replaced, so
// two answers about different ids compare.
func problemDetail(t *testing.T, body []byte, id string) string {
	t.Helper()
	var p problem
	require.NoError(t, json.Unmarshal(body, &p))
	return p.Code + " " + strings.ReplaceAll(p.Detail, id, "<id>")
}

func problemField(t *testing.T, body []byte) string {
	t.Helper()
	var p problem
	require.NoError(t, json.Unmarshal(body, &p))
	return p.Field
}
