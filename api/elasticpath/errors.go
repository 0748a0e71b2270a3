package elasticpath

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/exports"
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

// classify turns an engine error into the error document's terms;
// unknown errors are internal and shown only as a request id.
func classify(err error) (*apiError, bool) {
	var ae *apiError
	var fe *FilterError
	var ve *exportd.ValidationError
	var mbe *http.MaxBytesError
	var le *exports.LimitError
	var he *exports.ServiceHoursError
	switch {
	case errors.As(err, &ae):
		return ae, true
	case errors.As(err, &fe):
		e := errorf(http.StatusBadRequest, "%s", fe.Error())
		if fe.Offset >= 0 {
			e.meta = map[string]any{"position": fe.Offset + 1}
		}
		return e, true
	case errors.As(err, &ve):
		return errorf(http.StatusBadRequest, "%s", ve.Error()), true
	case errors.Is(err, exports.ErrNotFound):
		return notFound(), true
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", mbe.Limit), true
	case errors.As(err, &le):
		e := errorf(http.StatusTooManyRequests, "too many jobs are waiting: %s", le.Error())
		e.header = map[string]string{"Retry-After": retryAfter(le.RetryAfter)}
		return e, true
	case errors.As(err, &he):
		e := errorf(http.StatusServiceUnavailable, "jobs are accepted during service hours only: %s", he.Hours)
		e.header = map[string]string{"Retry-After": retryAfter(he.RetryAfter)}
		return e, true
	}
	return nil, false
}

// retryAfter formats a Retry-After header in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
}

// writeError writes err as an error document. Internal errors are logged
// in full under the request id and shown as the request id alone.
func (h *handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := requestID(w)
	ae, ok := classify(err)
	if !ok {
		if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			ae = errorf(http.StatusServiceUnavailable, "the request was canceled or timed out")
		} else {
			h.logger.ErrorContext(r.Context(), "elastic path request failed", "method", r.Method, "path", r.URL.Path, "error", err, "request_id", id)
			ae = errorf(http.StatusInternalServerError, "There was an internal server error; you can report it with request id %s.", id)
		}
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
