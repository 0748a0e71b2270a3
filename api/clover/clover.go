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
//   - Too many exports, or outside service hours: 503 with a message.
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
//   - Errors are {"message": "..."}, the shape of Clover's REST errors.
//     Auth failures are 401; a merchant that did not install the app, and
//     another app's export, are 404, never 403.
package clover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
)

// Config holds the dialect's dependencies.
type Config struct {
	// Service is the export engine the routes map onto.
	Service *exports.Service
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
		var ok bool
		if f, ok = m.m[r.Method]; !ok && r.Method == http.MethodHead {
			f, ok = m.m[http.MethodGet]
		}
		if !ok {
			allow := make([]string, 0, len(m.m))
			for k := range m.m {
				allow = append(allow, k)
			}
			sort.Strings(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
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
		token := bearer(r.Header.Get("Authorization"))
		if token == "" {
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			return errUnauthorized
		}
		app, err := h.Service.Access.AppByAPIKey(r.Context(), token)
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

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(auth string) string {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func appFrom(ctx context.Context) postgres.App {
	app, _ := ctx.Value(keyApp).(postgres.App)
	return app
}

// baseURL is the absolute URL prefix of download links.
func (h *handlers) baseURL(r *http.Request) string {
	if h.PublicURL != "" {
		return strings.TrimRight(h.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
