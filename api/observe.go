package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// requestInfo carries what handlers learn about a request to its log
// line: handlers see copies of the request, so the middleware shares this
// through the context instead.
type requestInfo struct {
	appID string
}

// quietRoutes are probed and scraped every few seconds; their successful
// requests log at debug level so they do not drown the access log.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe records a served request's metrics and writes its log line.
// Both name the route by its mux pattern, read after routing; the log
// shows the path without its query, which can carry access tokens and
// URL signatures.
func (h *handlers) observe(ctx context.Context, r *http.Request, sw *statusWriter, info *requestInfo, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing
	}
	route := routeOf(r)
	h.Metrics.HTTPRequest(route, r.Method, status, d)
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
		slog.Int("status", status), slog.Int64("bytes", sw.n), slog.Int64("duration_ms", d.Milliseconds()),
		slog.String("request_id", requestID(r)),
	}
	if id := exportIDOf(r); id != "" {
		attrs = append(attrs, slog.String("export_id", id))
	}
	if info.appID != "" {
		attrs = append(attrs, slog.String("app_id", info.appID))
	}
	level := slog.LevelInfo
	if quietRoutes[route] && status < http.StatusInternalServerError {
		level = slog.LevelDebug
	}
	h.logger.LogAttrs(ctx, level, "http request", attrs...)
}

// routeOf is the mux pattern that served r. The mux sets it on the
// request it was handed, before calling the route's handler. A CONNECT
// redirect reports the client's own path as its pattern, so it is not
// trusted as a label.
func routeOf(r *http.Request) string {
	if r.Pattern == "" || r.Method == http.MethodConnect {
		return "unmatched"
	}
	return r.Pattern
}

// exportIDOf is the export a route names, whatever its dialect calls it:
// {id} natively and in Elastic Path, {exportId} in Clover, {requestId}
// in Doshii.
func exportIDOf(r *http.Request) string {
	for _, name := range []string{"id", "exportId", "requestId"} {
		if v := r.PathValue(name); v != "" {
			return v
		}
	}
	return ""
}

// serveHandler adapts a plain handler to a route of methods.
func serveHandler(next http.Handler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		next.ServeHTTP(w, r)
		return nil
	}
}
