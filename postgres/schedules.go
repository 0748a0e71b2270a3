package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd"
)

// Schedules stores the schedules of change exports and their runs: the
// spec every run exports with, the chain's cursor and each run's outcome.
// Temporal holds the timing; README "Schedules" tells the whole story.
type Schedules struct {
	Pool *pgxpool.Pool
}

// Schedule is a schedule as stored.
type Schedule struct {
	ID         string
	AppID      string
	MerchantID string
	Dataset    exportd.Dataset
	// Spec is what every run exports: mode changes, formats, part size,
	// retention, webhook; a run adds its export id and cursor.
	Spec exportd.Spec
	// Every or Cron, as the client gave it.
	Every string
	Cron  string
	// Cursor is the nextCursor of the chain's last chained run; "" until
	// the backfill succeeded.
	Cursor    string
	CreatedAt time.Time
	DeletedAt *time.Time
}

// Run phases besides the exports' own READY, FAILED and CANCELED.
const (
	// RunRunning is a run whose export has not settled.
	RunRunning exportd.Phase = "RUNNING"
)

// KeepRuns is how many of a schedule's newest runs are kept.
const KeepRuns = 100

// ScheduleRun is one run of a schedule: one change export.
type ScheduleRun struct {
	ScheduleID  string
	ExportID    string
	ScheduledAt time.Time
	// CursorFrom is the chain's cursor when the run began: the export's
	// cursor ("" for the backfill).
	CursorFrom string
	// Phase is RunRunning until the export settled, then READY, FAILED
	// or CANCELED.
	Phase      exportd.Phase
	NextCursor string
	Rows       int64
	Error      *exportd.Failure
	// Chained is set when NextCursor became the chain's cursor.
	Chained   bool
	StartedAt time.Time
	SettledAt *time.Time
}

// Create stores a new schedule.
func (s *Schedules) Create(ctx context.Context, sc Schedule) error {
	spec, err := json.Marshal(sc.Spec)
	if err != nil {
		return fmt.Errorf("error encoding schedule spec: %w", err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO export_schedules (id, app_id, merchant_id, dataset, spec, every, cron, cursor, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		sc.ID, sc.AppID, sc.MerchantID, string(sc.Dataset), spec, sc.Every, sc.Cron, sc.Cursor, sc.CreatedAt); err != nil {
		return fmt.Errorf("error creating schedule: %w", err)
	}
	return nil
}

// Remove deletes a schedule that never ran, when its Temporal schedule
// could not be created.
func (s *Schedules) Remove(ctx context.Context, id string) error {
	if _, err := s.Pool.Exec(ctx, `DELETE FROM export_schedules s WHERE id = $1
		AND NOT EXISTS (SELECT 1 FROM export_schedule_runs WHERE schedule_id = s.id)`, id); err != nil {
		return fmt.Errorf("error removing schedule: %w", err)
	}
	return nil
}

const scheduleColumns = `id, app_id, merchant_id, dataset, spec, every, cron, cursor, created_at, deleted_at`

func scanSchedule(row pgx.Row) (Schedule, error) {
	var sc Schedule
	var spec []byte
	var dataset string
	if err := row.Scan(&sc.ID, &sc.AppID, &sc.MerchantID, &dataset, &spec, &sc.Every, &sc.Cron, &sc.Cursor, &sc.CreatedAt, &sc.DeletedAt); err != nil {
		return sc, err
	}
	sc.Dataset = exportd.Dataset(dataset)
	if err := json.Unmarshal(spec, &sc.Spec); err != nil {
		return sc, fmt.Errorf("schedule %s has an unreadable spec: %w", sc.ID, err)
	}
	return sc, nil
}

// Get returns the app's schedule id; a deleted one, another app's and a
// missing one are all ErrNotFound.
func (s *Schedules) Get(ctx context.Context, appID, id string) (Schedule, error) {
	sc, err := scanSchedule(s.Pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM export_schedules
		WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL`, id, appID))
	if errors.Is(err, pgx.ErrNoRows) {
		return sc, fmt.Errorf("schedule %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return sc, fmt.Errorf("error reading schedule: %w", err)
	}
	return sc, nil
}

// List returns the app's schedules, oldest first, at most limit.
func (s *Schedules) List(ctx context.Context, appID string, limit int) ([]Schedule, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+scheduleColumns+` FROM export_schedules
		WHERE app_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2`, appID, limit)
	if err != nil {
		return nil, fmt.Errorf("error listing schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("error listing schedules: %w", err)
	}
	return out, nil
}

// MarkDeleted marks the app's schedule deleted; its runs stay. A schedule
// already deleted, or not the app's, is ErrNotFound.
func (s *Schedules) MarkDeleted(ctx context.Context, appID, id string, at time.Time) error {
	tag, err := s.Pool.Exec(ctx, `UPDATE export_schedules SET deleted_at = $3
		WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL`, id, appID, at)
	if err != nil {
		return fmt.Errorf("error deleting schedule: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schedule %s: %w", id, ErrNotFound)
	}
	return nil
}

// RunStart is what BeginRun found: the schedule, whether its app may
// still export its merchant, and the run, new or begun before.
type RunStart struct {
	Schedule  Schedule
	Installed bool
	Run       ScheduleRun
}

// BeginRun records the run of schedule id that exports exportID, starting
// from the chain's current cursor, and returns it with the schedule. A
// run begun before under the same export id (a retried activity) is
// returned as it was recorded, so the export it starts is the same. A
// deleted schedule is returned with DeletedAt set and no run recorded; a
// missing one is ErrNotFound.
func (s *Schedules) BeginRun(ctx context.Context, id, exportID string, scheduledAt, now time.Time) (RunStart, error) {
	var st RunStart
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// FOR SHARE: a settle moving the cursor waits, so the cursor read
		// here is the one recorded as the run's start.
		sc, err := scanSchedule(tx.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM export_schedules WHERE id = $1 FOR SHARE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("schedule %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		st.Schedule = sc
		if sc.DeletedAt != nil {
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM installs WHERE app_id = $1 AND merchant_id = $2)`,
			sc.AppID, sc.MerchantID).Scan(&st.Installed); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO export_schedule_runs (export_id, schedule_id, scheduled_at, cursor_from, started_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (export_id) DO NOTHING`, exportID, id, scheduledAt, sc.Cursor, now); err != nil {
			return err
		}
		st.Run, err = scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM export_schedule_runs WHERE export_id = $1`, exportID))
		if err == nil && st.Run.ScheduleID != id {
			return fmt.Errorf("export %s is a run of schedule %s, not %s", exportID, st.Run.ScheduleID, id)
		}
		return err
	})
	if err != nil {
		return RunStart{}, fmt.Errorf("error beginning a scheduled run: %w", err)
	}
	return st, nil
}

// RunOutcome is how a run's export settled.
type RunOutcome struct {
	Phase      exportd.Phase
	NextCursor string
	Rows       int64
	Error      *exportd.Failure
}

// SettleRun records how the run of exportID ended and, when it succeeded
// with a nextCursor, moves the chain's cursor to it, but only if the
// cursor is still the one the run started from (compare-and-set): a run
// that started from an older cursor does not fork the chain, and a failed
// run leaves the cursor where it was, so the next run exports the same
// interval again. It returns whether the run was chained. Settling a run
// again changes nothing and returns what the first settle decided. The
// schedule keeps its KeepRuns newest runs.
func (s *Schedules) SettleRun(ctx context.Context, exportID string, o RunOutcome, now time.Time) (bool, error) {
	var chained bool
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var errJSON []byte
		if o.Error != nil {
			var err error
			if errJSON, err = json.Marshal(o.Error); err != nil {
				return err
			}
		}
		var scheduleID, from string
		err := tx.QueryRow(ctx, `UPDATE export_schedule_runs SET phase = $2, next_cursor = $3, rows = $4, error = $5, settled_at = $6
			WHERE export_id = $1 AND settled_at IS NULL RETURNING schedule_id, cursor_from`,
			exportID, string(o.Phase), o.NextCursor, o.Rows, errJSON, now).Scan(&scheduleID, &from)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT chained FROM export_schedule_runs WHERE export_id = $1`, exportID).Scan(&chained)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("run %s: %w", exportID, ErrNotFound)
			}
			return err
		}
		if err != nil {
			return err
		}
		if o.Phase == exportd.PhaseReady && o.NextCursor != "" {
			tag, err := tx.Exec(ctx, `UPDATE export_schedules SET cursor = $3 WHERE id = $1 AND cursor = $2`, scheduleID, from, o.NextCursor)
			if err != nil {
				return err
			}
			if chained = tag.RowsAffected() == 1; chained {
				if _, err := tx.Exec(ctx, `UPDATE export_schedule_runs SET chained = true WHERE export_id = $1`, exportID); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM export_schedule_runs WHERE schedule_id = $1 AND settled_at IS NOT NULL AND export_id NOT IN (
			SELECT export_id FROM export_schedule_runs WHERE schedule_id = $1 ORDER BY scheduled_at DESC, export_id DESC LIMIT $2)`,
			scheduleID, KeepRuns)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("error settling a scheduled run: %w", err)
	}
	return chained, nil
}

const runColumns = `schedule_id, export_id, scheduled_at, cursor_from, phase, next_cursor, rows, error, chained, started_at, settled_at`

func scanRun(row pgx.Row) (ScheduleRun, error) {
	var r ScheduleRun
	var phase string
	var errJSON []byte
	if err := row.Scan(&r.ScheduleID, &r.ExportID, &r.ScheduledAt, &r.CursorFrom, &phase, &r.NextCursor, &r.Rows, &errJSON,
		&r.Chained, &r.StartedAt, &r.SettledAt); err != nil {
		return r, err
	}
	r.Phase = exportd.Phase(phase)
	if errJSON != nil {
		r.Error = new(exportd.Failure)
		if err := json.Unmarshal(errJSON, r.Error); err != nil {
			return r, fmt.Errorf("run %s has an unreadable error: %w", r.ExportID, err)
		}
	}
	return r, nil
}

// Runs returns a schedule's newest runs, newest first, at most limit.
func (s *Schedules) Runs(ctx context.Context, scheduleID string, limit int) ([]ScheduleRun, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+runColumns+` FROM export_schedule_runs
		WHERE schedule_id = $1 ORDER BY scheduled_at DESC, export_id DESC LIMIT $2`, scheduleID, limit)
	if err != nil {
		return nil, fmt.Errorf("error listing runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ScheduleRun, error) { return scanRun(r) })
	if err != nil {
		return nil, fmt.Errorf("error listing runs: %w", err)
	}
	return out, nil
}
