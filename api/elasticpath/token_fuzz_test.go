package elasticpath

import (
	"crypto/hmac"
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzVerifyToken issues access tokens for arbitrary claims and checks
// that each verifies, with exactly its claims, only under its own key and
// only until it expires; that no change to its payload passes; and that
// arbitrary strings pass only if they carry a MAC made with the key.
func FuzzVerifyToken(f *testing.F) {
	f.Add("app_1", "cafe-lumiere", int64(1_700_003_600), "other key", "eyJhIjoiYXBwXzEifQ.AAAA")
	f.Add("app_1", "cafe-lumiere", int64(1_700_000_000), "", "")
	f.Add("", "m", int64(1<<62), "k", "..")
	f.Add("a\x00", "\xff", int64(-1), "k", strings.Repeat("A", 2000)+"."+strings.Repeat("B", 43))
	now := time.Unix(1_700_000_000, 0)
	key := []byte("fuzz token key")
	f.Fuzz(func(t *testing.T, app, merchant string, expires int64, otherKey, garbage string) {
		c := claims{App: app, Merchant: merchant, Expires: expires}
		tok := issueToken(key, c)
		got, err := verifyToken(key, tok, now)
		exact := utf8.ValidString(app) && utf8.ValidString(merchant) // JSON carries valid UTF-8 only
		switch {
		case len(tok) > maxTokenBytes || app == "" || merchant == "":
			require.ErrorIs(t, err, errTokenInvalid)
		case now.Unix() >= expires:
			require.ErrorIs(t, err, errTokenExpired)
		case exact:
			require.NoError(t, err)
			require.Equal(t, c, got)
		}
		if otherKey != string(key) {
			_, err := verifyToken([]byte(otherKey), tok, now)
			require.Error(t, err, "verified under another key")
		}
		// Any other payload under the same MAC.
		payload, sig, _ := strings.Cut(tok, ".")
		if garbage != payload {
			_, err := verifyToken(key, garbage+"."+sig, now)
			require.Error(t, err, "payload %q passed with the MAC of %q", garbage, payload)
		}
		// Arbitrary tokens pass only with a MAC made with the key.
		if _, err := verifyToken(key, garbage, now); err == nil {
			p, s, _ := strings.Cut(garbage, ".")
			mac, derr := base64.RawURLEncoding.DecodeString(s)
			require.NoError(t, derr)
			require.True(t, hmac.Equal(mac, tokenMAC(key, p)))
		}
	})
}
