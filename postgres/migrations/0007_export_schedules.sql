-- Schedules of change exports (README "Schedules"). Temporal holds the
-- timing (its Schedule: spec, paused, next and recent actions); these
-- tables hold what the runs chain through: the export spec each run
-- starts from and the chain's cursor, which a run that succeeded moves by
-- compare-and-set, so the chain never forks.
CREATE TABLE export_schedules (
    id          text PRIMARY KEY,
    app_id      text NOT NULL,
    merchant_id text NOT NULL,
    dataset     text NOT NULL,
    -- The exportd.Spec of every run (mode changes, formats, part size,
    -- retention, webhook); a run adds its export id and cursor.
    spec        jsonb NOT NULL,
    -- What the client asked for, shown back as given: Temporal compiles
    -- cron expressions into calendars.
    every       text NOT NULL DEFAULT '',
    cron        text NOT NULL DEFAULT '',
    -- The nextCursor of the chain's last run that succeeded; '' until the
    -- backfill succeeded.
    cursor      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);

CREATE INDEX export_schedules_app ON export_schedules (app_id, created_at) WHERE deleted_at IS NULL;

-- One row per run: the export it started, the cursor it started from and,
-- once the export settled, how it ended. The newest runs of a schedule are
-- kept (see Schedules.SettleRun), so the table does not grow with time.
CREATE TABLE export_schedule_runs (
    export_id    text PRIMARY KEY,
    schedule_id  text NOT NULL REFERENCES export_schedules (id),
    scheduled_at timestamptz NOT NULL,
    cursor_from  text NOT NULL,
    -- RUNNING until the export settles: READY, FAILED or CANCELED.
    phase        text NOT NULL DEFAULT 'RUNNING',
    next_cursor  text NOT NULL DEFAULT '',
    rows         bigint NOT NULL DEFAULT 0,
    error        jsonb,
    -- chained: the run's nextCursor became the chain's cursor.
    chained      boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    settled_at   timestamptz
);

CREATE INDEX export_schedule_runs_recent ON export_schedule_runs (schedule_id, scheduled_at DESC, export_id DESC);
