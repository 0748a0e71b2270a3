package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
)

// ScheduleStore is where schedules of change exports keep their spec,
// their chain's cursor and their runs; *postgres.Schedules implements it.
type ScheduleStore interface {
	BeginRun(ctx context.Context, id, exportID string, scheduledAt, now time.Time) (postgres.RunStart, error)
	SettleRun(ctx context.Context, exportID string, o postgres.RunOutcome, now time.Time) (bool, error)
}

// BeginScheduledRunInput names a schedule's run.
type BeginScheduledRunInput struct {
	ScheduleID  string    `json:"scheduleId"`
	ExportID    string    `json:"exportId"`
	ScheduledAt time.Time `json:"scheduledAt"`
}

// BeginScheduledRunResult is the spec of the run's export, with its
// cursor; or, when no export is to run, why not.
type BeginScheduledRunResult struct {
	Spec *exportd.Spec `json:"spec,omitempty"`
	// Skipped is set when the schedule was deleted before the run began.
	Skipped string `json:"skipped,omitempty"`
	// Failure is set when the run failed before its export could start
	// (the merchant no longer installed the app); it is recorded.
	Failure *exportd.Failure `json:"failure,omitempty"`
}

// BeginScheduledRun records a run of a schedule, starting from the chain's
// current cursor, and returns the spec of its export.
func (a *Activities) BeginScheduledRun(ctx context.Context, in BeginScheduledRunInput) (BeginScheduledRunResult, error) {
	if a.Schedules == nil {
		return BeginScheduledRunResult{}, temporal.NewNonRetryableApplicationError("this worker has no schedule store", exportd.CodeInternal, nil)
	}
	st, err := a.Schedules.BeginRun(ctx, in.ScheduleID, in.ExportID, in.ScheduledAt, a.now())
	if errors.Is(err, postgres.ErrNotFound) {
		return BeginScheduledRunResult{Skipped: "the schedule does not exist"}, nil
	}
	if err != nil {
		return BeginScheduledRunResult{}, fmt.Errorf("error beginning the run: %w", err)
	}
	if st.Schedule.DeletedAt != nil {
		return BeginScheduledRunResult{Skipped: "the schedule was deleted"}, nil
	}
	if !st.Installed {
		// The install is checked at every run, not only at creation: an
		// app a merchant removed exports nothing more of it.
		f := &exportd.Failure{Code: exportd.CodeNotFound, Message: fmt.Sprintf("merchant %q no longer installed the app", st.Schedule.MerchantID)}
		if _, err := a.Schedules.SettleRun(ctx, in.ExportID, postgres.RunOutcome{Phase: exportd.PhaseFailed, Error: f}, a.now()); err != nil {
			return BeginScheduledRunResult{}, fmt.Errorf("error recording the run: %w", err)
		}
		return BeginScheduledRunResult{Failure: f}, nil
	}
	spec := st.Schedule.Spec
	spec.ExportID = in.ExportID
	spec.AppID = st.Schedule.AppID
	spec.MerchantID = st.Schedule.MerchantID
	spec.Dataset = st.Schedule.Dataset
	spec.Mode = exportd.ModeChanges
	spec.Cursor = st.Run.CursorFrom
	return BeginScheduledRunResult{Spec: &spec}, nil
}

// SettleScheduledRunInput is how a run's export settled.
type SettleScheduledRunInput struct {
	contract.ExportSettled
}

// SettleScheduledRunResult says whether the run's nextCursor became the
// chain's cursor.
type SettleScheduledRunResult struct {
	Chained bool `json:"chained"`
}

// SettleScheduledRun records how a run's export settled and, if it
// succeeded, moves the chain's cursor to its nextCursor by compare-and-set
// (postgres.Schedules.SettleRun).
func (a *Activities) SettleScheduledRun(ctx context.Context, in SettleScheduledRunInput) (SettleScheduledRunResult, error) {
	if a.Schedules == nil {
		return SettleScheduledRunResult{}, temporal.NewNonRetryableApplicationError("this worker has no schedule store", exportd.CodeInternal, nil)
	}
	o := postgres.RunOutcome{Phase: in.Phase, NextCursor: in.NextCursor, Rows: in.Rows, Error: in.Error}
	chained, err := a.Schedules.SettleRun(ctx, in.ExportID, o, a.now())
	if err != nil {
		return SettleScheduledRunResult{}, fmt.Errorf("error settling the run: %w", err)
	}
	return SettleScheduledRunResult{Chained: chained}, nil
}
