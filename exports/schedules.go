package exports

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
)

// Schedules of change exports: a Temporal Schedule whose runs are change
// exports chained by cursor (README "Schedules"). Temporal holds the
// timing (spec, paused, next run, recent actions); PostgreSQL holds the
// spec each run exports with, the chain's cursor and the runs. A
// schedule's document joins both.

// ScheduleStore keeps schedules and their runs; *postgres.Schedules
// implements it.
type ScheduleStore interface {
	Create(ctx context.Context, sc postgres.Schedule) error
	Remove(ctx context.Context, id string) error
	Get(ctx context.Context, appID, id string) (postgres.Schedule, error)
	List(ctx context.Context, appID string, limit int) ([]postgres.Schedule, error)
	MarkDeleted(ctx context.Context, appID, id string, at time.Time) error
	Runs(ctx context.Context, scheduleID string, limit int) ([]postgres.ScheduleRun, error)
}

// Schedule limits.
const (
	// MinScheduleEvery is the shortest interval between runs.
	MinScheduleEvery = time.Minute
	// MaxScheduleEvery is the longest.
	MaxScheduleEvery = 366 * 24 * time.Hour
	// MaxSchedulesListed bounds GET /v1/schedules.
	MaxSchedulesListed = 100
	// MaxRunsShown bounds the runs a schedule's document lists.
	MaxRunsShown = postgres.KeepRuns
)

// ScheduleRequest is what a client asks a schedule for: the export each
// run makes (MerchantID, Dataset, Formats, MaxRowsPerFile, Retention,
// Webhook of Spec) and when, Every or Cron.
type ScheduleRequest struct {
	Spec  exportd.Spec
	Every string
	Cron  string
	// Paused creates the schedule paused: no run, not even the first,
	// until it is resumed.
	Paused bool
}

// ScheduleState is a schedule as the API shows it: the stored schedule
// and its newest runs, with Temporal's view of its timing.
type ScheduleState struct {
	Schedule postgres.Schedule
	Paused   bool
	Note     string
	// NextRunAt is when the next run is due; nil while paused.
	NextRunAt *time.Time
	// Running counts runs under way (0 or 1: overlapping runs are
	// skipped); SkippedRuns counts runs skipped because one was.
	Running     int
	SkippedRuns int
	Runs        []postgres.ScheduleRun
}

// NewScheduleID returns a random schedule id: "s" and 20 base32
// characters, as export ids are "x" and 20.
func NewScheduleID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// CreateSchedule validates req and creates its schedule for app, paused or
// with its first run, the backfill, starting at once. Every refusal names
// its field: a merchant the app may not export is CodeNotFound, as for
// exports.
func (s *Service) CreateSchedule(ctx context.Context, app postgres.App, req ScheduleRequest) (ScheduleState, error) {
	if s.Schedules == nil {
		return ScheduleState{}, exportd.Errorf(exportd.CodeUnavailable, "schedules are not configured")
	}
	id := NewScheduleID()
	spec := req.Spec
	spec.ExportID, spec.AppID, spec.Mode, spec.Cursor = id, app.ID, exportd.ModeChanges, ""
	spec.Start, spec.End, spec.Locations = time.Time{}, time.Time{}, nil
	if err := spec.Normalize(); err != nil {
		return ScheduleState{}, err
	}
	every, err := checkTiming(req.Every, req.Cron)
	if err != nil {
		return ScheduleState{}, err
	}
	if err := s.checkWebhook(spec.Webhook); err != nil {
		return ScheduleState{}, err
	}
	if err := s.checkMerchant(ctx, app.ID, spec.MerchantID); err != nil {
		var e *exportd.Error
		if errors.As(err, &e) {
			e.Field = "merchantId"
		}
		return ScheduleState{}, err
	}
	spec.ExportID = "" // each run sets its own
	sc := postgres.Schedule{ID: id, AppID: app.ID, MerchantID: spec.MerchantID, Dataset: spec.Dataset, Spec: spec,
		Every: req.Every, Cron: strings.Join(strings.Fields(req.Cron), " "), CreatedAt: s.now().UTC()}
	if err := s.Schedules.Create(ctx, sc); err != nil {
		return ScheduleState{}, err
	}
	summary := ScheduleSummary(sc)
	timing := client.ScheduleSpec{CronExpressions: []string{sc.Cron}}
	if every > 0 {
		timing = client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	}
	attrs := temporal.NewSearchAttributes(contract.AttrMerchant.ValueSet(sc.MerchantID), contract.AttrDataset.ValueSet(string(sc.Dataset)))
	_, err = s.Temporal.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   contract.ScheduleID(id),
		Spec: timing,
		Action: &client.ScheduleWorkflowAction{
			ID:                    contract.ScheduledRunWorkflowID(id),
			Workflow:              contract.ScheduledExportWorkflowName,
			Args:                  []any{contract.ScheduledExportInput{ScheduleID: id}},
			TaskQueue:             contract.TaskQueue,
			TypedSearchAttributes: attrs,
			StaticSummary:         "run of " + summary,
			Memo:                  map[string]any{"scheduleId": id, "appId": app.ID},
		},
		// A run still exporting makes the next one skipped, not stacked:
		// the next run after it covers the skipped interval.
		Overlap:               enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Paused:                req.Paused,
		TriggerImmediately:    !req.Paused,
		Note:                  summary,
		Memo:                  map[string]any{"summary": summary, "appId": app.ID, "merchantId": sc.MerchantID, "dataset": string(sc.Dataset)},
		TypedSearchAttributes: attrs,
	})
	if err != nil {
		s.removeSchedule(ctx, id)
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) {
			field := "cron"
			if every > 0 {
				field = "every"
			}
			return ScheduleState{}, &exportd.ValidationError{Field: field, Reason: "was refused by Temporal: " + invalid.Message}
		}
		return ScheduleState{}, fmt.Errorf("error creating the Temporal schedule: %w", err)
	}
	return s.scheduleState(ctx, sc, 0)
}

// removeSchedule takes back the row of a schedule whose Temporal schedule
// was not created, on a context the request's end cannot cancel.
func (s *Service) removeSchedule(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unqueueTimeout)
	defer cancel()
	if err := s.Schedules.Remove(ctx, id); err != nil {
		s.logger().Error("removing a schedule whose Temporal schedule was not created", "schedule_id", id, "error", err)
	}
}

// checkTiming accepts exactly one of every (a Go duration from
// MinScheduleEvery to MaxScheduleEvery) and cron (five fields), and
// returns every.
func checkTiming(every, cron string) (time.Duration, error) {
	switch {
	case every != "" && cron != "":
		return 0, &exportd.ValidationError{Field: "every", Reason: "and cron cannot both be given; choose one"}
	case every == "" && strings.TrimSpace(cron) == "":
		return 0, &exportd.ValidationError{Field: "every", Reason: `or cron is required: every as a duration like "1h", or cron as five fields like "0 * * * *"`}
	case cron != "":
		if err := checkCron(cron); err != nil {
			return 0, &exportd.ValidationError{Field: "cron", Reason: err.Error()}
		}
		return 0, nil
	}
	d, err := time.ParseDuration(every)
	if err != nil {
		return 0, &exportd.ValidationError{Field: "every", Reason: fmt.Sprintf("%q is not a duration like \"15m\" or \"1h\"", every)}
	}
	if d < MinScheduleEvery || d > MaxScheduleEvery {
		return 0, &exportd.ValidationError{Field: "every", Reason: fmt.Sprintf("must be from %s to %s", MinScheduleEvery, MaxScheduleEvery)}
	}
	if d%time.Second != 0 {
		return 0, &exportd.ValidationError{Field: "every", Reason: "must be a whole number of seconds"}
	}
	return d, nil
}

// ScheduleSummary describes a schedule in one line, for the Web UI:
// "changes of merchant m1 orders every 1h".
func ScheduleSummary(sc postgres.Schedule) string {
	when := "every " + sc.Every
	if sc.Cron != "" {
		when = "at cron " + sc.Cron + " (UTC)"
	}
	return fmt.Sprintf("changes of merchant %s %s %s", sc.MerchantID, sc.Dataset, when)
}

// Schedule returns the app's schedule id with its newest runs (at most
// runs); another app's, a deleted and a missing one are all
// CodeNotFound.
func (s *Service) Schedule(ctx context.Context, app postgres.App, id string, runs int) (ScheduleState, error) {
	sc, err := s.ownSchedule(ctx, app, id)
	if err != nil {
		return ScheduleState{}, err
	}
	return s.scheduleState(ctx, sc, runs)
}

// ListSchedules returns the app's schedules, oldest first, each with its
// newest run.
func (s *Service) ListSchedules(ctx context.Context, app postgres.App) ([]ScheduleState, error) {
	if s.Schedules == nil {
		return nil, nil
	}
	scs, err := s.Schedules.List(ctx, app.ID, MaxSchedulesListed)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduleState, 0, len(scs))
	for _, sc := range scs {
		st, err := s.scheduleState(ctx, sc, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// PauseSchedule pauses or resumes the app's schedule id, with note (or a
// default) as the schedule's note in Temporal. A run under way goes on.
func (s *Service) PauseSchedule(ctx context.Context, app postgres.App, id string, paused bool, note string) (ScheduleState, error) {
	sc, err := s.ownSchedule(ctx, app, id)
	if err != nil {
		return ScheduleState{}, err
	}
	h := s.Temporal.ScheduleClient().GetHandle(ctx, contract.ScheduleID(id))
	if paused {
		if note == "" {
			note = "paused through the API"
		}
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	} else {
		if note == "" {
			note = ScheduleSummary(sc)
		}
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: note})
	}
	if err != nil {
		return ScheduleState{}, fmt.Errorf("error pausing or resuming the Temporal schedule: %w", err)
	}
	return s.scheduleState(ctx, sc, 10)
}

// DeleteSchedule deletes the app's schedule id: its Temporal schedule,
// then marks its row deleted. A run under way finishes; the runs'
// exports stay until they expire.
func (s *Service) DeleteSchedule(ctx context.Context, app postgres.App, id string) error {
	if _, err := s.ownSchedule(ctx, app, id); err != nil {
		return err
	}
	err := s.Temporal.ScheduleClient().GetHandle(ctx, contract.ScheduleID(id)).Delete(ctx)
	var missing *serviceerror.NotFound
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("error deleting the Temporal schedule: %w", err)
	}
	err = s.Schedules.MarkDeleted(ctx, app.ID, id, s.now().UTC())
	if errors.Is(err, postgres.ErrNotFound) {
		return scheduleNotFound(id) // deleted by a concurrent request
	}
	return err
}

// ownSchedule returns the app's schedule id, checking the id before any
// lookup.
func (s *Service) ownSchedule(ctx context.Context, app postgres.App, id string) (postgres.Schedule, error) {
	if !exportd.ValidID(id) || s.Schedules == nil {
		return postgres.Schedule{}, scheduleNotFound(id)
	}
	sc, err := s.Schedules.Get(ctx, app.ID, id)
	if errors.Is(err, postgres.ErrNotFound) {
		return sc, scheduleNotFound(id)
	}
	return sc, err
}

func scheduleNotFound(id string) *exportd.Error {
	if !exportd.ValidID(id) {
		return exportd.Errorf(exportd.CodeNotFound, "schedule not found")
	}
	return exportd.Errorf(exportd.CodeNotFound, "schedule %q not found", id)
}

// scheduleState joins a stored schedule with its Temporal schedule and
// its newest runs.
func (s *Service) scheduleState(ctx context.Context, sc postgres.Schedule, runs int) (ScheduleState, error) {
	st := ScheduleState{Schedule: sc}
	desc, err := s.Temporal.ScheduleClient().GetHandle(ctx, contract.ScheduleID(sc.ID)).Describe(ctx)
	var missing *serviceerror.NotFound
	switch {
	case errors.As(err, &missing):
		// Deleted in Temporal by hand: nothing runs; DELETE cleans up.
		st.Paused, st.Note = true, "the Temporal schedule is missing; no runs will start (delete this schedule)"
	case err != nil:
		return ScheduleState{}, fmt.Errorf("error describing the Temporal schedule: %w", err)
	default:
		if state := desc.Schedule.State; state != nil {
			st.Paused, st.Note = state.Paused, state.Note
		}
		if !st.Paused && len(desc.Info.NextActionTimes) > 0 {
			next := desc.Info.NextActionTimes[0].UTC()
			st.NextRunAt = &next
		}
		st.Running = len(desc.Info.RunningWorkflows)
		st.SkippedRuns = desc.Info.NumActionsSkippedOverlap
	}
	if runs > 0 {
		if st.Runs, err = s.Schedules.Runs(ctx, sc.ID, min(runs, MaxRunsShown)); err != nil {
			return ScheduleState{}, err
		}
	}
	return st, nil
}
