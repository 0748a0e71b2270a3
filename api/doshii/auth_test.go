package doshii

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// fakeAccess is the engine's access store with one app and one install,
// enough to exercise everything before a workflow would start. The
// embedded interface is nil: a method the dialect should not need panics.
type fakeAccess struct {
	exports.Access
	app       postgres.AppCredentials
	merchants map[string][]string // merchant -> locations with classifier "cafe"
}

func (f *fakeAccess) Installed(_ context.Context, appID, merchantID string) (bool, error) {
	_, ok := f.merchants[merchantID]
	return ok && appID == f.app.ID, nil
}

func (f *fakeAccess) AppByID(_ context.Context, appID string) (postgres.AppCredentials, error) {
	if appID != f.app.ID {
		return postgres.AppCredentials{}, postgres.ErrNotFound
	}
	return f.app, nil
}

func (f *fakeAccess) LocationsByClassifier(_ context.Context, merchantID string, classifiers []string) ([]string, error) {
	for _, c := range classifiers {
		if strings.EqualFold(c, "cafe") {
			return slices.Clone(f.merchants[merchantID]), nil
		}
	}
	return nil, nil
}

var testApp = postgres.AppCredentials{
	App:          postgres.App{ID: "app_test", ClientID: "cli_test"},
	ClientSecret: "exs_secret",
}

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestHandler serves the dialect over a fake access store; no request
// it is given may reach Temporal.
func newTestHandler(t *testing.T) http.Handler {
	t.Helper()
	mux := http.NewServeMux()
	acc := &fakeAccess{app: testApp, merchants: map[string][]string{"m1": {"loc-1", "loc-2"}}}
	Routes(mux, Config{Service: &exports.Service{Access: acc}, Apps: acc, Now: func() time.Time { return now }})
	return mux
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// makeJWT signs header and claims with HS256 as any JWT library would.
func makeJWT(header, claims map[string]any, secret string) string {
	signing := seg(header) + "." + seg(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func hs256() map[string]any { return map[string]any{"alg": "HS256", "typ": "JWT"} }

func claims(clientID string, at time.Time) map[string]any {
	return map[string]any{"clientId": clientID, "timestamp": at.Unix()}
}

// apiKey builds X-API-KEY as Doshii documents it.
func apiKey(clientID, secret, appID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(clientID))
	return hex.EncodeToString(m.Sum(nil)) + ":" + appID
}

func TestAuthenticate(t *testing.T) {
	goodKey := apiKey(testApp.ClientID, testApp.ClientSecret, testApp.ID)
	goodJWT := makeJWT(hs256(), claims(testApp.ClientID, now), testApp.ClientSecret)
	mac := strings.Split(goodKey, ":")[0]
	for _, tc := range []struct {
		name, key, auth string
		want            error // nil: authenticated
	}{
		{"valid", goodKey, "Bearer " + goodJWT, nil},
		{"valid, lower-case scheme", goodKey, "bearer " + goodJWT, nil},
		{"valid, appId:hmac as on the Authorisation page", testApp.ID + ":" + mac, "Bearer " + goodJWT, nil},
		{"valid, upper-case hex", strings.ToUpper(mac) + ":" + testApp.ID, "Bearer " + goodJWT, nil},
		{"valid, 4 minutes old", goodKey, "Bearer " + makeJWT(hs256(), claims(testApp.ClientID, now.Add(-4*time.Minute)), testApp.ClientSecret), nil},
		{"valid, float timestamp", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"clientId": testApp.ClientID, "timestamp": float64(now.Unix()) + 0.4}, testApp.ClientSecret), nil},
		{"no headers", "", "", errNoCredentials},
		{"no JWT", goodKey, "", errNoCredentials},
		{"no API key", "", "Bearer " + goodJWT, errNoCredentials},
		{"basic auth", goodKey, "Basic dXNlcjpwYXNz", errNoCredentials},
		{"wrong HMAC", apiKey(testApp.ClientID, "not the secret", testApp.ID), "Bearer " + goodJWT, errBadAPIKey},
		{"HMAC of another client id", apiKey("cli_other", testApp.ClientSecret, testApp.ID), "Bearer " + goodJWT, errBadAPIKey},
		{"wrong app id", apiKey(testApp.ClientID, testApp.ClientSecret, "app_other"), "Bearer " + goodJWT, errBadAPIKey},
		{"no app id", mac + ":", "Bearer " + goodJWT, errBadAPIKey},
		{"no separator", mac, "Bearer " + goodJWT, errBadAPIKey},
		{"short HMAC", mac[:60] + ":" + testApp.ID, "Bearer " + goodJWT, errBadAPIKey},
		{"alg none, unsigned", goodKey, "Bearer " + seg(map[string]any{"alg": "none"}) + "." + seg(claims(testApp.ClientID, now)) + ".", errBadToken},
		{"alg none, signed anyway", goodKey, "Bearer " + makeJWT(map[string]any{"alg": "none"}, claims(testApp.ClientID, now), testApp.ClientSecret), errBadToken},
		{"alg hs256 in lower case", goodKey, "Bearer " + makeJWT(map[string]any{"alg": "hs256"}, claims(testApp.ClientID, now), testApp.ClientSecret), errBadToken},
		{"alg HS512", goodKey, "Bearer " + makeJWT(map[string]any{"alg": "HS512"}, claims(testApp.ClientID, now), testApp.ClientSecret), errBadToken},
		{"crit header", goodKey, "Bearer " + makeJWT(map[string]any{"alg": "HS256", "crit": []string{"exp"}}, claims(testApp.ClientID, now), testApp.ClientSecret), errBadToken},
		{"wrong secret", goodKey, "Bearer " + makeJWT(hs256(), claims(testApp.ClientID, now), "not the secret"), errBadToken},
		{"tampered claims", goodKey, "Bearer " + seg(hs256()) + "." + seg(claims("cli_other", now)) + "." + strings.Split(goodJWT, ".")[2], errBadToken},
		{"clientId mismatch", goodKey, "Bearer " + makeJWT(hs256(), claims("cli_other", now), testApp.ClientSecret), errBadToken},
		{"no clientId", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"timestamp": now.Unix()}, testApp.ClientSecret), errBadToken},
		{"no timestamp", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"clientId": testApp.ClientID}, testApp.ClientSecret), errBadToken},
		{"timestamp not a number", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"clientId": testApp.ClientID, "timestamp": "yesterday"}, testApp.ClientSecret), errBadToken},
		{"stale timestamp", goodKey, "Bearer " + makeJWT(hs256(), claims(testApp.ClientID, now.Add(-6*time.Minute)), testApp.ClientSecret), errStaleToken},
		{"future timestamp", goodKey, "Bearer " + makeJWT(hs256(), claims(testApp.ClientID, now.Add(6*time.Minute)), testApp.ClientSecret), errStaleToken},
		{"milliseconds timestamp", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"clientId": testApp.ClientID, "timestamp": now.UnixMilli()}, testApp.ClientSecret), errStaleToken},
		{"expired exp", goodKey, "Bearer " + makeJWT(hs256(), map[string]any{"clientId": testApp.ClientID, "timestamp": now.Unix(), "exp": now.Unix() - 1}, testApp.ClientSecret), errStaleToken},
		{"two segments", goodKey, "Bearer " + seg(hs256()) + "." + seg(claims(testApp.ClientID, now)), errBadToken},
		{"garbage", goodKey, "Bearer not.a.jwt", errBadToken},
		{"huge token", goodKey, "Bearer " + strings.Repeat("a", maxTokenLen+1), errBadToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc := &fakeAccess{app: testApp}
			h := &handlers{Config: Config{Service: &exports.Service{Access: acc}, Apps: acc,
				Now: func() time.Time { return now }, MaxClockSkew: DefaultMaxClockSkew}}
			r := httptest.NewRequest(http.MethodGet, "/partner/v3/data/orders/x", nil)
			if tc.key != "" {
				r.Header.Set("X-API-KEY", tc.key)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			app, err := h.authenticate(r)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, testApp.App, app)
				return
			}
			var ae *apiError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, http.StatusUnauthorized, ae.status)
			require.Contains(t, ae.message, tc.want.Error())
			require.NotContains(t, ae.message, testApp.ClientSecret)
		})
	}
}

// authed returns a request carrying fresh, valid Doshii credentials.
func authed(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("X-API-KEY", apiKey(testApp.ClientID, testApp.ClientSecret, testApp.ID))
	r.Header.Set("Authorization", "Bearer "+makeJWT(hs256(), claims(testApp.ClientID, now), testApp.ClientSecret))
	return r
}

func serve(t *testing.T, h http.Handler, r *http.Request) (*httptest.ResponseRecorder, ErrorBody) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body ErrorBody
	if w.Code >= 400 {
		require.Equal(t, "application/json", w.Header().Get("Content-Type"))
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
		require.NotEmpty(t, body.Message)
		require.NotEmpty(t, body.ErrorCode)
	}
	return w, body
}

func TestEveryRouteNeedsAuth(t *testing.T) {
	h := newTestHandler(t)
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/partner/v3/data/orders", strings.NewReader(`{}`)),
		httptest.NewRequest(http.MethodGet, "/partner/v3/data/orders/xabc", nil),
		httptest.NewRequest(http.MethodGet, "/partner/v3/data/orders/xabc/files/orders-00000.json.gz", nil),
		httptest.NewRequest(http.MethodGet, "/partner/v3/nothing/here", nil),
		httptest.NewRequest(http.MethodDelete, "/partner/v3/data/orders/xabc", nil),
	} {
		w, body := serve(t, h, r)
		require.Equal(t, http.StatusUnauthorized, w.Code, "%s %s", r.Method, r.URL)
		require.Equal(t, codeUnauthorized, body.ErrorCode)
	}
}

func TestErrorsBeforeAnyWorkflow(t *testing.T) {
	h := newTestHandler(t)
	valid := `{"doshiiId":"m1","mimeType":"application/json","range":{"start":1735689600,"end":1738368000}}`
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		status       int
		code, inMsg  string
	}{
		{"unknown path", "GET", "/partner/v3/locations", "", 404, codeNotFound, "/partner/v3/locations"},
		{"wrong method", "PUT", "/partner/v3/data/orders", valid, 405, codeMethodNotAllowed, "POST"},
		{"wrong method on status", "DELETE", "/partner/v3/data/orders/xabc", "", 405, codeMethodNotAllowed, "GET"},
		{"other dataSet", "POST", "/partner/v3/data/payments", valid, 400, codeInvalid, "dataSet"},
		{"other dataSet on status", "GET", "/partner/v3/data/tables/xabc", "", 400, codeInvalid, "dataSet"},
		{"malformed JSON", "POST", "/partner/v3/data/orders", `{"doshiiId":`, 400, codeInvalid, "JSON"},
		{"empty body", "POST", "/partner/v3/data/orders", ``, 400, codeInvalid, "empty"},
		{"wrong type", "POST", "/partner/v3/data/orders", `{"doshiiId":42}`, 400, codeInvalid, "doshiiId"},
		{"range as dates", "POST", "/partner/v3/data/orders", `{"doshiiId":"m1","range":{"start":"2025-01-01","end":"2025-02-01"}}`, 400, codeInvalid, "unix seconds"},
		{"merchant not installed", "POST", "/partner/v3/data/orders", strings.Replace(valid, "m1", "m2", 1), 404, codeNotFound, `"m2"`},
		{"no location has the classifier", "POST", "/partner/v3/data/orders", strings.Replace(valid, `"range"`, `"classifiers":["Bar"],"range"`, 1), 400, codeInvalid, "classifiers"},
		{"classifier outside the locations", "POST", "/partner/v3/data/orders", strings.Replace(valid, `"range"`, `"classifiers":["Cafe"],"locations":["loc-9"],"range"`, 1), 400, codeInvalid, "requested locations"},
		{"body too large", "POST", "/partner/v3/data/orders", `{"doshiiId":"` + strings.Repeat("m", maxBodyBytes) + `"}`, 413, codeTooLarge, "larger"},
		{"request id that cannot exist", "GET", "/partner/v3/data/orders/no.such.id", "", 404, codeNotFound, "no.such.id"},
		{"file of a request id that cannot exist", "GET", "/partner/v3/data/orders/no.such.id/files/x", "", 404, codeNotFound, "no.such.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, body := serve(t, h, authed(tc.method, tc.path, tc.body))
			require.Equal(t, tc.status, w.Code, w.Body.String())
			require.Equal(t, tc.code, body.ErrorCode)
			require.Contains(t, body.Message, tc.inMsg)
			if tc.status == 405 {
				require.NotEmpty(t, w.Header().Get("Allow"))
			}
		})
	}
}
