package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/exportd/exportd/postgres"
)

// Queue is the admission queue; *postgres.Queue implements it.
type Queue interface {
	TryAcquire(ctx context.Context, exportID, merchantID string, enqueuedAt time.Time, l postgres.Limits) (postgres.Admission, error)
	Release(ctx context.Context, exportID string, l postgres.Limits) ([]string, error)
}

// AcquireInput asks for a running slot for an export.
type AcquireInput struct {
	ExportID   string    `json:"exportId"`
	MerchantID string    `json:"merchantId"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
}

// AcquireResult says whether the export may run, or how many are ahead.
type AcquireResult struct {
	Acquired bool `json:"acquired"`
	Position int  `json:"position"`
}

// ReleaseInput frees an export's slot or place in the queue.
type ReleaseInput struct {
	ExportID string `json:"exportId"`
}

// ReleaseResult lists the waiting exports that may run now.
type ReleaseResult struct {
	Next []string `json:"next,omitempty"`
}

// Acquire tries once to admit an export; the workflow waits between tries
// on a timer and on wake-up signals, so a waiting export holds no worker.
func (a *Activities) Acquire(ctx context.Context, in AcquireInput) (AcquireResult, error) {
	if a.Queue == nil {
		return AcquireResult{Acquired: true}, nil
	}
	adm, err := a.Queue.TryAcquire(ctx, in.ExportID, in.MerchantID, in.EnqueuedAt, a.Limits)
	if err != nil {
		return AcquireResult{}, fmt.Errorf("error acquiring a slot: %w", err)
	}
	return AcquireResult{Acquired: adm.Acquired, Position: adm.Position}, nil
}

// Release frees an export's slot and names the exports to wake.
func (a *Activities) Release(ctx context.Context, in ReleaseInput) (ReleaseResult, error) {
	if a.Queue == nil {
		return ReleaseResult{}, nil
	}
	next, err := a.Queue.Release(ctx, in.ExportID, a.Limits)
	if err != nil {
		return ReleaseResult{}, fmt.Errorf("error releasing a slot: %w", err)
	}
	return ReleaseResult{Next: next}, nil
}
