package exportd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// ChangeCursor is what a change export's nextCursor says: the mark the
// next change export starts after, and whose chain it belongs to. It
// travels sealed (Cursors.Seal): a client can pass it on but not read or
// alter it, nor use it for another merchant, dataset or app.
type ChangeCursor struct {
	// Mark is the PostgreSQL snapshot the export read as of, in
	// pg_snapshot's text form.
	Mark       string  `json:"mark"`
	AppID      string  `json:"app,omitempty"`
	MerchantID string  `json:"merchant"`
	Dataset    Dataset `json:"dataset"`
	// ExportID is the export that issued the cursor, for logs.
	ExportID string `json:"export"`
}

// Cursors seals and opens change cursors with a key derived from the
// service's master key; the API and the workers must share it.
type Cursors struct {
	Key []byte
}

// cursorPrefix versions the sealed form.
const cursorPrefix = "c1."

// Seal returns c as an opaque, tamper-evident cursor:
// "c1.<base64url JSON>.<base64url HMAC-SHA256>".
func (cs Cursors) Seal(c ChangeCursor) string {
	body, _ := json.Marshal(c) // plain strings: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(body)
	return cursorPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(cs.mac(payload))
}

func (cs Cursors) mac(payload string) []byte {
	m := hmac.New(sha256.New, cs.Key)
	m.Write([]byte("exportd change cursor v1\x00" + payload))
	return m.Sum(nil)
}

// Open checks that cursor was sealed by this service for the merchant,
// dataset and app of spec and returns what it says. Every refusal is an
// invalid_request naming the field "cursor".
func (cs Cursors) Open(cursor string, spec Spec) (ChangeCursor, error) {
	refuse := func(reason string) (ChangeCursor, error) {
		return ChangeCursor{}, &ValidationError{Field: "cursor", Reason: reason}
	}
	if len(cs.Key) == 0 {
		return refuse("cannot be checked: the service has no cursor key")
	}
	rest, ok := strings.CutPrefix(cursor, cursorPrefix)
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || len(cursor) > MaxCursorLen {
		return refuse("is malformed: pass the nextCursor of a succeeded change export exactly as given")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, cs.mac(payload)) {
		return refuse("was not issued by this service, or was altered")
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	var c ChangeCursor
	if err == nil {
		err = json.Unmarshal(body, &c)
	}
	if err != nil || c.Mark == "" {
		return refuse("is malformed: pass the nextCursor of a succeeded change export exactly as given")
	}
	switch {
	case c.AppID != spec.AppID:
		return refuse("was issued to another app")
	case c.MerchantID != spec.MerchantID:
		return refuse("belongs to another merchant's change exports")
	case c.Dataset != spec.Dataset:
		return refuse("belongs to change exports of dataset " + string(c.Dataset) + ", not " + string(spec.Dataset))
	}
	return c, nil
}
