package doshii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// FuzzCreateRequest checks the parsing of POST /partner/v3/data/orders
// bodies: a refusal is a 4xx in Doshii's {message, errorCode} shape, and
// an accepted request is a spec the engine accepts too (the dialect never
// lets through what the engine would refuse), with a window of whole
// seconds in [1970, 10000), a sorted list of distinct locations and a
// deliverable webhook.
func FuzzCreateRequest(f *testing.F) {
	seed, err := readTestdata("doshii_request_example.json")
	require.NoError(f, err)
	f.Add(seed)
	for _, s := range []string{
		`{"doshiiId": "m1", "range": {"start": 1735689600, "end": 1738368000}}`,
		`{"doshiiId": "m1", "fileSize": "1", "range": {"start": "1735689600", "end": 1.7383680e9}}`,
		`{"doshiiId": "m1", "range": {"start": 0, "end": 253402300799}, "fileSize": 9223372036854775807}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 1e309}}`,
		`{"doshiiId": "m1", "range": {"start": 9223372036854775808, "end": 1}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "sortBy": {"property": "CREATED", "method": "asc"}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "sortBy": {"property": "updated", "method": "DESC"}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "mimeType": "application/json; charset=utf-8"}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "locations": ["b", "a", "b"], "classifiers": ["Restaurant"]}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "webhook": {"url": "https://example.com/h", "headers": {"X-Token": "t"}}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "webhook": {"url": "http://127.0.0.1/", "headers": {"Host": "evil"}}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "webhook": {"url": "https://e.com/", "headers": {"X": "a\r\nb"}}}`,
		`{"doshiiId": "m1", "range": {"start": 1, "end": 2}, "webhook": {"url": "javascript:alert(1)"}}`,
		`{"doshiiId": "' OR 1=1 --", "range": {"start": "1", "end": "2"}}`,
		`{"doshiiId": "\u0000", "range": {"start": 1, "end": 2}}`,
		`{"doshiiId": ["m1"]}`, `{"range": "1-2"}`, `{"doshiiId": "m1", "range": {"start": "x", "end": 2}}`,
		`{"doshiiId": "m1"`, `[[[[[[[[[[]]]]]]]]]]`, `{} {}`, ``, `null`, "\xff",
	} {
		f.Add(s)
	}
	h := &handlers{Config: Config{Logger: slog.New(slog.DiscardHandler)}}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, BasePath+"/data/orders", strings.NewReader(body))
		req, err := decodeCreate(r)
		var spec exportd.Spec
		if err == nil {
			spec, err = req.spec()
		}
		if err != nil {
			var ae *apiError
			require.True(t, errors.As(err, &ae), "%T: %v", err, err)
			w := httptest.NewRecorder()
			h.writeError(w, r, err)
			require.Equal(t, http.StatusBadRequest, w.Code, "%s", w.Body)
			var e ErrorBody
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			require.NotEmpty(t, e.Message)
			require.Equal(t, codeInvalid, e.ErrorCode)
			return
		}
		require.Equal(t, exportd.Orders, spec.Dataset)
		require.Equal(t, []exportd.Format{exportd.DoshiiJSON}, spec.Formats)
		require.Equal(t, time.UTC, spec.Start.Location())
		require.True(t, spec.Start.Before(spec.End))
		require.GreaterOrEqual(t, spec.Start.Unix(), int64(0))
		require.LessOrEqual(t, spec.End.Unix(), int64(maxUnix))
		require.Equal(t, spec.Start, spec.Start.Truncate(time.Second))
		require.Equal(t, spec.End, spec.End.Truncate(time.Second))
		require.True(t, slices.IsSorted(spec.Locations))
		require.Equal(t, len(spec.Locations), len(slices.Compact(slices.Clone(spec.Locations))))
		if w := spec.Webhook; w != nil {
			u, err := url.Parse(w.URL)
			require.NoError(t, err)
			require.Contains(t, []string{"http", "https"}, u.Scheme)
			require.NotEmpty(t, u.Host)
			require.Nil(t, u.User)
			for k, v := range w.Headers {
				require.True(t, token(k), k)
				require.NotContains(t, reservedHeaders, strings.ToLower(k))
				require.False(t, strings.ContainsAny(v, "\r\n\x00"), "%q", v)
			}
		}
		spec.ExportID = "xfuzz"
		require.NoError(t, spec.Normalize(), "the dialect accepted what the engine refuses")
	})
}

// FuzzAuthenticate checks both of Doshii's credentials as parsed from
// their headers. parseAPIKey must find the MAC and app id however they
// are ordered and refuse anything else; verifyToken must accept a token
// only when it is signed with the secret, is HS256, names the client and
// is fresh, so a token made for one secret, client or time never passes
// for another.
func FuzzAuthenticate(f *testing.F) {
	f.Add("cli_a", "exs_secret", int64(1_700_000_000), "", "")
	f.Add("cli_a", "exs_secret", int64(1_700_000_000), "cli_b", "")
	f.Add("cli_a", "exs_secret", int64(1_700_000_000), "", "exs_other")
	f.Add("cli_a", "exs_secret", int64(1_700_000_000_000), "", "")
	f.Add("", "", int64(0), "\x00", "\xff")
	f.Add("cli_a", "exs_secret", int64(-1), "eyJhbGciOiJub25lIn0.e30.", "abc:"+strings.Repeat("0", 64))
	now := time.Unix(1_700_000_000, 0)
	sign := func(secret, header, claims string) string {
		enc := base64.RawURLEncoding.EncodeToString
		s := enc([]byte(header)) + "." + enc([]byte(claims))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(s))
		return s + "." + enc(m.Sum(nil))
	}
	f.Fuzz(func(t *testing.T, clientID, secret string, ts int64, otherClient, otherSecret string) {
		claims, _ := json.Marshal(map[string]any{"clientId": clientID, "timestamp": ts})
		tok := sign(secret, `{"alg":"HS256","typ":"JWT"}`, string(claims))
		// JSON carries only valid UTF-8: another client id would be signed.
		exact := utf8.ValidString(clientID)
		fresh := ts >= now.Unix()-300 && ts <= now.Unix()+300
		err := verifyToken(tok, []byte(secret), clientID, now, DefaultMaxClockSkew)
		if fresh && exact && len(tok) <= maxTokenLen {
			require.NoError(t, err)
		} else {
			require.Error(t, err)
		}
		if otherClient != clientID && exact {
			require.Error(t, verifyToken(tok, []byte(secret), otherClient, now, DefaultMaxClockSkew), "another client")
		}
		// HMAC pads keys with zeros: "k" and "k\x00" are the same key.
		if strings.TrimRight(otherSecret, "\x00") != strings.TrimRight(secret, "\x00") {
			require.Error(t, verifyToken(tok, []byte(otherSecret), clientID, now, DefaultMaxClockSkew), "another secret")
		}
		// Forgeries: alg none or another alg, and arbitrary bytes.
		for _, alg := range []string{`{"alg":"none"}`, `{"alg":"hs256"}`, `{"alg":"HS512"}`, `{"alg":"HS256","crit":["exp"]}`} {
			require.Error(t, verifyToken(sign(secret, alg, string(claims)), []byte(secret), clientID, now, DefaultMaxClockSkew), alg)
		}
		require.Error(t, verifyToken(otherClient+"."+otherSecret, []byte(secret), clientID, now, DefaultMaxClockSkew))
		for _, garbage := range []string{otherClient, otherSecret, otherClient + "." + otherSecret + "." + clientID} {
			if err := verifyToken(garbage, []byte(secret), clientID, now, DefaultMaxClockSkew); err == nil {
				// Only a token this secret signed can pass.
				parts := strings.Split(garbage, ".")
				m := hmac.New(sha256.New, []byte(secret))
				m.Write([]byte(parts[0] + "." + parts[1]))
				sig, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
				require.True(t, hmac.Equal(sig, m.Sum(nil)), "%q", garbage)
			}
		}

		mac := APIKeyMAC(clientID, secret)
		for _, key := range []string{hex.EncodeToString(mac) + ":" + clientID, clientID + ":" + hex.EncodeToString(mac)} {
			got, app, ok := parseAPIKey(key)
			// App ids are never 64 hex digits, the MAC's shape.
			_, macLike := decodeMAC(clientID)
			valid := clientID != "" && len(clientID) <= 128 && !strings.ContainsAny(clientID, ": \t") && len(key) <= 512 && macLike != nil
			if !valid {
				continue
			}
			require.True(t, ok, "%q", key)
			require.Equal(t, clientID, app)
			require.Equal(t, mac, got)
		}
		if got, app, ok := parseAPIKey(otherClient + otherSecret); ok {
			require.Len(t, got, sha256.Size)
			require.NotEmpty(t, app)
			require.False(t, strings.ContainsAny(app, ": \t"))
		}
	})
}

func readTestdata(name string) (string, error) {
	b, err := os.ReadFile("testdata/" + name)
	return string(b), err
}
