package elasticpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// The golden documents pin exportd's bytes; the ep documents are the
// examples of Elastic Path's documentation (same structure, other values),
// and every key they have must be in ours with the same JSON type.
func TestGoldenDocuments(t *testing.T) {
	mux, cfg := testServer(t, newAccess())
	h := &handlers{Config: cfg, logger: cfg.Logger}
	req := httptest.NewRequest(http.MethodGet, "/v2/jobs", nil)

	created := time.Date(2025, 7, 1, 8, 15, 30, 123456789, time.UTC)
	started := created.Add(1500 * time.Millisecond)
	completed := created.Add(4*time.Second + 250*time.Millisecond)
	until := completed.Add(exportd.MaxRetention)
	spec := exportd.Spec{ExportID: "xgq2dkzbf3hs4ouq6ecxxoy", AppID: "app_cli_demo", MerchantID: "cafe-lumiere",
		Dataset: exportd.Orders, Start: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		Formats: jobFormats, MaxRowsPerFile: jobMaxRowsPerFile, Retention: jobRetention}
	pending := exportd.State{Spec: spec, Phase: exportd.PhaseQueued, CreatedAt: created}
	running := exportd.State{Spec: spec, Phase: exportd.PhaseExporting, CreatedAt: created, StartedAt: &started,
		Progress: exportd.Progress{Rows: 120, Total: 900}}
	ready := exportd.State{Spec: spec, Phase: exportd.PhaseReady, CreatedAt: created, StartedAt: &started,
		CompletedAt: &completed, AvailableUntil: &until, Rows: 900, Files: 1}
	empty := ready
	empty.Rows, empty.AvailableUntil = 0, &until
	failed := exportd.State{Spec: spec, Phase: exportd.PhaseFailed, CreatedAt: created, StartedAt: &started, CompletedAt: &completed,
		Error: &exportd.Failure{Code: exportd.CodeSourceError, Message: "the source database did not answer", Retryable: true}}

	tokenRec := serve(mux, tokenRequest("grant_type=client_credentials&client_id=cli_demo&client_secret=exs_secret", "application/json"))
	require.Equal(t, http.StatusOK, tokenRec.Code)

	errorRec := func(err error) []byte {
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Request-Id", "6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5")
		h.writeError(rec, req, err)
		return rec.Body.Bytes()
	}
	_, filterErr := ParseFilter("gt(created_at,2025-02-01):eq(payment,refunded)")
	href := h.fileURL(req, ready, jobFileName)

	for _, tc := range []struct {
		golden string
		doc    any    // marshalled, or []byte as served
		ep     string // the documented example of the same response, if any
	}{
		{"token", tokenRec.Body.Bytes(), "token"},
		{"token", tokenRec.Body.Bytes(), "token_openapi"},
		{"job_pending", JobResponse{Data: h.job(req, pending)}, "job_created"},
		{"job_started", JobResponse{Data: h.job(req, running)}, "job_created"},
		{"job_success", JobResponse{Data: h.job(req, ready)}, "job_created"},
		{"job_no_results", JobResponse{Data: h.job(req, empty)}, "job_failed"},
		{"job_failed", JobResponse{Data: h.job(req, failed)}, "job_failed"},
		{"jobs", JobList{Data: []Job{h.job(req, empty), h.job(req, ready), h.job(req, pending)}}, "jobs"},
		{"job_file", FileResponse{FileLink: FileLink{Href: href}, Data: FileLink{Href: href}}, "job_file"},
		{"job_file", FileResponse{FileLink: FileLink{Href: href}, Data: FileLink{Href: href}}, "job_file_openapi"},
		{"error_400", errorRec(filterErr), "error_400"},
		{"error_401", errorRec(&apiError{status: 401, title: titleTokenInvalid, detail: "the access token has expired; get a new one from POST /oauth/access_token"}), "error_401"},
		{"error_404", errorRec(notFound()), "error_404"},
		{"error_422", errorRec(errorf(http.StatusUnprocessableEntity, "Job has no file to download. Job status: started")), "error_422"},
		{"error_500", errorRec(errors.New("connection refused")), "error_500"},
	} {
		t.Run(tc.golden+" as "+tc.ep, func(t *testing.T) {
			got, ok := tc.doc.([]byte)
			if !ok {
				rec := httptest.NewRecorder()
				writeJSON(rec, http.StatusOK, tc.doc) // as the handlers write it
				got = rec.Body.Bytes()
			}
			var indented bytes.Buffer
			require.NoError(t, json.Indent(&indented, got, "", "  "))
			got = append(bytes.TrimSpace(indented.Bytes()), '\n')
			path := filepath.Join("testdata", "golden", tc.golden+".json")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run TestGoldenDocuments -update to create it")
			require.Equal(t, string(want), string(got))

			epDoc, err := os.ReadFile(filepath.Join("testdata", "ep", tc.ep+".json"))
			require.NoError(t, err)
			var ours, theirs any
			require.NoError(t, json.Unmarshal(got, &ours))
			require.NoError(t, json.Unmarshal(epDoc, &theirs))
			requireShape(t, theirs, ours, "$")
		})
	}

	// The values the dialect promises, beyond the shape.
	require.Equal(t, "pending", h.job(req, pending).Status)
	require.Equal(t, "started", h.job(req, running).Status)
	require.Equal(t, "success", h.job(req, ready).Status)
	require.Equal(t, href, h.job(req, ready).Link.Href)
	require.Contains(t, href, "https://exports.example.com/v1/exports/xgq2dkzbf3hs4ouq6ecxxoy/files/orders-00000.csv.gz?expires=")
	require.Equal(t, Job{ID: spec.ExportID, Type: "job", JobType: "order_export", Status: "failed", Error: noResults,
		Timestamps: Timestamps{CreatedAt: created, UpdatedAt: completed},
		Links:      Links{Self: "https://exports.example.com/v2/jobs/xgq2dkzbf3hs4ouq6ecxxoy"}}, h.job(req, empty))
	for phase, want := range map[exportd.Phase]string{
		exportd.PhaseCanceled: "The job was canceled",
		exportd.PhaseExpired:  "The job expired and its file was deleted",
	} {
		st := ready
		st.Phase = phase
		require.Equal(t, [2]string{"failed", want}, func() [2]string { s, m := jobStatus(st); return [2]string{s, m} }())
	}
	st := empty
	st.Phase = exportd.PhaseExpired
	status, msg := jobStatus(st)
	require.Equal(t, "failed", status)
	require.Equal(t, noResults, msg, "an empty job stays 'no results' after it expires")
}

// requireShape checks that every key of the documented example is in
// ours with the same JSON type, recursively; ours may have more.
func requireShape(t *testing.T, theirs, ours any, path string) {
	t.Helper()
	require.Equal(t, kind(theirs), kind(ours), "%s: documented as %s, served as %s", path, kind(theirs), kind(ours))
	switch v := theirs.(type) {
	case map[string]any:
		o := ours.(map[string]any)
		for k, sub := range v {
			got, ok := o[k]
			require.True(t, ok, "%s.%s is documented but missing", path, k)
			requireShape(t, sub, got, path+"."+k)
		}
	case []any:
		if len(v) == 0 {
			return
		}
		for i, sub := range ours.([]any) {
			requireShape(t, v[0], sub, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}
