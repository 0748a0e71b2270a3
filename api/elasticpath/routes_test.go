package elasticpath

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// fakeAccess answers the lookups the dialect makes itself; anything else
// panics through the nil embedded interface.
type fakeAccess struct {
	exports.Access
	secrets    map[string]string   // client id -> secret
	installs   map[string][]string // app id -> merchants
	installErr error
}

func (f *fakeAccess) VerifyClientSecret(_ context.Context, clientID, secret string) (postgres.App, error) {
	if s, ok := f.secrets[clientID]; ok && s == secret {
		return postgres.App{ID: "app_" + clientID, ClientID: clientID}, nil
	}
	return postgres.App{}, fmt.Errorf("app: %w", postgres.ErrNotFound)
}

func (f *fakeAccess) InstalledMerchants(_ context.Context, appID string) ([]string, error) {
	return f.installs[appID], nil
}

func (f *fakeAccess) Installed(_ context.Context, appID, merchantID string) (bool, error) {
	if f.installErr != nil {
		return false, f.installErr
	}
	return slices.Contains(f.installs[appID], merchantID), nil
}

var (
	testKey = []byte("0123456789abcdef0123456789abcdef")
	testNow = time.Date(2025, 7, 2, 9, 30, 0, 0, time.UTC)
)

// testServer is the dialect on its own mux, with a fixed clock and key.
func testServer(t *testing.T, access *fakeAccess) (*http.ServeMux, Config) {
	t.Helper()
	cfg := Config{
		Service: &exports.Service{Access: access}, Apps: access, Signer: &exports.Signer{Key: []byte("signing key")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PublicURL: "https://exports.example.com/",
		Now: func() time.Time { return testNow }, TokenKey: testKey,
	}
	mux := http.NewServeMux()
	Routes(mux, cfg)
	return mux, cfg
}

func newAccess() *fakeAccess {
	return &fakeAccess{
		secrets:  map[string]string{"cli_demo": "exs_secret", "cli_lonely": "exs_lonely"},
		installs: map[string][]string{"app_cli_demo": {"harbor-burgers", "cafe-lumiere"}},
	}
}

func serve(mux http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func errorDoc(t *testing.T, rec *httptest.ResponseRecorder) ErrorObject {
	t.Helper()
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var doc ErrorDocument
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc), rec.Body.String())
	require.Len(t, doc.Errors, 1)
	require.Equal(t, rec.Code, doc.Errors[0].Status)
	require.NotEmpty(t, doc.Errors[0].RequestID)
	require.Equal(t, rec.Header().Get("X-Request-Id"), doc.Errors[0].RequestID)
	return doc.Errors[0]
}

func tokenRequest(body, contentType string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/oauth/access_token", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func TestAccessToken(t *testing.T) {
	mux, _ := testServer(t, newAccess())
	form := "grant_type=client_credentials&client_id=cli_demo&client_secret=exs_secret"
	for name, req := range map[string]*http.Request{
		"form":                      tokenRequest(form, "application/x-www-form-urlencoded"),
		"form labelled JSON (docs)": tokenRequest(form, "application/json"),
		"form without content type": tokenRequest(form, ""),
		"JSON object":               tokenRequest(`{"grant_type":"client_credentials","client_id":"cli_demo","client_secret":"exs_secret"}`, "application/json"),
		"HTTP Basic": func() *http.Request {
			r := tokenRequest("grant_type=client_credentials", "application/x-www-form-urlencoded")
			r.SetBasicAuth("cli_demo", "exs_secret")
			return r
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			rec := serve(mux, req)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var tok TokenResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tok))
			require.Equal(t, "Bearer", tok.TokenType)
			require.Equal(t, int64(3600), tok.ExpiresIn)
			require.Equal(t, testNow.Add(time.Hour).Unix(), tok.Expires)
			require.Equal(t, "client_credentials", tok.Identifier)
			require.Equal(t, tok.Token, tok.Data)
			c, err := verifyToken(testKey, tok.AccessToken, testNow)
			require.NoError(t, err)
			require.Equal(t, claims{App: "app_cli_demo", Merchant: "cafe-lumiere", Expires: tok.Expires}, c,
				"the default store is the first install by merchant id")
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		})
	}

	t.Run("store_id picks another install", func(t *testing.T) {
		rec := serve(mux, tokenRequest(form+"&store_id=harbor-burgers", ""))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var tok TokenResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tok))
		c, err := verifyToken(testKey, tok.AccessToken, testNow)
		require.NoError(t, err)
		require.Equal(t, "harbor-burgers", c.Merchant)
	})

	for _, tc := range []struct {
		name, body string
		status     int
		title      string
		detail     string
	}{
		{"wrong secret", "grant_type=client_credentials&client_id=cli_demo&client_secret=nope", 401, "Unauthorized", "do not match"},
		{"unknown client", "grant_type=client_credentials&client_id=cli_nobody&client_secret=exs_secret", 401, "Unauthorized", "do not match"},
		{"no grant_type", "client_id=cli_demo&client_secret=exs_secret", 400, "Bad Request", "grant_type is required"},
		{"implicit", "grant_type=implicit&client_id=cli_demo", 400, "Bad Request", `grant_type "implicit" is not supported`},
		{"no client_id", "grant_type=client_credentials", 400, "Bad Request", "client_id is required"},
		{"no secret", "grant_type=client_credentials&client_id=cli_demo", 400, "Bad Request", "client_secret is required"},
		{"bad JSON", "{nope", 400, "Bad Request", "not valid"},
		{"bad form", "grant_type=%zz", 400, "Bad Request", "not form-encoded"},
		{"no installs", "grant_type=client_credentials&client_id=cli_lonely&client_secret=exs_lonely", 403, "Forbidden", "no merchant has installed"},
		{"store not installed", form + "&store_id=southern-books", 400, "Bad Request", `store_id "southern-books" is not a store`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(mux, tokenRequest(tc.body, "application/x-www-form-urlencoded"))
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			e := errorDoc(t, rec)
			require.Equal(t, tc.title, e.Title)
			require.Contains(t, e.Detail, tc.detail)
			require.NotContains(t, rec.Body.String(), "exs_secret", "secrets are never echoed")
		})
	}
}

func bearer(method, target, token, body string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func TestJobsAuth(t *testing.T) {
	mux, _ := testServer(t, newAccess())
	good := issueToken(testKey, claims{App: "app_cli_demo", Merchant: "cafe-lumiere", Expires: testNow.Add(time.Hour).Unix()})
	expired := issueToken(testKey, claims{App: "app_cli_demo", Merchant: "cafe-lumiere", Expires: testNow.Unix()})
	otherKey := issueToken([]byte("another key"), claims{App: "app_cli_demo", Merchant: "cafe-lumiere", Expires: testNow.Add(time.Hour).Unix()})
	for _, path := range []string{"/v2/jobs", "/v2/jobs/", "/v2/jobs/xabc", "/v2/jobs/xabc/file"} {
		for name, tc := range map[string]struct{ header, detail string }{
			"missing":   {"", "send the access token"},
			"basic":     {"Basic Y2xpOnNlY3JldA==", "send the access token"},
			"garbage":   {"Bearer not-a-token", "is invalid"},
			"tampered":  {"Bearer " + good[:len(good)-2] + "AA", "is invalid"},
			"other key": {"Bearer " + otherKey, "is invalid"},
			"expired":   {"Bearer " + expired, "has expired"},
		} {
			t.Run(path+" "+name, func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				rec := serve(mux, req)
				require.Equal(t, http.StatusUnauthorized, rec.Code)
				e := errorDoc(t, rec)
				require.Equal(t, "Unable to validate access token", e.Title)
				require.Contains(t, e.Detail, tc.detail)
				require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
			})
		}
	}
}

func TestCreateJobRefusals(t *testing.T) {
	access := newAccess()
	mux, _ := testServer(t, access)
	tok := issueToken(testKey, claims{App: "app_cli_demo", Merchant: "cafe-lumiere", Expires: testNow.Add(time.Hour).Unix()})
	for _, tc := range []struct {
		name, body, detail string
		position           int
	}{
		{"empty body", "", "the body is empty", 0},
		{"not JSON", "filter=gt(created_at,2024-01-01)", "not valid JSON", 0},
		{"no data", `{"filter":"gt(created_at,2024-01-01)"}`, `the body must be {"data"`, 0},
		{"data not an object", `{"data":"job"}`, "data must be an object", 0},
		{"filter not a string", `{"data":{"type":"job","job_type":"order_export","filter":7}}`, "data.filter must be a string", 0},
		{"wrong type", `{"data":{"type":"jobs","job_type":"order_export","filter":""}}`, `data.type must be "job"`, 0},
		{"no job_type", `{"data":{"type":"job","filter":"gt(created_at,2024-01-01)"}}`, `data.job_type must be "order_export"`, 0},
		{"other job_type", `{"data":{"type":"job","job_type":"product_export","filter":""}}`, `not "product_export"`, 0},
		{"status filter", `{"data":{"type":"job","job_type":"order_export","filter":"gt(created_at,2024-01-01):eq(status,complete)"}}`,
			`filtering on "status" is not supported`, 27},
		{"syntax", `{"data":{"type":"job","job_type":"order_export","filter":"gt(created_at 2024-01-01)"}}`,
			"gt takes a field and 1 value(s), got 0", 26},
		{"future", `{"data":{"type":"job","job_type":"order_export","filter":"gt(created_at,2030-01-01)"}}`, "is in the future", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(mux, bearer(http.MethodPost, "/v2/jobs", tok, tc.body))
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			e := errorDoc(t, rec)
			require.Equal(t, "Bad Request", e.Title)
			require.Contains(t, e.Detail, tc.detail)
			if tc.position > 0 {
				require.Equal(t, map[string]any{"position": float64(tc.position)}, e.Meta)
			} else {
				require.Nil(t, e.Meta)
			}
		})
	}

	t.Run("an internal error is a 500 with a request id and nothing more", func(t *testing.T) {
		access.installErr = errors.New("connection refused by db.internal:5432")
		defer func() { access.installErr = nil }()
		rec := serve(mux, bearer(http.MethodPost, "/v2/jobs", tok,
			`{"data":{"type":"job","job_type":"order_export","filter":"ge(created_at,2025-02-01):lt(created_at,2025-03-01)"}}`))
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		e := errorDoc(t, rec)
		require.Equal(t, "Internal Server Error", e.Title)
		require.Contains(t, e.Detail, e.RequestID)
		require.NotContains(t, rec.Body.String(), "db.internal")
	})

	t.Run("a panic is a 500 in the same shape", func(t *testing.T) {
		// The engine has no Temporal client: Service.Create reaches it
		// and panics.
		rec := serve(mux, bearer(http.MethodPost, "/v2/jobs", tok,
			`{"data":{"type":"job","job_type":"order_export","filter":"ge(created_at,2025-02-01):lt(created_at,2025-03-01)"}}`))
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		e := errorDoc(t, rec)
		require.Contains(t, e.Detail, e.RequestID)
	})

	t.Run("a body over the limit is a 413", func(t *testing.T) {
		rec := serve(mux, bearer(http.MethodPost, "/v2/jobs", tok, `{"data":{"filter":"`+strings.Repeat(" ", maxBodyBytes)+`"}}`))
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		errorDoc(t, rec)
	})
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	mux, _ := testServer(t, newAccess())
	for _, path := range []string{"/v2/", "/v2/orders", "/v2/jobs/x/y/z", "/oauth/", "/oauth/token"} {
		rec := serve(mux, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusNotFound, rec.Code, path)
		e := errorDoc(t, rec)
		require.Equal(t, "Resource Not Found", e.Title)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v2/jobs", "GET, HEAD, POST"},
		{http.MethodPut, "/v2/jobs/xabc", "GET, HEAD"},
		{http.MethodPost, "/v2/jobs/xabc/file", "GET, HEAD"},
		{http.MethodGet, "/oauth/access_token", "POST"},
	} {
		rec := serve(mux, httptest.NewRequest(tc.method, tc.path, nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.allow, rec.Header().Get("Allow"))
		e := errorDoc(t, rec)
		require.Equal(t, "Method Not Allowed", e.Title)
	}
}

func TestRequestIDFromMiddleware(t *testing.T) {
	mux, _ := testServer(t, newAccess())
	// The native API's middleware sets X-Request-Id before the dialect
	// runs; the error document quotes the same id.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "0123abcd")
		mux.ServeHTTP(w, r)
	})
	rec := serve(h, httptest.NewRequest(http.MethodGet, "/v2/jobs", nil))
	require.Equal(t, "0123abcd", errorDoc(t, rec).RequestID)
}
