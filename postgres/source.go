package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/exportd/exportd"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPageSize is the page size of a Source that names none: large
// enough that per-query overhead vanishes, small enough that a page of
// orders with their children stays a few megabytes.
const DefaultPageSize = 10_000

// Source pages a merchant's orders or payments out of PostgreSQL in export
// order, (created_at, id), with a keyset cursor.
type Source struct {
	Pool     *pgxpool.Pool
	PageSize int // rows per page; DefaultPageSize when zero
}

// Query selects the rows of one export.
type Query struct {
	MerchantID string
	Dataset    exportd.Dataset
	Start, End time.Time   // created_at in [Start, End)
	Locations  []string    // only these locations; empty means all
	After      exportd.Key // resume after this key; zero starts at Start
	Through    exportd.Key // stop at this key, included; zero reads to End
}

// validate refuses a query that no retry can run: a permanent
// invalid_request, so that it is never mistaken for a source failure.
func (q Query) validate() error {
	invalid := func(format string, args ...any) error {
		return &exportd.Error{Code: exportd.CodeInvalidRequest, Message: fmt.Sprintf(format, args...), Permanent: true}
	}
	switch {
	case q.MerchantID == "":
		return invalid("query has no merchant")
	case !q.Dataset.Valid():
		return invalid("query has unknown dataset %q", q.Dataset)
	case !q.Start.Before(q.End):
		return invalid("query window must have start before end")
	}
	return nil
}

// table returns the table a dataset pages over.
func (q Query) table() string {
	if q.Dataset == exportd.Payments {
		return "transactions"
	}
	return "orders"
}

// Count returns how many rows the window holds, ignoring After: the total
// that percent complete is measured against.
func (s *Source) Count(ctx context.Context, q Query) (int64, error) {
	if err := q.validate(); err != nil {
		return 0, err
	}
	sql := "SELECT count(*) FROM " + q.table() + " WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3"
	args := []any{q.MerchantID, q.Start, q.End}
	if len(q.Locations) > 0 {
		sql += " AND location_id = ANY($4)"
		args = append(args, q.Locations)
	}
	var n int64
	if err := s.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, sourceError(ctx, err, q.table())
	}
	return n, nil
}

// Stream calls fn with each page of rows in (created_at, id) order,
// starting after q.After. Every page is read on its own, so no transaction
// or cursor is held between pages and a restart of PostgreSQL fails only
// the page in flight; resume with After set to the last key handed to fn.
// A page of orders and its items and payments are read in one REPEATABLE
// READ transaction, so a writer that changes an order and its children
// together is never seen half-applied. While fn works on a page the next
// one is already being read, so the database and the caller's encoding
// overlap. An error from fn stops Stream and is returned as is.
//
// Errors reading the source are *exportd.Error with code source_error,
// permanent when the schema or data cannot be read (naming the table,
// column and row), transient otherwise; cancellation of ctx is returned
// unclassified, wrapping context.Canceled.
//
// The batch, its slices and the strings and pointers in its records are
// reused once fn returns: fn must copy what it keeps. Pointer fields may be
// shared between records, so treat them as read-only.
func (s *Source) Stream(ctx context.Context, q Query, fn func(*exportd.Batch) error) error {
	if err := q.validate(); err != nil {
		return err
	}
	size := s.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	// Two pagers take turns: one is read into while fn has the other.
	return stream(ctx, [2]*pager{newPager(s, q, size), newPager(s, q, size)}, q.After, fn)
}

// stream runs the pages of a Stream or StreamChanges after the key.
func stream(ctx context.Context, pagers [2]*pager, after exportd.Key, fn func(*exportd.Batch) error) error {
	size := pagers[0].size
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cur := 0
	next := pagers[cur].fetch(ctx, after)
	for {
		r := <-next
		if r.err != nil {
			return r.err
		}
		if r.n == 0 {
			return nil
		}
		b := pagers[cur].batch
		next = nil
		if r.n == size {
			next = pagers[1-cur].fetch(ctx, b.Key(r.n-1))
		}
		if err := fn(b); err != nil {
			if next != nil {
				// No reader may outlive Stream: the caller may close the pool.
				cancel()
				<-next
			}
			return err
		}
		if next == nil {
			return nil
		}
		cur = 1 - cur
	}
}

type pageResult struct {
	n   int
	err error
}

// fetch reads the page after the key in the background.
func (p *pager) fetch(ctx context.Context, after exportd.Key) <-chan pageResult {
	ch := make(chan pageResult, 1)
	go func() {
		n, err := p.page(ctx, after)
		ch <- pageResult{n, err}
	}()
	return ch
}

// newPager sizes the page buffers up front, children by the seed's mix of
// about two items and one payment an order, so that pages rarely grow them.
func newPager(s *Source, q Query, size int) *pager {
	p := &pager{src: s, q: q, size: size, batch: &exportd.Batch{Dataset: q.Dataset}, strs: map[string]*string{}}
	if q.Dataset == exportd.Payments {
		p.batch.Payments = make([]exportd.Payment, 0, size)
		return p
	}
	p.batch.Orders = make([]exportd.Order, 0, size)
	p.ids = make([]int64, 0, size)
	p.items = make([]exportd.Item, 0, 3*size)
	p.pays = make([]exportd.Payment, 0, 2*size)
	return p
}

// pager holds what one Stream reuses from page to page.
type pager struct {
	src   *Source
	q     Query
	size  int
	batch *exportd.Batch
	strs  map[string]*string // interned low-cardinality strings

	// A change export's pages read in its held snapshot (snap, from
	// pg_export_snapshot) and select by change (changes.go).
	snap   string
	change *ChangeQuery
	delAts []time.Time // DeletedAt of a page's deletes

	dec decoder

	// Backing arrays for the pointer fields of one page.
	tips                   []int64
	customerRefs, noteStrs []string

	ids    []int64
	idsSQL []byte // ids as an array literal
	byID   []idPos
	spans  []span
	items  []exportd.Item
	pays   []exportd.Payment
}

type idPos struct {
	id  int64
	pos int
}

type span struct{ start, n int }

func (p *pager) page(ctx context.Context, after exportd.Key) (int, error) {
	table := p.q.table()
	conn, err := p.src.Pool.Acquire(ctx)
	if err != nil {
		return 0, sourceError(ctx, err, table)
	}
	defer conn.Release()
	if p.q.Dataset == exportd.Payments && p.snap == "" {
		// One statement: consistent by itself.
		return p.paymentsPage(ctx, conn.Conn(), after)
	}
	// The page's queries share one snapshot: the page's own, or the change
	// export's (SET TRANSACTION SNAPSHOT comes after the BEGIN's SET LOCAL,
	// which is no query). The transaction ends with the page: a failed
	// rollback closes the connection, which the pool then drops.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginPageSQL})
	if err != nil {
		return 0, sourceError(ctx, err, table)
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	if p.snap != "" {
		if err := importSnapshot(ctx, tx, p.snap, table); err != nil {
			return 0, err
		}
	}
	var n int
	if p.q.Dataset == exportd.Payments {
		n, err = p.paymentsPage(ctx, tx.Conn(), after)
	} else {
		n, err = p.ordersPage(ctx, tx.Conn(), after)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, sourceError(ctx, err, table)
	}
	return n, nil
}

// beginPageSQL begins the transaction of a page of orders in the same
// round trip as its setting. REPEATABLE READ gives the page's queries one
// snapshot. Generic plans keep the child queries on the (order_id) indexes
// from the first page: a custom plan sees the page's thousands of ids and,
// for the first five executions of a prepared statement, may pick a
// sequential scan of all of order_items, until PostgreSQL itself switches
// to the generic plan.
const beginPageSQL = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan"

// pageSQL builds the keyset query of a page over table.
func (p *pager) pageSQL(table, columns string, after exportd.Key) (string, []any) {
	if p.change != nil {
		return p.changeSQL(table, columns, after)
	}
	sql := "SELECT " + columns + " FROM " + table + " WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3"
	args := []any{p.q.MerchantID, p.q.Start, p.q.End}
	if !after.IsZero() {
		sql += " AND (created_at, id) > ($4, $5)"
		args = append(args, after.CreatedAt, after.ID)
	}
	if t := p.q.Through; !t.IsZero() {
		args = append(args, t.CreatedAt, t.ID)
		sql += " AND (created_at, id) <= ($" + strconv.Itoa(len(args)-1) + ", $" + strconv.Itoa(len(args)) + ")"
	}
	if len(p.q.Locations) > 0 {
		args = append(args, p.q.Locations)
		sql += " AND location_id = ANY($" + strconv.Itoa(len(args)) + ")"
	}
	args = append(args, p.size)
	sql += " ORDER BY created_at, id LIMIT $" + strconv.Itoa(len(args))
	return sql, args
}

func (p *pager) ordersPage(ctx context.Context, c *pgx.Conn, after exportd.Key) (int, error) {
	sql, args := p.pageSQL("orders", orderCols.sql, after)
	b := p.batch
	b.Orders = b.Orders[:0]
	p.ids = p.ids[:0]
	p.tips = grow(p.tips, p.size)
	p.customerRefs = grow(p.customerRefs, p.size)
	p.noteStrs = grow(p.noteStrs, p.size)
	err := p.scan(ctx, c, orderCols, sql, args, func(v [][]byte) error {
		i := len(b.Orders)
		b.Orders = append(b.Orders, exportd.Order{})
		p.order(&b.Orders[i], i, v)
		p.ids = append(p.ids, b.Orders[i].ID)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if p.change != nil {
		if err := p.orderDeletes(ctx, c, after); err != nil {
			return 0, err
		}
	}
	if len(b.Orders) == 0 {
		return 0, nil
	}
	if err := p.children(ctx, c); err != nil {
		return 0, err
	}
	return len(b.Orders), nil
}

// order decodes a row of orderCols into o, the page's order i, whose
// pointer fields point into the page's backing arrays.
func (p *pager) order(o *exportd.Order, i int, v [][]byte) {
	o.ID = p.dec.int8(v[0])
	o.MerchantID = p.q.MerchantID
	o.LocationID = p.intern(v[1])
	o.CreatedAt = p.dec.time(v[2])
	o.UpdatedAt = p.dec.time(v[3])
	o.State = p.str(v[4])
	o.Currency = p.str(v[5])
	o.Subtotal = p.dec.int8(v[6])
	o.Tax = p.dec.int8(v[7])
	if v[8] != nil {
		p.tips[i] = p.dec.int8(v[8])
		o.Tip = &p.tips[i]
	}
	o.Total = p.dec.int8(v[9])
	if v[10] != nil {
		p.customerRefs[i] = string(v[10])
		o.CustomerRef = &p.customerRefs[i]
	}
	if v[11] != nil {
		p.noteStrs[i] = string(v[11])
		o.Note = &p.noteStrs[i]
	}
}

// The child queries of a page of orders, both sorted by order id to merge
// against the page. A transaction of another merchant that names the
// order is not its payment.
var (
	itemsSQL         = "SELECT " + itemCols.sql + " FROM order_items WHERE order_id = ANY($1::bigint[]) ORDER BY order_id, line"
	orderPaymentsSQL = "SELECT " + paymentCols.sql + " FROM transactions WHERE order_id = ANY($1::bigint[]) AND merchant_id = $2 ORDER BY order_id, created_at, id"
)

// children fetches the items and payments of the page's orders, one query
// each, and hangs them on their orders. Both come sorted by order id, so
// they merge against the page's ids sorted the same way.
func (p *pager) children(ctx context.Context, c *pgx.Conn) error {
	orders := p.batch.Orders
	p.byID = p.byID[:0]
	for i, o := range orders {
		p.byID = append(p.byID, idPos{o.ID, i})
	}
	slices.SortFunc(p.byID, func(a, b idPos) int { return cmp.Compare(a.id, b.id) })

	// The ids travel as one array literal built in a reused buffer: pgx
	// would box every element of an []int64 into an interface.
	p.idsSQL = append(p.idsSQL[:0], '{')
	for i, id := range p.ids {
		if i > 0 {
			p.idsSQL = append(p.idsSQL, ',')
		}
		p.idsSQL = strconv.AppendInt(p.idsSQL, id, 10)
	}
	p.idsSQL = append(p.idsSQL, '}')
	ids := string(p.idsSQL)

	// Both child queries go out together, pipelined in the page's
	// transaction: one round trip, and PostgreSQL runs the second while
	// the first's rows are decoded here.
	batch := &pgx.Batch{}
	batch.Queue(itemsSQL, ids)
	batch.Queue(orderPaymentsSQL, ids, p.q.MerchantID)
	br := c.SendBatch(ctx, batch)
	var misfit *misfitError
	err := p.childRows(ctx, br, orders)
	if errors.As(err, &misfit) {
		// The result's shape is explained once the connection is free.
		br.Close()
		return misfit.cs.check(ctx, c, misfit.fds)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = sourceError(ctx, cerr, itemCols.table)
	}
	return err
}

// childRows reads the items and then the payments of a page's orders from
// the pipelined batch.
func (p *pager) childRows(ctx context.Context, br pgx.BatchResults, orders []exportd.Order) error {
	p.spans = grow(p.spans, len(orders))
	clear(p.spans)
	p.items = p.items[:0]
	var cur int
	rows, err := br.Query()
	if err != nil {
		return sourceError(ctx, err, itemCols.table)
	}
	err = p.each(ctx, rows, itemCols, func(v [][]byte) error {
		pos, ok := p.position(p.dec.int8(v[0]), &cur)
		if !ok {
			return nil
		}
		p.items = append(p.items, p.item(v))
		p.note(pos, len(p.items)-1)
		return nil
	})
	if err != nil {
		return err
	}
	for i := range orders {
		sp := p.spans[i]
		orders[i].Items = p.items[sp.start : sp.start+sp.n : sp.start+sp.n]
	}

	clear(p.spans)
	p.pays = p.pays[:0]
	cur = 0
	rows, err = br.Query()
	if err != nil {
		return sourceError(ctx, err, paymentCols.table)
	}
	err = p.each(ctx, rows, paymentCols, func(v [][]byte) error {
		pos, ok := p.position(p.dec.int8(v[1]), &cur)
		if !ok {
			return nil
		}
		p.pays = append(p.pays, exportd.Payment{})
		p.payment(&p.pays[len(p.pays)-1], v)
		p.note(pos, len(p.pays)-1)
		return nil
	})
	if err != nil {
		return err
	}
	for i := range orders {
		sp := p.spans[i]
		orders[i].Payments = p.pays[sp.start : sp.start+sp.n : sp.start+sp.n]
	}
	return nil
}

// position finds the page position of order id, walking *cur forward
// through byID as the ids of the child rows ascend.
func (p *pager) position(id int64, cur *int) (int, bool) {
	for *cur < len(p.byID) && p.byID[*cur].id < id {
		*cur++
	}
	if *cur == len(p.byID) || p.byID[*cur].id != id {
		return 0, false
	}
	return p.byID[*cur].pos, true
}

// note records that child row idx belongs to the order at pos; an order's
// children arrive together.
func (p *pager) note(pos, idx int) {
	if p.spans[pos].n == 0 {
		p.spans[pos].start = idx
	}
	p.spans[pos].n++
}

// item decodes a row of itemCols; v[0] is the order id.
func (p *pager) item(v [][]byte) exportd.Item {
	return exportd.Item{
		Line:      p.dec.int4(v[1]),
		SKU:       p.intern(v[2]),
		Name:      p.str(v[3]),
		Quantity:  p.dec.int4(v[4]),
		UnitPrice: p.dec.int8(v[5]),
		Amount:    p.dec.int8(v[6]),
	}
}

func (p *pager) paymentsPage(ctx context.Context, c *pgx.Conn, after exportd.Key) (int, error) {
	sql, args := p.pageSQL("transactions", paymentCols.sql, after)
	b := p.batch
	b.Payments = b.Payments[:0]
	err := p.scan(ctx, c, paymentCols, sql, args, func(v [][]byte) error {
		b.Payments = append(b.Payments, exportd.Payment{})
		p.payment(&b.Payments[len(b.Payments)-1], v)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if p.change != nil {
		if err := p.paymentDeletes(ctx, c, after); err != nil {
			return 0, err
		}
	}
	return len(b.Payments), nil
}

// payment decodes a row of paymentCols into x.
func (p *pager) payment(x *exportd.Payment, v [][]byte) {
	x.ID = p.dec.int8(v[0])
	x.OrderID = p.dec.int8(v[1])
	x.MerchantID = p.q.MerchantID
	x.LocationID = p.intern(v[2])
	x.CreatedAt = p.dec.time(v[3])
	x.Kind = p.str(v[4])
	x.Tender = p.str(v[5])
	x.CardBrand = p.intern(v[6])
	x.Result = p.str(v[7])
	x.Amount = p.dec.int8(v[8])
}

// scan runs a query asking for binary results and hands each row's raw
// column values to fn: no Scan, no reflection, no interface per value. The
// result's column types are checked against cs once, before the first row.
// Every error it returns is classified (sourceError).
func (p *pager) scan(ctx context.Context, c *pgx.Conn, cs *columns, sql string, args []any, fn func([][]byte) error) error {
	rows, err := c.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.BinaryFormatCode}}, args...)...)
	if err != nil {
		return sourceError(ctx, err, cs.table)
	}
	err = p.each(ctx, rows, cs, fn)
	var misfit *misfitError
	if errors.As(err, &misfit) {
		return cs.check(ctx, c, misfit.fds)
	}
	return err
}

// misfitError is a result whose columns are not those of cs; columns.check
// explains it once the connection is free to look up type names.
type misfitError struct {
	cs  *columns
	fds []pgconn.FieldDescription
}

func (e *misfitError) Error() string { return e.cs.table + ": unexpected result columns" }

// each checks the columns of rows once and hands each row's raw values to
// fn. It closes rows.
func (p *pager) each(ctx context.Context, rows pgx.Rows, cs *columns, fn func([][]byte) error) error {
	p.dec.bad = false
	defer rows.Close()
	if fds := rows.FieldDescriptions(); !cs.fits(fds) {
		// A query the server cut off (shutdown, terminated backend) has no
		// fields either: report why, not a shape it never had.
		rows.Close()
		if err := rows.Err(); err != nil {
			return sourceError(ctx, err, cs.table)
		}
		return &misfitError{cs: cs, fds: slices.Clone(fds)}
	}
	for rows.Next() {
		v := rows.RawValues()
		if err := fn(v); err != nil {
			return sourceError(ctx, err, cs.table)
		}
		if p.dec.bad {
			return cs.rowError(v)
		}
	}
	return sourceError(ctx, rows.Err(), cs.table)
}

// str returns a not-null string column's value, interned; NULL marks the
// row bad.
func (p *pager) str(b []byte) string {
	s := p.intern(b)
	if s == nil {
		p.dec.bad = true
		return ""
	}
	return *s
}

// intern returns a shared copy of a low-cardinality string (location, state,
// kind, ...), or nil for NULL. The map is bounded, as a column could be
// less repetitive than expected.
func (p *pager) intern(b []byte) *string {
	if b == nil {
		return nil
	}
	if s, ok := p.strs[string(b)]; ok {
		return s
	}
	if len(p.strs) >= 4096 {
		clear(p.strs)
	}
	s := string(b)
	p.strs[s] = &s
	return &s
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
