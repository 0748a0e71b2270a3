package webhook

import (
	"fmt"
	"net/http"
	"strings"
)

// Limits on client-requested headers, generous for tokens and JWTs yet
// small enough that a webhook request stays an ordinary one. The count
// matches what exportd.Spec accepts.
const (
	maxHeaders     = 50
	maxHeaderName  = 256
	maxHeaderValue = 4096
)

// reservedHeaders are set by Send or frame the request; letting a client
// set them would forge signatures, mislabel the body or confuse proxies.
var reservedHeaders = map[string]bool{
	"Content-Type":      true,
	"Content-Length":    true,
	"Content-Encoding":  true,
	"Transfer-Encoding": true,
	"Host":              true,
	"Connection":        true,
	"Keep-Alive":        true,
	"Upgrade":           true,
	"Te":                true,
	"Trailer":           true,
	"Expect":            true,
	"User-Agent":        true,
}

// reserved reports whether name is one of ours, in any letter case.
func reserved(name string) bool {
	c := http.CanonicalHeaderKey(strings.TrimSpace(name))
	return reservedHeaders[c] || strings.HasPrefix(c, "Webhook-") || strings.HasPrefix(c, "Proxy-")
}

// ValidateHeaders checks the extra headers a client asks webhooks to
// carry, at request time, so that a bad one is refused then instead of
// failing every delivery later. Send itself drops reserved names.
func ValidateHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return fmt.Errorf("%d webhook headers, at most %d allowed", len(h), maxHeaders)
	}
	seen := make(map[string]string, len(h))
	for name, value := range h {
		if reserved(name) {
			return fmt.Errorf("webhook header %q is set by exportd and cannot be given", name)
		}
		if err := checkHeader(name, value); err != nil {
			return err
		}
		c := http.CanonicalHeaderKey(name)
		if other, ok := seen[c]; ok {
			return fmt.Errorf("webhook headers %q and %q differ only in case", other, name)
		}
		seen[c] = name
	}
	return nil
}

// checkHeader enforces RFC 9110's syntax, which net/http would otherwise
// enforce only when sending, as a failure indistinguishable from a
// network error that would be retried forever.
func checkHeader(name, value string) error {
	if name == "" || len(name) > maxHeaderName {
		return fmt.Errorf("webhook header name must be 1 to %d characters", maxHeaderName)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("webhook header name %q contains %q", name, name[i])
		}
	}
	if len(value) > maxHeaderValue {
		return fmt.Errorf("webhook header %q is longer than %d bytes", name, maxHeaderValue)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("webhook header %q contains a control character", name)
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in a header name (RFC 9110
// tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
