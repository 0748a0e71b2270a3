-- Change tracking for change exports (README "Keeping a copy in sync"):
-- what a chain of change exports needs to find every insert, edit and
-- delete of orders and payments, kept by the database itself so that the
-- systems writing the source need not change.
--
-- change_xid is the full id of the last transaction that inserted or
-- changed the row; for an order, changing its items or payments counts as
-- changing the order. A change export's mark is a snapshot, and a row
-- version belongs to the export whose marks it falls between by
-- visibility (pg_visible_in_snapshot), never by clock or xid order.
--
-- NULL means "unchanged since before change tracking began": such a row
-- was committed before this migration (ALTER TABLE waits for every writer
-- of the table), so it is visible in every mark. Existing rows keep NULL,
-- so the migration rewrites nothing; new rows get the column default,
-- which keeps bulk COPY batched.
ALTER TABLE orders ADD COLUMN change_xid xid8;
ALTER TABLE orders ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();
ALTER TABLE transactions ADD COLUMN change_xid xid8;
ALTER TABLE transactions ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();

-- The incremental change export's scan: one merchant's rows changed since
-- a mark's xmin. Partial, so that on an existing database the index starts
-- empty and its build is one pass over the table without a sort.
CREATE INDEX orders_merchant_change_idx ON orders (merchant_id, change_xid) WHERE change_xid IS NOT NULL;
CREATE INDEX transactions_merchant_change_idx ON transactions (merchant_id, change_xid) WHERE change_xid IS NOT NULL;

-- Tombstones: one row per deleted order or transaction (and per order that
-- moved to another merchant, for the merchant it left). Nothing prunes
-- them (or order_touches, below) yet: a pruning horizon must also expire
-- the cursors older than it.
CREATE TABLE order_deletions (
    order_id    bigint NOT NULL,
    merchant_id text NOT NULL,
    created_at  timestamptz NOT NULL, -- the order's, so deletes sort like orders
    deleted_at  timestamptz NOT NULL,
    change_xid  xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX order_deletions_merchant_change_idx ON order_deletions (merchant_id, change_xid);

CREATE TABLE transaction_deletions (
    transaction_id bigint NOT NULL,
    merchant_id    text NOT NULL,
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz NOT NULL,
    change_xid     xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX transaction_deletions_merchant_change_idx ON transaction_deletions (merchant_id, change_xid);

-- Updates stamp the row with the updating transaction, in a BEFORE
-- trigger that runs only when the row does not carry the stamp already.
-- Inserts take it from the column default: a BEFORE INSERT trigger would
-- cost COPY its batched inserts. An insert that names another change_xid
-- (INSERT ... SELECT * from a backup, say) is stamped afterwards by an
-- update, so an old or NULL stamp never hides a new row; the usual insert
-- pays only the WHEN test.
CREATE FUNCTION exportd_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE FUNCTION exportd_restamp_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %I SET change_xid = pg_current_xact_id() WHERE id = $1', TG_TABLE_NAME) USING NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_stamp_change BEFORE UPDATE ON orders
    FOR EACH ROW WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION exportd_stamp_change();
CREATE TRIGGER orders_restamp_insert AFTER INSERT ON orders
    FOR EACH ROW WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION exportd_restamp_insert();
CREATE TRIGGER transactions_stamp_change BEFORE UPDATE ON transactions
    FOR EACH ROW WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION exportd_stamp_change();
CREATE TRIGGER transactions_restamp_insert AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION exportd_restamp_insert();

-- An edit of an order's items or payments alone is an edit of the order:
-- its change_xid moves with them, in the same transaction. The order's row
-- lock orders these stamps like the order's own updates. An item or payment
-- that moves to another order touches both.
--
-- The tables have no foreign keys, so a child can be written for an order
-- its transaction cannot see: one whose insert has not committed yet, or
-- that is gone and may be inserted again. Such an order may become visible
-- to a mark before the child commits, so the child is noted in
-- order_touches instead, and a change export counts the order as changed
-- in the interval where the child's transaction committed.
--
-- exportd.bulk_load = 'on' skips all this for a load of new orders whose
-- children commit before the orders (the seed): the order's own insert is
-- then its stamp.
CREATE TABLE order_touches (
    order_id   bigint NOT NULL,
    change_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX order_touches_change_idx ON order_touches (change_xid, order_id);

CREATE FUNCTION exportd_touch_order() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    targets bigint[];
    target bigint;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        targets := targets || NEW.order_id;
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' AND OLD.order_id <> NEW.order_id THEN
        targets := targets || OLD.order_id;
    END IF;
    FOREACH target IN ARRAY targets LOOP
        -- Stamped already by this transaction: the usual case of an order
        -- written with its items.
        PERFORM FROM orders WHERE id = target AND change_xid = pg_current_xact_id();
        CONTINUE WHEN FOUND;
        UPDATE orders SET change_xid = pg_current_xact_id() WHERE id = target;
        CONTINUE WHEN FOUND;
        INSERT INTO order_touches (order_id) SELECT target
         WHERE NOT EXISTS (SELECT FROM order_touches WHERE change_xid = pg_current_xact_id() AND order_id = target);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER order_items_touch_order AFTER INSERT OR UPDATE OR DELETE ON order_items
    FOR EACH ROW WHEN (current_setting('exportd.bulk_load', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION exportd_touch_order();
CREATE TRIGGER transactions_touch_order AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW WHEN (current_setting('exportd.bulk_load', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION exportd_touch_order();

-- Tombstones, one statement at a time: a bulk delete inserts them in one go.
CREATE FUNCTION exportd_order_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_deletions (order_id, merchant_id, created_at, deleted_at)
    SELECT id, merchant_id, created_at, statement_timestamp() FROM gone;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_deleted AFTER DELETE ON orders
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION exportd_order_deleted();

CREATE FUNCTION exportd_transaction_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transaction_deletions (transaction_id, merchant_id, created_at, deleted_at)
    SELECT id, merchant_id, created_at, statement_timestamp() FROM gone;
    RETURN NULL;
END
$$;
CREATE TRIGGER transactions_deleted AFTER DELETE ON transactions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION exportd_transaction_deleted();

-- A row that moves to another merchant leaves the old merchant's copy: a
-- tombstone for the merchant it left.
CREATE FUNCTION exportd_order_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_deletions (order_id, merchant_id, created_at, deleted_at)
    VALUES (OLD.id, OLD.merchant_id, OLD.created_at, statement_timestamp());
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_moved AFTER UPDATE OF merchant_id ON orders
    FOR EACH ROW WHEN (OLD.merchant_id IS DISTINCT FROM NEW.merchant_id)
    EXECUTE FUNCTION exportd_order_moved();

CREATE FUNCTION exportd_transaction_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transaction_deletions (transaction_id, merchant_id, created_at, deleted_at)
    VALUES (OLD.id, OLD.merchant_id, OLD.created_at, statement_timestamp());
    RETURN NULL;
END
$$;
CREATE TRIGGER transactions_moved AFTER UPDATE OF merchant_id ON transactions
    FOR EACH ROW WHEN (OLD.merchant_id IS DISTINCT FROM NEW.merchant_id)
    EXECUTE FUNCTION exportd_transaction_moved();
