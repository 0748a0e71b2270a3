// Package doshii is the Doshii dialect of exportd's API: Doshii's Partner
// API v3 data aggregation ("bulk data") endpoints under /partner/v3, so
// that clients written from Doshii's documentation work unchanged.
//
//	POST /partner/v3/data/{dataSet}                              create a request (dataSet orders)
//	GET  /partner/v3/data/{dataSet}/{requestId}                  its status document
//	GET  /partner/v3/data/{dataSet}/{requestId}/files/{name}     a file listed in it
//
// Every request carries both of Doshii's credentials (X-API-KEY and a
// bearer JWT, see authenticate); a request maps onto one export of the
// engine in package exports, written in the doshii-json.gzip format. The
// choices made where Doshii's documentation is silent are listed in
// README.md next to this file.
package doshii

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
	"github.com/exportd/exportd/postgres"
)

// BasePath is where Doshii's Partner API v3 lives, here as at Doshii.
const BasePath = "/partner/v3"

// DefaultMaxClockSkew bounds how far a JWT's timestamp may be from now.
// Doshii documents tokens as valid for 10 minutes; exportd halves that,
// as a stale token may be a replayed one, and clients make a fresh token
// per request anyway.
const DefaultMaxClockSkew = 5 * time.Minute

// maxBodyBytes bounds a request body; a valid one is well under 64 KiB.
const maxBodyBytes = 1 << 20

// Engine is what the dialect asks of the export engine; *exports.Service
// implements it.
type Engine interface {
	Create(ctx context.Context, app postgres.App, spec exportd.Spec, idemKey string) (exportd.State, bool, error)
	Get(ctx context.Context, app postgres.App, id string) (exportd.State, error)
	CheckMerchant(ctx context.Context, app postgres.App, merchantID string) error
	Manifest(ctx context.Context, exportID string) (exportd.Manifest, error)
	File(ctx context.Context, st exportd.State, name string) (exportd.FileInfo, error)
	ServeFile(w http.ResponseWriter, r *http.Request, exportID string, f exportd.FileInfo) error
	// ServiceHours names the hours a refusal outside them gives.
	ServiceHours() string
}

// Apps finds an app's credentials and a merchant's locations;
// exports.Access implements it.
type Apps interface {
	AppByID(ctx context.Context, appID string) (postgres.AppCredentials, error)
	LocationsByClassifier(ctx context.Context, merchantID string, classifiers []string) ([]string, error)
}

// Config holds the dialect's dependencies.
type Config struct {
	// Service is the export engine every request maps onto.
	Service Engine
	// Apps checks credentials and resolves classifiers.
	Apps Apps
	// PublicURL is the externally visible base URL for file URIs; empty
	// means derived from each request's Host.
	PublicURL string
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for JWT timestamps; nil means time.Now.
	Now func() time.Time
	// MaxClockSkew is the stale JWT timestamp bound; zero means
	// DefaultMaxClockSkew.
	MaxClockSkew time.Duration
}

type handlers struct {
	Config
}

// Routes registers the dialect's routes on mux, with a Doshii-shaped 404
// for any other path under BasePath.
func Routes(mux *http.ServeMux, cfg Config) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	h := &handlers{Config: cfg}
	mux.Handle(BasePath+"/data/{dataSet}", h.route(methods{http.MethodPost: h.create}))
	mux.Handle(BasePath+"/data/{dataSet}/{requestId}", h.route(methods{http.MethodGet: h.status}))
	mux.Handle(BasePath+"/data/{dataSet}/{requestId}/files/{name}", h.route(methods{http.MethodGet: h.file}))
	mux.Handle(BasePath+"/", h.route(nil))
}

// handlerFunc is a handler that returns its error, written in Doshii's
// error shape.
type handlerFunc func(w http.ResponseWriter, r *http.Request, app postgres.App) error

// methods dispatches by HTTP method; nil means no route.
type methods map[string]handlerFunc

// route authenticates every request, then dispatches it: unknown paths
// are 404 and wrong methods 405, both after authentication, so that
// nothing about the API answers an unauthenticated caller but 401.
func (h *handlers) route(m methods) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		app, err := h.authenticate(r)
		if err == nil {
			err = h.dispatch(w, r, m, app)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	})
}

func (h *handlers) dispatch(w http.ResponseWriter, r *http.Request, m methods, app postgres.App) error {
	if m == nil {
		return &apiError{status: http.StatusNotFound, code: codeNotFound, message: fmt.Sprintf("no resource at %s", r.URL.Path)}
	}
	f, allow, ok := httpx.Method(w, r, m)
	if !ok {
		return &apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
			message: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))}
	}
	return f(w, r, app)
}

// checkDataSet refuses every dataSet but orders, the only one Doshii
// supports.
func checkDataSet(r *http.Request) error {
	if ds := r.PathValue("dataSet"); ds != string(exportd.Orders) {
		return invalid("dataSet", fmt.Sprintf("dataSet %q is not supported; the supported value is %q", ds, exportd.Orders))
	}
	return nil
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request, app postgres.App) error {
	if err := checkDataSet(r); err != nil {
		return err
	}
	req, err := decodeCreate(r)
	if err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	// The install is checked before the classifier lookup, so that a
	// merchant's locations never answer for an app it did not install.
	if err := h.Service.CheckMerchant(r.Context(), app, spec.MerchantID); err != nil {
		return notFoundAs(err, fmt.Sprintf("no merchant %q has installed this app", spec.MerchantID))
	}
	if len(req.Classifiers) > 0 {
		if spec.Locations, err = h.classified(r.Context(), spec, req.Classifiers); err != nil {
			return err
		}
	}
	st, _, err := h.Service.Create(r.Context(), app, spec, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return notFoundAs(err, fmt.Sprintf("no merchant %q has installed this app", spec.MerchantID))
	}
	return writeJSON(w, http.StatusOK, Status{
		RequestID: st.Spec.ExportID, RequestCreatedAt: st.CreatedAt.Unix(), Status: StatusOf(st.Phase),
	})
}

// classified narrows an export to the merchant's locations of the given
// classifiers (and of the requested locations, when both are given).
func (h *handlers) classified(ctx context.Context, spec exportd.Spec, classifiers []string) ([]string, error) {
	ids, err := h.Apps.LocationsByClassifier(ctx, spec.MerchantID, classifiers)
	if err != nil {
		return nil, err
	}
	if len(spec.Locations) > 0 {
		ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(spec.Locations, id) })
	}
	if len(ids) == 0 {
		// An empty list would mean every location to the engine.
		msg := fmt.Sprintf("no location of merchant %q has any of the classifiers %q", spec.MerchantID, classifiers)
		if len(spec.Locations) > 0 {
			msg += " among the requested locations"
		}
		return nil, invalid("classifiers", msg)
	}
	return ids, nil
}

// request returns the export behind a request id, if it is a Doshii
// request the app may see: anything else is exportd.CodeNotFound.
func (h *handlers) request(r *http.Request, app postgres.App) (exportd.State, error) {
	if err := checkDataSet(r); err != nil {
		return exportd.State{}, err
	}
	id := r.PathValue("requestId")
	st, err := h.Service.Get(r.Context(), app, id)
	if err == nil && (st.Spec.Dataset != exportd.Orders || !slices.Contains(st.Spec.Formats, exportd.DoshiiJSON)) {
		err = exportd.Errorf(exportd.CodeNotFound, "export %q is not a Doshii request", id)
	}
	if err != nil {
		return st, notFoundAs(err, fmt.Sprintf("request %q not found", id))
	}
	return st, nil
}

func (h *handlers) status(w http.ResponseWriter, r *http.Request, app postgres.App) error {
	st, err := h.request(r, app)
	if err != nil {
		return err
	}
	var m *exportd.Manifest
	if st.Phase == exportd.PhaseReady {
		man, err := h.Service.Manifest(r.Context(), st.Spec.ExportID)
		switch {
		case exportd.ErrorCode(err) == exportd.CodeGone:
			// Expired between the describe and the read: no files.
		case err != nil:
			return err
		default:
			m = &man
		}
	}
	return writeJSON(w, http.StatusOK, StatusDocument(st, m, h.baseURL(r)))
}

func (h *handlers) file(w http.ResponseWriter, r *http.Request, app postgres.App) error {
	st, err := h.request(r, app)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	f, err := h.Service.File(r.Context(), st, name)
	if err == nil && f.Format != exportd.DoshiiJSON {
		err = exportd.Errorf(exportd.CodeNotFound, "file %q is not a Doshii file", name)
	}
	if err != nil {
		return notFoundAs(err, fmt.Sprintf("request %q has no file %q", st.Spec.ExportID, name))
	}
	return h.Service.ServeFile(w, r, st.Spec.ExportID, f)
}

// baseURL is the absolute URL prefix of file URIs.
func (h *handlers) baseURL(r *http.Request) string { return httpx.BaseURL(h.PublicURL, r) }

// Error codes of the errorCode field, one per HTTP status this dialect
// answers with.
const (
	codeInvalid          = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeGone             = "gone"
	codeTooLarge         = "request_too_large"
	codeTooMany          = "too_many_requests"
	codeUnavailable      = "service_unavailable"
	codeInternal         = "internal_error"
)

// ErrorBody is the dialect's error document. Doshii documents its status
// codes but not an error body, so this follows the shape Doshii's API is
// seen to answer with: a human message and a stable code.
type ErrorBody struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
	// Hours are the service hours, on a 503 outside them.
	Hours string `json:"hours,omitempty"`
}

// apiError is an error the handlers return to be written as an ErrorBody.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func unauthorized(err error) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: codeUnauthorized, message: err.Error()}
}

func invalid(field, message string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalid, message: field + ": " + message}
}

// notFoundAs gives a not_found error a message that names what the
// client asked for, without saying whether it exists for someone else.
func notFoundAs(err error, message string) error {
	if exportd.ErrorCode(err) == exportd.CodeNotFound {
		return &apiError{status: http.StatusNotFound, code: codeNotFound, message: message}
	}
	return err
}

// specFields renames the engine's validation fields to the request's.
var specFields = map[string]string{
	"merchantId": "doshiiId", "start": "range.start", "end": "range.end", "maxRowsPerFile": "fileSize",
	"callbackUrl": "webhook.url", "webhook": "webhook.url", "locations": "locations",
}

// engineErrors is the dialect's table of error codes (the engine's, and
// httpx's for the HTTP layer) to the statuses Doshii documents (400, 401,
// 404, 409, 500) and, for what Doshii leaves open, 410, 413, 429 and 503;
// a code missing here is internal.
var engineErrors = map[string]struct {
	status  int
	code    string
	message func(h *handlers, err error, e *exportd.Error) string
}{
	exportd.CodeInvalidRequest: {http.StatusBadRequest, codeInvalid, invalidMessage},
	exportd.CodeUnauthorized:   {http.StatusUnauthorized, codeUnauthorized, message},
	exportd.CodeNotFound:       {http.StatusNotFound, codeNotFound, fixed("not found")},
	exportd.CodeNotReady: {http.StatusNotFound, codeNotFound,
		fixed("the request is not complete; its files are listed once its status is complete")},
	exportd.CodeGone:                {http.StatusGone, codeGone, fixed("the files of this request have expired and were deleted")},
	exportd.CodeIdempotencyConflict: {http.StatusConflict, codeConflict, message},
	exportd.CodeOverLimit: {http.StatusTooManyRequests, codeTooMany, func(_ *handlers, _ error, e *exportd.Error) string {
		return "too many data requests are waiting: " + e.Message
	}},
	exportd.CodeOutsideHours: {http.StatusServiceUnavailable, codeUnavailable, message},
	exportd.CodeUnavailable:  {http.StatusServiceUnavailable, codeUnavailable, message},
	httpx.CodeTooLarge:       {http.StatusRequestEntityTooLarge, codeTooLarge, message},
}

func message(_ *handlers, _ error, e *exportd.Error) string { return e.Message }

func fixed(msg string) func(*handlers, error, *exportd.Error) string {
	return func(*handlers, error, *exportd.Error) string { return msg }
}

// invalidMessage starts with the field as the request names it.
func invalidMessage(_ *handlers, err error, e *exportd.Error) string {
	var ve *exportd.ValidationError
	if !errors.As(err, &ve) {
		return e.Message
	}
	field := ve.Field
	if f, ok := specFields[field]; ok {
		field = f
	}
	return invalid(field, ve.Reason).message
}

// writeError writes err in Doshii's error shape with the status
// engineErrors gives its code, and Retry-After when waiting helps. Errors
// that are not the client's are logged in full and shown as a request id.
func (h *handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var body ErrorBody
	if !errors.As(err, &ae) {
		e := httpx.Classify(r, err)
		if row, ok := engineErrors[e.Code]; ok {
			ae = &apiError{status: row.status, code: row.code, message: row.message(h, err, e)}
			if e.RetryAfter > 0 {
				w.Header().Set("Retry-After", httpx.RetryAfter(e.RetryAfter))
			}
			if e.Code == exportd.CodeOutsideHours {
				body.Hours = h.Service.ServiceHours()
			}
		} else {
			id := w.Header().Get("X-Request-Id")
			h.Logger.ErrorContext(r.Context(), "doshii request failed", "method", r.Method, "path", r.URL.Path, "error", err, "request_id", id)
			msg := "an internal error occurred"
			if id != "" {
				msg += "; quote request id " + id + " when reporting it"
			}
			ae = &apiError{status: http.StatusInternalServerError, code: codeInternal, message: msg}
		}
	}
	body.Message, body.ErrorCode = ae.message, ae.code
	_ = writeJSON(w, ae.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
