package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/exports"
)

// tenantExport is an export made through one dialect for one app.
type tenantExport struct {
	app      int // index into the demo apps
	dialect  string
	merchant string
	id       string
	files    []tenantFile
}

type tenantFile struct {
	Name      string `json:"name"`
	SHA256    string `json:"sha256"`
	SignedURL string `json:"signedUrl"`
}

// probe is one request an app makes for something that is not its own.
type probe struct {
	method, url string
	header      http.Header
	body        string
}

// TestTenantIsolation makes exports in every dialect for both demo apps,
// then has each app try every read, cancel, extend, manifest and download
// route of every dialect on each export of the other app: every one must
// be a 404, never a 200 or 403, and leave the export as it was. Merchants
// an app was not installed for cannot be exported or listed. Signed URLs
// work without credentials but not tampered with, for another file or
// expiry, after expiry, or after the export was deleted.
func TestTenantIsolation(t *testing.T) {
	s := startDev(t, "--seed-orders", "1000")
	apps := devApps(t, s)

	// One export per dialect and app, over the apps' merchants; Elastic
	// Path tokens act for one store each.
	tokens := make([]map[string]string, len(apps))
	var all []*tenantExport
	for i, a := range apps {
		tokens[i] = map[string]string{}
		for _, m := range a.Merchants {
			tokens[i][m] = epToken(t, s, a, m)
		}
		for j, d := range []string{"native", "clover", "doshii", "ep"} {
			m := a.Merchants[j%len(a.Merchants)]
			all = append(all, &tenantExport{app: i, dialect: d, merchant: m, id: createIn(t, s, d, a, m, tokens[i][m])})
		}
	}
	for _, e := range all {
		doc, _ := waitFor(t, s, apps[e.app].APIKey, e.id)
		require.Equal(t, "succeeded", doc.Status, "%s export %s: %+v", e.dialect, e.id, doc.Error)
		var files struct {
			Files []tenantFile `json:"files"`
		}
		r := doRaw(t, http.MethodGet, s.APIURL+"/v1/exports/"+e.id, bearerHdr(apps[e.app].APIKey), nil)
		require.NoError(t, json.Unmarshal(r.body, &files))
		require.NotEmpty(t, files.Files)
		e.files = files.Files
	}

	// Every route of every dialect, for every export of the other app.
	var probes, foreignProbes, listings int
	for i, a := range apps {
		for _, e := range all {
			if e.app == i {
				continue
			}
			for _, p := range crossTenantProbes(s, a, tokens[i], e) {
				r := doRaw(t, p.method, p.url, p.header, []byte(p.body))
				require.Equal(t, http.StatusNotFound, r.status, "%s as %s: %s %s: %s", e.dialect, a.Name, p.method, p.url, r.body)
				require.NotContains(t, string(r.body), e.merchant, "%s %s names the other tenant's merchant", p.method, p.url)
				for _, f := range e.files {
					require.NotContains(t, string(r.body), f.SHA256)
				}
				probes++
			}
		}
	}

	// Merchants an app was not installed for, and one that does not
	// exist, answer alike: no export, no list, no token.
	for i, a := range apps {
		var foreign []string
		for j, b := range apps {
			if j != i {
				foreign = append(foreign, b.Merchants...)
			}
		}
		var epRefusal string
		for _, m := range append(foreign, "no-such-merchant") {
			for _, p := range foreignMerchantProbes(s, a, m) {
				r := doRaw(t, p.method, p.url, p.header, []byte(p.body))
				require.Equal(t, http.StatusNotFound, r.status, "%s: %s %s: %s", a.Name, p.method, p.url, r.body)
				foreignProbes++
			}
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.ClientID}, "client_secret": {a.ClientSecret}, "store_id": {m}}
			r := doRaw(t, http.MethodPost, s.APIURL+"/oauth/access_token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
			require.Equal(t, http.StatusBadRequest, r.status, "%s: token for store %s: %s", a.Name, m, r.body)
			refusal := errorDetail(t, r.body, m)
			if epRefusal == "" {
				epRefusal = refusal
			}
			require.Equal(t, epRefusal, refusal, "an uninstalled and a missing store are refused alike")
			foreignProbes++
		}
		// Lists show only the app's own exports.
		for _, m := range a.Merchants {
			var native struct {
				Exports []struct{ ID string } `json:"exports"`
			}
			r := doRaw(t, http.MethodGet, s.APIURL+"/v1/exports?merchantId="+m, bearerHdr(a.APIKey), nil)
			require.Equal(t, http.StatusOK, r.status)
			require.NoError(t, json.Unmarshal(r.body, &native))
			var clover struct {
				Elements []struct{ ID string } `json:"elements"`
			}
			r = doRaw(t, http.MethodGet, s.APIURL+"/v3/merchants/"+m+"/exports", bearerHdr(a.APIKey), nil)
			require.Equal(t, http.StatusOK, r.status)
			require.NoError(t, json.Unmarshal(r.body, &clover))
			var ep struct {
				Data []struct{ ID string } `json:"data"`
			}
			r = doRaw(t, http.MethodGet, s.APIURL+"/v2/jobs", bearerHdr(tokens[i][m]), nil)
			require.Equal(t, http.StatusOK, r.status)
			require.NoError(t, json.Unmarshal(r.body, &ep))
			var listed []string
			for _, x := range native.Exports {
				listed = append(listed, x.ID)
			}
			for _, x := range clover.Elements {
				listed = append(listed, x.ID)
			}
			for _, x := range ep.Data {
				listed = append(listed, x.ID)
			}
			for _, e := range all {
				if e.app != i {
					require.NotContains(t, listed, e.id, "%s lists another app's export", a.Name)
				}
			}
			listings += 3
		}
	}
	t.Logf("tenant matrix: %d exports (2 apps x 4 dialects); %d cross-tenant reads, cancels, extends and downloads, all 404; "+
		"%d creates, lists and tokens for merchants not installed, all refused; %d lists without the other app's exports",
		len(all), probes, foreignProbes, listings)

	// Nothing the other app tried changed anything.
	for _, e := range all {
		var doc exportDoc
		resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/"+e.id, apps[e.app].APIKey, nil, &doc)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "succeeded", doc.Status, "%s export %s", e.dialect, e.id)
		r := doRaw(t, http.MethodGet, s.APIURL+"/v1/exports/"+e.id+"/files/"+e.files[0].Name, bearerHdr(apps[e.app].APIKey), nil)
		require.Equal(t, http.StatusOK, r.status)
		sum := sha256.Sum256(r.body)
		require.Equal(t, e.files[0].SHA256, hex.EncodeToString(sum[:]))
	}

	t.Run("signed URLs", func(t *testing.T) { checkSignedURLs(t, s, apps, all) })
}

// crossTenantProbes are the requests by which app a could reach export e
// of another app, in every dialect; tokens are a's Elastic Path tokens.
func crossTenantProbes(s *stack, a devApp, tokens map[string]string, e *tenantExport) []probe {
	key, api := a.APIKey, s.APIURL
	until := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
	ps := []probe{
		{method: "GET", url: api + "/v1/exports/" + e.id, header: bearerHdr(key)},
		{method: "GET", url: api + "/v1/exports/" + e.id, header: http.Header{"X-Api-Key": {key}}},
		{method: "HEAD", url: api + "/v1/exports/" + e.id, header: bearerHdr(key)},
		{method: "GET", url: api + "/v1/exports/" + e.id + "/manifest", header: bearerHdr(key)},
		{method: "DELETE", url: api + "/v1/exports/" + e.id, header: bearerHdr(key)},
		{method: "PATCH", url: api + "/v1/exports/" + e.id, header: bearerHdr(key), body: `{"availableUntil": "` + until + `"}`},
		{method: "GET", url: api + "/v3/merchants/" + e.merchant + "/exports/" + e.id, header: bearerHdr(key)},
		{method: "GET", url: api + "/partner/v3/data/orders/" + e.id, header: doshiiHeaders(a, time.Now())},
	}
	for _, f := range e.files[:min(2, len(e.files))] {
		ps = append(ps,
			probe{method: "GET", url: api + "/v1/exports/" + e.id + "/files/" + f.Name, header: bearerHdr(key)},
			probe{method: "HEAD", url: api + "/v1/exports/" + e.id + "/files/" + f.Name, header: http.Header{"X-Api-Key": {key}}},
			probe{method: "GET", url: api + "/partner/v3/data/orders/" + e.id + "/files/" + f.Name, header: doshiiHeaders(a, time.Now())},
		)
	}
	for _, m := range a.Merchants {
		ps = append(ps,
			probe{method: "GET", url: api + "/v3/merchants/" + m + "/exports/" + e.id, header: bearerHdr(key)},
			probe{method: "GET", url: api + "/v3/merchants/" + m + "/exports/" + e.id + "/", header: bearerHdr(key)},
			probe{method: "GET", url: api + "/v3/merchants/" + m + "/exports/" + e.id + "?access_token=" + key},
		)
	}
	for _, m := range slices.Sorted(maps.Keys(tokens)) {
		ps = append(ps,
			probe{method: "GET", url: api + "/v2/jobs/" + e.id, header: bearerHdr(tokens[m])},
			probe{method: "GET", url: api + "/v2/jobs/" + e.id + "/file", header: bearerHdr(tokens[m])},
		)
	}
	return ps
}

// foreignMerchantProbes create and list exports of merchant m, which
// did not install app a, in every dialect that names a merchant.
func foreignMerchantProbes(s *stack, a devApp, m string) []probe {
	api := s.APIURL
	return []probe{
		{method: "POST", url: api + "/v1/exports", header: bearerHdr(a.APIKey),
			body: `{"merchantId": "` + m + `", "dataset": "orders", "start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}`},
		{method: "GET", url: api + "/v1/exports?merchantId=" + m, header: bearerHdr(a.APIKey)},
		{method: "POST", url: api + "/v3/merchants/" + m + "/exports", header: bearerHdr(a.APIKey),
			body: `{"type": "ORDERS", "startTime": 1740787200000, "endTime": 1743379200000}`},
		{method: "GET", url: api + "/v3/merchants/" + m + "/exports", header: bearerHdr(a.APIKey)},
		{method: "POST", url: api + "/partner/v3/data/orders", header: doshiiHeaders(a, time.Now()),
			body: `{"doshiiId": "` + m + `", "range": {"start": 1740787200, "end": 1743465600}}`},
	}
}

// errorDetail is the detail of an Elastic Path error document, with the
// value the client sent replaced, so that refusals can be compared.
func errorDetail(t *testing.T, body []byte, sent string) string {
	t.Helper()
	var d struct {
		Errors []struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(body, &d), "%s", body)
	require.Len(t, d.Errors, 1)
	return d.Errors[0].Title + ": " + strings.ReplaceAll(d.Errors[0].Detail, sent, "<sent>")
}

// checkSignedURLs: a signed URL downloads with a plain GET, but not when
// tampered with, used for another file or export, given another expiry,
// expired, or replayed after its export was deleted.
func checkSignedURLs(t *testing.T, s *stack, apps []devApp, all []*tenantExport) {
	var native, clover, other *tenantExport
	for _, e := range all {
		switch {
		case e.app == 0 && e.dialect == "native":
			native = e
		case e.app == 0 && e.dialect == "clover":
			clover = e
		case e.app == 1 && e.dialect == "native":
			other = e
		}
	}
	require.GreaterOrEqual(t, len(native.files), 2)
	f0, f1 := native.files[0], native.files[1]
	require.NotEmpty(t, f0.SignedURL)
	get := func(u string, hdr http.Header) rawResp { return doRaw(t, http.MethodGet, u, hdr, nil) }
	refused := func(r rawResp, status int, what string) {
		t.Helper()
		require.Equal(t, status, r.status, "%s: %s", what, r.body)
		require.NotEmpty(t, problemType(r), "%s: %s", what, r.body)
	}

	r := get(f0.SignedURL, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	sum := sha256.Sum256(r.body)
	require.Equal(t, f0.SHA256, hex.EncodeToString(sum[:]))
	r = get(f0.SignedURL, http.Header{"Range": {"bytes=1-10"}})
	require.Equal(t, http.StatusPartialContent, r.status)

	u0, err := url.Parse(f0.SignedURL)
	require.NoError(t, err)
	u1, err := url.Parse(f1.SignedURL)
	require.NoError(t, err)
	q0 := u0.Query()
	exp, err := strconv.ParseInt(q0.Get("expires"), 10, 64)
	require.NoError(t, err)
	with := func(u url.URL, q url.Values) string { u.RawQuery = q.Encode(); return u.String() }

	sig := []byte(q0.Get("signature"))
	sig[len(sig)/2] ^= 0x01
	refused(get(with(*u0, url.Values{"expires": q0["expires"], "signature": {string(sig)}}), nil), http.StatusUnauthorized, "tampered signature")
	refused(get(with(*u0, u1.Query()), nil), http.StatusUnauthorized, "another file's signature")
	refused(get(with(*u1, q0), nil), http.StatusUnauthorized, "this file's signature on another file")
	refused(get(with(*u0, url.Values{"expires": {strconv.FormatInt(exp+3600, 10)}, "signature": q0["signature"]}), nil), http.StatusUnauthorized, "changed expiry")
	refused(get(with(*u0, url.Values{"expires": {"0" + q0.Get("expires")}, "signature": q0["signature"]}), nil), http.StatusUnauthorized, "reformatted expiry")
	refused(get(with(*u0, url.Values{"expires": q0["expires"]}), nil), http.StatusUnauthorized, "no signature")
	elsewhere := *u0
	elsewhere.Path = "/v1/exports/" + other.id + "/files/" + f0.Name
	refused(get(with(elsewhere, q0), nil), http.StatusUnauthorized, "another export's file")

	// A correctly signed URL that has expired: signed here with the
	// stack's key, as the API would have signed it an hour ago.
	master, err := hex.DecodeString(s.Env["EXPORTD_MASTER_KEY"])
	require.NoError(t, err)
	signer := &exports.Signer{Key: exports.DeriveKey(master, "signed download URLs")}
	expired, err := url.ParseQuery(signer.Query(native.id, f0.Name, time.Now().Add(-time.Minute)))
	require.NoError(t, err)
	refused(get(with(*u0, expired), nil), http.StatusGone, "expired signed URL")
	forged := &exports.Signer{Key: exports.DeriveKey([]byte("not the master key"), "signed download URLs")}
	wrongKey, err := url.ParseQuery(forged.Query(native.id, f0.Name, time.Now().Add(time.Hour)))
	require.NoError(t, err)
	refused(get(with(*u0, wrongKey), nil), http.StatusUnauthorized, "signed with another key")

	// The Clover dialect's export URLs are signed URLs of the same kind.
	var cdoc struct {
		ExportURLs struct {
			Elements []struct {
				URL string `json:"url"`
			} `json:"elements"`
		} `json:"exportUrls"`
	}
	r = get(s.APIURL+"/v3/merchants/"+clover.merchant+"/exports/"+clover.id, bearerHdr(apps[0].APIKey))
	require.Equal(t, http.StatusOK, r.status)
	require.NoError(t, json.Unmarshal(r.body, &cdoc))
	require.NotEmpty(t, cdoc.ExportURLs.Elements)
	cloverURL := cdoc.ExportURLs.Elements[0].URL
	require.Equal(t, http.StatusOK, get(cloverURL, nil).status)

	// Replayed after the export was deleted: gone, never the bytes.
	for _, e := range []*tenantExport{native, clover} {
		r := doRaw(t, http.MethodDelete, s.APIURL+"/v1/exports/"+e.id, bearerHdr(apps[0].APIKey), nil)
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	}
	for _, e := range []*tenantExport{native, clover} {
		waitStatus(t, s, apps[0].APIKey, e.id, "expired")
	}
	for _, u := range []string{f0.SignedURL, f1.SignedURL, cloverURL} {
		r := get(u, nil)
		require.Contains(t, []int{http.StatusGone, http.StatusNotFound}, r.status, "replayed %s: %s", u, r.body)
		require.NotEmpty(t, problemType(r), "%s", r.body)
		require.Less(t, len(r.body), 1024, "a problem document, not the file")
	}
}

// waitStatus polls an export's native status document, which must be
// readable throughout, until it shows status.
func waitStatus(t *testing.T, s *stack, key, id, status string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := doRaw(t, http.MethodGet, s.APIURL+"/v1/exports/"+id, bearerHdr(key), nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var d exportDoc
		require.NoError(t, json.Unmarshal(r.body, &d))
		if d.Status == status {
			return
		}
		require.True(t, time.Now().Before(deadline), "export %s still %s after a minute", id, d.Status)
		time.Sleep(50 * time.Millisecond)
	}
}
