package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
)

// Problem is an RFC 9457 problem detail, the native API's error format.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// Problem codes. Each has one status and title, in problems below; the
// type URI is derived from the code and is stable.
const (
	codeInvalidRequest   = exportd.CodeInvalidRequest
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeNotReady         = "not_ready"
	codeGone             = "gone"
	codeIdempotency      = "idempotency_key_reused"
	codeTooLarge         = "request_too_large"
	codeUnavailable      = "unavailable"
	codeTooMany          = "too_many_exports"
	codeOutsideHours     = "outside_service_hours"
	codeInternal         = exportd.CodeInternal
)

var problems = map[string]struct {
	status int
	title  string
}{
	codeInvalidRequest:   {http.StatusBadRequest, "Invalid request"},
	codeUnauthorized:     {http.StatusUnauthorized, "Missing or invalid API key"},
	codeNotFound:         {http.StatusNotFound, "Not found"},
	codeMethodNotAllowed: {http.StatusMethodNotAllowed, "Method not allowed"},
	codeNotReady:         {http.StatusConflict, "Export not ready"},
	codeGone:             {http.StatusGone, "Export expired"},
	codeIdempotency:      {http.StatusUnprocessableEntity, "Idempotency-Key reused with a different request"},
	codeTooLarge:         {http.StatusRequestEntityTooLarge, "Request body too large"},
	codeUnavailable:      {http.StatusServiceUnavailable, "Service unavailable"},
	codeTooMany:          {http.StatusTooManyRequests, "Too many exports waiting"},
	codeOutsideHours:     {http.StatusServiceUnavailable, "Outside service hours"},
	codeInternal:         {http.StatusInternalServerError, "Internal error"},
}

// problemType is the stable type URI of a problem code.
func problemType(code string) string {
	return "urn:exportd:problem:" + strings.ReplaceAll(code, "_", "-")
}

// apiError is an error the handlers return to be written as a problem.
type apiError struct {
	code   string
	detail string
	field  string
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, detail: fmt.Sprintf(format, args...)}
}

// engineProblems is the native API's table of error codes (the engine's,
// and httpx's for the HTTP layer) to problem codes; problems gives each
// its status and title. A code missing here is internal.
var engineProblems = map[string]string{
	exportd.CodeInvalidRequest:      codeInvalidRequest,
	exportd.CodeUnauthorized:        codeUnauthorized,
	exportd.CodeNotFound:            codeNotFound,
	exportd.CodeNotReady:            codeNotReady,
	exportd.CodeGone:                codeGone,
	exportd.CodeIdempotencyConflict: codeIdempotency,
	exportd.CodeOverLimit:           codeTooMany,
	exportd.CodeOutsideHours:        codeOutsideHours,
	exportd.CodeUnavailable:         codeUnavailable,
	httpx.CodeTooLarge:              codeTooLarge,
	httpx.CodeMethodNotAllowed:      codeMethodNotAllowed,
}

// writeProblem writes err as application/problem+json. Errors that are
// neither *apiError nor classified (httpx.Classify) are internal: logged
// in full, shown as a request id only.
func (h *handlers) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		e := httpx.Classify(r, err)
		code, ok := engineProblems[e.Code]
		if !ok {
			h.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err, "request_id", requestID(r))
			ae = errorf(codeInternal, "an internal error occurred; quote request id %s when reporting it", requestID(r))
		} else {
			ae = &apiError{code: code, detail: e.Message, field: e.Field}
			if e.RetryAfter > 0 {
				w.Header().Set("Retry-After", httpx.RetryAfter(e.RetryAfter))
			}
		}
	}
	p, ok := problems[ae.code]
	if !ok {
		p = problems[codeInternal]
	}
	if ae.code == codeUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: problemType(ae.code), Title: p.title, Status: p.status, Detail: ae.detail,
		Instance: r.URL.Path, Code: ae.code, Field: ae.field, RequestID: requestID(r),
	})
}

// decodeJSON reads a JSON body into v, turning the decoder's errors into
// messages that name the field and say what was expected.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errorf(codeInvalidRequest, "the body must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return errorf(codeInvalidRequest, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return &apiError{code: codeInvalidRequest, field: te.Field,
			detail: fmt.Sprintf("field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)}
	case errors.As(err, &pe):
		return errorf(codeInvalidRequest, "times must be RFC 3339, like 2024-01-31T00:00:00Z: %s", pe.Error())
	case errors.Is(err, io.EOF):
		return errorf(codeInvalidRequest, "the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(codeInvalidRequest, "the JSON body is truncated")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiError{code: codeInvalidRequest, field: f, detail: fmt.Sprintf("unknown field %q", f)}
	}
	return errorf(codeInvalidRequest, "invalid JSON body: %s", err.Error())
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string", strings.HasSuffix(goType, "Dataset"), strings.HasSuffix(goType, "Format"):
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "bool":
		return "a boolean"
	}
	return "a " + goType
}
