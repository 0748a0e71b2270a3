// Package elasticpath is the Elastic Path Commerce Cloud dialect: the
// client-credentials token endpoint and the Exporter service's jobs API
// (order_export), mapped onto the export engine so that clients written
// from Elastic Path's documentation work unchanged. README.md in this
// directory lists the mappings and the choices behind them.
package elasticpath

import (
	"context"
	"crypto/rand"
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
	Manifest(ctx context.Context, exportID string) (exportd.Manifest, error)
}

// Apps checks client credentials and finds the store a token acts for;
// exports.Access implements it.
type Apps interface {
	VerifyClientSecret(ctx context.Context, clientID, secret string) (postgres.App, error)
	InstalledMerchants(ctx context.Context, appID string) ([]string, error)
}

// Config holds the dialect's dependencies.
type Config struct {
	// Service is the export engine every job maps onto.
	Service Engine
	// Apps checks the token endpoint's client credentials.
	Apps Apps
	// Signer signs the public file links of successful jobs; nil leaves
	// them empty.
	Signer *exports.Signer
	// PublicURL is the externally visible base URL for links; empty means
	// derived from each request's Host.
	PublicURL string
	// Logger gets internal errors, under the request id; nil means
	// slog.Default. Tokens and secrets never reach it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TokenKey signs access tokens; every replica needs the same key.
	// Empty means a random key per process, which only a single replica
	// can use.
	TokenKey []byte
}

// maxBodyBytes bounds request bodies: a job is a filter of at most 8 KB
// and a token request three short fields.
const maxBodyBytes = 64 << 10

// handlers serves the dialect's routes.
type handlers struct {
	Config
	logger *slog.Logger
}

// Routes registers the token endpoint, the jobs API and EP-shaped 404s
// for everything else under /v2/ and /oauth/.
func Routes(mux *http.ServeMux, cfg Config) {
	h := &handlers{Config: cfg, logger: cfg.Logger}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if len(h.TokenKey) == 0 {
		h.TokenKey = make([]byte, 32)
		_, _ = rand.Read(h.TokenKey)
		h.logger.Warn("no Elastic Path token key configured: tokens from this process work on no other replica")
	}
	mux.Handle("/oauth/access_token", h.methods(methods{http.MethodPost: h.accessToken}))
	jobs := h.methods(methods{http.MethodGet: h.authed(h.listJobs), http.MethodPost: h.authed(h.createJob)})
	mux.Handle("/v2/jobs", jobs)
	mux.Handle("/v2/jobs/{$}", jobs)
	mux.Handle("/v2/jobs/{id}", h.methods(methods{http.MethodGet: h.authed(h.getJob)}))
	mux.Handle("/v2/jobs/{id}/file", h.methods(methods{http.MethodGet: h.authed(h.getJobFile)}))
	notFound := h.methods(nil)
	mux.Handle("/v2/", notFound)
	mux.Handle("/oauth/", notFound)
}

// handlerFunc is a handler that returns its error, written as an Elastic
// Path error document.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods dispatches by HTTP method, so that a wrong method gets an
// EP-shaped 405 rather than the mux's plain text. Nil is a route that
// does not exist at all.
type methods map[string]handlerFunc

// methods wraps m with the request id, body limit and panic recovery every
// route shares.
func (h *handlers) methods(m methods) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestID(w)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.writeError(w, r, fmt.Errorf("panic: %v", p))
			}
		}()
		if m == nil {
			h.writeError(w, r, notFound())
			return
		}
		f, allow, ok := httpx.Method(w, r, m)
		if !ok {
			h.writeError(w, r, errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if err := f(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

type ctxKey struct{}

// session is who a request acts for, from its access token.
type session struct {
	app      postgres.App
	merchant string
}

func sessionFrom(ctx context.Context) session {
	s, _ := ctx.Value(ctxKey{}).(session)
	return s
}

// authed checks the bearer token before calling next. The token is
// verified by its MAC alone: no lookup, so any replica can serve it.
func (h *handlers) authed(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := httpx.Bearer(r.Header.Get("Authorization"))
		if !ok {
			return &apiError{status: http.StatusUnauthorized, title: titleTokenInvalid,
				detail: "send the access token from POST /oauth/access_token as 'Authorization: Bearer <access_token>'"}
		}
		c, err := verifyToken(h.TokenKey, token, h.Now())
		if err != nil {
			detail := "the access token is invalid; get a new one from POST /oauth/access_token"
			if errors.Is(err, errTokenExpired) {
				detail = "the access token has expired; get a new one from POST /oauth/access_token"
			}
			return &apiError{status: http.StatusUnauthorized, title: titleTokenInvalid, detail: detail}
		}
		s := session{app: postgres.App{ID: c.App}, merchant: c.Merchant}
		return next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}
}

// baseURL is the absolute URL prefix for links in responses.
func (h *handlers) baseURL(r *http.Request) string { return httpx.BaseURL(h.PublicURL, r) }
