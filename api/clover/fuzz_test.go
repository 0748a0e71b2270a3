package clover

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

var fuzzBodies = []string{
	`{"type": "ORDERS", "startTime": 1554076800000, "endTime": 1556582400000}`,
	`{"type": "payments", "startTime": "1554076800000", "endTime": " 1556582400000 "}`,
	`{"type": "ORDERS", "startTime": 1.5540768e12, "endTime": 1556582400000}`,
	`{"type": "ORDERS", "startTime": 0, "endTime": 1}`,
	`{"type": "ORDERS", "startTime": 253402300799998, "endTime": 253402300799999}`,
	`{"type": "ORDERS", "startTime": 253402300799999, "endTime": 253402300800000}`,
	`{"type": "ORDERS", "startTime": 1554076800000, "endTime": 1556668800001}`,
	`{"type": "ORDERS", "startTime": -1, "endTime": 1}`,
	`{"type": "ORDERS", "startTime": 1e309, "endTime": 1}`,
	`{"type": "ORDERS", "startTime": 9223372036854775808, "endTime": 9223372036854775807}`,
	`{"type": "ORDERS", "startTime": -9223372036854775808, "endTime": 1}`,
	`{"type": "ORDERS", "startTime": "NaN", "endTime": "Inf"}`,
	`{"type": "ORDERS", "startTime": "0x1p40", "endTime": 1099511700000}`,
	`{"type": "ORDERS", "startTime": 1554076800000.5, "endTime": 1556582400000}`,
	`{"type": "ORDERS", "startTime": null, "endTime": 1}`,
	`{"type": "ORDERS", "startTime": true, "endTime": [1]}`,
	`{"type": "' OR 1=1 --", "startTime": 1, "endTime": 2}`,
	`{"type": "ORDERS\u0000", "startTime": 1, "endTime": 2}`,
	`{"type": 5}`, `[]`, `{`, ``, `null`, "\xff\xfe",
}

// FuzzParseCreate checks the create request parser: every refusal is a
// 400 in Clover's {"message"} shape, and every accepted request names a
// dataset and a half-open window of whole milliseconds within [1970,
// 10000) and at most MaxWindow long, which re-reads identically from its
// canonical form.
func FuzzParseCreate(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add(b)
	}
	h := &handlers{Config: Config{Logger: slog.New(slog.DiscardHandler), MaxWindow: DefaultMaxWindow}}
	parse := func(body string) (exportd.Dataset, time.Time, time.Time, error) {
		r := httptest.NewRequest(http.MethodPost, "/v3/merchants/m/exports", strings.NewReader(body))
		return h.parseCreate(r)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d, start, end, err := parse(body)
		if err != nil {
			var ae *apiError
			require.True(t, errors.As(err, &ae), "%T: %v", err, err)
			require.Equal(t, http.StatusBadRequest, ae.status)
			w := httptest.NewRecorder()
			h.writeError(w, httptest.NewRequest(http.MethodPost, "/v3/merchants/m/exports", nil), err)
			require.Equal(t, http.StatusBadRequest, w.Code)
			var e map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			require.Len(t, e, 1, "%s", w.Body)
			require.IsType(t, "", e["message"])
			return
		}
		require.True(t, d == exportd.Orders || d == exportd.Payments, "dataset %q", d)
		require.Equal(t, time.UTC, start.Location())
		require.Equal(t, time.UTC, end.Location())
		require.True(t, start.Before(end), "[%s, %s)", start, end)
		require.GreaterOrEqual(t, start.UnixMilli(), int64(0))
		require.Less(t, end.UnixMilli(), int64(maxMillis))
		require.LessOrEqual(t, end.Sub(start), DefaultMaxWindow)
		require.Equal(t, start, start.Truncate(time.Millisecond))
		require.Equal(t, end, end.Truncate(time.Millisecond))

		canonical := fmt.Sprintf(`{"type": %q, "startTime": %d, "endTime": %d}`, strings.ToUpper(string(d)), start.UnixMilli(), end.UnixMilli())
		d2, start2, end2, err := parse(canonical)
		require.NoError(t, err, canonical)
		require.Equal(t, d, d2)
		require.True(t, start.Equal(start2) && end.Equal(end2))
	})
}

// FuzzMillis checks the reading of one time value: numbers and numeric
// strings are accepted only when they are whole milliseconds, and the
// value read is the one written, up to the float64 rounding of a decimal
// form.
func FuzzMillis(f *testing.F) {
	for _, s := range []string{
		`1554076800000`, `"1554076800000"`, `" 42 "`, `1.5e12`, `1554076800000.0`, `1554076800000.5`, `-0`, `"-12"`,
		`1e309`, `9223372036854775808`, `-9223372036854775809`, `"NaN"`, `"+Inf"`, `"0x1p40"`, `"1_000"`, `null`,
		`true`, `{}`, `[]`, `"`, `""`, `"\u0031"`, `0.1e1`, `253402300800000`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var m millis
		if err := m.UnmarshalJSON([]byte(s)); err != nil || !m.set {
			return
		}
		text := strings.TrimSpace(s)
		if strings.HasPrefix(text, `"`) {
			require.NoError(t, json.Unmarshal([]byte(text), &text))
			text = strings.TrimSpace(text)
		}
		exact, ok := new(big.Float).SetPrec(1024).SetString(text)
		require.True(t, ok, "accepted %q, which is not a number", s)
		require.False(t, exact.IsInf())
		if math.Abs(float64(m.v)) >= 1<<53 {
			return // beyond exact float64 integers; refused as a time anyway
		}
		// A decimal is read as the nearest float64, so off by at most half
		// its spacing: under 0.016 ms for every time before the year 10000.
		f := float64(m.v)
		halfULP := (math.Nextafter(f, math.Inf(1)) - f) / 2
		diff := new(big.Float).Sub(exact, new(big.Float).SetInt64(m.v))
		d, _ := diff.Float64()
		require.LessOrEqual(t, math.Abs(d), halfULP, "%q read as %d", s, m.v)
	})
}
