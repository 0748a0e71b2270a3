// Package webhook signs and delivers the webhooks that announce an
// export's completion, following the Standard Webhooks convention
// (https://www.standardwebhooks.com) so receivers can verify them with any
// of its libraries, and refusing to send them anywhere inside our network.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names as the Standard Webhooks spec spells them; receivers look
// them up case-insensitively, and HTTP/2 sends them lowercase anyway.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock when Verify is given none; it bounds replays.
const DefaultTolerance = 5 * time.Minute

// MinSecretLength is the shortest secret ParseSecret accepts, in bytes, as
// the Standard Webhooks spec requires of symmetric signing secrets.
const MinSecretLength = 24

// secretPrefix marks a serialized symmetric secret, so it is recognisable
// (and not mistaken for an asymmetric key) wherever it is pasted.
const secretPrefix = "whsec_"

// signatureVersion identifies HMAC-SHA256 signatures; others (v1a,
// ed25519) may share the header and are skipped by Verify.
const signatureVersion = "v1"

// ErrSignature is returned by Verify when no signature matches, or the
// headers that carry them are missing.
var ErrSignature = errors.New("no valid webhook signature")

// ErrTimestamp is returned by Verify when webhook-timestamp is malformed
// or too far from now, which is what makes captured webhooks unreplayable.
var ErrTimestamp = errors.New("webhook timestamp is malformed or outside the tolerance")

// Sign returns the webhook-signature entry for one message: "v1," and the
// base64 HMAC-SHA256 of "<id>.<unix seconds>.<body>". The id must not
// contain '.', or the signed content would be ambiguous; Send checks it.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	mac := sum(secret, id, strconv.FormatInt(ts.Unix(), 10), body)
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(mac)
}

// sum is the HMAC of the signed content; the timestamp is passed as the
// exact header text so that Verify signs what was received.
func sum(secret []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	_, _ = io.WriteString(m, id)
	_, _ = io.WriteString(m, ".")
	_, _ = io.WriteString(m, ts)
	_, _ = io.WriteString(m, ".")
	_, _ = m.Write(body)
	return m.Sum(nil)
}

// Verify checks a received webhook: the timestamp within tolerance of now
// (DefaultTolerance when tolerance is not positive) and at least one v1
// signature in webhook-signature made with secret. Several space-separated
// signatures are accepted so senders can rotate secrets without downtime.
func Verify(secret []byte, headers http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: empty secret", ErrSignature)
	}
	id, tsRaw := headers.Get(HeaderID), headers.Get(HeaderTimestamp)
	sigs := strings.Fields(strings.Join(headers.Values(HeaderSignature), " "))
	switch {
	case id == "":
		return fmt.Errorf("%w: missing %s header", ErrSignature, HeaderID)
	case tsRaw == "":
		return fmt.Errorf("%w: missing %s header", ErrTimestamp, HeaderTimestamp)
	case len(sigs) == 0:
		return fmt.Errorf("%w: missing %s header", ErrSignature, HeaderSignature)
	}
	ts, err := parseUnix(tsRaw)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %s from now", ErrTimestamp, tsRaw, d.Round(time.Second))
	}
	want := sum(secret, id, tsRaw, body)
	for _, s := range sigs {
		version, encoded, ok := strings.Cut(s, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}

// parseUnix reads webhook-timestamp strictly as decimal digits: a sign or
// spaces would make the signed text differ from the time it stands for.
func parseUnix(s string) (time.Time, error) {
	if len(s) > 18 || strings.TrimLeft(s, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("%w: %q is not unix seconds", ErrTimestamp, s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	return time.Unix(n, 0), nil
}

// FormatSecret serializes a signing secret as "whsec_<base64>", the form
// Standard Webhooks libraries expect to be handed.
func FormatSecret(secret []byte) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(secret)
}

// ParseSecret reads a "whsec_<base64>" secret. The prefix is required, so
// a raw or asymmetric key is never silently used as an HMAC key.
func ParseSecret(s string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("webhook secret must start with %q", secretPrefix)
	}
	secret, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("error decoding webhook secret: %w", err)
	}
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("webhook secret is %d bytes, want at least %d", len(secret), MinSecretLength)
	}
	return secret, nil
}
