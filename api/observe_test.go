package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/api"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
)

// keyAccess knows one API key; every other method is left unimplemented.
type keyAccess struct {
	exports.Access
	key string
	app postgres.App
}

func (a keyAccess) AppByAPIKey(_ context.Context, key string) (postgres.App, error) {
	if key == a.key {
		return a.app, nil
	}
	return postgres.App{}, postgres.ErrNotFound
}

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// requests returns the access log records, in order.
func (b *logBuffer) requests(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec))
		if rec["msg"] == "http request" {
			out = append(out, rec)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testAPI struct {
	url     string
	logs    *logBuffer
	metrics *metrics.Registry
	ready   error
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	ta := &testAPI{logs: &logBuffer{}}
	log := slog.New(slog.NewJSONHandler(ta.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ta.metrics = metrics.New(log)
	srv := httptest.NewServer(api.Router(api.Config{
		Service: &exports.Service{Access: keyAccess{key: "exk_good", app: postgres.App{ID: "app_42"}}},
		Logger:  log,
		Metrics: ta.metrics,
		Ready:   func(context.Context) error { return ta.ready },
	}))
	t.Cleanup(srv.Close)
	ta.url = srv.URL
	return ta
}

func (ta *testAPI) get(t *testing.T, path, key string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ta.url+path, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestAccessLogCarriesExportAndAppButNoQuery(t *testing.T) {
	ta := newTestAPI(t)
	// Unauthenticated: a token and a signature in the query.
	resp, _ := ta.get(t, "/v1/exports/exp123?access_token=SECRET-TOKEN&signature=SECRET-SIG", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// Authenticated; the id is malformed, so the engine answers 404
	// without asking Temporal.
	resp, _ = ta.get(t, "/v1/exports/bad.id/manifest?x=SECRET-Q", "exk_good")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	// Clover takes its token in the query.
	resp, _ = ta.get(t, "/v3/merchants/m1/exports/cl0ver?access_token=SECRET-CLOVER", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	recs := ta.logs.requests(t)
	require.Len(t, recs, 3)
	require.Equal(t, "/v1/exports/exp123", recs[0]["path"])
	require.Equal(t, "/v1/exports/{id}", recs[0]["route"])
	require.Equal(t, "exp123", recs[0]["export_id"])
	require.Equal(t, float64(401), recs[0]["status"])
	require.NotContains(t, recs[0], "app_id", "not authenticated")

	require.Equal(t, "/v1/exports/bad.id/manifest", recs[1]["path"])
	require.Equal(t, "/v1/exports/{id}/manifest", recs[1]["route"])
	require.Equal(t, "bad.id", recs[1]["export_id"])
	require.Equal(t, "app_42", recs[1]["app_id"])

	require.Equal(t, "cl0ver", recs[2]["export_id"])
	require.Equal(t, "/v3/merchants/{mId}/exports/{exportId}", recs[2]["route"])

	all := ta.logs.String()
	for _, secret := range []string{"SECRET", "access_token", "signature", "exk_good", "?"} {
		require.NotContains(t, all, secret, "the log holds no query string and no key")
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	ta := newTestAPI(t)
	resp, body := ta.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, body)

	resp, body = ta.get(t, "/readyz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ready"}`, body)

	ta.ready = errors.New("temporal: connection refused")
	resp, body = ta.get(t, "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	require.Contains(t, body, "temporal: connection refused")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	// Liveness does not depend on the dependencies.
	resp, _ = ta.get(t, "/healthz", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Probes log at debug level unless they fail.
	levels := map[string][]string{}
	for _, rec := range ta.logs.requests(t) {
		levels[rec["path"].(string)] = append(levels[rec["path"].(string)], rec["level"].(string))
	}
	require.Equal(t, []string{"DEBUG", "DEBUG"}, levels["/healthz"])
	require.Equal(t, []string{"DEBUG", "INFO"}, levels["/readyz"], "a failing probe is worth an info line")
}

func TestMetricsEndpoint(t *testing.T) {
	ta := newTestAPI(t)
	ta.get(t, "/v1/exports/one", "")
	ta.get(t, "/v1/exports/two", "")
	ta.get(t, "/no/such/route", "")
	resp, _ := ta.get(t, "/metrics", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "no authentication, like /healthz")
	req, err := http.NewRequest(http.MethodPost, ta.url+"/metrics", nil)
	require.NoError(t, err)
	post, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	post.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)

	_, body := ta.get(t, "/metrics", "")
	require.Contains(t, body, `exportd_http_requests_total{code="401",method="GET",route="/v1/exports/{id}"} 2`+"\n")
	require.Contains(t, body, `exportd_http_requests_total{code="404",method="GET",route="/"} 1`+"\n")
	require.Contains(t, body, `exportd_http_requests_total{code="200",method="GET",route="/metrics"} 1`+"\n")
	require.Contains(t, body, `exportd_http_request_duration_seconds_count{route="/v1/exports/{id}"} 2`+"\n")
	require.NotContains(t, body, "/v1/exports/one", "routes are patterns, never raw paths")
	require.NotContains(t, body, "/no/such/route")
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
}
