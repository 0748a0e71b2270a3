package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/webhook"
)

// The test vector published with the Standard Webhooks reference
// libraries (libraries/go/webhook_test.go, TestWebhookSign).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorKey(t *testing.T) []byte {
	t.Helper()
	key, err := webhook.ParseSecret(vectorSecret)
	require.NoError(t, err)
	return key
}

// signed returns the headers a sender would put on (id, ts, body).
func signed(secret []byte, id string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, id, ts, body))
	return h
}

func TestSignPublishedVector(t *testing.T) {
	key := vectorKey(t)
	ts := time.Unix(vectorTS, 0)
	require.Equal(t, vectorSig, webhook.Sign(key, vectorID, ts, []byte(vectorBody)))

	h := signed(key, vectorID, ts, []byte(vectorBody))
	require.NoError(t, webhook.Verify(key, h, []byte(vectorBody), ts.Add(time.Minute), 0))
}

func TestSignIndependent(t *testing.T) {
	// Computed here from the spec's definition, not through the package.
	key := []byte("an independent secret of 32 byte")
	ts := time.Date(2026, 11, 23, 7, 0, 0, 500_000_000, time.UTC) // sub-second part is dropped
	body := []byte(`{"id":"x","status":"succeeded"}`)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("evt_1." + strconv.FormatInt(ts.Unix(), 10) + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	require.Equal(t, want, webhook.Sign(key, "evt_1", ts, body))
}

func TestVerify(t *testing.T) {
	key := vectorKey(t)
	other := []byte("another secret, at least 24 bytes")
	body := []byte(`{"status":"succeeded"}`)
	ts := time.Unix(1_800_000_000, 0)
	now := ts.Add(30 * time.Second)

	for _, tc := range []struct {
		name   string
		modify func(h http.Header) []byte // returns the body to verify
		now    time.Time
		secret []byte
		err    error
	}{
		{name: "valid"},
		{name: "tampered body", modify: func(http.Header) []byte { return []byte(`{"status":"failed"}`) }, err: webhook.ErrSignature},
		{name: "tampered id", modify: func(h http.Header) []byte { h.Set(webhook.HeaderID, "evt_2"); return body }, err: webhook.ErrSignature},
		{name: "tampered timestamp", modify: func(h http.Header) []byte {
			h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix()+1, 10))
			return body
		}, err: webhook.ErrSignature},
		{name: "wrong secret", secret: other, err: webhook.ErrSignature},
		{name: "stale", now: ts.Add(5*time.Minute + time.Second), err: webhook.ErrTimestamp},
		{name: "at the tolerance", now: ts.Add(5 * time.Minute)},
		{name: "from the future", now: ts.Add(-5*time.Minute - time.Second), err: webhook.ErrTimestamp},
		{name: "timestamp with sign", modify: func(h http.Header) []byte {
			h.Set(webhook.HeaderTimestamp, "+"+h.Get(webhook.HeaderTimestamp))
			return body
		}, err: webhook.ErrTimestamp},
		{name: "timestamp not a number", modify: func(h http.Header) []byte { h.Set(webhook.HeaderTimestamp, "soon"); return body }, err: webhook.ErrTimestamp},
		{name: "missing id", modify: func(h http.Header) []byte { h.Del(webhook.HeaderID); return body }, err: webhook.ErrSignature},
		{name: "missing timestamp", modify: func(h http.Header) []byte { h.Del(webhook.HeaderTimestamp); return body }, err: webhook.ErrTimestamp},
		{name: "missing signature", modify: func(h http.Header) []byte { h.Del(webhook.HeaderSignature); return body }, err: webhook.ErrSignature},
		{name: "empty secret", secret: []byte{}, err: webhook.ErrSignature},
		{name: "valid among several", modify: func(h http.Header) []byte {
			valid := h.Get(webhook.HeaderSignature)
			_, sig, _ := strings.Cut(valid, ",")
			h.Set(webhook.HeaderSignature, strings.Join([]string{
				webhook.Sign(other, "evt_1", ts, body), // an old secret, being rotated out
				"v1a," + sig,                           // another scheme: skipped, even if it decodes
				"v1,not-base64!",
				"garbage",
				valid,
			}, " "))
			return body
		}},
		{name: "several, none valid", modify: func(h http.Header) []byte {
			h.Set(webhook.HeaderSignature, webhook.Sign(other, "evt_1", ts, body)+" v2,"+strings.TrimPrefix(h.Get(webhook.HeaderSignature), "v1,"))
			return body
		}, err: webhook.ErrSignature},
		{name: "signatures split over header lines", modify: func(h http.Header) []byte {
			valid := h.Get(webhook.HeaderSignature)
			h.Set(webhook.HeaderSignature, webhook.Sign(other, "evt_1", ts, body))
			h.Add(webhook.HeaderSignature, valid)
			return body
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signed(key, "evt_1", ts, body)
			got := body
			if tc.modify != nil {
				got = tc.modify(h)
			}
			verifyNow := now
			if !tc.now.IsZero() {
				verifyNow = tc.now
			}
			secret := key
			if tc.secret != nil {
				secret = tc.secret
			}
			err := webhook.Verify(secret, h, got, verifyNow, 5*time.Minute)
			if tc.err == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.err)
		})
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	key := vectorKey(t)
	ts := time.Unix(1_800_000_000, 0)
	h := signed(key, "evt_1", ts, nil)
	require.NoError(t, webhook.Verify(key, h, nil, ts.Add(webhook.DefaultTolerance), 0))
	require.ErrorIs(t, webhook.Verify(key, h, nil, ts.Add(webhook.DefaultTolerance+time.Second), -1), webhook.ErrTimestamp)
}

func TestSecret(t *testing.T) {
	raw := []byte("0123456789abcdef01234567")
	s := webhook.FormatSecret(raw)
	require.Equal(t, "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", s)
	got, err := webhook.ParseSecret(s)
	require.NoError(t, err)
	require.Equal(t, raw, got)

	for _, bad := range []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",      // the prefix is required
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // an asymmetric key
		"whsec_not base64!",                     // not base64
		"whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 23))), // too short
		"whsec_",
	} {
		_, err := webhook.ParseSecret(bad)
		require.Error(t, err, bad)
	}
}
