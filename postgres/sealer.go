package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the length of the master key: AES-256.
const MasterKeySize = 32

// sealVersion leads every sealed value, so that a later key rotation can
// tell old values from new ones.
const sealVersion = 1

// Sealer encrypts secrets at rest with AES-256-GCM under the master key.
// Each value is bound to a context (such as the row it belongs to), so a
// sealed value copied to another row does not open there.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("error creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("error creating cipher: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// ParseMasterKey decodes a master key written as 64 hex digits or as
// base64 (standard or URL alphabet, padded or not) of 32 bytes, the forms
// `openssl rand -hex 32` and `openssl rand -base64 32` print.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*MasterKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == MasterKeySize {
			return b, nil
		}
	}
	// The key itself stays out of the message: errors end up in logs.
	return nil, fmt.Errorf("master key must be %d bytes as hex or base64 (got %d characters)", MasterKeySize, len(s))
}

// Seal encrypts plaintext bound to context.
func (s *Sealer) Seal(plaintext, context []byte) []byte {
	n := s.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) // never fails since Go 1.24
	return s.aead.Seal(out, out[1:], plaintext, context)
}

// Open decrypts a value made by Seal with the same key and context.
func (s *Sealer) Open(sealed, context []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("sealed value is malformed")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], context)
	if err != nil {
		return nil, errors.New("sealed value does not open: wrong master key or tampered value")
	}
	return plain, nil
}
