-- The admission queue of exports: one row per export from submission
-- until its data files are written (or it ends). acquired_at is set while
-- the export holds a running slot. Caps are enforced over this table under
-- a transaction-scoped advisory lock, so API replicas and workers agree.
CREATE TABLE export_queue (
    export_id   text PRIMARY KEY,
    merchant_id text NOT NULL,
    enqueued_at timestamptz NOT NULL,
    acquired_at timestamptz
);

CREATE INDEX export_queue_waiting ON export_queue (enqueued_at, export_id) WHERE acquired_at IS NULL;
CREATE INDEX export_queue_running ON export_queue (merchant_id) WHERE acquired_at IS NOT NULL;
