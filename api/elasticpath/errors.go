package elasticpath

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
)

// ErrorObject is one entry of an Elastic Path error document. Status is a
// number, as in the Exporter API's schema and the errors guide.
type ErrorObject struct {
	Status    int            `json:"status"`
	Title     string         `json:"title"`
	Detail    string         `json:"detail,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Meta      map[string]any `json:"meta,omitempty"`
}

// ErrorDocument is the body of every error response:
// {"errors": [{status, title, detail, request_id, meta}]}.
type ErrorDocument struct {
	Errors []ErrorObject `json:"errors"`
}

// apiError is an error a handler returns to be written as an error
// document with its status; anything else is a 500.
type apiError struct {
	status int
	title  string
	detail string
	meta   map[string]any
	header map[string]string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.title, e.detail) }

// Titles, as Elastic Path words them.
var titles = map[int]string{
	http.StatusBadRequest:            "Bad Request",
	http.StatusUnauthorized:          "Unauthorized",
	http.StatusForbidden:             "Forbidden",
	http.StatusNotFound:              "Resource Not Found",
	http.StatusMethodNotAllowed:      "Method Not Allowed",
	http.StatusConflict:              "Conflict",
	http.StatusRequestEntityTooLarge: "Request Entity Too Large",
	http.StatusUnprocessableEntity:   "Unprocessable Entity",
	http.StatusTooManyRequests:       "Too Many Requests",
	http.StatusInternalServerError:   "Internal Server Error",
	http.StatusServiceUnavailable:    "Service Unavailable",
}

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, title: titles[status], detail: fmt.Sprintf(format, args...)}
}

// titleTokenInvalid is Elastic Path's title for a 401 on a bad token.
const titleTokenInvalid = "Unable to validate access token"

// notFound is the one 404 for anything the client may not see, whether or
// not it exists for someone else, so tenants cannot probe.
func notFound() *apiError {
	return errorf(http.StatusNotFound, "The resource you are requesting does not exist")
}

// engineErrors is the dialect's table of error codes (the engine's, and
// httpx's for the HTTP layer) to Elastic Path's statuses and details; a
// code missing here is internal. Elastic Path has no 410 and no
// Idempotency-Key: a job without its file is the 422 that GET
// /v2/jobs/{id}/file answers for one, and a conflict is the 409 its
// errors guide gives for a duplicate.
var engineErrors = map[string]struct {
	status int
	detail func(e *exportd.Error) string
}{
	exportd.CodeInvalidRequest: {http.StatusBadRequest, func(e *exportd.Error) string { return e.Message }},
	exportd.CodeUnauthorized:   {http.StatusUnauthorized, func(e *exportd.Error) string { return e.Message }},
	exportd.CodeNotFound:       {http.StatusNotFound, func(*exportd.Error) string { return notFound().detail }},
	exportd.CodeNotReady: {http.StatusUnprocessableEntity, func(*exportd.Error) string {
		return "Job has no file to download. The job has not succeeded yet"
	}},
	exportd.CodeGone: {http.StatusUnprocessableEntity, func(*exportd.Error) string {
		return "Job has no file to download. The job expired and its file was deleted"
	}},
	exportd.CodeIdempotencyConflict: {http.StatusConflict, func(e *exportd.Error) string { return e.Message }},
	exportd.CodeOverLimit:           {http.StatusTooManyRequests, func(e *exportd.Error) string { return "too many jobs are waiting: " + e.Message }},
	exportd.CodeOutsideHours:        {http.StatusServiceUnavailable, func(e *exportd.Error) string { return e.Message }},
	exportd.CodeUnavailable:         {http.StatusServiceUnavailable, func(e *exportd.Error) string { return e.Message }},
	httpx.CodeTooLarge:              {http.StatusRequestEntityTooLarge, func(e *exportd.Error) string { return e.Message }},
}

// classify turns an error into the error document's terms: the dialect's
// own errors as they are, the engine's through engineErrors. Unknown
// errors are internal, false, and shown only as a request id.
func classify(r *http.Request, err error) (*apiError, bool) {
	var ae *apiError
	var fe *FilterError
	switch {
	case errors.As(err, &ae):
		return ae, true
	case errors.As(err, &fe):
		e := errorf(http.StatusBadRequest, "%s", fe.Error())
		if fe.Offset >= 0 {
			e.meta = map[string]any{"position": fe.Offset + 1}
		}
		return e, true
	}
	e := httpx.Classify(r, err)
	row, ok := engineErrors[e.Code]
	if !ok {
		return nil, false
	}
	ae = errorf(row.status, "%s", row.detail(e))
	if e.RetryAfter > 0 {
		ae.header = map[string]string{"Retry-After": httpx.RetryAfter(e.RetryAfter)}
	}
	return ae, true
}

// writeError writes err as an error document. Internal errors are logged
// in full under the request id and shown as the request id alone.
func (h *handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := requestID(w)
	ae, ok := classify(r, err)
	if !ok {
		h.logger.ErrorContext(r.Context(), "elastic path request failed", "method", r.Method, "path", r.URL.Path, "error", err, "request_id", id)
		ae = errorf(http.StatusInternalServerError, "There was an internal server error; you can report it with request id %s.", id)
	}
	for k, v := range ae.header {
		w.Header().Set(k, v)
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="exportd"`)
	}
	writeJSON(w, ae.status, ErrorDocument{Errors: []ErrorObject{{
		Status: ae.status, Title: ae.title, Detail: ae.detail, RequestID: id, Meta: ae.meta,
	}}})
}

// requestID is the id of this request: the one the API's middleware put
// in X-Request-Id, so logs and error documents agree, or a new one.
func requestID(w http.ResponseWriter) string {
	if id := w.Header().Get("X-Request-Id"); id != "" {
		return id
	}
	id := newUUID()
	w.Header().Set("X-Request-Id", id)
	return id
}

// newUUID returns a random (version 4) UUID, the shape of Elastic Path's
// request ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // signed URLs keep their '&'
	_ = enc.Encode(v)
}
