-- The record of what an export has committed, written in one transaction
-- right after a part's files are committed to the blob store. It is the
-- source of truth for where a retried attempt resumes, for the manifest
-- and for file listings, so nothing that grows with an export rides a
-- Temporal payload. Rows are deleted when the export's files are purged.

-- export_parts holds one row per committed part: its key range and its
-- share of the tally, from which the export's tally is summed.
CREATE TABLE export_parts (
    export_id     text NOT NULL,
    part          integer NOT NULL,
    rows          bigint NOT NULL,
    first_at      timestamptz,
    first_id      bigint,
    last_at       timestamptz,
    last_id       bigint,
    orders        bigint NOT NULL,
    transactions  bigint NOT NULL,
    amount        bigint NOT NULL,
    subtotal      bigint NOT NULL,
    tax           bigint NOT NULL,
    tip           bigint NOT NULL,
    total         bigint NOT NULL,
    pay_amount    bigint NOT NULL,
    -- distinct locations of the part's records, so that the export's
    -- distinct count is a union, never a sum
    locations     text[] NOT NULL,
    committed_at  timestamptz NOT NULL,
    PRIMARY KEY (export_id, part)
);

-- export_files holds one row per committed file; seq is the format's
-- position in the request, so (part, seq) is the manifest's order.
CREATE TABLE export_files (
    export_id  text NOT NULL,
    part       integer NOT NULL,
    seq        smallint NOT NULL,
    name       text NOT NULL,
    format     text NOT NULL,
    rows       bigint NOT NULL,
    bytes      bigint NOT NULL,
    sha256     text NOT NULL,
    PRIMARY KEY (export_id, part, seq),
    UNIQUE (export_id, name)
);
