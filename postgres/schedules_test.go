package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
)

// newSchedule stores a schedule of merchant m1 for a new app that
// installed it, and returns the store, the schedule and the access store.
func newSchedule(t *testing.T) (*postgres.Schedules, postgres.Schedule, *postgres.Access) {
	t.Helper()
	ctx := context.Background()
	a := newAccess(t)
	addMerchants(t, a, "m1")
	app, err := a.CreateApp(ctx, "Sync, Inc.")
	require.NoError(t, err)
	require.NoError(t, a.Install(ctx, app.ID, "m1"))
	s := &postgres.Schedules{Pool: a.Pool}
	sc := postgres.Schedule{ID: "s1", AppID: app.ID, MerchantID: "m1", Dataset: exportd.Orders, Every: "1h",
		Spec: exportd.Spec{AppID: app.ID, MerchantID: "m1", Dataset: exportd.Orders, Mode: exportd.ModeChanges,
			Formats: []exportd.Format{exportd.JSONL}, MaxRowsPerFile: 500},
		CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	require.NoError(t, s.Create(ctx, sc))
	return s, sc, a
}

// TestSchedulesChainByCompareAndSet runs a chain: the backfill moves the
// cursor, a failed run leaves it, the next run starts from it again, and a
// run that started from a cursor the chain has left behind succeeds
// without moving it. Beginning or settling a run twice changes nothing.
func TestSchedulesChainByCompareAndSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, sc, _ := newSchedule(t)
	t0 := time.Date(2025, 1, 1, 1, 0, 0, 0, time.UTC)
	begin := func(exportID string, at time.Time) postgres.ScheduleRun {
		t.Helper()
		st, err := s.BeginRun(ctx, sc.ID, exportID, at, at.Add(time.Second))
		require.NoError(t, err)
		require.True(t, st.Installed)
		require.Nil(t, st.Schedule.DeletedAt)
		require.Equal(t, sc.Spec, st.Schedule.Spec)
		return st.Run
	}
	settle := func(exportID string, o postgres.RunOutcome) bool {
		t.Helper()
		chained, err := s.SettleRun(ctx, exportID, o, t0.Add(time.Hour))
		require.NoError(t, err)
		return chained
	}
	cursor := func() string {
		t.Helper()
		got, err := s.Get(ctx, sc.AppID, sc.ID)
		require.NoError(t, err)
		return got.Cursor
	}

	r1 := begin("s1-1", t0)
	require.Equal(t, "", r1.CursorFrom, "the first run is the backfill")
	require.Equal(t, postgres.RunRunning, r1.Phase)
	require.True(t, settle("s1-1", postgres.RunOutcome{Phase: exportd.PhaseReady, NextCursor: "c-1", Rows: 10}))
	require.Equal(t, "c-1", cursor())
	require.True(t, settle("s1-1", postgres.RunOutcome{Phase: exportd.PhaseReady, NextCursor: "c-other"}), "settled once")
	require.Equal(t, "c-1", cursor())

	r2 := begin("s1-2", t0.Add(time.Hour))
	require.Equal(t, "c-1", r2.CursorFrom)
	fail := &exportd.Failure{Code: exportd.CodeSourceError, Message: "the database went away", Retryable: true}
	require.False(t, settle("s1-2", postgres.RunOutcome{Phase: exportd.PhaseFailed, Error: fail}))
	require.Equal(t, "c-1", cursor(), "a failed run leaves the cursor")

	// Two runs from c-1 (a run started by hand while another ran): the
	// first to succeed chains, the other does not fork the chain.
	r3 := begin("s1-3", t0.Add(2*time.Hour))
	r4 := begin("s1-4", t0.Add(2*time.Hour+time.Minute))
	require.Equal(t, "c-1", r3.CursorFrom)
	require.Equal(t, "c-1", r4.CursorFrom)
	require.Equal(t, r3, begin("s1-3", t0.Add(2*time.Hour)), "a run begun again is the one recorded")
	require.True(t, settle("s1-4", postgres.RunOutcome{Phase: exportd.PhaseReady, NextCursor: "c-4"}))
	require.False(t, settle("s1-3", postgres.RunOutcome{Phase: exportd.PhaseReady, NextCursor: "c-3"}))
	require.Equal(t, "c-4", cursor())
	require.Equal(t, "c-4", begin("s1-5", t0.Add(3*time.Hour)).CursorFrom)

	runs, err := s.Runs(ctx, sc.ID, 10)
	require.NoError(t, err)
	require.Len(t, runs, 5)
	got := map[string]postgres.ScheduleRun{}
	for _, r := range runs {
		got[r.ExportID] = r
	}
	require.Equal(t, "s1-5", runs[0].ExportID, "newest first")
	require.Equal(t, postgres.RunRunning, got["s1-5"].Phase)
	require.Nil(t, got["s1-5"].SettledAt)
	require.Equal(t, exportd.PhaseFailed, got["s1-2"].Phase)
	require.Equal(t, fail, got["s1-2"].Error)
	require.Equal(t, "", got["s1-2"].NextCursor)
	require.True(t, got["s1-1"].Chained)
	require.Equal(t, int64(10), got["s1-1"].Rows)
	require.Equal(t, "c-3", got["s1-3"].NextCursor)
	require.False(t, got["s1-3"].Chained)
	require.True(t, got["s1-4"].Chained)
}

// TestSchedulesTenantsAndDeletion checks that a schedule is found only
// for its app and until it is deleted; a deleted schedule begins no run,
// and one whose merchant uninstalled the app says so.
func TestSchedulesTenantsAndDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, sc, a := newSchedule(t)
	other, err := a.CreateApp(ctx, "Other")
	require.NoError(t, err)
	_, err = s.Get(ctx, other.ID, sc.ID)
	require.ErrorIs(t, err, postgres.ErrNotFound)
	_, err = s.Get(ctx, sc.AppID, "nosuch")
	require.ErrorIs(t, err, postgres.ErrNotFound)
	list, err := s.List(ctx, other.ID, 100)
	require.NoError(t, err)
	require.Empty(t, list)
	list, err = s.List(ctx, sc.AppID, 100)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "1h", list[0].Every)
	require.ErrorIs(t, s.MarkDeleted(ctx, other.ID, sc.ID, time.Now()), postgres.ErrNotFound)

	_, err = a.Pool.Exec(ctx, "DELETE FROM installs WHERE app_id = $1", sc.AppID)
	require.NoError(t, err)
	st, err := s.BeginRun(ctx, sc.ID, "s1-1", time.Now(), time.Now())
	require.NoError(t, err)
	require.False(t, st.Installed)

	require.NoError(t, s.MarkDeleted(ctx, sc.AppID, sc.ID, time.Now()))
	_, err = s.Get(ctx, sc.AppID, sc.ID)
	require.ErrorIs(t, err, postgres.ErrNotFound)
	require.ErrorIs(t, s.MarkDeleted(ctx, sc.AppID, sc.ID, time.Now()), postgres.ErrNotFound)
	st, err = s.BeginRun(ctx, sc.ID, "s1-2", time.Now(), time.Now())
	require.NoError(t, err)
	require.NotNil(t, st.Schedule.DeletedAt)
	require.Empty(t, st.Run.ExportID, "no run for a deleted schedule")
	_, err = s.BeginRun(ctx, "nosuch", "x-1", time.Now(), time.Now())
	require.ErrorIs(t, err, postgres.ErrNotFound)
}

// TestSchedulesKeepNewestRuns checks that settling prunes a schedule's
// runs to the newest KeepRuns.
func TestSchedulesKeepNewestRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, sc, _ := newSchedule(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range postgres.KeepRuns + 5 {
		id := fmt.Sprintf("s1-%03d", i)
		_, err := s.BeginRun(ctx, sc.ID, id, t0.Add(time.Duration(i)*time.Minute), t0)
		require.NoError(t, err)
		_, err = s.SettleRun(ctx, id, postgres.RunOutcome{Phase: exportd.PhaseFailed}, t0)
		require.NoError(t, err)
	}
	runs, err := s.Runs(ctx, sc.ID, 1000)
	require.NoError(t, err)
	require.Len(t, runs, postgres.KeepRuns)
	require.Equal(t, fmt.Sprintf("s1-%03d", postgres.KeepRuns+4), runs[0].ExportID)
}
