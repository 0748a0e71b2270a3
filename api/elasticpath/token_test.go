package elasticpath

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokenRoundTrip(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_700_000_000, 0)
	c := claims{App: "app_1", Merchant: "cafe-lumiere", Expires: now.Add(tokenTTL).Unix()}
	tok := issueToken(key, c)

	got, err := verifyToken(key, tok, now)
	require.NoError(t, err)
	require.Equal(t, c, got)

	// Valid until the last second before expiry, not at it.
	_, err = verifyToken(key, tok, now.Add(tokenTTL-time.Second))
	require.NoError(t, err)
	_, err = verifyToken(key, tok, now.Add(tokenTTL))
	require.ErrorIs(t, err, errTokenExpired)
}

func TestTokenRefused(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_700_000_000, 0)
	tok := issueToken(key, claims{App: "app_1", Merchant: "cafe-lumiere", Expires: now.Add(tokenTTL).Unix()})
	payload, sig, _ := strings.Cut(tok, ".")

	// A token for another app or a later expiry, with the original MAC.
	forged := func(c string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(c)) + "." + sig
	}
	flip := []byte(tok)
	flip[len(flip)/3] ^= 1

	for name, bad := range map[string]string{
		"empty":            "",
		"no signature":     payload,
		"empty signature":  payload + ".",
		"bit flipped":      string(flip),
		"other app":        forged(`{"a":"app_2","m":"cafe-lumiere","e":` + "1700003600}"),
		"later expiry":     forged(`{"a":"app_1","m":"cafe-lumiere","e":` + "1900003600}"),
		"signature only":   "." + sig,
		"not base64":       "!!!." + sig,
		"too long":         strings.Repeat("a", maxTokenBytes+1),
		"truncated MAC":    tok[:len(tok)-4],
		"extra dot":        tok + ".x",
		"wrong key":        issueToken([]byte("another key of thirty-two bytes!"), claims{App: "app_1", Merchant: "m", Expires: now.Add(time.Hour).Unix()}),
		"missing merchant": issueToken(key, claims{App: "app_1", Expires: now.Add(time.Hour).Unix()}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verifyToken(key, bad, now)
			require.ErrorIs(t, err, errTokenInvalid)
		})
	}
}
