package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// FuzzCreateRequest feeds arbitrary bodies of POST /v1/exports (and of
// PATCH /v1/exports/{id}) through the parsing the handlers do before the
// engine is reached: decodeJSON, createRequest.spec and Spec.Normalize.
// Every refusal must render as a 4xx problem document; every acceptance
// must be a spec the workflow can run: a known dataset and formats, a
// non-empty UTC window [start, end) inside 1970-9999, bounded parts and
// retention.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"merchantId": "cafe-lumiere", "dataset": "orders", "start": "2025-01-01T00:00:00Z", "end": "2025-07-01T00:00:00Z"}`,
		`{"merchantId": "m", "dataset": "payments", "start": "2025-01-01T00:00:00+14:00", "end": "2025-01-01T00:00:00-12:00", "formats": ["parquet", "arrow", "jsonl.gz", "csv.gz"], "maxRowsPerFile": 1500, "locations": ["l1"], "callbackUrl": "https://example.com/h", "retention": "1m"}`,
		`{"merchantId": "m", "dataset": "orders", "start": "1970-01-01T00:00:00Z", "end": "9999-12-31T23:59:59.999999999Z", "retention": 604800}`,
		`{"merchantId": "m", "dataset": "orders", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}`,
		`{"merchantId": 7}`, `{"merchantId": "m", "maxRowsPerFile": 1e309}`, `{"maxRowsPerFile": 9223372036854775808}`,
		`{"retention": -1}`, `{"retention": "-5m"}`, `{"retention": 1e300}`, `{"formats": ["parquet", "parquet"]}`,
		`{"formats": "parquet"}`, `{"start": "2025-02-30T00:00:00Z"}`, `{"start": "0000-01-01T00:00:00Z"}`,
		`{"merchantId": "' OR 1=1 --", "dataset": "orders"}`, `{"merchantId": "../../etc/passwd"}`,
		`{"merchantId": "\u0000"}`, "{\"merchantId\": \"\xff\xfe\"}", `[[[[[[[[[[]]]]]]]]]]`, `{"merchantId": "m"`,
		`{"merchantId": "m"} {"merchantId": "n"}`, `{"unknown": 1}`, `null`, ``, `"x"`, `{"availableUntil": "2025-01-01T00:00:00Z"}`,
	} {
		f.Add(s)
	}
	h := &handlers{logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/exports", strings.NewReader(body))
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		var req createRequest
		err := decodeJSON(r, &req)
		var spec exportd.Spec
		if err == nil {
			spec, err = req.spec()
		}
		if err == nil {
			spec.ExportID = "xfuzz"
			err = spec.Normalize()
		}
		if err != nil {
			checkProblem(t, h, err)
		} else {
			checkSpec(t, spec)
		}

		// The same bytes as a PATCH body: one RFC 3339 time in range.
		r = httptest.NewRequest(http.MethodPatch, "/v1/exports/x", strings.NewReader(body))
		var patch patchRequest
		err = decodeJSON(r, &patch)
		var until time.Time
		if err == nil {
			until, err = parseTime("availableUntil", patch.AvailableUntil)
		}
		if err != nil {
			checkProblem(t, h, err)
			return
		}
		require.Equal(t, time.UTC, until.Location())
		require.True(t, until.Year() >= 1970 && until.Year() <= 9999, "%s", until)
	})
}

// checkSpec asserts what every accepted native request must normalize to.
func checkSpec(t *testing.T, s exportd.Spec) {
	t.Helper()
	require.NotEmpty(t, s.MerchantID)
	require.True(t, s.Dataset.Valid(), "dataset %q", s.Dataset)
	require.Equal(t, time.UTC, s.Start.Location())
	require.Equal(t, time.UTC, s.End.Location())
	require.True(t, s.Start.Before(s.End), "[%s, %s)", s.Start, s.End)
	require.GreaterOrEqual(t, s.Start.Year(), 1970)
	require.LessOrEqual(t, s.End.Year(), 9999)
	require.NotEmpty(t, s.Formats)
	seen := map[exportd.Format]bool{}
	for _, f := range s.Formats {
		require.True(t, f.Valid(), "format %q", f)
		require.False(t, seen[f], "format %q twice", f)
		seen[f] = true
	}
	require.True(t, s.MaxRowsPerFile >= 1 && s.MaxRowsPerFile <= 100_000_000, "maxRowsPerFile %d", s.MaxRowsPerFile)
	require.True(t, s.Retention >= exportd.Duration(time.Minute) && s.Retention <= exportd.Duration(exportd.MaxRetention), "retention %s", time.Duration(s.Retention))
	require.LessOrEqual(t, len(s.Locations), 1000)
	if s.Webhook != nil {
		require.NotEmpty(t, s.Webhook.URL)
	}
	// The spec is the workflow input: it must survive JSON unchanged.
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var back exportd.Spec
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.Start.Equal(s.Start) && back.End.Equal(s.End))
	require.True(t, slices.Equal(back.Formats, s.Formats))
}

// checkProblem renders err as the handlers would and asserts a 4xx
// problem document with a stable type.
func checkProblem(t *testing.T, h *handlers, err error) {
	t.Helper()
	var ae *apiError
	var mbe *http.MaxBytesError
	require.True(t, errors.As(err, &ae) || errors.As(err, &mbe) || isValidation(err), "%T: %v", err, err)
	r := httptest.NewRequest(http.MethodPost, "/v1/exports", nil)
	w := httptest.NewRecorder()
	h.writeProblem(w, r, err)
	require.True(t, w.Code >= 400 && w.Code < 500, "status %d for %v", w.Code, err)
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p Problem
	b, _ := io.ReadAll(w.Body)
	require.NoError(t, json.Unmarshal(b, &p), "%s", b)
	require.True(t, strings.HasPrefix(p.Type, "urn:exportd:problem:"), p.Type)
	require.Equal(t, w.Code, p.Status)
	require.NotEmpty(t, p.Detail)
}

func isValidation(err error) bool {
	var ve *exportd.ValidationError
	return errors.As(err, &ve)
}
