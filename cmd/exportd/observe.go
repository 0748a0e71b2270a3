package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/exportd/exportd/metrics"
)

// serveWorkerHTTP serves a worker's /metrics and /healthz on addr, in the
// background, until stop. A worker has no API to probe, so this is what
// Prometheus scrapes and what a container healthcheck asks.
func serveWorkerHTTP(addr string, reg *metrics.Registry, log *slog.Logger, healthy func(context.Context) error) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("error listening on %s (--metrics-addr): %w", addr, err)
	}
	srv := &http.Server{
		Handler:           workerMux(reg, log, healthy),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	log.Info("worker metrics and health listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// workerMux routes the worker's /metrics and /healthz. /healthz answers
// 200 while the worker runs and reaches Temporal and PostgreSQL, else 503.
func workerMux(reg *metrics.Registry, log *slog.Logger, healthy func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := healthy(ctx); err != nil {
			log.WarnContext(ctx, "worker not healthy", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
	return mux
}
