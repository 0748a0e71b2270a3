package starter

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
)

// DefaultWaitInterval is how often Wait polls when WaitOptions names no
// interval: often enough for a progress bar, cheap for Temporal.
const DefaultWaitInterval = 500 * time.Millisecond

// WaitOptions tunes Wait.
type WaitOptions struct {
	// Interval between two Describe calls; 0 means DefaultWaitInterval.
	Interval time.Duration
	// OnProgress, when set, is called after every poll with the state
	// read, the last time with the state Wait returns. Progress.Total is
	// 0 until the Plan activity has counted the rows.
	OnProgress func(exportd.State)
}

// Wait polls an export until its files are ready and returns its READY
// state. An export that ends otherwise (FAILED, CANCELED, EXPIRED) is an
// *EndedError carrying its final state; a canceled ctx stops the waiting,
// not the export.
func Wait(ctx context.Context, c client.Client, exportID string, opts WaitOptions) (exportd.State, error) {
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var st exportd.State
	for {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("error waiting for export %s: %w", exportID, ctx.Err())
		case <-timer.C:
		}
		var err error
		st, err = Describe(ctx, c, exportID)
		if err != nil {
			return st, err
		}
		if opts.OnProgress != nil {
			opts.OnProgress(st)
		}
		switch {
		case st.Phase == exportd.PhaseReady:
			return st, nil
		case st.Phase.Final():
			return st, &EndedError{State: st}
		}
		timer.Reset(interval)
	}
}

// EndedError is what Wait returns for an export that ended without files
// to download; State.Error holds a failure's code and message.
type EndedError struct {
	State exportd.State
}

func (e *EndedError) Error() string {
	id := e.State.Spec.ExportID
	switch e.State.Phase {
	case exportd.PhaseFailed:
		if f := e.State.Error; f != nil {
			return fmt.Sprintf("export %s failed: %s: %s", id, f.Code, f.Message)
		}
		return fmt.Sprintf("export %s failed", id)
	case exportd.PhaseCanceled:
		return fmt.Sprintf("export %s was canceled", id)
	case exportd.PhaseExpired:
		return fmt.Sprintf("export %s has expired: its files were purged", id)
	}
	return fmt.Sprintf("export %s ended %s", id, e.State.Phase.Status())
}
