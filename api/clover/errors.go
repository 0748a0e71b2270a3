package clover

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/exports"
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

// writeError writes err in Clover's error shape. Errors the client cannot
// act on are logged in full and answered with a generic 500; the log line
// has the path but never the query, which may hold an access token.
func (h *handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		var ve *exportd.ValidationError
		var le *exports.LimitError
		var she *exports.ServiceHoursError
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, exports.ErrNotFound):
			ae = errNotFound
		case errors.As(err, &ve):
			ae = badRequest("%s", ve.Error())
		case errors.As(err, &le):
			ae = &apiError{status: http.StatusServiceUnavailable, retryAfter: le.RetryAfter,
				message: "503 Service Unavailable: too many exports are running; wait for yours to finish and retry (" + le.Reason + ")"}
		case errors.As(err, &she):
			ae = &apiError{status: http.StatusServiceUnavailable, retryAfter: she.RetryAfter,
				message: "503 Service Unavailable: exports are accepted only during service hours (UTC): " + she.Hours}
		case errors.As(err, &mbe):
			ae = &apiError{status: http.StatusRequestEntityTooLarge, message: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
		case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
			ae = &apiError{status: http.StatusServiceUnavailable, retryAfter: 5 * time.Second, message: "503 Service Unavailable: the request was canceled or timed out"}
		default:
			h.Logger.ErrorContext(r.Context(), "clover request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			ae = &apiError{status: http.StatusInternalServerError, message: "500 Internal Server Error"}
		}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(ae.retryAfter.Seconds())), 10))
	}
	writeJSON(w, ae.status, Error{Message: ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
