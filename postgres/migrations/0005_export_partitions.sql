-- The partitions of a partitioned export, written by its Plan step: each a
-- key range of the export's window in (created_at, id) order, holding
-- rows rows and owning the part numbers [base_part, base_part + parts).
-- Partitions start on part boundaries, so an export's files are the same
-- whatever its partitioning. Deleted with the export's files.
CREATE TABLE export_partitions (
    export_id   text NOT NULL,
    partition   integer NOT NULL,
    after_at    timestamptz, -- exclusive start; NULL: the window's start
    after_id    bigint,
    through_at  timestamptz NOT NULL, -- inclusive end
    through_id  bigint NOT NULL,
    rows        bigint NOT NULL,
    base_part   integer NOT NULL,
    parts       integer NOT NULL,
    PRIMARY KEY (export_id, partition)
);
