package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ErrGone matches (with errors.Is) a 410 Gone answer: the receiver wants
// no more webhooks, so callers stop retrying and should stop sending.
var ErrGone = errors.New("webhook endpoint is gone")

// StatusError is a non-2xx answer from the receiver.
type StatusError struct {
	Status int
	// Location is where a 3xx pointed; it is reported, never followed.
	Location string
	// RetryAfter is the receiver's Retry-After on a retryable answer,
	// zero when it sent none, for callers that schedule the next attempt.
	RetryAfter time.Duration
	// Body is the start of the answer, at most 4 KiB, for diagnosis; it
	// is the receiver's text and is not put into Error.
	Body []byte
}

// Error names the status, and for a redirect where it pointed.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("webhook endpoint answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Location != "" {
		msg += fmt.Sprintf("; redirects are not followed, use %q as the URL if it is right", truncate(e.Location, 200))
	}
	return msg
}

// Is makes errors.Is(err, ErrGone) true for a 410 answer.
func (e *StatusError) Is(target error) bool {
	return target == ErrGone && e.Status == http.StatusGone
}

// permanentError marks a failure that sending the same message again
// cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// Retryable reports whether a failed Send may succeed if tried again: no
// answer, a timeout, 408, 429 or 5xx. Bad URLs, forbidden destinations,
// redirects, 410 and other 4xx are not; nor is a nil error.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	return !errors.As(err, &p)
}

// statusError classifies an answer as the Standard Webhooks spec suggests.
func statusError(resp *http.Response, body []byte, now time.Time) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	e := &StatusError{Status: code, Body: body}
	switch {
	case code >= 300 && code < 400:
		e.Location = resp.Header.Get("Location")
		return permanent(e)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
		return e
	default:
		return permanent(e)
	}
}

// retryAfter reads Retry-After as seconds or an HTTP date; anything else,
// or a time already past, is zero.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		return time.Duration(max(n, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// truncate shortens s to at most n bytes; callers quote the result, so a
// split rune shows as escapes rather than corrupting the message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
