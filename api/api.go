// Package api is exportd's HTTP API: a thin mapping of requests onto
// export workflows and of workflow state onto status documents.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/api/clover"
	"github.com/exportd/exportd/api/doshii"
	"github.com/exportd/exportd/api/elasticpath"
	"github.com/exportd/exportd/api/internal/httpx"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/postgres"
)

// Config holds the API's dependencies.
type Config struct {
	// Service is the export engine every route maps onto.
	Service *exports.Service
	Logger  *slog.Logger
	// PublicURL is the externally visible base URL, used for absolute
	// links; empty means derived from each request's Host.
	PublicURL string
	// Ready reports whether the dependencies answer, for /readyz.
	Ready func(ctx context.Context) error
	// MaxBodyBytes bounds request bodies; zero means 1 MiB.
	MaxBodyBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TokenKey signs the Elastic Path dialect's access tokens; derived
	// from the master key so that every replica accepts every token.
	TokenKey []byte
	// Metrics records request metrics and is served at /metrics; nil
	// records nothing and serves no /metrics.
	Metrics *metrics.Registry
}

type handlers struct {
	Config
	logger *slog.Logger
	engine engine
	apps   apps
	signer *exports.Signer
}

// engine is what the native routes ask of the export engine;
// *exports.Service implements it.
type engine interface {
	Create(ctx context.Context, app postgres.App, spec exportd.Spec, idemKey string) (exportd.State, bool, error)
	Get(ctx context.Context, app postgres.App, id string) (exportd.State, error)
	Lookup(ctx context.Context, id string) (exportd.State, error)
	List(ctx context.Context, app postgres.App, merchantID string, phase exportd.Phase, limit int) ([]exportd.State, error)
	Cancel(ctx context.Context, app postgres.App, id string) (exportd.State, error)
	Extend(ctx context.Context, app postgres.App, id string, until time.Time) (exportd.State, error)
	Files(ctx context.Context, st exportd.State, cursor string, limit int) ([]exportd.FileInfo, string, error)
	File(ctx context.Context, st exportd.State, name string) (exportd.FileInfo, error)
	ServeFile(w http.ResponseWriter, r *http.Request, exportID string, f exportd.FileInfo) error
	ServeManifest(w http.ResponseWriter, r *http.Request, exportID string) error
	// Schedules of change exports.
	CreateSchedule(ctx context.Context, app postgres.App, req exports.ScheduleRequest) (exports.ScheduleState, error)
	Schedule(ctx context.Context, app postgres.App, id string, runs int) (exports.ScheduleState, error)
	ListSchedules(ctx context.Context, app postgres.App) ([]exports.ScheduleState, error)
	PauseSchedule(ctx context.Context, app postgres.App, id string, paused bool, note string) (exports.ScheduleState, error)
	DeleteSchedule(ctx context.Context, app postgres.App, id string) error
}

// apps resolves the native API's keys; exports.Access implements it.
type apps interface {
	AppByAPIKey(ctx context.Context, key string) (postgres.App, error)
}

// Router returns the API's handler.
func Router(cfg Config) http.Handler {
	h := &handlers{Config: cfg, logger: cfg.Logger, engine: cfg.Service, apps: cfg.Service.Access, signer: cfg.Service.Signer}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.MaxBodyBytes == 0 {
		h.MaxBodyBytes = 1 << 20
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/exports", methods{"GET": h.authed(h.listExports), "POST": h.authed(h.createExport)})
	mux.Handle("/v1/exports/{id}", methods{"GET": h.authed(h.getExport), "DELETE": h.authed(h.deleteExport), "PATCH": h.authed(h.patchExport)})
	mux.Handle("/v1/exports/{id}/manifest", methods{"GET": h.authed(h.getManifest)})
	// Files take an API key or a signed URL; getFile checks either.
	mux.Handle("/v1/exports/{id}/files", methods{"GET": h.authed(h.listFiles)})
	mux.Handle("/v1/exports/{id}/files/{name}", methods{"GET": h.getFile})
	mux.Handle("/v1/schedules", methods{"GET": h.authed(h.listSchedules), "POST": h.authed(h.createSchedule)})
	mux.Handle("/v1/schedules/{id}", methods{"GET": h.authed(h.getSchedule), "PATCH": h.authed(h.patchSchedule), "DELETE": h.authed(h.deleteSchedule)})
	mux.Handle("/healthz", methods{"GET": h.healthz})
	mux.Handle("/readyz", methods{"GET": h.readyz})
	mux.Handle("/openapi.json", methods{"GET": h.openapi})
	if cfg.Metrics != nil {
		mux.Handle("/metrics", methods{"GET": serveHandler(cfg.Metrics.Handler())})
	}
	// Each dialect gets the engine and, for its credentials, the access
	// store, seen through the narrow interfaces it declares.
	svc := cfg.Service
	elasticpath.Routes(mux, elasticpath.Config{Service: svc, Apps: svc.Access, Signer: svc.Signer, PublicURL: cfg.PublicURL, Logger: h.logger, Now: cfg.Now, TokenKey: cfg.TokenKey})
	clover.Routes(mux, clover.Config{Service: svc, Apps: svc.Access, Signer: svc.Signer, PublicURL: cfg.PublicURL, Logger: h.logger})
	doshii.Routes(mux, doshii.Config{Service: svc, Apps: svc.Access, PublicURL: cfg.PublicURL, Logger: h.logger})
	mux.Handle("/", handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(codeNotFound, "no route for %s", r.URL.Path)
	}))
	return h.middleware(mux)
}

// handlerFunc is a handler that returns its error, written as a problem.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods dispatches by HTTP method, so a wrong method gets a problem
// document rather than the mux's plain-text 405.
type methods map[string]handlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := requestHandlers(r)
	f, _, ok := httpx.Method(w, r, m)
	if !ok {
		h.writeProblem(w, r, errorf(codeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	if err := f(w, r); err != nil {
		h.writeProblem(w, r, err)
	}
}

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		requestHandlers(r).writeProblem(w, r, err)
	}
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyHandlers
	keyApp
	keyInfo
)

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(keyRequestID).(string)
	return id
}

func requestHandlers(r *http.Request) *handlers {
	return r.Context().Value(keyHandlers).(*handlers)
}

// middleware gives every request an id, a bounded body, a log line, and
// turns a panic into a problem document instead of a dropped connection.
func (h *handlers) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyHandlers, h)
		info := &requestInfo{}
		ctx = context.WithValue(ctx, keyInfo, info)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", id)
		r.Body = http.MaxBytesReader(w, r.Body, h.MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.logger.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(p), "path", r.URL.Path, "request_id", id)
				if sw.status == 0 {
					h.writeProblem(sw, r, errorf(codeInternal, "an internal error occurred; quote request id %s when reporting it", id))
				}
			}
			h.observe(ctx, r, sw, info, time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status and size of a response for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (h *handlers) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handlers) readyz(w http.ResponseWriter, r *http.Request) error {
	if h.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := h.Ready(ctx); err != nil {
			h.logger.WarnContext(ctx, "not ready", "error", err)
			return errorf(codeUnavailable, "a dependency is not answering: %v", err)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// baseURL is the absolute URL prefix for links in responses.
func (h *handlers) baseURL(r *http.Request) string { return httpx.BaseURL(h.PublicURL, r) }

func withApp(ctx context.Context, app postgres.App) context.Context {
	if info, ok := ctx.Value(keyInfo).(*requestInfo); ok {
		info.appID = app.ID // for the request's log line
	}
	return context.WithValue(ctx, keyApp, app)
}

func appFrom(ctx context.Context) postgres.App {
	app, _ := ctx.Value(keyApp).(postgres.App)
	return app
}
