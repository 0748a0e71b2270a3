package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// openAPI validates real responses against the document the API serves.
type openAPI struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
}

const openAPIURL = "file:///openapi.json"

func loadOpenAPI(t *testing.T, s *stack) *openAPI {
	t.Helper()
	resp, err := http.Get(s.APIURL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	require.NoError(t, c.AddResource(openAPIURL, inst))
	return &openAPI{doc: doc, compiler: c}
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates a response body against the schema the document gives
// for path (as written in the document), method and status.
func (o *openAPI) check(t *testing.T, path, method string, status int, contentType string, body []byte) {
	t.Helper()
	ptr := "#/paths/" + pointerEscape(path) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(status)
	resp := o.lookup(t, ptr)
	if ref, ok := resp["$ref"].(string); ok {
		ptr = ref
		resp = o.lookup(t, ref)
	}
	content, ok := resp["content"].(map[string]any)
	require.True(t, ok, "%s %s %d has no content in the document", method, path, status)
	mediaType := strings.TrimSpace(strings.Split(contentType, ";")[0])
	_, ok = content[mediaType]
	require.True(t, ok, "%s %s %d: the document has no %s response", method, path, status, mediaType)
	sch, err := o.compiler.Compile(openAPIURL + ptr + "/content/" + pointerEscape(mediaType) + "/schema")
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, sch.Validate(inst), "%s %s %d body %s", method, path, status, body)
}

func (o *openAPI) lookup(t *testing.T, ptr string) map[string]any {
	t.Helper()
	var cur any = o.doc
	for _, part := range strings.Split(strings.TrimPrefix(ptr, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s: not an object at %q", ptr, part)
		cur, ok = m[part]
		require.True(t, ok, "the document has no %s (missing %q)", ptr, part)
	}
	m, ok := cur.(map[string]any)
	require.True(t, ok, "%s is not an object", ptr)
	return m
}

// raw makes a request and returns status, content type and body.
func raw(t *testing.T, method, url, key, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestOpenAPIMatchesResponses checks the served OpenAPI 3.1 document
// against real responses of every native operation, successes and
// problems alike, and that every path it lists is routed.
func TestOpenAPIMatchesResponses(t *testing.T) {
	s := startDev(t, "--seed-orders", "500")
	o := loadOpenAPI(t, s)
	app := s.Apps[0]
	merchant := app.Merchants[0]
	exportsURL := s.APIURL + "/v1/exports"

	body := `{"merchantId": "` + merchant + `", "dataset": "orders", "start": "2025-01-01T00:00:00Z", "end": "2025-07-01T00:00:00Z", "formats": ["csv.gz", "parquet"], "maxRowsPerFile": 200}`
	status, ct, b := raw(t, http.MethodPost, exportsURL, app.APIKey, body)
	require.Equal(t, http.StatusAccepted, status)
	o.check(t, "/v1/exports", "POST", status, ct, b)
	var created struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(b, &created))
	one := exportsURL + "/" + created.ID

	status, ct, b = raw(t, http.MethodGet, one, app.APIKey, "")
	o.check(t, "/v1/exports/{id}", "GET", status, ct, b)
	waitFor(t, s, app.APIKey, created.ID)
	status, ct, b = raw(t, http.MethodGet, one, app.APIKey, "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(b), `"files"`)
	o.check(t, "/v1/exports/{id}", "GET", status, ct, b)

	status, ct, b = raw(t, http.MethodGet, one+"/manifest", app.APIKey, "")
	require.Equal(t, http.StatusOK, status)
	o.check(t, "/v1/exports/{id}/manifest", "GET", status, ct, b)

	status, ct, b = raw(t, http.MethodGet, one+"/files?limit=1", app.APIKey, "")
	require.Equal(t, http.StatusOK, status, "%s", b)
	require.Contains(t, string(b), `"next"`, "one file a page leaves more")
	o.check(t, "/v1/exports/{id}/files", "GET", status, ct, b)

	status, ct, b = raw(t, http.MethodGet, exportsURL+"?merchantId="+merchant, app.APIKey, "")
	require.Equal(t, http.StatusOK, status)
	o.check(t, "/v1/exports", "GET", status, ct, b)

	until := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	status, ct, b = raw(t, http.MethodPatch, one, app.APIKey, `{"availableUntil": "`+until+`"}`)
	require.Equal(t, http.StatusAccepted, status, "%s", b)
	o.check(t, "/v1/exports/{id}", "PATCH", status, ct, b)

	// Problems, each in the document's shape.
	for _, p := range []struct {
		method, url, path, key, body string
		status                       int
	}{
		{"POST", exportsURL, "/v1/exports", app.APIKey, `{"merchantId": 7}`, 400},
		{"POST", exportsURL, "/v1/exports", "", body, 401},
		{"POST", exportsURL, "/v1/exports", app.APIKey, strings.Replace(body, merchant, "nobody", 1), 404},
		{"GET", exportsURL, "/v1/exports", app.APIKey, "", 400},
		{"GET", exportsURL + "/xnosuch", "/v1/exports/{id}", app.APIKey, "", 404},
		{"GET", one + "/files/nosuch.csv.gz", "/v1/exports/{id}/files/{name}", app.APIKey, "", 404},
		{"GET", one + "/files?cursor=forged", "/v1/exports/{id}/files", app.APIKey, "", 400},
		{"GET", one + "/files?limit=0", "/v1/exports/{id}/files", app.APIKey, "", 400},
		{"GET", one + "/files/orders-00000.csv.gz?expires=1&signature=forged", "/v1/exports/{id}/files/{name}", "", "", 401},
		{"PATCH", one, "/v1/exports/{id}", app.APIKey, `{"availableUntil": "tomorrow"}`, 400},
	} {
		status, ct, b := raw(t, p.method, p.url, p.key, p.body)
		require.Equal(t, p.status, status, "%s %s: %s", p.method, p.url, b)
		o.check(t, p.path, p.method, status, ct, b)
	}

	// Idempotency-Key: the same key and body return the same export; the
	// same key with another body is refused.
	idem := func(body string) (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, exportsURL, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+app.APIKey)
		req.Header.Set("Idempotency-Key", "order-sync-2025-h1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	status, _, first := idem(body)
	require.Equal(t, http.StatusAccepted, status, "%s", first)
	status, ct, again := idem(body)
	require.Equal(t, http.StatusOK, status, "%s", again)
	o.check(t, "/v1/exports", "POST", status, ct, again)
	var a1, a2 struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(first, &a1))
	require.NoError(t, json.Unmarshal(again, &a2))
	require.Equal(t, a1.ID, a2.ID, "the same key and body name the same export")
	status, ct, b = idem(strings.Replace(body, `"maxRowsPerFile": 200`, `"maxRowsPerFile": 300`, 1))
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", b)
	o.check(t, "/v1/exports", "POST", status, ct, b)
	require.Contains(t, string(b), "urn:exportd:problem:idempotency-key-reused")
	otherApp := s.Apps[1]
	req, err := http.NewRequest(http.MethodPost, exportsURL, strings.NewReader(strings.Replace(body, merchant, otherApp.Merchants[0], 1)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+otherApp.APIKey)
	req.Header.Set("Idempotency-Key", "order-sync-2025-h1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "keys are scoped to the app: another app's same key is a new export")

	status, ct, b = raw(t, http.MethodDelete, one, app.APIKey, "")
	require.Equal(t, http.StatusAccepted, status)
	o.check(t, "/v1/exports/{id}", "DELETE", status, ct, b)

	// Every documented operation is routed: none answers "no route" or 405.
	for path, item := range o.doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			url := s.APIURL + strings.NewReplacer("{id}", created.ID, "{name}", "x").Replace(path)
			status, _, b := raw(t, strings.ToUpper(method), url, app.APIKey, "{}")
			require.NotEqual(t, http.StatusMethodNotAllowed, status, "%s %s", method, path)
			require.NotContains(t, string(b), "no route for", "%s %s", method, path)
		}
	}
}
