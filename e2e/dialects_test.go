package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file holds what the hostile, tenant and secrets tests share: the
// demo apps' every credential and a client for each API dialect.

// devApp is a demo app from dev.json with all its credentials.
type devApp struct {
	Name         string   `json:"name"`
	AppID        string   `json:"app_id"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	APIKey       string   `json:"api_key"`
	Merchants    []string `json:"merchants"`
}

// devApps reads the demo apps of a running stack from its dev.json.
func devApps(t *testing.T, s *stack) []devApp {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "dev.json"))
	require.NoError(t, err)
	var info struct {
		Apps []devApp `json:"apps"`
	}
	require.NoError(t, json.Unmarshal(b, &info))
	require.Len(t, info.Apps, 2, "the two demo apps")
	for _, a := range info.Apps {
		require.NotEmpty(t, a.AppID)
		require.NotEmpty(t, a.ClientID)
		require.NotEmpty(t, a.ClientSecret)
		require.NotEmpty(t, a.APIKey)
		require.NotEmpty(t, a.Merchants)
	}
	return info.Apps
}

// noRedirects is a client that shows redirects instead of following them,
// so a test sees what the server answered.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// rawResp is a response read in full.
type rawResp struct {
	status int
	header http.Header
	body   []byte
}

// doRaw makes one request with the given headers and body and reads the
// whole response.
func doRaw(t *testing.T, method, rawURL string, hdr http.Header, body []byte) rawResp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	require.NoError(t, err, "%s %s", method, rawURL)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := noRedirects.Do(req)
	require.NoError(t, err, "%s %s", method, rawURL)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "%s %s", method, rawURL)
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}
}

func bearerHdr(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// doshiiHeaders are Doshii's two credentials for app, the JWT stamped at.
func doshiiHeaders(a devApp, at time.Time) http.Header {
	m := hmac.New(sha256.New, []byte(a.ClientSecret))
	m.Write([]byte(a.ClientID))
	h := bearerHdr(doshiiJWT(a.ClientID, a.ClientSecret, at))
	h.Set("X-API-KEY", hex.EncodeToString(m.Sum(nil))+":"+a.AppID)
	return h
}

// doshiiJWT is an HS256 JWT of Doshii's claims signed with secret.
func doshiiJWT(clientID, secret string, at time.Time) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"clientId": clientID, "timestamp": at.Unix()})
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// epToken gets an Elastic Path access token for app acting for store
// ("" is the app's default store).
func epToken(t *testing.T, s *stack, a devApp, store string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.ClientID}, "client_secret": {a.ClientSecret}}
	if store != "" {
		form.Set("store_id", store)
	}
	r := doRaw(t, http.MethodPost, s.APIURL+"/oauth/access_token",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal(r.body, &tok))
	require.NotEmpty(t, tok.AccessToken)
	return tok.AccessToken
}

// createIn starts an export of merchant through one dialect and returns
// its id: "native", "clover", "doshii" or "ep" (epToken must act for the
// merchant).
func createIn(t *testing.T, s *stack, dialect string, a devApp, merchant, epTok string) string {
	t.Helper()
	var r rawResp
	switch dialect {
	case "native":
		body := `{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "formats": ["csv.gz", "jsonl.gz"], "maxRowsPerFile": 100}`
		r = doRaw(t, http.MethodPost, s.APIURL+"/v1/exports", bearerHdr(a.APIKey), []byte(body))
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	case "clover":
		body := `{"type": "ORDERS", "startTime": 1740787200000, "endTime": 1743379200000}`
		r = doRaw(t, http.MethodPost, s.APIURL+"/v3/merchants/"+merchant+"/exports", bearerHdr(a.APIKey), []byte(body))
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	case "doshii":
		body := `{"doshiiId": "` + merchant + `", "range": {"start": 1740787200, "end": 1743465600}}`
		r = doRaw(t, http.MethodPost, s.APIURL+"/partner/v3/data/orders", doshiiHeaders(a, time.Now()), []byte(body))
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var d struct {
			RequestID string `json:"requestId"`
		}
		require.NoError(t, json.Unmarshal(r.body, &d))
		return d.RequestID
	case "ep":
		body := `{"data": {"type": "job", "job_type": "order_export", "filter": "ge(created_at,2025-03-01):lt(created_at,2025-04-01)"}}`
		r = doRaw(t, http.MethodPost, s.APIURL+"/v2/jobs", bearerHdr(epTok), []byte(body))
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		var d struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.body, &d))
		return d.Data.ID
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	var d struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(r.body, &d))
	require.NotEmpty(t, d.ID)
	return d.ID
}

// problemType reads a native problem document's type, "" if the body is
// not one.
func problemType(r rawResp) string {
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		return ""
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if json.Unmarshal(r.body, &p) != nil || p.Status != r.status {
		return ""
	}
	return p.Type
}
