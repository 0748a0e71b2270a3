// Package clover is the Clover Export API dialect: the routes under
// /v3/merchants/{mId}/exports that Clover documents at
// docs.clover.com/docs/exporting-merchant-data (and in its
// export-api-examples repository), mapped onto the export engine, so that
// clients written for Clover work unchanged.
//
// What Clover documents and this dialect does:
//   - POST /v3/merchants/{mId}/exports {type ORDERS|PAYMENTS, startTime,
//     endTime} in epoch milliseconds, numbers or numeric strings (Clover's
//     own Python example sends strings, its C# example numbers). The body
//     is read as JSON whatever its Content-Type. The window is half-open,
//     [startTime, endTime), and at most 30 days.
//   - GET /v3/merchants/{mId}/exports/{exportId}: the export object {id,
//     type, status, percentComplete, startTime, endTime, createdTime,
//     modifiedTime, merchantRef {id}}, plus availableUntil and exportUrls
//     {elements: [{url, export {id}}]} once DONE. Keys come in the order of
//     Clover's examples: its C# example finds the id and status by position.
//   - Every path also answers with a trailing slash, which Clover's examples
//     use.
//   - Files hold at most 1000 objects ({"elements": [...]}, package
//     format/cloverjson); their URLs are absolute, signed and work with a
//     plain GET until availableUntil, 24 hours after the export finished.
//   - Too many exports, or outside service hours: 503 with a message and
//     Retry-After.
//
// Choices where Clover is silent:
//   - Statuses: QUEUED is PENDING, EXPORTING IN_PROGRESS, READY DONE and
//     FAILED FAILED. Clover documents nothing for an export that was
//     canceled or whose files expired; both are FAILED, without exportUrls,
//     so that a client that waits for DONE never mistakes missing files for
//     an empty export.
//   - GET /v3/merchants/{mId}/exports lists the app's Clover exports of the
//     merchant as {"elements": [...]}, Clover's collection shape. Clover's
//     export docs name no list and no delete; DELETE is 405 here.
//   - Exports made through another API (without the clover-json format) do
//     not exist in this dialect: 404.
//   - Errors are {"message": "..."}, the shape of Clover's REST errors,
//     with the status given by the table in errors.go. Auth failures are
//     401; a merchant that did not install the app, and another app's
//     export, are 404, never 403. A wrong method is 405 with Allow.
//   - Clover documents no error for an export that is not DONE yet, one
//     whose files expired, or an idempotency conflict: no route of this
//     dialect serves files or takes an Idempotency-Key, so none of them
//     arises today. Should the engine report one, Clover's own vocabulary
//     answers: 404 for not-DONE and expired (the export has no files, as a
//     client that reads exportUrls sees them), 409 for a conflict.
package clover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/internal/httpx"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// Engine is what the dialect asks of the export engine; *exports.Service
// implements it.
type Engine interface {
	Create(ctx context.Context, app postgres.App, spec exportd.Spec, idemKey string) (exportd.State, bool, error)
	Get(ctx context.Context, app postgres.App, id string) (exportd.State, error)
	List(ctx context.Context, app postgres.App, merchantID string, phase exportd.Phase, limit int) ([]exportd.State, error)
	CheckMerchant(ctx context.Context, app postgres.App, merchantID string) error
	Manifest(ctx context.Context, exportID string) (exportd.Manifest, error)
}

// Apps resolves access tokens, which are exportd API keys;
// exports.Access implements it.
type Apps interface {
	AppByAPIKey(ctx context.Context, key string) (postgres.App, error)
}

// Config holds the dialect's dependencies.
type Config struct {
	// Service is the export engine the routes map onto.
	Service Engine
	// Apps resolves access tokens to apps.
	Apps Apps
	// Signer signs the download URLs of DONE exports; nil leaves DONE
	// exports without usable URLs, an internal error.
	Signer *exports.Signer
	// PublicURL is the externally visible base URL of download links; empty
	// means derived from each request's Host.
	PublicURL string
	// Logger gets internal errors; nil means slog.Default.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxWindow bounds endTime - startTime; zero means Clover's 30 days.
	MaxWindow time.Duration
}

// DefaultMaxWindow is Clover's documented maximum time range of an export.
const DefaultMaxWindow = 30 * 24 * time.Hour

// maxBodyBytes bounds a create request; Clover's body is three fields.
const maxBodyBytes = 64 << 10

type handlers struct {
	Config
}

// Routes registers the Clover Export API on mux. The handlers need no
// middleware of the native API: they authenticate, limit bodies and write
// their own errors.
func Routes(mux *http.ServeMux, cfg Config) {
	h := &handlers{Config: cfg}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.MaxWindow <= 0 {
		h.MaxWindow = DefaultMaxWindow
	}
	collection := methods{h: h, m: map[string]handlerFunc{
		http.MethodGet:  h.authed(h.listExports),
		http.MethodPost: h.authed(h.createExport),
	}}
	one := methods{h: h, m: map[string]handlerFunc{http.MethodGet: h.authed(h.getExport)}}
	mux.Handle("/v3/merchants/{mId}/exports", collection)
	mux.Handle("/v3/merchants/{mId}/exports/{$}", collection)
	mux.Handle("/v3/merchants/{mId}/exports/{exportId}", one)
	mux.Handle("/v3/merchants/{mId}/exports/{exportId}/{$}", one)
	mux.Handle("/v3/", methods{h: h, fallback: func(w http.ResponseWriter, r *http.Request) error {
		return errNotFound
	}})
}

// handlerFunc is a handler that returns its error, written in Clover's
// error shape.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods dispatches by HTTP method, so that a wrong method gets a
// Clover-shaped 405 rather than the mux's plain text; fallback, when set,
// serves every method.
type methods struct {
	h        *handlers
	m        map[string]handlerFunc
	fallback handlerFunc
}

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := m.fallback
	if f == nil {
		var allow []string
		var ok bool
		if f, allow, ok = httpx.Method(w, r, m.m); !ok {
			m.h.writeError(w, r, &apiError{status: http.StatusMethodNotAllowed,
				message: fmt.Sprintf("405 Method Not Allowed: %s is not allowed here; use %s", r.Method, strings.Join(allow, " or "))})
			return
		}
	}
	if err := f(w, r); err != nil {
		m.h.writeError(w, r, err)
	}
}

type ctxKey int

const keyApp ctxKey = iota

// authed resolves the access token, an exportd API key, to an app and
// checks that the merchant in the path installed it, before calling next.
func (h *handlers) authed(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := httpx.Bearer(r.Header.Get("Authorization"))
		if !ok {
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			return errUnauthorized
		}
		app, err := h.Apps.AppByAPIKey(r.Context(), token)
		if errors.Is(err, postgres.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return fmt.Errorf("error authenticating: %w", err)
		}
		if err := h.Service.CheckMerchant(r.Context(), app, r.PathValue("mId")); err != nil {
			return err
		}
		return next(w, r.WithContext(context.WithValue(r.Context(), keyApp, app)))
	}
}

func appFrom(ctx context.Context) postgres.App {
	app, _ := ctx.Value(keyApp).(postgres.App)
	return app
}

// baseURL is the absolute URL prefix of download links.
func (h *handlers) baseURL(r *http.Request) string { return httpx.BaseURL(h.PublicURL, r) }
