// Package e2e tests exportd as its users meet it: the real `exportd dev`
// binary (private PostgreSQL, Temporal dev server, worker, API) driven
// through the HTTP API, its results checked against SQL.
package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/webhook"
)

// devInfo is the part of dev.json the tests read.
type devInfo struct {
	APIURL          string `json:"api_url"`
	TemporalUIURL   string `json:"temporal_ui_url"`
	TemporalAddress string `json:"temporal_address"`
	DatabaseURL     string `json:"database_url"`
	Apps            []struct {
		Name         string   `json:"name"`
		APIKey       string   `json:"api_key"`
		ClientSecret string   `json:"client_secret"`
		Merchants    []string `json:"merchants"`
	} `json:"apps"`
	Env map[string]string `json:"env"`
}

// stack is a running `exportd dev`.
type stack struct {
	devInfo
	cmd     *exec.Cmd
	dataDir string
}

// repoRoot is the module root, two levels above this file's package dir.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

func temporalBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("EXPORTD_TEMPORAL_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), ".tools", "bin", "temporal")
	}
	_, err := os.Stat(bin)
	require.NoError(t, err, "the Temporal CLI is missing: run `make tools` (or `make test`, which builds it)")
	return bin
}

// buildExportd returns the binary under test, built once per test
// binary (see exportdBin).
func buildExportd(t *testing.T) string {
	t.Helper()
	return exportdBin(t)
}

// startDev runs `exportd dev` in a fresh data dir and waits for dev.json.
func startDev(t *testing.T, args ...string) *stack {
	t.Helper()
	bin := buildExportd(t)
	dataDir := reachableTempDir(t)
	logf, err := os.Create(filepath.Join(dataDir, "exportd-dev.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, append([]string{"dev", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0",
		"--temporal-bin", temporalBin(t)}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	s := &stack{cmd: cmd, dataDir: dataDir}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("exportd dev did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("exportd dev output:\n%s", tail(b, 8000))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(dataDir, "dev.json"))
		if err == nil && json.Unmarshal(b, &s.devInfo) == nil && s.APIURL != "" {
			return s
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("exportd dev exited before it was ready (%v):\n%s", exitErr, tail(b, 8000))
		case <-time.After(100 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "exportd dev not ready within 2 minutes")
	}
}

// reachableTempDir is a temporary data dir the postgres OS user can
// enter, which t.TempDir (mode 0700 under a 0700 parent) is not when the
// tests run as root.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// call makes an API request and decodes a JSON response into v.
func call(t *testing.T, method, url, key string, body any, v any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil {
		require.NoError(t, json.Unmarshal(b, v), "%s %s -> %d %s", method, url, resp.StatusCode, b)
	}
	return resp
}

func download(t *testing.T, url, key string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

type exportDoc struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Progress struct {
		Percent float64 `json:"percent"`
		Rows    int64   `json:"rows"`
		Total   int64   `json:"total"`
	} `json:"progress"`
	AvailableUntil *time.Time `json:"availableUntil"`
	Files          []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
		Rows   int64  `json:"rows"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		URL    string `json:"url"`
	} `json:"files"`
	Tally *struct {
		Locations    int   `json:"locations"`
		Orders       int64 `json:"orders"`
		Transactions int64 `json:"transactions"`
		Amount       int64 `json:"amount"`
	} `json:"tally"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type manifest struct {
	Rows   int64 `json:"rows"`
	Totals struct {
		Total int64 `json:"total"`
	} `json:"totals"`
	Files []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
		Rows   int64  `json:"rows"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

type problem struct {
	Field  string `json:"field"`
	Type   string `json:"type"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// waitFor polls an export until it reaches a final or ready status and
// returns the distinct statuses seen, in order.
func waitFor(t *testing.T, s *stack, key, id string) (exportDoc, []string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var doc exportDoc
		resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+id, key, nil, &doc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		if len(seen) == 0 || seen[len(seen)-1] != doc.Status {
			seen = append(seen, doc.Status)
		}
		switch doc.Status {
		case "succeeded", "failed", "canceled", "expired":
			return doc, seen
		}
		require.True(t, time.Now().Before(deadline), "export %s still %s after 2 minutes", id, doc.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

var window = [2]string{"2025-01-01T00:00:00Z", "2025-07-01T00:00:00Z"}

func TestExportEndToEnd(t *testing.T) {
	s := startDev(t, "--seed-orders", "6000")
	app, other := s.Apps[0], s.Apps[1]
	merchant := app.Merchants[0]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)

	body := map[string]any{"merchantId": merchant, "dataset": "orders", "start": window[0], "end": window[1],
		"formats": []string{"parquet", "arrow", "jsonl.gz", "csv.gz"}, "maxRowsPerFile": 1500}
	var created exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, body, &created)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "/v1/exports/"+created.ID, resp.Header.Get("Location"))
	require.Equal(t, "queued", created.Status)

	doc, seen := waitFor(t, s, app.APIKey, created.ID)
	require.Equal(t, "succeeded", doc.Status, "error: %+v", doc.Error)
	require.Subset(t, []string{"queued", "running", "succeeded"}, seen, "status progression %v", seen)
	require.Equal(t, 100.0, doc.Progress.Percent)
	require.NotNil(t, doc.AvailableUntil)

	// The export agrees with SQL over the same half-open window.
	var rows, sumTotal, txns, amount int64
	require.NoError(t, db.QueryRow(ctx, `
		SELECT count(*), sum(total),
		       (SELECT count(*) FROM transactions t JOIN orders o ON o.id = t.order_id
		         WHERE o.merchant_id = $1 AND o.created_at >= $2 AND o.created_at < $3),
		       (SELECT sum(t.amount) FROM transactions t JOIN orders o ON o.id = t.order_id
		         WHERE o.merchant_id = $1 AND o.created_at >= $2 AND o.created_at < $3)
		FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
		merchant, window[0], window[1]).Scan(&rows, &sumTotal, &txns, &amount))
	require.Equal(t, int64(6000), rows)
	require.Equal(t, rows, doc.Progress.Rows)
	require.Equal(t, txns, doc.Tally.Transactions)
	require.Equal(t, amount, doc.Tally.Amount)
	require.Equal(t, rows, doc.Tally.Orders)

	var m manifest
	mresp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+created.ID+"/manifest", app.APIKey, nil, &m)
	require.Equal(t, http.StatusOK, mresp.StatusCode)
	require.Equal(t, rows, m.Rows)
	require.Equal(t, sumTotal, m.Totals.Total)
	require.Len(t, doc.Files, 16, "4 parts x 4 formats")
	require.Len(t, m.Files, len(doc.Files))

	// Every file downloads with the sha256 the manifest promises, and the
	// CSV files, read independently, hold exactly the SQL rows and totals.
	var csvRows, csvTotal int64
	for i, f := range doc.Files {
		require.Equal(t, m.Files[i].SHA256, f.SHA256)
		resp, b := download(t, f.URL, app.APIKey, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, f.Name)
		sum := sha256.Sum256(b)
		require.Equal(t, f.SHA256, hex.EncodeToString(sum[:]), f.Name)
		require.Equal(t, `"`+f.SHA256+`"`, resp.Header.Get("ETag"))
		require.Equal(t, strconv.FormatInt(f.Bytes, 10), resp.Header.Get("Content-Length"))
		if f.Format == "csv.gz" {
			n, total := csvTotals(t, b)
			require.Equal(t, f.Rows, n, f.Name)
			csvRows += n
			csvTotal += total
		}
	}
	require.Equal(t, rows, csvRows)
	require.Equal(t, sumTotal, csvTotal)

	// HTTP Range on a file.
	first := doc.Files[0]
	resp, part := download(t, first.URL, app.APIKey, map[string]string{"Range": "bytes=0-99"})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Len(t, part, 100)
	_, whole := download(t, first.URL, app.APIKey, nil)
	require.Equal(t, whole[:100], part)

	// Another tenant sees nothing: 404, not 403.
	for _, probe := range []struct{ method, path string }{
		{http.MethodGet, "/v1/exports/" + created.ID},
		{http.MethodGet, "/v1/exports/" + created.ID + "/manifest"},
		{http.MethodGet, "/v1/exports/" + created.ID + "/files/" + first.Name},
		{http.MethodDelete, "/v1/exports/" + created.ID},
	} {
		var p problem
		resp := call(t, probe.method, s.APIURL+probe.path, other.APIKey, nil, &p)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s %s", probe.method, probe.path)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	}
	var p problem
	resp = call(t, http.MethodPost, s.APIURL+"/v1/exports", other.APIKey, body, &p)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "another app cannot export a merchant it was not installed by")

	// Bad input is a problem document naming the field.
	bad := map[string]any{"merchantId": merchant, "dataset": "orders", "start": window[1], "end": window[0]}
	resp = call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, bad, &p)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "urn:exportd:problem:invalid-request", p.Type)
	require.Contains(t, p.Detail, "after start")

	// Deleting a finished export purges its files early.
	resp = call(t, http.MethodDelete, s.APIURL+"/v1/exports/"+created.ID, app.APIKey, nil, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool {
		var d exportDoc
		call(t, http.MethodGet, s.APIURL+"/v1/exports/"+created.ID, app.APIKey, nil, &d)
		return d.Status == "expired"
	}, time.Minute, 100*time.Millisecond)
	resp, _ = download(t, first.URL, app.APIKey, nil)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	_, err = os.Stat(filepath.Join(s.dataDir, "blobs", created.ID, first.Name))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestPaymentsExportAndEmptyWindow(t *testing.T) {
	s := startDev(t, "--seed-orders", "1000")
	app := s.Apps[0]
	merchant := app.Merchants[1]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)

	// A webhook receiver, as an app would run one.
	hooks := make(chan *http.Request, 4)
	bodies := make(chan []byte, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- r
		bodies <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	var created exportDoc
	call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": merchant, "dataset": "payments", "start": window[0], "end": window[1], "formats": []string{"jsonl.gz"},
		"callbackUrl": recv.URL + "/hooks/exportd",
	}, &created)
	doc, _ := waitFor(t, s, app.APIKey, created.ID)
	require.Equal(t, "succeeded", doc.Status)

	select {
	case r := <-hooks:
		body := <-bodies
		require.Equal(t, "/hooks/exportd", r.URL.Path)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, "msg_"+created.ID+"_ready", r.Header.Get("webhook-id"))
		// Signed with the app's client secret, verifiable as Standard
		// Webhooks prescribe.
		require.NoError(t, webhook.Verify([]byte(app.ClientSecret), r.Header, body, time.Now(), time.Minute))
		require.Error(t, webhook.Verify([]byte("not the secret"), r.Header, body, time.Now(), time.Minute))
		var hooked exportDoc
		require.NoError(t, json.Unmarshal(body, &hooked))
		require.Equal(t, created.ID, hooked.ID)
		require.Equal(t, "succeeded", hooked.Status)
		require.Len(t, hooked.Files, 1)
		require.Equal(t, doc.Files[0].SHA256, hooked.Files[0].SHA256)
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook within 30s of success")
	}

	// A callback URL that can never be delivered is refused at once.
	var p problem
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": merchant, "dataset": "orders", "start": window[0], "end": window[1], "callbackUrl": "ftp://example.com/x",
	}, &p)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "callbackUrl", p.Field)
	var n, orders, amount int64
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), count(DISTINCT order_id), sum(amount) FROM transactions
		WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`, merchant, window[0], window[1]).Scan(&n, &orders, &amount))
	require.Equal(t, n, doc.Progress.Rows)
	require.Equal(t, orders, doc.Tally.Orders)
	require.Equal(t, amount, doc.Tally.Amount)

	// No records in the window is a success with zero rows, natively.
	call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, map[string]any{
		"merchantId": merchant, "dataset": "orders", "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z",
	}, &created)
	doc, _ = waitFor(t, s, app.APIKey, created.ID)
	require.Equal(t, "succeeded", doc.Status)
	require.Zero(t, doc.Progress.Rows)
	require.Len(t, doc.Files, 1)
	require.Equal(t, "parquet", doc.Files[0].Format)
}

// csvTotals counts the rows of a csv.gz file and sums its total column.
func csvTotals(t *testing.T, b []byte) (int64, int64) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	r := csv.NewReader(zr)
	header, err := r.Read()
	require.NoError(t, err)
	col := -1
	for i, h := range header {
		if h == "total" {
			col = i
		}
	}
	require.NotEqual(t, -1, col, "csv header %v has no total", header)
	var n, total int64
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		v, err := strconv.ParseInt(rec[col], 10, 64)
		require.NoError(t, err, fmt.Sprintf("row %d total %q", n, rec[col]))
		total += v
		n++
	}
	return n, total
}
