package clover

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
)

// Error is the body of every error response: Clover's REST API answers
// errors with a bare {"message": ...}.
type Error struct {
	Message string `json:"message"`
}

// apiError is an error the handlers return to be written with its status.
type apiError struct {
	status     int
	message    string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = &apiError{status: http.StatusUnauthorized,
		message: "401 Unauthorized: send an API key as 'Authorization: Bearer <key>' or '?access_token=<key>'"}
	errNotFound = &apiError{status: http.StatusNotFound, message: "404 Not Found"}
)

// engineErrors is the dialect's table of error codes (the engine's, and
// httpx's for the HTTP layer) to Clover's statuses and messages; a code
// missing here is internal. The message names the status first, as
// Clover's do.
var engineErrors = map[string]struct {
	status  int
	message func(e *exportd.Error) string
}{
	exportd.CodeInvalidRequest: {http.StatusBadRequest, func(e *exportd.Error) string { return e.Message }},
	exportd.CodeUnauthorized:   {http.StatusUnauthorized, func(*exportd.Error) string { return errUnauthorized.message }},
	exportd.CodeNotFound:       {http.StatusNotFound, func(*exportd.Error) string { return errNotFound.message }},
	exportd.CodeNotReady: {http.StatusNotFound, func(*exportd.Error) string {
		return "404 Not Found: the export is not DONE yet; its exportUrls are listed once it is"
	}},
	exportd.CodeGone: {http.StatusNotFound, func(*exportd.Error) string {
		return "404 Not Found: the export's files have expired and were deleted"
	}},
	exportd.CodeIdempotencyConflict: {http.StatusConflict, func(e *exportd.Error) string { return "409 Conflict: " + e.Message }},
	exportd.CodeOverLimit: {http.StatusServiceUnavailable, func(e *exportd.Error) string {
		return "503 Service Unavailable: too many exports are running; wait for yours to finish and retry (" + e.Message + ")"
	}},
	exportd.CodeOutsideHours: {http.StatusServiceUnavailable, func(e *exportd.Error) string { return "503 Service Unavailable: " + e.Message }},
	exportd.CodeUnavailable:  {http.StatusServiceUnavailable, func(e *exportd.Error) string { return "503 Service Unavailable: " + e.Message }},
	httpx.CodeTooLarge:       {http.StatusRequestEntityTooLarge, func(e *exportd.Error) string { return e.Message }},
}

// writeError writes err in Clover's error shape. Errors the client cannot
// act on are logged in full and answered with a generic 500; the log line
// has the path but never the query, which may hold an access token.
func (h *handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		e := httpx.Classify(r, err)
		if row, ok := engineErrors[e.Code]; ok {
			ae = &apiError{status: row.status, message: row.message(e), retryAfter: e.RetryAfter}
		} else {
			h.Logger.ErrorContext(r.Context(), "clover request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			ae = &apiError{status: http.StatusInternalServerError, message: "500 Internal Server Error"}
		}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", httpx.RetryAfter(ae.retryAfter))
	}
	writeJSON(w, ae.status, Error{Message: ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
