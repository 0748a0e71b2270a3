package clover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// These tests need no Temporal: everything they check is decided before
// the engine starts a workflow. The full path runs in e2e_test.go.

const goodKey = "exk_good"

// fakeAccess knows one app, installed by merchant m1. Methods the dialect
// does not use are left to the embedded nil interface.
type fakeAccess struct{ exports.Access }

func (fakeAccess) AppByAPIKey(_ context.Context, key string) (postgres.App, error) {
	if key == goodKey {
		return postgres.App{ID: "app1", Name: "App"}, nil
	}
	return postgres.App{}, postgres.ErrNotFound
}

func (fakeAccess) Installed(_ context.Context, appID, merchantID string) (bool, error) {
	return appID == "app1" && merchantID == "m1", nil
}

func newMux(t *testing.T, svc *exports.Service, logs io.Writer) *http.ServeMux {
	t.Helper()
	if svc == nil {
		svc = &exports.Service{Access: fakeAccess{}}
	}
	if logs == nil {
		logs = io.Discard
	}
	mux := http.NewServeMux()
	Routes(mux, Config{Service: svc, Apps: fakeAccess{}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return mux
}

type reply struct {
	status  int
	header  http.Header
	message string
}

func do(t *testing.T, h http.Handler, method, target, auth, ctype, body string) reply {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s", method, target)
	var e map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body.Bytes())
	msg, _ := e["message"].(string)
	if rec.Code >= 400 {
		require.Len(t, e, 1, "an error is {\"message\"} only: %s", rec.Body.Bytes())
		require.NotEmpty(t, msg)
	}
	return reply{status: rec.Code, header: rec.Header(), message: msg}
}

func TestAuth(t *testing.T) {
	mux := newMux(t, nil, nil)
	for _, tc := range []struct{ name, target, auth string }{
		{"no token", "/v3/merchants/m1/exports", ""},
		{"unknown bearer", "/v3/merchants/m1/exports", "Bearer exk_nope"},
		{"unknown query token", "/v3/merchants/m1/exports?access_token=exk_nope", ""},
		{"basic auth is not a token", "/v3/merchants/m1/exports", "Basic " + goodKey},
		{"one export", "/v3/merchants/m1/exports/x1/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, mux, http.MethodGet, tc.target, tc.auth, "", "")
			require.Equal(t, http.StatusUnauthorized, r.status)
			require.Contains(t, r.message, "401 Unauthorized")
		})
	}
}

func TestMerchantNotInstalled(t *testing.T) {
	mux := newMux(t, nil, nil)
	for _, tc := range []struct{ method, target, auth string }{
		{http.MethodGet, "/v3/merchants/m2/exports", "Bearer " + goodKey},
		{http.MethodPost, "/v3/merchants/m2/exports/", "Bearer " + goodKey},
		{http.MethodGet, "/v3/merchants/m2/exports/x1?access_token=" + goodKey, ""},
	} {
		r := do(t, mux, tc.method, tc.target, tc.auth, "application/json", `{"type":"ORDERS","startTime":0,"endTime":1}`)
		require.Equal(t, http.StatusNotFound, r.status, "%s %s", tc.method, tc.target)
	}
}

func TestCreateRejects(t *testing.T) {
	mux := newMux(t, nil, nil)
	day := int64(24 * time.Hour / time.Millisecond)
	start := int64(1554076800000)
	for _, tc := range []struct{ name, ctype, body, want string }{
		{"31 days", "application/json", fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, start, start+31*day), "maximum time range is 30 days"},
		{"30 days and a millisecond", "", fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, start, start+30*day+1), "30 days"},
		{"end before start", "text/plain", fmt.Sprintf(`{"type":"ORDERS","startTime":%d,"endTime":%d}`, start, start-1), "endTime must be after startTime"},
		{"empty window", "text/plain", fmt.Sprintf(`{"type":"PAYMENTS","startTime":"%d","endTime":"%d"}`, start, start), "endTime must be after startTime"},
		{"garbage", "application/json", `{"type": ORDERS`, "must be a JSON object"},
		{"form body", "application/x-www-form-urlencoded", "type=ORDERS&startTime=1&endTime=2", "must be a JSON object"},
		{"empty body", "", "", "must be a JSON object"},
		{"array", "application/json", `[]`, "must be a JSON object"},
		{"missing type", "application/json", `{"startTime":1,"endTime":2}`, "type must be ORDERS or PAYMENTS"},
		{"unknown type", "application/json", `{"type":"REFUNDS","startTime":1,"endTime":2}`, `not "REFUNDS"`},
		{"type not a string", "application/json", `{"type":1,"startTime":1,"endTime":2}`, `"type" has the wrong type`},
		{"missing endTime", "application/json", `{"type":"ORDERS","startTime":1}`, "startTime and endTime are required"},
		{"text time", "application/json", `{"type":"ORDERS","startTime":"yesterday","endTime":2}`, "epoch milliseconds"},
		{"fractional time", "application/json", `{"type":"ORDERS","startTime":1.5,"endTime":2}`, "epoch milliseconds"},
		{"boolean time", "application/json", `{"type":"ORDERS","startTime":true,"endTime":2}`, "epoch milliseconds"},
		{"before 1970", "application/json", `{"type":"ORDERS","startTime":-1,"endTime":2}`, "between 0 and"},
		{"after 9999", "application/json", `{"type":"ORDERS","startTime":1,"endTime":253402300800000}`, "between 0 and"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, mux, http.MethodPost, "/v3/merchants/m1/exports", "Bearer "+goodKey, tc.ctype, tc.body)
			require.Equal(t, http.StatusBadRequest, r.status, r.message)
			require.Contains(t, r.message, tc.want)
		})
	}

	big := `{"type":"ORDERS","pad":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	r := do(t, mux, http.MethodPost, "/v3/merchants/m1/exports", "Bearer "+goodKey, "", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
}

func TestParseCreate(t *testing.T) {
	h := &handlers{Config: Config{MaxWindow: DefaultMaxWindow}}
	parse := func(body string) (exportd.Dataset, time.Time, time.Time, error) {
		return h.parseCreate(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
	}
	// The request documents of Clover's examples: C# sends numbers, Python
	// strings.
	d, start, end, err := parse(string(Golden(t, "request_numbers.json")))
	require.NoError(t, err)
	require.Equal(t, exportd.Orders, d)
	require.Equal(t, time.Date(2017, 12, 12, 8, 0, 0, 0, time.UTC), start)
	require.Equal(t, time.UnixMilli(1515657540000).UTC(), end)

	d, start, end, err = parse(string(Golden(t, "request_strings.json")))
	require.NoError(t, err)
	require.Equal(t, exportd.Orders, d)
	require.Equal(t, time.Date(2019, 4, 1, 0, 0, 0, 0, time.UTC), start)
	require.Equal(t, time.Date(2019, 4, 30, 0, 0, 0, 0, time.UTC), end)

	// Lower case, exactly 30 days, exponent notation, fields Clover may add.
	d, start, end, err = parse(`{"type":"payments","startTime":1.5e12,"endTime":"1502592000000","format":"json"}`)
	require.NoError(t, err)
	require.Equal(t, exportd.Payments, d)
	require.Equal(t, 30*24*time.Hour, end.Sub(start))
}

func TestMethods(t *testing.T) {
	mux := newMux(t, nil, nil)
	for _, tc := range []struct{ method, target, allow string }{
		{http.MethodDelete, "/v3/merchants/m1/exports", "GET, HEAD, POST"},
		{http.MethodPut, "/v3/merchants/m1/exports/", "GET, HEAD, POST"},
		{http.MethodPatch, "/v3/merchants/m1/exports", "GET, HEAD, POST"},
		{http.MethodDelete, "/v3/merchants/m1/exports/x1", "GET, HEAD"},
		{http.MethodPost, "/v3/merchants/m1/exports/x1/", "GET, HEAD"},
		{http.MethodPut, "/v3/merchants/m1/exports/x1", "GET, HEAD"},
	} {
		// No credentials: the method is wrong whoever asks.
		r := do(t, mux, tc.method, tc.target, "", "", "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status, "%s %s", tc.method, tc.target)
		require.Equal(t, tc.allow, r.header.Get("Allow"))
		require.Contains(t, r.message, "405 Method Not Allowed")
	}
}

func TestNotFound(t *testing.T) {
	mux := newMux(t, nil, nil)
	for _, target := range []string{"/v3/", "/v3/merchants/m1", "/v3/merchants/m1/orders", "/v3/merchants/m1/exports/x1/files", "/v3/merchants/m1/exports/x1/y/"} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			r := do(t, mux, method, target, "Bearer "+goodKey, "", "")
			require.Equal(t, http.StatusNotFound, r.status, "%s %s", method, target)
		}
	}
}

// TestRefusals: service hours and the queue limit refuse before a
// workflow starts, with 503, a message and Retry-After.
func TestRefusals(t *testing.T) {
	hours, err := exports.ParseHours("Mon-Fri 10:00-15:00")
	require.NoError(t, err)
	saturday := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	mux := newMux(t, &exports.Service{Access: fakeAccess{}, Hours: hours, Now: func() time.Time { return saturday }}, nil)
	body := `{"type":"ORDERS","startTime":1554076800000,"endTime":1556582400000}`
	r := do(t, mux, http.MethodPost, "/v3/merchants/m1/exports", "Bearer "+goodKey, "text/plain", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, r.message, "service hours")
	require.Contains(t, r.message, "10:00-15:00")
	require.Equal(t, "165600", r.header.Get("Retry-After"), "until Monday 10:00")

	mux = newMux(t, &exports.Service{Access: fakeAccess{}, Queue: fullQueue{}, QueueLimit: 3}, nil)
	r = do(t, mux, http.MethodPost, "/v3/merchants/m1/exports", "Bearer "+goodKey, "", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, r.message, "too many exports")
	require.Equal(t, "30", r.header.Get("Retry-After"))
}

// fullQueue refuses every export.
type fullQueue struct{ exports.Queue }

func (fullQueue) Enqueue(context.Context, string, string, time.Time, int) (bool, int, error) {
	return false, 3, nil
}

func TestWriteError(t *testing.T) {
	var logs bytes.Buffer
	h := &handlers{Config: Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}
	for _, tc := range []struct {
		err        error
		status     int
		message    string
		retryAfter string
	}{
		{fmt.Errorf("checking the install: %w", exportd.Errorf(exportd.CodeNotFound, "merchant %q not found", "m9")), http.StatusNotFound, "404 Not Found", ""},
		{&exportd.ValidationError{Field: "end", Reason: "must be after start"}, http.StatusBadRequest, "end must be after start", ""},
		{&exportd.Error{Code: exportd.CodeOverLimit, Message: "9 exports are already waiting", RetryAfter: 1500 * time.Millisecond}, http.StatusServiceUnavailable, "9 exports are already waiting", "2"},
		{&exportd.Error{Code: exportd.CodeOutsideHours, Message: "exports are accepted only during service hours: Mon-Fri 10:00-15:00 UTC"}, http.StatusServiceUnavailable, "Mon-Fri 10:00-15:00 UTC", ""},
		{fmt.Errorf("error reading body: %w", &http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge, "larger than 10 bytes", ""},
		{errors.New("connection refused to 10.0.0.7"), http.StatusInternalServerError, "500 Internal Server Error", ""},
	} {
		rec := httptest.NewRecorder()
		h.writeError(rec, httptest.NewRequest(http.MethodGet, "/v3/merchants/m1/exports?access_token=secret-token", nil), tc.err)
		require.Equal(t, tc.status, rec.Code, "%v", tc.err)
		var e Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		require.Contains(t, e.Message, tc.message)
		require.NotContains(t, e.Message, "10.0.0.7", "internal details stay in the log")
		require.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"))
	}
	require.Contains(t, logs.String(), "connection refused to 10.0.0.7")
	require.NotContains(t, logs.String(), "secret-token", "the query may hold an access token")
}

func TestStatus(t *testing.T) {
	for p, want := range map[exportd.Phase]string{
		exportd.PhaseQueued: StatusPending, exportd.PhaseExporting: StatusInProgress, exportd.PhaseReady: StatusDone,
		exportd.PhaseFailed: StatusFailed, exportd.PhaseCanceled: StatusFailed, exportd.PhaseExpired: StatusFailed,
	} {
		require.Equal(t, want, Status(p), p)
	}
}

// TestDocuments renders the export object at each stage and holds it to
// the examples of Clover's docs.
func TestDocuments(t *testing.T) {
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	signer := &exports.Signer{Key: []byte("k"), Now: func() time.Time { return now }}
	h := &handlers{Config: Config{Service: &exports.Service{}, Signer: signer, Now: func() time.Time { return now }}}
	created, started, done := now.Add(-time.Hour), now.Add(-59*time.Minute), now.Add(-50*time.Minute)
	until := done.Add(24 * time.Hour)
	st := exportd.State{
		Spec: exportd.Spec{ExportID: "xabc", MerchantID: "m1", Dataset: exportd.Orders,
			Start: time.UnixMilli(1554076800000).UTC(), End: time.UnixMilli(1556582400000).UTC(), Formats: []exportd.Format{exportd.CloverJSON}},
		Phase: exportd.PhaseQueued, CreatedAt: created,
	}
	req := httptest.NewRequest(http.MethodGet, "/v3/merchants/m1/exports/xabc", nil)
	req.Host = "exports.example:8443"
	render := func(st exportd.State, m *exportd.Manifest) []byte {
		t.Helper()
		doc, err := h.document(req, st, m)
		require.NoError(t, err)
		b, err := json.Marshal(doc)
		require.NoError(t, err)
		return b
	}

	pending := render(st, nil)
	RequireShape(t, Golden(t, "export_pending.json"), pending)
	require.JSONEq(t, `{"id":"xabc","type":"ORDERS","status":"PENDING","percentComplete":0,"startTime":1554076800000,"endTime":1556582400000,
		"createdTime":1740913200000,"modifiedTime":1740913200000,"merchantRef":{"id":"m1"}}`, string(pending))

	st.Phase, st.StartedAt, st.Progress = exportd.PhaseExporting, &started, exportd.Progress{Rows: 1999, Total: 3000}
	var running Export
	require.NoError(t, json.Unmarshal(render(st, nil), &running))
	require.Equal(t, StatusInProgress, running.Status)
	require.Equal(t, 66, running.PercentComplete, "whole percent, rounded down")
	require.Equal(t, started.UnixMilli(), running.ModifiedTime)

	st.Phase, st.CompletedAt, st.AvailableUntil, st.Progress = exportd.PhaseReady, &done, &until, exportd.Progress{Rows: 1500, Total: 1500}
	m := &exportd.Manifest{Files: []exportd.FileInfo{
		{Name: "orders-00000.json", Format: exportd.CloverJSON},
		{Name: "orders-00000.parquet", Format: exportd.Parquet},
		{Name: "orders-00001.json", Format: exportd.CloverJSON},
	}}
	ready := render(st, m)
	RequireShape(t, Golden(t, "export_done.json"), ready)
	var doc Export
	require.NoError(t, json.Unmarshal(ready, &doc))
	require.Equal(t, until.UnixMilli(), *doc.AvailableUntil)
	require.Equal(t, done.UnixMilli(), doc.ModifiedTime)
	require.Len(t, doc.ExportURLs.Elements, 2, "Clover's files only")
	for i, e := range doc.ExportURLs.Elements {
		u, err := url.Parse(e.URL)
		require.NoError(t, err)
		require.True(t, u.IsAbs(), e.URL)
		require.Equal(t, "exports.example:8443", u.Host)
		name := fmt.Sprintf("orders-%05d.json", i)
		require.Equal(t, "/v1/exports/xabc/files/"+name, u.Path)
		require.NoError(t, signer.Verify("xabc", name, u.Query()), "a plain GET of the URL is authorized")
		require.Equal(t, "xabc", e.Export.ID)
	}

	// With a public URL, links use it.
	h.PublicURL = "https://exports.example.com/"
	require.NoError(t, json.Unmarshal(render(st, m), &doc))
	require.True(t, strings.HasPrefix(doc.ExportURLs.Elements[0].URL, "https://exports.example.com/v1/exports/xabc/files/"))

	// Past availableUntil, or expired, or canceled: FAILED, no URLs.
	for _, tc := range []struct {
		phase exportd.Phase
		until time.Time
	}{{exportd.PhaseReady, now}, {exportd.PhaseExpired, until}, {exportd.PhaseCanceled, until}, {exportd.PhaseFailed, until}} {
		st.Phase, st.AvailableUntil = tc.phase, &tc.until
		var d Export
		require.NoError(t, json.Unmarshal(render(st, m), &d))
		require.Equal(t, StatusFailed, d.Status, tc.phase)
		require.Nil(t, d.ExportURLs)
		require.Nil(t, d.AvailableUntil)
	}

	// No signer, no URLs that could work: an internal error, not a lie.
	st.Phase, st.AvailableUntil = exportd.PhaseReady, &until
	h.Signer = nil
	_, err := h.document(req, st, m)
	require.ErrorContains(t, err, "signed download URLs are disabled")
}
