package elasticpath_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/devenv/devtest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// devInfo is dev.json.
type devInfo = devtest.Info

// startDev runs the real `exportd dev`, as users do; see devtest.Start.
func startDev(t *testing.T, args ...string) devInfo { return devtest.Start(t, args...) }

// The documents as Elastic Path documents them, read by a client.
type (
	job struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		JobType    string `json:"job_type"`
		Status     string `json:"status"`
		Error      string `json:"error"`
		Timestamps struct {
			CreatedAt time.Time `json:"created_at"`
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"timestamps"`
		Links struct {
			Self string `json:"self"`
		} `json:"links"`
		Link struct {
			Href string `json:"href"`
		} `json:"link"`
	}
	epErrors struct {
		Errors []struct {
			Status    int    `json:"status"`
			Title     string `json:"title"`
			Detail    string `json:"detail"`
			RequestID string `json:"request_id"`
		} `json:"errors"`
	}
)

// client is a client of the dialect, as a developer would write it from
// Elastic Path's documentation.
type client struct {
	t     *testing.T
	api   string
	token string
}

func (c *client) do(method, path, body string, v any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.api+path, strings.NewReader(body))
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	if v != nil {
		require.NoError(c.t, json.Unmarshal(b, v), "%s %s -> %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// login gets a client_credentials token with a form POST.
func login(t *testing.T, api, clientID, secret string, extra url.Values) *client {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := http.PostForm(api+"/oauth/access_token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Expires     int64  `json:"expires"`
		Identifier  string `json:"identifier"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(t, "Bearer", tok.TokenType)
	require.Equal(t, 3600, tok.ExpiresIn)
	require.Equal(t, "client_credentials", tok.Identifier)
	require.InDelta(t, time.Now().Add(time.Hour).Unix(), tok.Expires, 60)
	return &client{t: t, api: api, token: tok.AccessToken}
}

func (c *client) createJob(filter string) job {
	c.t.Helper()
	body, err := json.Marshal(map[string]any{"data": map[string]string{"type": "job", "job_type": "order_export", "filter": filter}})
	require.NoError(c.t, err)
	var created struct{ Data job }
	require.Equal(c.t, http.StatusCreated, c.do(http.MethodPost, "/v2/jobs", string(body), &created))
	require.Equal(c.t, "job", created.Data.Type)
	require.Equal(c.t, "order_export", created.Data.JobType)
	require.Equal(c.t, c.api+"/v2/jobs/"+created.Data.ID, created.Data.Links.Self)
	return created.Data
}

// wait polls a job until it succeeds or fails.
func (c *client) wait(id string) job {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got struct{ Data job }
		require.Equal(c.t, http.StatusOK, c.do(http.MethodGet, "/v2/jobs/"+id, "", &got))
		switch got.Data.Status {
		case "success", "failed":
			return got.Data
		case "pending", "started":
		default:
			c.t.Fatalf("job %s has status %q, not one of Elastic Path's", id, got.Data.Status)
		}
		require.True(c.t, time.Now().Before(deadline), "job %s still %s after 2 minutes", id, got.Data.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

// sqlTotals counts a merchant's orders in [start, end) and sums their totals.
func sqlTotals(t *testing.T, db *pgx.Conn, merchant, start, end string) (rows, total int64) {
	t.Helper()
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(total), 0) FROM orders
		WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`, merchant, start, end).Scan(&rows, &total))
	return rows, total
}

func TestElasticPathClientEndToEnd(t *testing.T) {
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is needed to run testdata/client.mjs")
	s := startDev(t, "--seed-orders", "3000")
	app, other := s.Apps[0], s.Apps[1]
	db, err := pgx.Connect(context.Background(), s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(context.Background())

	// The default store is the app's first install by merchant id.
	c := login(t, s.APIURL, app.ClientID, app.ClientSecret, nil)
	merchant := app.Merchants[0]
	for _, m := range app.Merchants {
		merchant = min(merchant, m)
	}

	created := c.createJob("ge(created_at,2025-02-01):lt(created_at,2025-03-01)")
	require.Contains(t, []string{"pending", "started"}, created.Status)
	require.Empty(t, created.Link.Href)
	done := c.wait(created.ID)
	require.Equal(t, "success", done.Status, "error: %s", done.Error)
	require.Empty(t, done.Error)
	require.False(t, done.Timestamps.UpdatedAt.Before(done.Timestamps.CreatedAt))

	var file struct {
		Href string `json:"href"`
		Data struct {
			Href string `json:"href"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, c.do(http.MethodGet, "/v2/jobs/"+created.ID+"/file", "", &file))
	require.NotEmpty(t, file.Href)
	require.Equal(t, file.Href, file.Data.Href)
	require.Equal(t, file.Href, done.Link.Href)

	// The link is public: a plain GET with no credentials.
	resp, err := http.Get(file.Href)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	rows, total := csvTotals(t, b)
	wantRows, wantTotal := sqlTotals(t, db, merchant, "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
	require.Positive(t, wantRows)
	require.Equal(t, wantRows, rows)
	require.Equal(t, wantTotal, total)

	// The signed link names this file of this export until it expires;
	// altered, it is refused.
	tampered := strings.Replace(file.Href, "signature=", "signature=A", 1)
	resp, err = http.Get(tampered)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	require.Eventually(t, func() bool {
		var list struct{ Data []job }
		require.Equal(t, http.StatusOK, c.do(http.MethodGet, "/v2/jobs", "", &list))
		for _, j := range list.Data {
			if j.ID == created.ID {
				return j.Status == "success"
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "GET /v2/jobs lists the job")

	t.Run("a filter that matches nothing is a failed job", func(t *testing.T) {
		empty := c.createJob("ge(created_at,2024-03-01):lt(created_at,2024-04-01)")
		done := c.wait(empty.ID)
		require.Equal(t, "failed", done.Status)
		require.Equal(t, "No results matched the supplied filter", done.Error)
		require.Empty(t, done.Link.Href)
		var e epErrors
		require.Equal(t, http.StatusUnprocessableEntity, c.do(http.MethodGet, "/v2/jobs/"+empty.ID+"/file", "", &e))
		require.Equal(t, "Job has no file to download. Job status: failed", e.Errors[0].Detail)
	})

	t.Run("errors", func(t *testing.T) {
		var e epErrors
		require.Equal(t, http.StatusBadRequest, c.do(http.MethodPost, "/v2/jobs",
			`{"data":{"type":"job","job_type":"order_export","filter":"gt(created_at,2018-09-01):lt(created_at,2018-10-01):eq(payment,refunded)"}}`, &e))
		require.Equal(t, "Bad Request", e.Errors[0].Title)
		require.Contains(t, e.Errors[0].Detail, `filtering on "payment" is not supported`)

		require.Equal(t, http.StatusNotFound, c.do(http.MethodGet, "/v2/jobs/xnosuchjob", "", &e))
		require.Equal(t, "Resource Not Found", e.Errors[0].Title)

		anon := &client{t: t, api: s.APIURL}
		require.Equal(t, http.StatusUnauthorized, anon.do(http.MethodGet, "/v2/jobs", "", &e))
		require.Equal(t, "Unable to validate access token", e.Errors[0].Title)

		resp, err := http.PostForm(s.APIURL+"/oauth/access_token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {app.ClientID}, "client_secret": {app.ClientSecret + "x"}})
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, 401, e.Errors[0].Status)
	})

	t.Run("another store or tenant sees nothing", func(t *testing.T) {
		var e epErrors
		stranger := login(t, s.APIURL, other.ClientID, other.ClientSecret, nil)
		require.Equal(t, http.StatusNotFound, stranger.do(http.MethodGet, "/v2/jobs/"+created.ID, "", &e))
		require.Equal(t, http.StatusNotFound, stranger.do(http.MethodGet, "/v2/jobs/"+created.ID+"/file", "", &e))
		var list struct{ Data []job }
		require.Equal(t, http.StatusOK, stranger.do(http.MethodGet, "/v2/jobs", "", &list))
		for _, j := range list.Data {
			require.NotEqual(t, created.ID, j.ID)
		}

		var second string
		for _, m := range app.Merchants {
			if m != merchant {
				second = m
			}
		}
		otherStore := login(t, s.APIURL, app.ClientID, app.ClientSecret, url.Values{"store_id": {second}})
		require.Equal(t, http.StatusNotFound, otherStore.do(http.MethodGet, "/v2/jobs/"+created.ID, "", &e))
	})

	t.Run("node client", func(t *testing.T) {
		filter := `ge(created_at,"2025-04-01T00:00:00Z"):lt(created_at,"2025-04-15T12:00:00Z")`
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "client.mjs"), filter)
		// Credentials go through the environment, not argv, which other
		// users of the machine can read.
		cmd.Env = append(os.Environ(), "EP_API_URL="+s.APIURL, "EP_CLIENT_ID="+app.ClientID, "EP_CLIENT_SECRET="+app.ClientSecret)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "node client: %s", stderr.String())
		var res struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  string `json:"error"`
			Rows   int64  `json:"rows"`
			Total  int64  `json:"total"`
		}
		require.NoError(t, json.Unmarshal(out, &res), "%s", out)
		require.Equal(t, "success", res.Status, "error: %s", res.Error)
		wantRows, wantTotal := sqlTotals(t, db, merchant, "2025-04-01T00:00:00Z", "2025-04-15T12:00:00Z")
		require.Positive(t, wantRows)
		require.Equal(t, wantRows, res.Rows)
		require.Equal(t, wantTotal, res.Total)
	})
}

// csvTotals reads the job's file, gunzipping it if it is gzip, and counts
// its rows and sums its total column.
func csvTotals(t *testing.T, b []byte) (rows, total int64) {
	t.Helper()
	var rd io.Reader = bytes.NewReader(b)
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(rd)
		require.NoError(t, err)
		rd = zr
	}
	r := csv.NewReader(rd)
	header, err := r.Read()
	require.NoError(t, err)
	col := -1
	for i, h := range header {
		if h == "total" {
			col = i
		}
	}
	require.NotEqual(t, -1, col, "csv header %v has no total", header)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, total
		}
		require.NoError(t, err)
		v, err := strconv.ParseInt(rec[col], 10, 64)
		require.NoError(t, err)
		total += v
		rows++
	}
}
