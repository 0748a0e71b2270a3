package elasticpath

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// tokenTTL is how long an access token lives: Elastic Path's tokens
// expire after an hour and clients are written to fetch a new one.
const tokenTTL = time.Hour

// Errors from verifyToken. Neither says more than the client needs: a
// wrong key, a forged token and a truncated one are all just invalid.
var (
	errTokenInvalid = errors.New("access token is invalid")
	errTokenExpired = errors.New("access token has expired")
)

// claims is what an access token carries. It is stateless so that any API
// replica holding the key can verify it without a shared session store.
type claims struct {
	App      string `json:"a"` // app id
	Merchant string `json:"m"` // the store the token acts for
	Expires  int64  `json:"e"` // unix seconds
}

// maxTokenBytes bounds what verifyToken looks at, so a huge header costs
// nothing.
const maxTokenBytes = 1024

// tokenContext separates this MAC from any other made with a key derived
// from the same master key.
const tokenContext = "exportd elastic path access token v1\x00"

// issueToken signs c with key: base64url(JSON claims) "." base64url(MAC).
func issueToken(key []byte, c claims) string {
	b, _ := json.Marshal(c) // a struct of strings and an int cannot fail
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(key, payload))
}

// verifyToken checks a token's MAC in constant time, then its expiry.
func verifyToken(key []byte, token string, now time.Time) (claims, error) {
	if len(token) > maxTokenBytes {
		return claims{}, errTokenInvalid
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return claims{}, errTokenInvalid
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, tokenMAC(key, payload)) {
		return claims{}, errTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return claims{}, errTokenInvalid
	}
	var c claims
	if err := json.Unmarshal(b, &c); err != nil || c.App == "" || c.Merchant == "" {
		return claims{}, errTokenInvalid
	}
	if now.Unix() >= c.Expires {
		return claims{}, errTokenExpired
	}
	return c, nil
}

func tokenMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tokenContext))
	m.Write([]byte(payload))
	return m.Sum(nil)
}
