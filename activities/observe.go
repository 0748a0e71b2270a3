package activities

import (
	"go.temporal.io/sdk/temporal"

	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/exportd/exportd"
)

// exportLogger is the activity logger with the export's own ids, so that
// an operator can follow one export across attempts and workers.
func (a *Activities) exportLogger(ctx context.Context, s exportd.Spec) *slog.Logger {
	return a.logger(ctx).With("export_id", s.ExportID, "merchant", s.MerchantID, "dataset", s.Dataset)
}

// Outcomes of an Export attempt, the outcome label of
// exportd_export_duration_seconds.
const (
	outcomeSucceeded   = "succeeded"
	outcomeFailed      = "failed"
	outcomeCanceled    = "canceled"    // canceled, or timed out by Temporal
	outcomeInterrupted = "interrupted" // handed over by a stopping worker
)

// observeExport records an Export attempt's duration and outcome and
// logs how it ended.
func (a *Activities) observeExport(ctx context.Context, log *slog.Logger, s exportd.Spec, started time.Time, res ExportResult, err error) {
	d := a.now().Sub(started)
	outcome := outcomeSucceeded
	var app *temporal.ApplicationError
	switch {
	case err == nil:
	case errors.Is(err, errWorkerStopping) || errors.As(err, &app) && app.Type() == ErrTypeWorkerStopping:
		outcome = outcomeInterrupted
	case ctx.Err() != nil:
		outcome = outcomeCanceled
	default:
		outcome = outcomeFailed
	}
	a.Metrics.ExportAttempt(string(s.Dataset), outcome, d)
	attrs := []any{"outcome", outcome, "duration_ms", d.Milliseconds()}
	switch outcome {
	case outcomeSucceeded:
		log.Info("export attempt finished", append(attrs, "rows", res.Rows, "files", res.FileCount)...)
	case outcomeFailed:
		log.Warn("export attempt failed", append(attrs, "error", err)...)
	default:
		log.Info("export attempt stopped", append(attrs, "error", err)...)
	}
}
