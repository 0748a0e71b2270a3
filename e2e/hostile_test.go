package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostile is one generated request and what must hold of its answer.
type hostile struct {
	method, path string // path is already escaped, query included
	header       http.Header
	body         []byte
	want         int // a status the answer must have; 0 means any 1xx-4xx
}

// dialectOf names the error format of the route a path reaches.
func dialectOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/v3/"):
		return "clover"
	case strings.HasPrefix(path, "/partner/v3/"):
		return "doshii"
	case strings.HasPrefix(path, "/v2/"), strings.HasPrefix(path, "/oauth/"):
		return "ep"
	}
	return "native"
}

// TestHostileRequests sends thousands of malformed and hostile requests
// (wrong types, huge numbers, deep nesting, oversized, invalid UTF-8 and
// NUL bytes, unicode, path traversal, SQL metacharacters, truncated
// JSON, wrong methods, repeated query parameters, bad credentials) to
// every route of every dialect. No answer may be a 5xx, every error must
// be in the route's own format, bodies over the limit are 413, and the
// API still serves afterwards without having panicked.
func TestHostileRequests(t *testing.T) {
	s := startDev(t, "--seed-orders", "300")
	apps := devApps(t, s)
	a, b := apps[0], apps[1]
	tok := epToken(t, s, a, "")
	own := createIn(t, s, "native", a, a.Merchants[0], "")
	theirs := createIn(t, s, "native", b, b.Merchants[0], "")
	waitFor(t, s, a.APIKey, own)
	waitFor(t, s, b.APIKey, theirs)

	reqs := hostileRequests(a, b, tok, own, theirs)
	require.GreaterOrEqual(t, len(reqs), 2000)

	// Deletes go last, so that the export stays ready for the rest.
	isDelete := func(h hostile) bool { return h.method == http.MethodDelete }
	start := time.Now()
	results := append(sendAll(s.APIURL, slices.DeleteFunc(slices.Clone(reqs), isDelete)),
		sendAll(s.APIURL, slices.DeleteFunc(slices.Clone(reqs), func(h hostile) bool { return !isDelete(h) }))...)
	elapsed := time.Since(start)

	byStatus := map[int]int{}
	byDialect := map[string]int{}
	for _, r := range results {
		h := r.h
		require.NoError(t, r.err, "%s %s", h.method, h.path)
		byStatus[r.status]++
		byDialect[dialectOf(h.path)]++
		what := fmt.Sprintf("%s %s (%d-byte body) -> %d %s", h.method, h.path, len(h.body), r.status, abbrev(r.body, 300))
		require.Less(t, r.status, 500, what)
		if h.want != 0 {
			require.Equal(t, h.want, r.status, what)
		}
		switch {
		case r.status >= 300 && r.status < 400:
			// The mux's redirect to the cleaned path: same host only.
			loc := r.header.Get("Location")
			require.True(t, strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//"), "%s: Location %q", what, loc)
		case r.status >= 400 && h.method != http.MethodHead:
			checkErrorFormat(t, dialectOf(h.path), r.status, r.header, r.body, what)
		}
	}
	var dist []string
	for _, c := range slices.Sorted(maps.Keys(byStatus)) {
		dist = append(dist, fmt.Sprintf("%d: %d", c, byStatus[c]))
	}
	t.Logf("%d hostile requests in %s (%v); status distribution: %s", len(reqs), elapsed.Round(time.Millisecond), byDialect, strings.Join(dist, ", "))

	// Still serving, and nothing panicked along the way.
	r := doRaw(t, http.MethodGet, s.APIURL+"/healthz", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	r = doRaw(t, http.MethodGet, s.APIURL+"/readyz", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	r = doRaw(t, http.MethodGet, s.APIURL+"/v1/exports/"+own, bearerHdr(a.APIKey), nil)
	require.Equal(t, http.StatusOK, r.status)
	log, err := os.ReadFile(filepath.Join(s.dataDir, "exportd.log"))
	require.NoError(t, err)
	require.NotContains(t, string(log), "panic")
}

// hostileResult is the answer to one hostile request.
type hostileResult struct {
	h      hostile
	status int
	header http.Header
	body   []byte
	err    error
}

// sendAll sends reqs from 8 connections at once.
func sendAll(base string, reqs []hostile) []hostileResult {
	results := make([]hostileResult, len(reqs))
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirects.CheckRedirect}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				status, header, body, err := sendHostile(client, base, reqs[i])
				results[i] = hostileResult{h: reqs[i], status: status, header: header, body: body, err: err}
			}
		})
	}
	for i := range reqs {
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

// checkErrorFormat asserts that an error answer is in its dialect's shape.
func checkErrorFormat(t *testing.T, dialect string, status int, header http.Header, body []byte, what string) {
	t.Helper()
	ct := header.Get("Content-Type")
	switch dialect {
	case "native":
		require.Equal(t, "application/problem+json", ct, what)
		var p struct {
			Type      string `json:"type"`
			Title     string `json:"title"`
			Status    int    `json:"status"`
			RequestID string `json:"requestId"`
		}
		require.NoError(t, json.Unmarshal(body, &p), what)
		require.True(t, strings.HasPrefix(p.Type, "urn:exportd:problem:"), what)
		require.Equal(t, status, p.Status, what)
		require.NotEmpty(t, p.Title, what)
		require.NotEmpty(t, p.RequestID, what)
	case "clover":
		require.Equal(t, "application/json", ct, what)
		var e map[string]any
		require.NoError(t, json.Unmarshal(body, &e), what)
		require.Len(t, e, 1, what)
		msg, ok := e["message"].(string)
		require.True(t, ok && msg != "", what)
	case "doshii":
		require.Equal(t, "application/json", ct, what)
		var e struct {
			Message   *string `json:"message"`
			ErrorCode *string `json:"errorCode"`
		}
		require.NoError(t, json.Unmarshal(body, &e), what)
		require.True(t, e.Message != nil && *e.Message != "" && e.ErrorCode != nil && *e.ErrorCode != "", what)
	case "ep":
		require.Equal(t, "application/json", ct, what)
		var e struct {
			Errors []struct {
				Status    int    `json:"status"`
				Title     string `json:"title"`
				RequestID string `json:"request_id"`
			} `json:"errors"`
		}
		require.NoError(t, json.Unmarshal(body, &e), what)
		require.Len(t, e.Errors, 1, what)
		require.Equal(t, status, e.Errors[0].Status, what)
		require.NotEmpty(t, e.Errors[0].Title, what)
		require.NotEmpty(t, e.Errors[0].RequestID, what)
	}
}

// sendHostile sends h and reads the answer. The body is written while
// the answer is read, so an early answer to an oversized body (413 before
// it was all sent) is seen rather than lost to a broken pipe.
func sendHostile(client *http.Client, base string, h hostile) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(h.method, base+h.path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	// Paths are sent exactly as generated, escapes and all.
	req.URL.RawPath = ""
	req.URL.Opaque = strings.SplitN(h.path, "?", 2)[0]
	if h.body != nil {
		req.Body = http.NoBody
		if len(h.body) > 0 {
			req.Body = bodyReader{bytes.NewReader(h.body)}
		}
		req.ContentLength = int64(len(h.body))
	}
	for k, vs := range h.header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, buf.Bytes(), err
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func abbrev(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// hostileRequests generates the batch: every route with every method and
// credential, every body route with every hostile body, every path
// parameter with every hostile value, repeated query parameters, and
// random combinations of all of them.
func hostileRequests(a, b devApp, tok, own, theirs string) []hostile {
	rng := rand.New(rand.NewPCG(1, 2))
	merchant := a.Merchants[0]
	file := "orders-00000.csv.gz"

	// Credentials per dialect; the first of each is valid.
	badKey := "exk_" + strings.Repeat("a", 52)
	nativeAuth := []http.Header{
		bearerHdr(a.APIKey), {"X-Api-Key": {a.APIKey}}, nil, bearerHdr(badKey), bearerHdr("' OR 1=1 --"),
		{"Authorization": {"Basic " + a.APIKey}}, bearerHdr(b.APIKey), {"Authorization": {"Bearer"}}, bearerHdr("\xff\xfe"),
	}
	cloverAuth := nativeAuth
	now := time.Now()
	staleJWT := doshiiHeaders(a, now.Add(-time.Hour))
	noneJWT := doshiiHeaders(a, now)
	noneJWT.Set("Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJjbGllbnRJZCI6ImEifQ.")
	badApp := doshiiHeaders(a, now)
	badApp.Set("X-API-KEY", strings.Repeat("ab", 32)+":\xff\xfe")
	sqlApp := doshiiHeaders(a, now)
	sqlApp.Set("X-API-KEY", strings.Repeat("ab", 32)+":x' OR '1'='1")
	crossed := doshiiHeaders(a, now)
	crossed.Set("Authorization", doshiiHeaders(b, now).Get("Authorization"))
	doshiiAuth := []http.Header{doshiiHeaders(a, now), nil, staleJWT, noneJWT, badApp, sqlApp, crossed, doshiiHeaders(b, now)}
	epAuth := []http.Header{bearerHdr(tok), nil, bearerHdr(a.APIKey), bearerHdr(tok + "x"), bearerHdr(strings.Repeat("A", 5000)), bearerHdr("e30.e30")}

	type route struct {
		tmpl    string // {id}, {name}, {m} are filled in
		methods []string
		body    bool // takes a body
	}
	routes := []route{
		{"/v1/exports", []string{"GET", "POST"}, true},
		{"/v1/exports/{id}", []string{"GET", "DELETE", "PATCH"}, true},
		{"/v1/exports/{id}/manifest", []string{"GET"}, false},
		{"/v1/exports/{id}/files/{name}", []string{"GET"}, false},
		{"/v1/schedules", []string{"GET", "POST"}, true},
		{"/v1/schedules/{id}", []string{"GET", "DELETE", "PATCH"}, true},
		{"/healthz", []string{"GET"}, false},
		{"/openapi.json", []string{"GET"}, false},
		{"/v1/nowhere/{id}", nil, false},
		{"/v3/merchants/{m}/exports", []string{"GET", "POST"}, true},
		{"/v3/merchants/{m}/exports/", []string{"GET", "POST"}, true},
		{"/v3/merchants/{m}/exports/{id}", []string{"GET"}, false},
		{"/v3/merchants/{m}/exports/{id}/", []string{"GET"}, false},
		{"/v3/merchants/{m}/nowhere", nil, false},
		{"/partner/v3/data/orders", []string{"POST"}, true},
		{"/partner/v3/data/{name}", []string{"POST"}, true},
		{"/partner/v3/data/orders/{id}", []string{"GET"}, false},
		{"/partner/v3/data/orders/{id}/files/{name}", []string{"GET"}, false},
		{"/partner/v3/nowhere", nil, false},
		{"/oauth/access_token", []string{"POST"}, true},
		{"/oauth/nowhere", nil, false},
		{"/v2/jobs", []string{"GET", "POST"}, true},
		{"/v2/jobs/", []string{"GET", "POST"}, true},
		{"/v2/jobs/{id}", []string{"GET"}, false},
		{"/v2/jobs/{id}/file", []string{"GET"}, false},
		{"/v2/nowhere", nil, false},
	}
	authFor := func(path string) []http.Header {
		switch dialectOf(path) {
		case "clover":
			return cloverAuth
		case "doshii":
			return doshiiAuth
		case "ep":
			return epAuth
		}
		return nativeAuth
	}
	fill := func(tmpl, id, name, m string) string {
		return strings.NewReplacer("{id}", id, "{name}", name, "{m}", m).Replace(tmpl)
	}
	allMethods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "get"}

	// Hostile values for path parameters, already escaped.
	ids := []string{
		own, theirs, "xnosuchexport", "..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fmaster.key", "%252e%252e%252f",
		"a%2Fb", "%00", "x%00y", "%ff%fe", "%c0%ae%c0%ae", "'%20OR%201=1%20--", "1;DROP%20TABLE%20orders", "%F0%9F%98%80",
		"%C3%BCn%C3%AFc%C3%B6d%C3%A9", strings.Repeat("x", 65), strings.Repeat("a", 5000), "%E2%80%AEtxt.exe", "null", "-1",
	}
	names := []string{
		file, "manifest.json", "..", "%2e%2e", "..%2F..%2F..%2Fdev.json", "%2e%2e%2fmaster.key", "orders-00000.csv.gz%00.txt",
		".orders-00000.csv.gz.1.upload", "%2Fetc%2Fpasswd", "%5C..%5C..%5Cwindows", "'%20OR%201=1%20--", "%ff", "payments",
	}
	merchants := []string{
		merchant, b.Merchants[0], "no-such-merchant", "%00", "m%00x", "%ff%fe", "'%20OR%201=1%20--", "..%2F..", "%F0%9F%98%80",
		strings.Repeat("m", 5000), "%25", "cafe-lumiere%0D%0AX-Injected:%201",
	}

	// Hostile bodies; valid credentials meet each on every body route.
	valid := map[string]string{
		"native": `{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "formats": ["jsonl.gz"]}`,
		"clover": `{"type": "ORDERS", "startTime": 1740787200000, "endTime": 1740873600000}`,
		"doshii": `{"doshiiId": "` + merchant + `", "range": {"start": 1740787200, "end": 1740873600}}`,
		"ep":     `{"data": {"type": "job", "job_type": "order_export", "filter": "ge(created_at,2025-03-01):lt(created_at,2025-03-02)"}}`,
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	huge := `{"merchantId": "` + strings.Repeat("A", 2<<20) + `"}`
	bodies := []string{
		``, `null`, `[]`, `{}`, `"x"`, `42`, `{} {}`, `{"a":1}x`, deep, `{"x":` + deep + `}`,
		`{"merchantId": 7, "dataset": ["orders"], "start": 1, "end": true, "formats": "parquet", "maxRowsPerFile": "x", "locations": {}}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "maxRowsPerFile": 1e309}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "maxRowsPerFile": 9223372036854775808}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "retention": 1e300}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "-2025-03-01T00:00:00Z", "end": "99999-03-02T00:00:00Z"}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "9999-12-31T23:59:59-23:59"}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "1970-01-01T00:00:00+14:00", "end": "2025-03-02T00:00:00Z"}`,
		`{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "locations": ["../../etc", "\u0000", "' OR 1=1 --"], "formats": ["../parquet"]}`,
		`{"merchantId": "\u0000", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z"}`,
		"{\"merchantId\": \"\xff\xfe\", \"dataset\": \"orders\", \"start\": \"2025-03-01T00:00:00Z\", \"end\": \"2025-03-02T00:00:00Z\"}",
		"{\"merchantId\": \"a\x00b\"}",
		`{"merchantId": "' OR 1=1 --", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z"}`,
		`{"merchantId": "üñíçødé 😀 ` + "\u202e" + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z"}`,
		`{"merchantId": "../../../etc/passwd", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z"}`,
		`{"availableUntil": 1e309}`, `{"availableUntil": "9999-12-31T23:59:59Z"}`, `{"availableUntil": "' OR 1=1 --"}`,
		`{"type": 1, "startTime": {}, "endTime": []}`, `{"type": "ORDERS", "startTime": 1e309, "endTime": 9223372036854775808}`,
		`{"type": "ORDERS", "startTime": -9223372036854775808, "endTime": "9223372036854775807"}`,
		`{"type": "ORDERS", "startTime": "NaN", "endTime": "Infinity"}`, `{"type": "' OR 1=1 --", "startTime": 1, "endTime": 2}`,
		`{"doshiiId": 1, "range": []}`, `{"doshiiId": "\u0000", "range": {"start": 1, "end": 2}}`,
		`{"doshiiId": "` + merchant + `", "range": {"start": 1e309, "end": 9223372036854775808}}`,
		`{"doshiiId": "` + merchant + `", "range": {"start": 1, "end": 2}, "classifiers": ["\u0000", "' OR 1=1 --"], "locations": ["\u0000"]}`,
		`{"doshiiId": "` + merchant + `", "range": {"start": 1, "end": 2}, "webhook": {"url": "http://169.254.169.254/latest", "headers": {"Host": "x", "X\u0000": "y"}}}`,
		`{"doshiiId": "` + merchant + `", "range": {"start": 1, "end": 2}, "fileSize": -1, "sortBy": {"property": "' OR 1=1 --"}}`,
		`{"data": "job"}`, `{"data": {"type": "job", "job_type": "order_export", "filter": 5}}`,
		`{"data": {"type": "job", "job_type": "order_export", "filter": "ge(created_at,'2025-01-01' OR 1=1 --)"}}`,
		`{"data": {"type": "job", "job_type": "order_export", "filter": "` + strings.Repeat("eq(created_at,2025-01-01):", 400) + `"}}`,
		`{"data": {"type": "job", "job_type": "../../etc/passwd", "filter": "\u0000"}}`,
		"grant_type=client_credentials&client_id=%00&client_secret=%00",
		"grant_type=client_credentials&client_id=%ff%fe&client_secret=x",
		"grant_type=client_credentials&client_id=' OR 1=1 --&client_secret=' OR 1=1 --",
		"grant_type=client_credentials&grant_type=password&client_id=" + a.ClientID + "&client_secret=" + a.ClientSecret + "&store_id=%00",
		"grant_type=%zz&client_id", "\x00\x01\x02\xff",
	}
	for _, v := range valid {
		bodies = append(bodies, v[:len(v)/2], v[:len(v)-1]) // truncated
	}

	var out []hostile
	add := func(h hostile) { out = append(out, h) }

	// 1. Every route, every method, every credential.
	for _, r := range routes {
		p := fill(r.tmpl, own, file, merchant)
		for _, m := range allMethods {
			for _, auth := range authFor(p) {
				add(hostile{method: m, path: p, header: auth})
			}
		}
	}
	// 2. Every body route, every hostile body, good and bad credentials,
	// and the oversized body, which is a 413 wherever it is read.
	for _, r := range routes {
		if !r.body {
			continue
		}
		p := fill(r.tmpl, own, "orders", merchant)
		for _, m := range r.methods {
			if m == "GET" || m == "DELETE" {
				continue
			}
			auths := authFor(p)
			for _, body := range bodies {
				for _, auth := range auths[:2] {
					add(hostile{method: m, path: p, header: withType(auth, rng), body: []byte(body)})
				}
			}
			add(hostile{method: m, path: p, header: withType(auths[0], rng), body: []byte(huge), want: http.StatusRequestEntityTooLarge})
			add(hostile{method: m, path: p, header: auths[1], body: []byte(huge)})
		}
	}
	// 3. Every path parameter, every hostile value, good credentials.
	for _, r := range routes {
		for _, id := range ids {
			for _, name := range []string{file, names[rng.IntN(len(names))]} {
				p := fill(r.tmpl, id, name, merchant)
				add(hostile{method: "GET", path: p, header: authFor(p)[0]})
			}
		}
		if strings.Contains(r.tmpl, "{name}") {
			for _, name := range names {
				p := fill(r.tmpl, own, name, merchant)
				add(hostile{method: "GET", path: p, header: authFor(p)[0]})
			}
		}
		if strings.Contains(r.tmpl, "{m}") {
			for _, m := range merchants {
				p := fill(r.tmpl, own, file, m)
				add(hostile{method: "GET", path: p, header: authFor(p)[0]})
				add(hostile{method: "POST", path: p, header: authFor(p)[0], body: []byte(valid["clover"])})
			}
		}
	}
	// 4. Query strings: repeated, conflicting and hostile parameters.
	queries := []string{
		"?merchantId=" + merchant + "&merchantId=" + b.Merchants[0], "?merchantId=" + b.Merchants[0] + "&merchantId=" + merchant,
		"?merchantId=%00", "?merchantId=%ff", "?merchantId='%20OR%201=1%20--", "?merchantId=" + merchant + "&status=bogus&status=queued",
		"?merchantId=" + merchant + "&limit=0", "?merchantId=" + merchant + "&limit=99999999999999999999", "?merchantId=" + merchant + "&limit=-1",
		"?merchantId=" + merchant + "&limit=1e3", "?access_token=" + badKey + "&access_token=" + a.APIKey, "?access_token=" + a.APIKey + "&access_token=x",
		"?expires=1&signature=x&signature=y", "?expires=99999999999999999999&signature=" + strings.Repeat("A", 200), "?signature=&expires=",
		"?expires=-1&signature=%00", "?%zz", "?" + strings.Repeat("a=1&", 2000), "?merchantId=" + strings.Repeat("%F0%9F%98%80", 500),
	}
	for _, q := range queries {
		for _, p := range []string{"/v1/exports", "/v1/exports/" + own + "/files/" + file, "/v1/exports/" + theirs + "/files/" + file,
			"/v3/merchants/" + merchant + "/exports", "/v3/merchants/" + merchant + "/exports/" + own, "/v2/jobs", "/partner/v3/data/orders/" + own} {
			add(hostile{method: "GET", path: p + q, header: authFor(p)[0]})
			add(hostile{method: "GET", path: p + q})
		}
	}
	// 5. Random combinations of everything above.
	for range 800 {
		r := routes[rng.IntN(len(routes))]
		p := fill(r.tmpl, ids[rng.IntN(len(ids))], names[rng.IntN(len(names))], merchants[rng.IntN(len(merchants))])
		if rng.IntN(4) == 0 {
			p += queries[rng.IntN(len(queries))]
		}
		auths := authFor(p)
		h := hostile{method: allMethods[rng.IntN(len(allMethods))], path: p, header: withType(auths[rng.IntN(len(auths))], rng)}
		if rng.IntN(2) == 0 {
			h.body = []byte(bodies[rng.IntN(len(bodies))])
		}
		add(h)
	}
	return out
}

// withType adds a random, often wrong, Content-Type to a copy of hdr.
func withType(hdr http.Header, rng *rand.Rand) http.Header {
	types := []string{"", "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/json; charset=utf-16", "application/xml", "\xff"}
	h := hdr.Clone()
	if h == nil {
		h = http.Header{}
	}
	if ct := types[rng.IntN(len(types))]; ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}
