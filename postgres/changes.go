package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exportd/exportd"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A change export reads the rows of one merchant that changed between two
// marks, each a PostgreSQL snapshot, as README "Keeping a copy in sync"
// explains. A row version belongs to the export whose marks it falls
// between by visibility: its change_xid (migration 0006) is visible in the
// new mark and not in the previous one. Visibility, not clock or xid
// order, decides, so a transaction that commits after a mark is never
// skipped, however early it began.
//
// All pages of a change export read in one snapshot, the new mark itself,
// exported by a transaction that Changes holds open for the export: a row
// changed again after the mark is then still read as it was at the mark,
// and its newer version is left, whole, to the next export. Per-page
// snapshots could not do that: PostgreSQL cannot read a row as of a past
// snapshot that nobody holds.

// Snapshot is a change export's mark, in pg_snapshot's text form
// (xmin:xmax:xip,...). The empty Snapshot precedes every change: a change
// export from it is a backfill of every current row.
type Snapshot string

// snapshotRE matches pg_snapshot's text form.
var snapshotRE = regexp.MustCompile(`^[0-9]{1,20}:[0-9]{1,20}:([0-9]{1,20}(,[0-9]{1,20})*)?$`)

// xmax returns the first transaction id not yet started when the snapshot
// was taken, or 0 if s is malformed.
func (s Snapshot) xmax() uint64 {
	_, rest, _ := strings.Cut(string(s), ":")
	x, _, _ := strings.Cut(rest, ":")
	n, _ := strconv.ParseUint(x, 10, 64)
	return n
}

// ErrMarkLost is in the chain of the error a change export returns when
// the session holding its mark ended (a restart of PostgreSQL, a lost
// connection, Close): no page can be read as of that mark any more. The
// error is transient, but only a new change export from Source.OpenChanges
// can succeed; what the lost one produced must be discarded.
var ErrMarkLost = errors.New("the change export's snapshot is no longer held")

// ChangeQuery selects the records of one change export.
type ChangeQuery struct {
	MerchantID string
	Dataset    exportd.Dataset
	// From is the mark of the previous change export of the same merchant
	// and dataset; empty for a backfill.
	From Snapshot
	// After resumes after this key; zero starts at the beginning. Records
	// come in (created_at, id) order, deletes among upserts.
	After exportd.Key
}

func (q ChangeQuery) validate(to Snapshot) error {
	invalid := func(format string, args ...any) error {
		return &exportd.Error{Code: exportd.CodeInvalidRequest, Message: fmt.Sprintf(format, args...), Permanent: true}
	}
	switch {
	case q.MerchantID == "":
		return invalid("change query has no merchant")
	case !q.Dataset.Valid():
		return invalid("change query has unknown dataset %q", q.Dataset)
	case q.From != "" && !snapshotRE.MatchString(string(q.From)):
		return invalid("change query's previous mark is not a snapshot")
	case q.From.xmax() > to.xmax():
		// Marks only move forward: this one is from another database.
		return invalid("change query's previous mark is newer than the export's")
	}
	return nil
}

// query returns the Query whose decoding the change pages share.
func (q ChangeQuery) query() Query {
	return Query{MerchantID: q.MerchantID, Dataset: q.Dataset}
}

// Changes is an open change export: it holds the snapshot that is the
// export's mark on a session of its own (not the pool's, so open change
// exports can never starve their own pages of connections) until Close.
// While it is open, PostgreSQL keeps the row versions the snapshot sees,
// so close it as soon as the export's pages are read.
type Changes struct {
	conn *pgx.Conn
	tx   pgx.Tx
	id   string // pg_export_snapshot's identifier
	mark Snapshot
}

// OpenChanges takes a new mark and holds it for the pages of a change
// export: StreamChanges and CountChanges read as of it.
func (s *Source) OpenChanges(ctx context.Context) (*Changes, error) {
	cfg := s.Pool.Config().ConnConfig.Copy()
	// The session sits idle in its transaction while the pages are read: a
	// server-wide timeout for that must not end it.
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, sourceError(ctx, err, "the change export's mark")
	}
	c := &Changes{conn: conn}
	c.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		// One statement: the snapshot exported is the one pg_current_snapshot
		// describes, the transaction's.
		err = c.tx.QueryRow(ctx, "SELECT pg_current_snapshot()::text, pg_export_snapshot()").Scan(&c.mark, &c.id)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, sourceError(ctx, err, "the change export's mark")
	}
	return c, nil
}

// Mark returns the export's mark: the From of the next change export of
// the same merchant and dataset.
func (c *Changes) Mark() Snapshot { return c.mark }

// SnapshotID returns the identifier of the held snapshot, for SET
// TRANSACTION SNAPSHOT: any session of the database can read as of the
// mark with it while the Changes is open.
func (c *Changes) SnapshotID() string { return c.id }

// Close releases the mark; pages of the export can no longer be read.
func (c *Changes) Close(ctx context.Context) error {
	// Ending the transaction first, and waiting for it, retires the
	// snapshot before Close returns; closing the session alone would leave
	// it importable until the server noticed.
	err := c.tx.Rollback(ctx)
	if cerr := c.conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("error releasing change export mark: %w", err)
	}
	return nil
}

// importSnapshot makes tx, just begun, read in the exported snapshot id.
func importSnapshot(ctx context.Context, tx pgx.Tx, id, table string) error {
	_, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(id, "'", "''")+"'")
	var pgErr *pgconn.PgError
	// 22023: no such snapshot any more; 55000: its session is ending.
	if errors.As(err, &pgErr) && (pgErr.Code == "22023" || pgErr.Code == "55000") {
		return exportd.SourceError(fmt.Errorf("%w: %w", ErrMarkLost, err), false, "reading %s: the change export's snapshot is gone; the change export must start again", table)
	}
	return sourceError(ctx, err, table)
}

// StreamChanges calls fn with each page of the change export's records in
// (created_at, id) order, starting after q.After, as Stream does (see
// there for errors, paging and reuse of the batch). Each record has Op set:
// an upsert is the row as of the mark, decoded exactly as Stream decodes
// it (for orders with their items and payments); a delete has its id,
// merchant, created_at and DeletedAt only. A row deleted and inserted
// again between the marks is an upsert; one deleted more than once, one
// delete.
func (s *Source) StreamChanges(ctx context.Context, c *Changes, q ChangeQuery, fn func(*exportd.Batch) error) error {
	if err := q.validate(c.mark); err != nil {
		return err
	}
	size := s.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	var pagers [2]*pager
	for i := range pagers {
		pagers[i] = newPager(s, q.query(), size)
		pagers[i].snap, pagers[i].change = c.id, &q
		pagers[i].delAts = grow(pagers[i].delAts, size)
	}
	return stream(ctx, pagers, q.After, fn)
}

// CountChanges returns how many records the change export holds, ignoring
// q.After: the total that percent complete is measured against.
func (s *Source) CountChanges(ctx context.Context, c *Changes, q ChangeQuery) (int64, error) {
	if err := q.validate(c.mark); err != nil {
		return 0, err
	}
	p := &pager{q: q.query(), change: &q}
	ct := p.changeTables()
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return 0, sourceError(ctx, err, ct.table)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, sourceError(ctx, err, ct.table)
	}
	defer tx.Rollback(ctx)
	if err := importSnapshot(ctx, tx, c.id, ct.table); err != nil {
		return 0, err
	}
	sql, args := p.changeWhere(ct.table, "count(*)")
	var ups, dels int64
	if err := tx.QueryRow(ctx, sql, args...).Scan(&ups); err != nil {
		return 0, sourceError(ctx, err, ct.table)
	}
	if q.From != "" {
		sql, args = p.deletesWhere(ct, "count(*)")
		if err := tx.QueryRow(ctx, sql, args...).Scan(&dels); err != nil {
			return 0, sourceError(ctx, err, ct.deletions.table)
		}
	}
	return ups + dels, tx.Commit(ctx)
}

// changeTables names the tables of a change export's dataset.
type changeTables struct {
	table     string   // the rows
	deletions *columns // their tombstones, id column first
}

var (
	orderDeletionCols = newColumns("order_deletions", []string{"order_id", "created_at"},
		column{"order_id", kindInt8, false}, column{"created_at", kindTime, false}, column{"deleted_at", kindTime, false})
	transactionDeletionCols = newColumns("transaction_deletions", []string{"transaction_id", "created_at"},
		column{"transaction_id", kindInt8, false}, column{"created_at", kindTime, false}, column{"deleted_at", kindTime, false})
)

func (p *pager) changeTables() changeTables {
	if p.q.Dataset == exportd.Payments {
		return changeTables{"transactions", transactionDeletionCols}
	}
	return changeTables{"orders", orderDeletionCols}
}

// changed is the condition "changed after the mark $2": the range test
// lets the (merchant_id, change_xid) index find the rows, the visibility
// test decides. A NULL change_xid predates change tracking and so every
// mark.
const (
	changed      = "change_xid >= pg_snapshot_xmin($2::text::pg_snapshot) AND NOT pg_visible_in_snapshot(change_xid, $2::text::pg_snapshot)"
	changedSince = " AND " + changed
	// An order also changed when a child was written for it while its
	// transaction could not see it (migration 0006, order_touches).
	orderChangedSince = " AND (" + changed + " OR id = ANY (ARRAY(SELECT order_id FROM order_touches WHERE " + changed + ")))"
)

// changeSQL builds the keyset query of a change page's upserts over table:
// the rows as of the mark (the page reads in it), changed after q.From.
func (p *pager) changeSQL(table, columns string, after exportd.Key) (string, []any) {
	sql, args := p.changeWhere(table, columns)
	return keyset(sql, args, "created_at", "id", after, p.size)
}

func (p *pager) changeWhere(table, columns string) (string, []any) {
	sql := "SELECT " + columns + " FROM " + table + " WHERE merchant_id = $1"
	args := []any{p.q.MerchantID}
	if p.change.From != "" {
		if table == "orders" {
			sql += orderChangedSince
		} else {
			sql += changedSince
		}
		args = append(args, string(p.change.From))
	}
	return sql, args
}

// deletesSQL builds the keyset query of a change page's deletes: the
// latest tombstone of each row deleted after q.From that the mark does not
// see again (the pages read in the mark, so the tombstones are those
// committed before it).
func (p *pager) deletesSQL(ct changeTables, after exportd.Key) (string, []any) {
	sql, args := p.deletesWhere(ct, ct.deletions.sql)
	return keyset(sql, args, "created_at", ct.deletions.cols[0].name, after, p.size)
}

func (p *pager) deletesWhere(ct changeTables, columns string) (string, []any) {
	id := ct.deletions.cols[0].name
	sql := "SELECT " + columns + " FROM (SELECT DISTINCT ON (" + id + ") " + ct.deletions.sql + " FROM " + ct.deletions.table +
		" WHERE merchant_id = $1" + changedSince +
		" ORDER BY " + id + ", deleted_at DESC, change_xid DESC, created_at DESC) d" +
		" WHERE NOT EXISTS (SELECT 1 FROM " + ct.table + " r WHERE r.id = d." + id + " AND r.merchant_id = $1)"
	return sql, []any{p.q.MerchantID, string(p.change.From)}
}

// keyset appends a keyset condition after the key, the order and the limit
// to a query that has a WHERE clause.
func keyset(sql string, args []any, at, id string, after exportd.Key, limit int) (string, []any) {
	if !after.IsZero() {
		args = append(args, after.CreatedAt, after.ID)
		sql += " AND (" + at + ", " + id + ") > ($" + strconv.Itoa(len(args)-1) + ", $" + strconv.Itoa(len(args)) + ")"
	}
	args = append(args, limit)
	return sql + " ORDER BY " + at + ", " + id + " LIMIT $" + strconv.Itoa(len(args)), args
}

// scanDeletes reads a page's deletes after the key, calling fn with each
// one's id, created_at and the index of its DeletedAt in p.delAts.
func (p *pager) scanDeletes(ctx context.Context, c *pgx.Conn, after exportd.Key, fn func(v [][]byte, i int)) error {
	if p.change.From == "" {
		return nil // a backfill has nothing to delete
	}
	ct := p.changeTables()
	sql, args := p.deletesSQL(ct, after)
	i := 0
	return p.scan(ctx, c, ct.deletions, sql, args, func(v [][]byte) error {
		p.delAts[i] = p.dec.time(v[2])
		fn(v, i)
		i++
		return nil
	})
}

// orderDeletes marks the page's orders as upserts and merges its deletes
// among them in key order, keeping the page's first size records; the ids
// whose children are read are the upserts'.
func (p *pager) orderDeletes(ctx context.Context, c *pgx.Conn, after exportd.Key) error {
	b := p.batch
	for i := range b.Orders {
		b.Orders[i].Op = exportd.OpUpsert
	}
	n := len(b.Orders)
	err := p.scanDeletes(ctx, c, after, func(v [][]byte, i int) {
		b.Orders = append(b.Orders, exportd.Order{ID: p.dec.int8(v[0]), MerchantID: p.q.MerchantID,
			CreatedAt: p.dec.time(v[1]), Op: exportd.OpDelete, DeletedAt: &p.delAts[i]})
	})
	if err != nil || len(b.Orders) == n {
		return err
	}
	slices.SortFunc(b.Orders, func(x, y exportd.Order) int { return compareKeys(x.CreatedAt, x.ID, y.CreatedAt, y.ID) })
	b.Orders = b.Orders[:min(len(b.Orders), p.size)]
	p.ids = p.ids[:0]
	for _, o := range b.Orders {
		if o.Op == exportd.OpUpsert {
			p.ids = append(p.ids, o.ID)
		}
	}
	return nil
}

// paymentDeletes does for a page of payments what orderDeletes does for
// orders.
func (p *pager) paymentDeletes(ctx context.Context, c *pgx.Conn, after exportd.Key) error {
	b := p.batch
	for i := range b.Payments {
		b.Payments[i].Op = exportd.OpUpsert
	}
	n := len(b.Payments)
	err := p.scanDeletes(ctx, c, after, func(v [][]byte, i int) {
		b.Payments = append(b.Payments, exportd.Payment{ID: p.dec.int8(v[0]), MerchantID: p.q.MerchantID,
			CreatedAt: p.dec.time(v[1]), Op: exportd.OpDelete, DeletedAt: &p.delAts[i]})
	})
	if err != nil || len(b.Payments) == n {
		return err
	}
	slices.SortFunc(b.Payments, func(x, y exportd.Payment) int { return compareKeys(x.CreatedAt, x.ID, y.CreatedAt, y.ID) })
	b.Payments = b.Payments[:min(len(b.Payments), p.size)]
	return nil
}

// compareKeys orders records by (created_at, id), as exportd.Key.Less.
func compareKeys(at1 time.Time, id1 int64, at2 time.Time, id2 int64) int {
	if c := at1.Compare(at2); c != 0 {
		return c
	}
	return cmp.Compare(id1, id2)
}
