package exports

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signer makes and checks signed download URLs: a plain GET works without
// credentials until the URL expires. The signature binds the export, the
// file name and the expiry, so none can be changed.
type Signer struct {
	Key []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Errors from Verify.
var (
	ErrBadSignature = errors.New("invalid signature")
	ErrExpiredURL   = errors.New("signed URL expired")
)

// Query returns the query string that signs exportID's file name until
// expires.
func (s *Signer) Query(exportID, name string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return url.Values{"expires": {exp}, "signature": {s.sign(exportID, name, exp)}}.Encode()
}

// Verify checks the expires and signature parameters of a request for
// exportID's file name.
func (s *Signer) Verify(exportID, name string, q url.Values) error {
	exp, sig := q.Get("expires"), q.Get("signature")
	if exp == "" || sig == "" || len(exp) > 20 || len(sig) > 100 {
		return ErrBadSignature
	}
	// NUL separates the signed fields, so a field holding one could pass
	// for another split of the same bytes: ("a\x00b", "c") for ("a", "b\x00c").
	if strings.ContainsRune(exportID, 0) || strings.ContainsRune(name, 0) {
		return ErrBadSignature
	}
	want := s.sign(exportID, name, exp)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return ErrBadSignature
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if now().Unix() >= secs {
		return ErrExpiredURL
	}
	return nil
}

func (s *Signer) sign(exportID, name, expires string) string {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte("exportd download v1\x00" + exportID + "\x00" + name + "\x00" + expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// DeriveKey derives a purpose-specific key from the master key, so one
// configured secret serves several uses without one's leak exposing the
// others.
func DeriveKey(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("exportd key derivation v1\x00" + purpose))
	return m.Sum(nil)
}
