package exports_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/exports"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

// fakeTemporal is a Temporal client whose schedule client keeps schedules
// in memory; nothing else of it may be called.
type fakeTemporal struct {
	client.Client
	mu        sync.Mutex
	schedules map[string]*fakeSchedule
}

type fakeSchedule struct {
	opts   client.ScheduleOptions
	paused bool
	note   string
}

func (f *fakeTemporal) ScheduleClient() client.ScheduleClient { return fakeScheduleClient{f} }

type fakeScheduleClient struct{ f *fakeTemporal }

func (c fakeScheduleClient) Create(ctx context.Context, o client.ScheduleOptions) (client.ScheduleHandle, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.schedules[o.ID] = &fakeSchedule{opts: o, paused: o.Paused, note: o.Note}
	return fakeHandle{c.f, o.ID}, nil
}

func (c fakeScheduleClient) List(context.Context, client.ScheduleListOptions) (client.ScheduleListIterator, error) {
	panic("not used")
}

func (c fakeScheduleClient) GetHandle(_ context.Context, id string) client.ScheduleHandle {
	return fakeHandle{c.f, id}
}

type fakeHandle struct {
	f  *fakeTemporal
	id string
}

func (h fakeHandle) get() (*fakeSchedule, error) {
	s, ok := h.f.schedules[h.id]
	if !ok {
		return nil, serviceerror.NewNotFound("schedule not found")
	}
	return s, nil
}

func (h fakeHandle) GetID() string { return h.id }

func (h fakeHandle) Delete(context.Context) error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if _, err := h.get(); err != nil {
		return err
	}
	delete(h.f.schedules, h.id)
	return nil
}

func (h fakeHandle) Backfill(context.Context, client.ScheduleBackfillOptions) error {
	panic("not used")
}
func (h fakeHandle) Update(context.Context, client.ScheduleUpdateOptions) error   { panic("not used") }
func (h fakeHandle) Trigger(context.Context, client.ScheduleTriggerOptions) error { panic("not used") }

func (h fakeHandle) Describe(context.Context) (*client.ScheduleDescription, error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	s, err := h.get()
	if err != nil {
		return nil, err
	}
	return &client.ScheduleDescription{
		Schedule: client.Schedule{State: &client.ScheduleState{Paused: s.paused, Note: s.note}},
		Info:     client.ScheduleInfo{NextActionTimes: []time.Time{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}, nil
}

func (h fakeHandle) Pause(_ context.Context, o client.SchedulePauseOptions) error {
	return h.set(true, o.Note)
}

func (h fakeHandle) Unpause(_ context.Context, o client.ScheduleUnpauseOptions) error {
	return h.set(false, o.Note)
}

func (h fakeHandle) set(paused bool, note string) error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	s, err := h.get()
	if err != nil {
		return err
	}
	s.paused, s.note = paused, note
	return nil
}

// scheduleService returns a Service over a fresh database with merchants
// m1 (installed by both apps), m2 (by the first only) and m3 (by none),
// and the in-memory Temporal schedules.
func scheduleService(t *testing.T) (*exports.Service, *fakeTemporal, postgres.App, postgres.App) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.New(t)
	sealer, err := postgres.NewSealer(make([]byte, 32))
	require.NoError(t, err)
	access := &postgres.Access{Pool: pool, Sealer: sealer}
	for _, m := range []string{"m1", "m2", "m3"} {
		_, err = pool.Exec(ctx, "INSERT INTO merchants (id, name, timezone, currency) VALUES ($1, $1, 'UTC', 'USD')", m)
		require.NoError(t, err)
	}
	app, err := access.CreateApp(ctx, "app")
	require.NoError(t, err)
	other, err := access.CreateApp(ctx, "other")
	require.NoError(t, err)
	require.NoError(t, access.Install(ctx, app.ID, "m1"))
	require.NoError(t, access.Install(ctx, app.ID, "m2"))
	require.NoError(t, access.Install(ctx, other.ID, "m1"))
	ft := &fakeTemporal{schedules: map[string]*fakeSchedule{}}
	svc := &exports.Service{Temporal: ft, Access: access, Schedules: &postgres.Schedules{Pool: pool}}
	return svc, ft, app.App, other.App
}

func scheduleRequest(mod func(*exports.ScheduleRequest)) exports.ScheduleRequest {
	r := exports.ScheduleRequest{Every: "1h", Spec: exportd.Spec{MerchantID: "m1", Dataset: exportd.Orders,
		Formats: []exportd.Format{exportd.Parquet, exportd.JSONL}, MaxRowsPerFile: 500}}
	if mod != nil {
		mod(&r)
	}
	return r
}

// TestCreateScheduleRefusesNamingTheField checks every refusal of a
// schedule names its field and creates nothing, in Temporal or in
// PostgreSQL.
func TestCreateScheduleRefusesNamingTheField(t *testing.T) {
	ctx := context.Background()
	svc, ft, app, _ := scheduleService(t)
	cases := []struct {
		name, field, code string
		mod               func(*exports.ScheduleRequest)
	}{
		{"both every and cron", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Cron = "0 * * * *" }},
		{"neither every nor cron", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every = "" }},
		{"every under a minute", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every = "59s" }},
		{"every unparsable", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every = "hourly" }},
		{"every negative", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every = "-1h" }},
		{"every fractional seconds", "every", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every = "90.5s" }},
		{"cron with 6 fields", "cron", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", "0 0 * * * *" }},
		{"cron out of range", "cron", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", "60 * * * *" }},
		{"cron bad step", "cron", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", "*/0 * * * *" }},
		{"cron shorthand", "cron", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", "@hourly" }},
		{"cron reversed range", "cron", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", "0 9-5 * * *" }},
		{"unknown dataset", "dataset", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.Dataset = "refunds" }},
		{"unknown format", "formats", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.Formats = []exportd.Format{"xlsx"} }},
		{"dialect format", "formats", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.Formats = []exportd.Format{exportd.CloverJSON} }},
		{"no merchant", "merchantId", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.MerchantID = "" }},
		{"rows per file", "maxRowsPerFile", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.MaxRowsPerFile = -1 }},
		{"retention", "retention", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.Retention = exportd.Duration(30 * 24 * time.Hour) }},
		{"private webhook", "callbackUrl", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) {
			r.Spec.Webhook = &exportd.Webhook{URL: "http://127.0.0.1:9/hook"}
		}},
		{"webhook not a URL", "callbackUrl", exportd.CodeInvalidRequest, func(r *exports.ScheduleRequest) { r.Spec.Webhook = &exportd.Webhook{URL: "nope"} }},
		{"merchant not installed", "merchantId", exportd.CodeNotFound, func(r *exports.ScheduleRequest) { r.Spec.MerchantID = "m3" }},
		{"merchant unknown", "merchantId", exportd.CodeNotFound, func(r *exports.ScheduleRequest) { r.Spec.MerchantID = "nobody" }},
	}
	for _, c := range cases {
		_, err := svc.CreateSchedule(ctx, app, scheduleRequest(c.mod))
		require.Error(t, err, c.name)
		var ve *exportd.ValidationError
		if c.code == exportd.CodeInvalidRequest {
			require.ErrorAs(t, err, &ve, c.name)
			require.Equal(t, c.field, ve.Field, "%s: %v", c.name, err)
			continue
		}
		e := exportd.AsError(err)
		require.NotNil(t, e, "%s: %v", c.name, err)
		require.Equal(t, c.code, e.Code, c.name)
		require.Equal(t, c.field, e.Field, c.name)
	}
	require.Empty(t, ft.schedules)
	list, err := svc.ListSchedules(ctx, app)
	require.NoError(t, err)
	require.Empty(t, list)
}

// TestSchedulesAreTheAppsOwn creates a schedule and checks what Temporal
// is given, then that another app cannot see, pause or delete it (404, as
// for one that does not exist), and that pause, resume and delete work
// for its own app.
func TestSchedulesAreTheAppsOwn(t *testing.T) {
	ctx := context.Background()
	svc, ft, app, other := scheduleService(t)
	st, err := svc.CreateSchedule(ctx, app, scheduleRequest(func(r *exports.ScheduleRequest) {
		r.Spec.Webhook = &exportd.Webhook{URL: "https://example.com/hook"}
	}))
	require.NoError(t, err)
	id := st.Schedule.ID
	require.True(t, exportd.ValidID(id))
	require.Equal(t, "changes of merchant m1 orders every 1h", st.Note)
	require.NotNil(t, st.NextRunAt)
	spec := st.Schedule.Spec
	require.Equal(t, exportd.ModeChanges, spec.Mode)
	require.Equal(t, app.ID, spec.AppID)
	require.Empty(t, spec.ExportID, "each run names its own export")
	require.Equal(t, exportd.Duration(exportd.DefaultRetention), spec.Retention)

	ts := ft.schedules[contract.ScheduleID(id)]
	require.NotNil(t, ts)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, ts.opts.Overlap)
	require.True(t, ts.opts.TriggerImmediately, "the backfill starts at once")
	require.Equal(t, []client.ScheduleIntervalSpec{{Every: time.Hour}}, ts.opts.Spec.Intervals)
	action := ts.opts.Action.(*client.ScheduleWorkflowAction)
	require.Equal(t, contract.ScheduledExportWorkflowName, action.Workflow)
	require.Equal(t, []any{contract.ScheduledExportInput{ScheduleID: id}}, action.Args)
	require.Equal(t, contract.TaskQueue, action.TaskQueue)

	for _, try := range []func() error{
		func() error { _, err := svc.Schedule(ctx, other, id, 10); return err },
		func() error { _, err := svc.PauseSchedule(ctx, other, id, true, ""); return err },
		func() error { return svc.DeleteSchedule(ctx, other, id) },
		func() error { _, err := svc.Schedule(ctx, app, "snosuch", 10); return err },
		func() error { _, err := svc.Schedule(ctx, app, "../"+id, 10); return err },
	} {
		require.Equal(t, exportd.CodeNotFound, exportd.ErrorCode(try()))
	}
	list, err := svc.ListSchedules(ctx, other)
	require.NoError(t, err)
	require.Empty(t, list)
	require.False(t, ft.schedules[contract.ScheduleID(id)].paused, "another app's pause changed nothing")

	st, err = svc.PauseSchedule(ctx, app, id, true, "holidays")
	require.NoError(t, err)
	require.True(t, st.Paused)
	require.Equal(t, "holidays", st.Note)
	require.Nil(t, st.NextRunAt)
	st, err = svc.PauseSchedule(ctx, app, id, false, "")
	require.NoError(t, err)
	require.False(t, st.Paused)
	require.Equal(t, "changes of merchant m1 orders every 1h", st.Note)

	cron, err := svc.CreateSchedule(ctx, app, scheduleRequest(func(r *exports.ScheduleRequest) {
		r.Every, r.Cron, r.Paused, r.Spec.MerchantID = "", " 15  3 * * mon-fri ", true, "m2"
	}))
	require.NoError(t, err)
	require.Equal(t, "15 3 * * mon-fri", cron.Schedule.Cron)
	require.True(t, cron.Paused)
	ts = ft.schedules[contract.ScheduleID(cron.Schedule.ID)]
	require.Equal(t, []string{"15 3 * * mon-fri"}, ts.opts.Spec.CronExpressions)
	require.False(t, ts.opts.TriggerImmediately, "a schedule created paused runs nothing")
	list, err = svc.ListSchedules(ctx, app)
	require.NoError(t, err)
	require.Len(t, list, 2)

	require.NoError(t, svc.DeleteSchedule(ctx, app, id))
	require.NotContains(t, ft.schedules, contract.ScheduleID(id))
	_, err = svc.Schedule(ctx, app, id, 10)
	require.Equal(t, exportd.CodeNotFound, exportd.ErrorCode(err))
	require.Equal(t, exportd.CodeNotFound, exportd.ErrorCode(svc.DeleteSchedule(ctx, app, id)))
}

// TestCreateScheduleAcceptsStandardCron checks the cron expressions and
// intervals a schedule takes, and that Temporal is given them as written.
func TestCreateScheduleAcceptsStandardCron(t *testing.T) {
	ctx := context.Background()
	svc, ft, app, _ := scheduleService(t)
	for _, cron := range []string{"* * * * *", "*/15 9-17 * jan,jul mon-fri", "0 0 * * 7", "5 4 1,15 * *", "0 3 * * SUN-SAT/2", "59 23 31 12 6"} {
		st, err := svc.CreateSchedule(ctx, app, scheduleRequest(func(r *exports.ScheduleRequest) { r.Every, r.Cron = "", cron }))
		require.NoError(t, err, cron)
		require.Equal(t, []string{cron}, ft.schedules[contract.ScheduleID(st.Schedule.ID)].opts.Spec.CronExpressions)
	}
	for _, every := range []string{"1m", "90s", "1h30m", "8784h"} {
		_, err := svc.CreateSchedule(ctx, app, scheduleRequest(func(r *exports.ScheduleRequest) { r.Every = every }))
		require.NoError(t, err, every)
	}
}
