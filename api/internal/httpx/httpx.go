// Package httpx holds what every API dialect does the same way: the base
// URL of links, dispatch by method with one Allow rule, Retry-After in
// whole seconds, bearer tokens, and the classification of an error into
// an *exportd.Error whose code each dialect looks up in its own table.
package httpx

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
)

// HTTP-level codes, beside the engine's exportd.Code* constants, that
// Classify gives and every dialect's table maps.
const (
	// CodeTooLarge: the request body is over the dialect's limit.
	CodeTooLarge = "request_too_large"
	// CodeMethodNotAllowed: the route exists, the method does not.
	CodeMethodNotAllowed = "method_not_allowed"
)

// canceledRetryAfter is the wait suggested when a request was canceled or
// timed out.
const canceledRetryAfter = 5 * time.Second

// BaseURL is the absolute URL prefix of links in responses: publicURL
// when configured, else derived from the request's Host and TLS.
func BaseURL(publicURL string, r *http.Request) string {
	if publicURL != "" {
		return strings.TrimRight(publicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Method returns the handler for r's method in m, GET serving HEAD too.
// When m has none it sets Allow on w, returns the allowed methods and
// false; the caller answers 405 in its dialect's shape.
func Method[H any](w http.ResponseWriter, r *http.Request, m map[string]H) (H, []string, bool) {
	if f, ok := m[r.Method]; ok {
		return f, nil, true
	}
	if f, ok := m[http.MethodGet]; ok && r.Method == http.MethodHead {
		return f, nil, true
	}
	allow := Allow(m)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	var zero H
	return zero, allow, false
}

// Allow lists the methods of m, sorted, with HEAD wherever GET is.
func Allow[H any](m map[string]H) []string {
	allow := make([]string, 0, len(m)+1)
	for k := range m {
		allow = append(allow, k)
	}
	if _, ok := m[http.MethodGet]; ok {
		if _, ok := m[http.MethodHead]; !ok {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	return allow
}

// RetryAfter renders a wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// Bearer returns the token of an "Authorization: Bearer <token>" header
// (the scheme in any case), and false when there is none.
func Bearer(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(auth), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// Classify returns err as an *exportd.Error whose code a dialect looks
// up: the engine's errors as they are, a *exportd.ValidationError as
// exportd.CodeInvalidRequest with its field, an over-long body as
// CodeTooLarge, and any failure of a request whose context has ended as
// exportd.CodeUnavailable. Anything else is exportd.CodeInternal: to be
// logged in full and never shown. A code missing from a dialect's table is
// internal too.
func Classify(r *http.Request, err error) *exportd.Error {
	var ve *exportd.ValidationError
	var mbe *http.MaxBytesError
	switch e := exportd.AsError(err); {
	case e != nil:
		return e
	case errors.As(err, &ve):
		return &exportd.Error{Code: exportd.CodeInvalidRequest, Field: ve.Field, Message: ve.Error(), Err: err}
	case errors.As(err, &mbe):
		return &exportd.Error{Code: CodeTooLarge, Message: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit), Err: err}
	case r.Context().Err() != nil:
		return &exportd.Error{Code: exportd.CodeUnavailable, Message: "the request was canceled or timed out", RetryAfter: canceledRetryAfter, Err: err}
	}
	return &exportd.Error{Code: exportd.CodeInternal, Message: "internal error", Err: err}
}
