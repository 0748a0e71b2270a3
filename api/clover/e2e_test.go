package clover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/api/clover"
	"github.com/exportd/exportd/devenv/devtest"
)

// The Clover dialect as its clients meet it: the real `exportd dev` binary
// (PostgreSQL, Temporal dev server, worker, API), driven through the Clover
// routes the way Clover's documentation tells a client to, and checked
// against SQL over the same window.

// devInfo is dev.json.
type devInfo = devtest.Info

// startDev runs the real `exportd dev`, as users do; see devtest.Start.
func startDev(t *testing.T, args ...string) devInfo { return devtest.Start(t, args...) }

// request makes one HTTP request the way a Clover client does: a bearer
// token when given, the body as given, the content type as given.
func request(t *testing.T, method, url, token, ctype, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// exportDoc is the export object as a client reads it.
type exportDoc struct {
	ID              string      `json:"id"`
	Type            string      `json:"type"`
	Status          string      `json:"status"`
	PercentComplete json.Number `json:"percentComplete"`
	AvailableUntil  *int64      `json:"availableUntil"`
	StartTime       int64       `json:"startTime"`
	EndTime         int64       `json:"endTime"`
	ExportURLs      *struct {
		Elements []struct {
			URL    string `json:"url"`
			Export struct {
				ID string `json:"id"`
			} `json:"export"`
		} `json:"elements"`
	} `json:"exportUrls"`
	MerchantRef struct {
		ID string `json:"id"`
	} `json:"merchantRef"`
}

func decodeExport(t *testing.T, b []byte) exportDoc {
	t.Helper()
	var d exportDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&d), "%s", b)
	require.NotContains(t, d.PercentComplete.String(), ".", "percentComplete is an integer")
	return d
}

// waitDone polls an export until it leaves PENDING and IN_PROGRESS, as
// Clover's examples do, and returns the last document and the statuses
// seen.
func waitDone(t *testing.T, url, token string) ([]byte, []string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, _, b := request(t, http.MethodGet, url, token, "", "")
		require.Equal(t, http.StatusOK, status, "%s", b)
		d := decodeExport(t, b)
		if len(seen) == 0 || seen[len(seen)-1] != d.Status {
			seen = append(seen, d.Status)
		}
		if d.Status != clover.StatusPending && d.Status != clover.StatusInProgress {
			return b, seen
		}
		require.True(t, time.Now().Before(deadline), "export still %s after 2 minutes", d.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

// download GETs every file of a DONE export with no credentials at all and
// returns the objects of each.
func download(t *testing.T, d exportDoc) [][]json.RawMessage {
	t.Helper()
	require.NotNil(t, d.ExportURLs)
	var files [][]json.RawMessage
	for _, e := range d.ExportURLs.Elements {
		require.Equal(t, d.ID, e.Export.ID)
		require.True(t, strings.HasPrefix(e.URL, "http://"), "absolute URL: %s", e.URL)
		resp, err := http.Get(e.URL)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", e.URL, b)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var file map[string][]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &file))
		require.Len(t, file, 1, "the file is {\"elements\": [...]}")
		require.LessOrEqual(t, len(file["elements"]), clover.RowsPerFile, e.URL)
		files = append(files, file["elements"])
	}
	return files
}

func millis(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestCloverDialect(t *testing.T) {
	start := time.Now()
	dev := startDev(t, "--seed-orders", "10000")
	t.Logf("exportd dev ready in %s", time.Since(start).Round(time.Millisecond))
	app, other := dev.Apps[0], dev.Apps[1]
	cafe, harbor, southern := app.Merchants[0], app.Merchants[1], other.Merchants[0]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dev.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	base := dev.APIURL + "/v3/merchants/"

	sqlOrders := func(t *testing.T, merchant string, from, to int64) (n, total int64) {
		t.Helper()
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*), coalesce(sum(total), 0) FROM orders
			WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
			merchant, time.UnixMilli(from), time.UnixMilli(to)).Scan(&n, &total))
		return n, total
	}

	// An orders export as Clover's C# example makes it, but with the body
	// sent as text/plain: the body is JSON whatever the Content-Type.
	ordersFrom, ordersTo := millis("2025-03-01T00:00:00Z"), millis("2025-03-31T00:00:00Z")
	var ordersID string
	t.Run("orders", func(t *testing.T) {
		body := fmt.Sprintf(`{"type": "ORDERS", "startTime": %d, "endTime": "%d"}`, ordersFrom, ordersTo)
		status, _, b := request(t, http.MethodPost, base+cafe+"/exports", app.APIKey, "text/plain", body)
		require.Equal(t, http.StatusOK, status, "%s", b)
		clover.RequireShape(t, clover.Golden(t, "export_pending.json"), b)
		created := decodeExport(t, b)
		require.Equal(t, clover.StatusPending, created.Status)
		require.Equal(t, "ORDERS", created.Type)
		require.Equal(t, cafe, created.MerchantRef.ID)
		require.Equal(t, [2]int64{ordersFrom, ordersTo}, [2]int64{created.StartTime, created.EndTime})
		ordersID = created.ID

		b, seen := waitDone(t, base+cafe+"/exports/"+created.ID, app.APIKey)
		require.Subset(t, []string{"PENDING", "IN_PROGRESS", "DONE"}, seen, "status progression %v", seen)
		clover.RequireShape(t, clover.Golden(t, "export_done.json"), b)
		done := decodeExport(t, b)
		require.Equal(t, clover.StatusDone, done.Status, "%s", b)
		require.Equal(t, "100", done.PercentComplete.String())
		require.Greater(t, *done.AvailableUntil, time.Now().UnixMilli())

		n, total := sqlOrders(t, cafe, ordersFrom, ordersTo)
		require.Greater(t, n, int64(clover.RowsPerFile), "the window must span several files")
		var got, gotTotal int64
		files := download(t, done)
		require.Len(t, files, int((n+clover.RowsPerFile-1)/clover.RowsPerFile))
		for _, file := range files {
			for _, raw := range file {
				var o struct {
					ID          string `json:"id"`
					Total       int64  `json:"total"`
					CreatedTime int64  `json:"createdTime"`
					LineItems   struct {
						Elements []json.RawMessage `json:"elements"`
					} `json:"lineItems"`
				}
				require.NoError(t, json.Unmarshal(raw, &o))
				require.NotEmpty(t, o.ID)
				require.NotEmpty(t, o.LineItems.Elements)
				require.True(t, o.CreatedTime >= ordersFrom && o.CreatedTime < ordersTo, "order %s at %d", o.ID, o.CreatedTime)
				got++
				gotTotal += o.Total
			}
		}
		require.Equal(t, n, got, "orders exported vs SQL")
		require.Equal(t, total, gotTotal, "sum of totals exported vs SQL")

		// The signature binds the file: another name with it is refused.
		u := done.ExportURLs.Elements[0].URL
		forged := strings.Replace(u, "orders-00000.json", "orders-00001.json", 1)
		resp, err := http.Get(forged)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	// A payments export as Clover's Python example makes it: times as
	// strings, trailing slashes, here the token in the query and no
	// Content-Type at all.
	t.Run("payments with access_token", func(t *testing.T) {
		from, to := millis("2025-02-01T00:00:00Z"), millis("2025-03-03T00:00:00Z")
		q := "?access_token=" + app.APIKey
		body := fmt.Sprintf(`{"type": "payments", "startTime": "%d", "endTime": "%d"}`, from, to)
		status, _, b := request(t, http.MethodPost, base+harbor+"/exports/"+q, "", "", body)
		require.Equal(t, http.StatusOK, status, "%s", b)
		created := decodeExport(t, b)
		require.Equal(t, "PAYMENTS", created.Type)

		b, _ = waitDone(t, base+harbor+"/exports/"+created.ID+"/"+q, "")
		done := decodeExport(t, b)
		require.Equal(t, clover.StatusDone, done.Status, "%s", b)

		var n, amount int64
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*), coalesce(sum(amount), 0) FROM transactions
			WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
			harbor, time.UnixMilli(from), time.UnixMilli(to)).Scan(&n, &amount))
		require.Positive(t, n)
		var got, gotAmount int64
		for _, file := range download(t, done) {
			for _, raw := range file {
				var p struct {
					Amount int64 `json:"amount"`
					Order  struct {
						ID string `json:"id"`
					} `json:"order"`
					Result string `json:"result"`
				}
				require.NoError(t, json.Unmarshal(raw, &p))
				require.NotEmpty(t, p.Order.ID)
				require.Contains(t, []string{"SUCCESS", "FAIL"}, p.Result)
				got++
				gotAmount += p.Amount
			}
		}
		require.Equal(t, n, got, "payments exported vs SQL")
		require.Equal(t, amount, gotAmount, "net amount exported vs SQL")
	})

	t.Run("list", func(t *testing.T) {
		require.NotEmpty(t, ordersID)
		status, _, b := request(t, http.MethodGet, base+cafe+"/exports", app.APIKey, "", "")
		require.Equal(t, http.StatusOK, status, "%s", b)
		var list struct {
			Elements []json.RawMessage `json:"elements"`
		}
		require.NoError(t, json.Unmarshal(b, &list))
		found := false
		for _, raw := range list.Elements {
			d := decodeExport(t, raw)
			require.Equal(t, cafe, d.MerchantRef.ID)
			if d.ID == ordersID {
				found = true
				require.Equal(t, clover.StatusDone, d.Status)
				clover.RequireShape(t, clover.Golden(t, "export_done.json"), raw)
			}
		}
		require.True(t, found, "the orders export is listed: %s", b)
	})

	// A client in another language, written from Clover's docs alone.
	t.Run("node client", func(t *testing.T) {
		node, err := exec.LookPath("node")
		require.NoError(t, err, "node is needed for the Node.js client test")
		from, to := millis("2025-05-01T00:00:00Z"), millis("2025-05-31T00:00:00Z")
		cmd := exec.Command(node, filepath.Join("testdata", "client.mjs"))
		cmd.Env = append(os.Environ(), "CLOVER_BASE_URL="+dev.APIURL, "CLOVER_TOKEN="+app.APIKey, "CLOVER_MERCHANT="+cafe,
			"CLOVER_TYPE=ORDERS", fmt.Sprintf("CLOVER_START=%d", from), fmt.Sprintf("CLOVER_END=%d", to))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "node client failed:\n%s", stderr.String())
		var res struct {
			Status  string `json:"status"`
			Files   int64  `json:"files"`
			Objects int64  `json:"objects"`
			Sum     int64  `json:"sum"`
			// Regressions are polls where percentComplete went down.
			Regressions []string `json:"regressions"`
		}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &res), "%s", stdout.Bytes())
		n, total := sqlOrders(t, cafe, from, to)
		require.Equal(t, "DONE", res.Status)
		require.Equal(t, n, res.Objects, "orders the node client read vs SQL")
		require.Equal(t, total, res.Sum, "sum of totals the node client read vs SQL")
		require.Equal(t, (n+clover.RowsPerFile-1)/clover.RowsPerFile, res.Files)
		if len(res.Regressions) > 0 {
			// The engine publishes no progress between the export activity
			// and finalize, so IN_PROGRESS can drop back to 0 for a moment.
			t.Logf("percentComplete went down while polling: %v", res.Regressions)
		}
	})

	t.Run("errors", func(t *testing.T) {
		require.NotEmpty(t, ordersID)
		good := fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, ordersFrom, ordersTo)
		day := int64(24 * time.Hour / time.Millisecond)
		for _, tc := range []struct {
			name, method, url, token, body string
			status                         int
			message                        string
		}{
			{"no token", http.MethodPost, base + cafe + "/exports", "", good, http.StatusUnauthorized, "401"},
			{"unknown token", http.MethodGet, base + cafe + "/exports/" + ordersID, "exk_not_a_key", "", http.StatusUnauthorized, "401"},
			{"unknown query token", http.MethodGet, base + cafe + "/exports/" + ordersID + "?access_token=exk_nope", "", "", http.StatusUnauthorized, "401"},
			{"merchant not installed", http.MethodPost, base + southern + "/exports", app.APIKey, good, http.StatusNotFound, "404"},
			{"merchant that does not exist", http.MethodGet, base + "no-such-merchant/exports", app.APIKey, "", http.StatusNotFound, "404"},
			{"another app's merchant", http.MethodGet, base + cafe + "/exports/" + ordersID, other.APIKey, "", http.StatusNotFound, "404"},
			{"another app's export", http.MethodGet, base + southern + "/exports/" + ordersID, other.APIKey, "", http.StatusNotFound, "404"},
			{"export of another merchant", http.MethodGet, base + harbor + "/exports/" + ordersID, app.APIKey, "", http.StatusNotFound, "404"},
			{"no such export", http.MethodGet, base + cafe + "/exports/xnosuchexport", app.APIKey, "", http.StatusNotFound, "404"},
			{"31 days", http.MethodPost, base + cafe + "/exports", app.APIKey,
				fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, ordersFrom, ordersFrom+31*day), http.StatusBadRequest, "30 days"},
			{"end before start", http.MethodPost, base + cafe + "/exports", app.APIKey,
				fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, ordersTo, ordersFrom), http.StatusBadRequest, "endTime must be after startTime"},
			{"garbage", http.MethodPost, base + cafe + "/exports", app.APIKey, "type=ORDERS&start=yesterday", http.StatusBadRequest, "JSON"},
			{"delete an export", http.MethodDelete, base + cafe + "/exports/" + ordersID, app.APIKey, "", http.StatusMethodNotAllowed, "405"},
			{"put the collection", http.MethodPut, base + cafe + "/exports/", app.APIKey, good, http.StatusMethodNotAllowed, "405"},
			{"unknown route", http.MethodGet, base + cafe + "/orders", app.APIKey, "", http.StatusNotFound, "404"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, hdr, b := request(t, tc.method, tc.url, tc.token, "application/json", tc.body)
				require.Equal(t, tc.status, status, "%s", b)
				require.Equal(t, "application/json", hdr.Get("Content-Type"))
				var e map[string]string
				require.NoError(t, json.Unmarshal(b, &e), "%s", b)
				require.Len(t, e, 1, "errors are {\"message\"}: %s", b)
				require.Contains(t, e["message"], tc.message)
			})
		}
	})
	t.Logf("dialect tests done in %s", time.Since(start).Round(time.Millisecond))
}
