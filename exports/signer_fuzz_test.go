package exports_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/exports"
)

// FuzzSigner signs an (export, file, expiry) triple and presents the
// signature for another triple that differs in one field or more: Verify
// must refuse it, and must accept the signed triple itself until it
// expires. Any query string at all must neither panic nor pass unless it
// holds the signature of exactly the triple asked for.
func FuzzSigner(f *testing.F) {
	f.Add("xabc", "orders-00000.parquet", int64(1_800_000_000), "xabd", "orders-00000.parquet", int64(1_800_000_000), "expires=1&signature=x")
	f.Add("xabc", "orders-00000.parquet", int64(1_800_000_000), "xabc", "orders-00001.parquet", int64(1_800_000_000), "")
	f.Add("xabc", "orders-00000.parquet", int64(1_800_000_000), "xabc", "orders-00000.parquet", int64(1_800_000_001), "expires=01800000000")
	f.Add("xabc", "orders-00000.parquet", int64(1_699_999_999), "xabc", "orders-00000.parquet", int64(1_699_999_999), "signature=&expires=")
	f.Add("a", "b\x00c", int64(1), "a\x00b", "c", int64(1), "expires=%00&signature=%ff")
	f.Add("k", "../../etc/passwd", int64(-1), "k", "..%2F..%2Fetc%2Fpasswd", int64(-1), "expires=9223372036854775808&signature=a&signature=b")
	now := time.Unix(1_700_000_000, 0)
	s := &exports.Signer{Key: []byte("fuzz signing key"), Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, id, name string, exp int64, id2, name2 string, exp2 int64, raw string) {
		q, err := url.ParseQuery(s.Query(id, name, time.Unix(exp, 0)))
		require.NoError(t, err)
		err = s.Verify(id, name, q)
		switch {
		case strings.ContainsRune(id, 0) || strings.ContainsRune(name, 0):
			require.ErrorIs(t, err, exports.ErrBadSignature, "NUL separates the signed fields")
		case exp > now.Unix():
			require.NoError(t, err)
		default:
			require.ErrorIs(t, err, exports.ErrExpiredURL)
		}

		// The signature for (id, name, exp) on another triple.
		forged := url.Values{"signature": q["signature"], "expires": {strconv.FormatInt(exp2, 10)}}
		if id2 != id || name2 != name || exp2 != exp {
			require.ErrorIs(t, s.Verify(id2, name2, forged), exports.ErrBadSignature, "(%q, %q, %d) passed for (%q, %q, %d)", id, name, exp, id2, name2, exp2)
		}
		// Another key never verifies.
		other := &exports.Signer{Key: []byte("another key"), Now: s.Now}
		require.ErrorIs(t, other.Verify(id, name, q), exports.ErrBadSignature)

		// Arbitrary query strings.
		g, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if err := s.Verify(id2, name2, g); err == nil || err == exports.ErrExpiredURL {
			e, perr := strconv.ParseInt(g.Get("expires"), 10, 64)
			require.NoError(t, perr)
			want, _ := url.ParseQuery(s.Query(id2, name2, time.Unix(e, 0)))
			require.Equal(t, want.Get("signature"), g.Get("signature"))
			require.Equal(t, want.Get("expires"), g.Get("expires"), "only the canonical expiry is signed")
		} else {
			require.ErrorIs(t, err, exports.ErrBadSignature)
		}
	})
}

// TestSignedURLs covers what the fuzz target does not: expiry against
// the injected clock to the second, and the limits on parameter size.
func TestSignedURLs(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	s := &exports.Signer{Key: []byte("k"), Now: func() time.Time { return clock }}
	until := now.Add(time.Hour)
	q, err := url.ParseQuery(s.Query("xabc", "orders-00000.csv.gz", until))
	require.NoError(t, err)
	require.NoError(t, s.Verify("xabc", "orders-00000.csv.gz", q))

	clock = until.Add(-time.Nanosecond)
	require.NoError(t, s.Verify("xabc", "orders-00000.csv.gz", q), "valid until the last instant before expiry")
	clock = until
	require.ErrorIs(t, s.Verify("xabc", "orders-00000.csv.gz", q), exports.ErrExpiredURL)
	clock = until.Add(30 * 24 * time.Hour)
	require.ErrorIs(t, s.Verify("xabc", "orders-00000.csv.gz", q), exports.ErrExpiredURL)
	clock = now

	for name, mutate := range map[string]func(url.Values){
		"no signature":        func(v url.Values) { v.Del("signature") },
		"no expiry":           func(v url.Values) { v.Del("expires") },
		"flipped signature":   func(v url.Values) { b := []byte(v.Get("signature")); b[0] ^= 1; v.Set("signature", string(b)) },
		"truncated signature": func(v url.Values) { v.Set("signature", v.Get("signature")[:10]) },
		"padded signature":    func(v url.Values) { v.Set("signature", v.Get("signature")+"=") },
		"later expiry":        func(v url.Values) { v.Set("expires", strconv.FormatInt(until.Unix()+86400, 10)) },
		"zero-padded expiry":  func(v url.Values) { v.Set("expires", "0"+v.Get("expires")) },
		"plus-signed expiry":  func(v url.Values) { v.Set("expires", "+"+v.Get("expires")) },
		"huge expiry":         func(v url.Values) { v.Set("expires", "99999999999999999999999") },
		"huge signature":      func(v url.Values) { v.Set("signature", string(make([]byte, 1<<16))) },
	} {
		v, _ := url.ParseQuery(q.Encode())
		mutate(v)
		require.ErrorIs(t, s.Verify("xabc", "orders-00000.csv.gz", v), exports.ErrBadSignature, name)
	}
	other, err := url.ParseQuery(s.Query("xabc", "orders-00001.csv.gz", until))
	require.NoError(t, err)
	require.ErrorIs(t, s.Verify("xabc", "orders-00000.csv.gz", other), exports.ErrBadSignature, "another file's signature")
	require.ErrorIs(t, s.Verify("xabd", "orders-00001.csv.gz", other), exports.ErrBadSignature, "another export's signature")
}
