package doshii

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

func parse(t *testing.T, body string) (exportd.Spec, error) {
	t.Helper()
	req, err := decodeCreate(httptest.NewRequest(http.MethodPost, "/partner/v3/data/orders", strings.NewReader(body)))
	if err != nil {
		return exportd.Spec{}, err
	}
	return req.spec()
}

// TestSDKRequest maps the request of Doshii's SDK test (the body its
// requestBulkDataAggregation sends) onto an export.
func TestSDKRequest(t *testing.T) {
	body, err := os.ReadFile("testdata/doshii_request_example.json")
	require.NoError(t, err)
	spec, err := parse(t, string(body))
	require.NoError(t, err)
	require.Equal(t, exportd.Spec{
		MerchantID: "rj7DnGBL",
		Dataset:    exportd.Orders,
		Start:      time.Date(2020, 12, 1, 0, 0, 0, 0, time.UTC),
		End:        time.Date(2021, 2, 1, 0, 0, 0, 0, time.UTC),
		Formats:    []exportd.Format{exportd.DoshiiJSON},
		// 10000 KB at BytesPerOrder.
		MaxRowsPerFile: 10000 * 1024 / BytesPerOrder,
		Locations:      []string{"4gJpXq9B"},
		Webhook:        &exportd.Webhook{URL: "https://my.service.com/webhooks/data", Dialect: "doshii"},
	}, spec)
}

func TestCreateRequestValidation(t *testing.T) {
	const rng = `"range":{"start":1735689600,"end":1738368000}`
	for _, tc := range []struct {
		name, body string
		field      string // "" means valid
		check      func(t *testing.T, s exportd.Spec)
	}{
		{name: "minimal", body: `{"doshiiId":"m1",` + rng + `}`, check: func(t *testing.T, s exportd.Spec) {
			require.Zero(t, s.MaxRowsPerFile, "the engine's default")
			require.Nil(t, s.Webhook)
			require.Nil(t, s.Locations)
		}},
		{name: "numeric strings and whole floats", body: `{"doshiiId":"m1","fileSize":"1","range":{"start":"1735689600","end":1.7383680e9}}`, check: func(t *testing.T, s exportd.Spec) {
			require.Equal(t, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), s.End)
			require.Equal(t, 1024/BytesPerOrder, s.MaxRowsPerFile)
		}},
		{name: "unknown fields ignored", body: `{"doshiiId":"m1","format":"csv",` + rng + `}`},
		{name: "mimeType with charset", body: `{"doshiiId":"m1","mimeType":"application/json; charset=utf-8",` + rng + `}`},
		{name: "sortBy created asc", body: `{"doshiiId":"m1","sortBy":{"property":"created","method":"asc"},` + rng + `}`},
		{name: "locations sorted and deduplicated", body: `{"doshiiId":"m1","locations":["b","a","b"],` + rng + `}`, check: func(t *testing.T, s exportd.Spec) {
			require.Equal(t, []string{"a", "b"}, s.Locations)
		}},
		{name: "tiny fileSize", body: `{"doshiiId":"m1","fileSize":1,` + rng + `}`, check: func(t *testing.T, s exportd.Spec) {
			require.Equal(t, 5, s.MaxRowsPerFile)
		}},
		{name: "huge fileSize", body: `{"doshiiId":"m1","fileSize":9223372036854775807,` + rng + `}`, check: func(t *testing.T, s exportd.Spec) {
			require.Equal(t, 100_000_000, s.MaxRowsPerFile)
		}},
		{name: "webhook headers", body: `{"doshiiId":"m1","webhook":{"url":"https://h.example/x","headers":{"X-Token":"t"}},` + rng + `}`, check: func(t *testing.T, s exportd.Spec) {
			require.Equal(t, &exportd.Webhook{URL: "https://h.example/x", Headers: map[string]string{"X-Token": "t"}, Dialect: "doshii"}, s.Webhook)
		}},
		{name: "no doshiiId", body: `{` + rng + `}`, field: "doshiiId"},
		{name: "no range", body: `{"doshiiId":"m1"}`, field: "range"},
		{name: "no end", body: `{"doshiiId":"m1","range":{"start":1}}`, field: "range"},
		{name: "end before start", body: `{"doshiiId":"m1","range":{"start":1738368000,"end":1735689600}}`, field: "range.end"},
		{name: "empty window", body: `{"doshiiId":"m1","range":{"start":1735689600,"end":1735689600}}`, field: "range.end"},
		{name: "fractional seconds", body: `{"doshiiId":"m1","range":{"start":1735689600.5,"end":1738368000}}`, field: "range.start"},
		{name: "milliseconds", body: `{"doshiiId":"m1","range":{"start":1735689600000,"end":1738368000000}}`, field: "range.start"},
		{name: "negative", body: `{"doshiiId":"m1","range":{"start":-1,"end":1738368000}}`, field: "range.start"},
		{name: "csv", body: `{"doshiiId":"m1","mimeType":"text/csv",` + rng + `}`, field: "mimeType"},
		{name: "negative fileSize", body: `{"doshiiId":"m1","fileSize":-1,` + rng + `}`, field: "fileSize"},
		{name: "sortBy created desc", body: `{"doshiiId":"m1","sortBy":{"property":"created","method":"DESC"},` + rng + `}`, field: "sortBy"},
		{name: "sortBy updated", body: `{"doshiiId":"m1","sortBy":{"property":"updated","method":"ASC"},` + rng + `}`, field: "sortBy"},
		{name: "sortBy id", body: `{"doshiiId":"m1","sortBy":{"property":"id","method":"ASC"},` + rng + `}`, field: "sortBy"},
		{name: "sortBy unknown property", body: `{"doshiiId":"m1","sortBy":{"property":"total","method":"ASC"},` + rng + `}`, field: "sortBy.property"},
		{name: "sortBy unknown method", body: `{"doshiiId":"m1","sortBy":{"property":"created","method":"UP"},` + rng + `}`, field: "sortBy.method"},
		{name: "empty location", body: `{"doshiiId":"m1","locations":[""],` + rng + `}`, field: "locations"},
		{name: "empty classifier", body: `{"doshiiId":"m1","classifiers":[""],` + rng + `}`, field: "classifiers"},
		{name: "relative webhook", body: `{"doshiiId":"m1","webhook":{"url":"/hook"},` + rng + `}`, field: "webhook.url"},
		{name: "ftp webhook", body: `{"doshiiId":"m1","webhook":{"url":"ftp://h.example/x"},` + rng + `}`, field: "webhook.url"},
		{name: "webhook with credentials", body: `{"doshiiId":"m1","webhook":{"url":"https://u:p@h.example/x"},` + rng + `}`, field: "webhook.url"},
		{name: "headers without url", body: `{"doshiiId":"m1","webhook":{"headers":{"A":"b"}},` + rng + `}`, field: "webhook.url"},
		{name: "signature header", body: `{"doshiiId":"m1","webhook":{"url":"https://h.example","headers":{"Webhook-Signature":"x"}},` + rng + `}`, field: "webhook.headers"},
		{name: "header injection", body: `{"doshiiId":"m1","webhook":{"url":"https://h.example","headers":{"A":"b\r\nEvil: 1"}},` + rng + `}`, field: "webhook.headers"},
		{name: "bad header name", body: `{"doshiiId":"m1","webhook":{"url":"https://h.example","headers":{"A B":"c"}},` + rng + `}`, field: "webhook.headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parse(t, tc.body)
			if tc.field == "" {
				require.NoError(t, err)
				if tc.check != nil {
					tc.check(t, s)
				}
				return
			}
			var ae *apiError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, http.StatusBadRequest, ae.status)
			require.True(t, strings.HasPrefix(ae.message, tc.field+": "), "message %q does not name %s", ae.message, tc.field)
		})
	}
}
