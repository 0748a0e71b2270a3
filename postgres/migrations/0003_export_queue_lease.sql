-- A running slot is leased: lease_until moves forward while the export's
-- workflow is open (the queue reaper renews it), and a slot whose lease
-- ran out is taken back. Slots acquired before leases keep their old
-- bound of 25 hours from acquisition until the reaper first renews them.
ALTER TABLE export_queue ADD COLUMN lease_until timestamptz;
UPDATE export_queue SET lease_until = acquired_at + interval '25 hours' WHERE acquired_at IS NOT NULL;

-- The reaper's turn: one pass per interval across all workers, however
-- many run it.
CREATE TABLE export_queue_reaper (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    reaped_at timestamptz NOT NULL
);
INSERT INTO export_queue_reaper (reaped_at) VALUES ('-infinity');
