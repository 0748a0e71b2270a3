package doshii

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd/api/internal/httpx"
	"github.com/exportd/exportd/postgres"
)

// Reasons a request is refused with 401. They name which header is wrong,
// never whether an app exists.
var (
	errNoCredentials = errors.New("send both an X-API-KEY header and 'Authorization: Bearer <JWT>'")
	errBadAPIKey     = errors.New("the X-API-KEY header is not valid: it must be the hex HMAC-SHA256 of the app's client id, keyed by its client secret, then ':' and the app id")
	errBadToken      = errors.New("the bearer token is not a valid HS256 JWT signed with the app's client secret and carrying its clientId")
	errStaleToken    = errors.New("the bearer token's timestamp is too far from now; make a fresh token for each request")
)

// maxTokenLen bounds the JWT before any decoding: a valid token is a few
// hundred bytes.
const maxTokenLen = 4096

// authenticate resolves the app of a request from both of Doshii's
// headers: X-API-KEY names the app and proves the secret with an HMAC of
// the client id, and the bearer JWT, signed with the same secret, carries
// the client id and a fresh timestamp. Any failure is an *apiError 401.
func (h *handlers) authenticate(r *http.Request) (postgres.App, error) {
	key := strings.TrimSpace(r.Header.Get("X-API-KEY"))
	token, hasToken := httpx.Bearer(r.Header.Get("Authorization"))
	if key == "" || !hasToken {
		return postgres.App{}, unauthorized(errNoCredentials)
	}
	mac, appID, ok := parseAPIKey(key)
	if !ok {
		return postgres.App{}, unauthorized(errBadAPIKey)
	}
	creds, err := h.Apps.AppByID(r.Context(), appID)
	if errors.Is(err, postgres.ErrNotFound) {
		return postgres.App{}, unauthorized(errBadAPIKey)
	}
	if err != nil {
		return postgres.App{}, fmt.Errorf("error looking up app: %w", err)
	}
	if !hmac.Equal(mac, APIKeyMAC(creds.ClientID, creds.ClientSecret)) {
		return postgres.App{}, unauthorized(errBadAPIKey)
	}
	if err := verifyToken(token, []byte(creds.ClientSecret), creds.ClientID, h.Now(), h.MaxClockSkew); err != nil {
		return postgres.App{}, unauthorized(err)
	}
	return creds.App, nil
}

// APIKeyMAC is the HMAC-SHA256 of clientID keyed by secret: the first half
// of Doshii's X-API-KEY, hex-encoded there.
func APIKeyMAC(clientID, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(clientID))
	return m.Sum(nil)
}

// parseAPIKey splits X-API-KEY into the MAC and the app id. Doshii's SDK
// and the spec send "<hex mac>:<app id>"; the pseudo-code on Doshii's
// Authorisation page shows "appId:hmac", so that order is accepted too.
// The MAC is told apart by being exactly 64 hex digits, which no app id
// of ours is.
func parseAPIKey(v string) (mac []byte, appID string, ok bool) {
	if len(v) > 512 {
		return nil, "", false
	}
	a, b, found := strings.Cut(v, ":")
	if !found {
		return nil, "", false
	}
	if m, err := decodeMAC(a); err == nil {
		mac, appID = m, b
	} else if m, err := decodeMAC(b); err == nil {
		mac, appID = m, a
	} else {
		return nil, "", false
	}
	if appID == "" || len(appID) > 128 || strings.ContainsAny(appID, ": \t") {
		return nil, "", false
	}
	return mac, appID, true
}

func decodeMAC(s string) ([]byte, error) {
	if len(s) != 2*sha256.Size {
		return nil, errors.New("not a sha256 mac")
	}
	return hex.DecodeString(s)
}

// jwtHeader is the part of a JOSE header this verifier reads.
type jwtHeader struct {
	Alg  string          `json:"alg"`
	Crit json.RawMessage `json:"crit"`
}

// jwtClaims are Doshii's claims; exp is honoured when a client adds it.
type jwtClaims struct {
	ClientID  *string      `json:"clientId"`
	Timestamp *json.Number `json:"timestamp"`
	Exp       *json.Number `json:"exp"`
}

// verifyToken checks a compact JWS the way Doshii's clients make it: the
// header's alg must be exactly HS256 (so "none", RS256 confusion and the
// rest are refused before any signature is read), the signature an
// HMAC-SHA256 with secret compared in constant time, the clientId claim
// the app's, and the timestamp (unix seconds) within skew of now.
func verifyToken(token string, secret []byte, clientID string, now time.Time, skew time.Duration) error {
	if len(token) > maxTokenLen {
		return errBadToken
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errBadToken
	}
	var hdr jwtHeader
	if err := decodeSegment(parts[0], &hdr); err != nil || hdr.Alg != "HS256" || hdr.Crit != nil {
		return errBadToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return errBadToken
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return errBadToken
	}
	var claims jwtClaims
	if err := decodeSegment(parts[1], &claims); err != nil || claims.ClientID == nil || claims.Timestamp == nil {
		return errBadToken
	}
	if subtle.ConstantTimeCompare([]byte(*claims.ClientID), []byte(clientID)) != 1 {
		return errBadToken
	}
	ts, err := seconds(*claims.Timestamp)
	if err != nil {
		return errBadToken
	}
	if math.Abs(float64(now.UnixMilli())/1000-ts) > skew.Seconds() {
		return fmt.Errorf("%w (allowed: %s either way)", errStaleToken, skew)
	}
	if claims.Exp != nil {
		exp, err := seconds(*claims.Exp)
		if err != nil || float64(now.Unix()) >= exp {
			return errStaleToken
		}
	}
	return nil
}

// decodeSegment decodes one base64url JSON segment of a JWT. Padding is
// tolerated because some hand-rolled encoders add it.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return fmt.Errorf("error decoding jwt segment: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("error decoding jwt segment: %w", err)
	}
	return nil
}

// seconds reads a NumericDate. Doshii's C# example sends a rounded double
// ("1539665129.0"), so fractions are allowed.
func seconds(n json.Number) (float64, error) {
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("not a number of seconds")
	}
	return v, nil
}
