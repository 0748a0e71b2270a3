package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedMerchant describes one merchant for Seed to generate.
type SeedMerchant struct {
	ID       string
	Name     string
	Timezone string // IANA name; the daily rhythm follows local time
	Currency string // ISO 4217 code
	// Locations is how many locations the merchant has; 3 when zero.
	Locations int
	// Orders is how many orders to generate; SeedOptions.OrdersPerMerchant
	// when zero.
	Orders int
}

// SeedOptions says what Seed generates. The same options always produce
// the same rows, and a merchant's rows depend only on Seed, the window and
// that merchant's own options.
type SeedOptions struct {
	Seed              uint64
	Merchants         []SeedMerchant // DefaultSeedMerchants when empty
	OrdersPerMerchant int            // 10 000 when zero
	// Start and End bound the orders' created_at, [Start, End); the first
	// half of 2025 (UTC) when zero, so that defaults stay deterministic.
	Start, End time.Time
	// Progress, when set, is called after each merchant.
	Progress func(SeededMerchant)
}

// SeedResult reports what Seed did, merchant by merchant.
type SeedResult struct {
	Merchants []SeededMerchant
}

// SeededMerchant reports the rows Seed loaded for one merchant.
type SeededMerchant struct {
	ID string
	// Skipped is set when the merchant had orders already, in which case
	// nothing was generated: seeding at every start of `dev` is cheap.
	Skipped      bool
	Orders       int64
	Items        int64
	Transactions int64
	Elapsed      time.Duration
}

// DefaultSeedMerchants returns the demo merchants `exportd dev` seeds: three
// time zones on both hemispheres, so that daylight saving time shows.
func DefaultSeedMerchants() []SeedMerchant {
	return []SeedMerchant{
		{ID: "cafe-lumiere", Name: "Café Lumière", Timezone: "Europe/Paris", Currency: "EUR", Locations: 3},
		{ID: "harbor-burgers", Name: "Harbor Burgers, Inc.", Timezone: "America/New_York", Currency: "USD", Locations: 4},
		{ID: "southern-books", Name: "Southern \"Cross\" Books", Timezone: "Australia/Sydney", Currency: "AUD", Locations: 2},
	}
}

var (
	defaultSeedStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	defaultSeedEnd   = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
)

var (
	orderColumns = []string{"id", "merchant_id", "location_id", "created_at", "updated_at", "state", "currency",
		"subtotal", "tax", "tip", "total", "customer_ref", "note"}
	itemColumns = []string{"order_id", "line", "sku", "name", "quantity", "unit_price", "amount"}
	txnColumns  = []string{"id", "order_id", "merchant_id", "location_id", "created_at", "kind", "tender",
		"card_brand", "result", "amount"}
)

// Seed generates demo data with binary COPY, merchant by merchant,
// streaming rows from a generator so that memory stays flat whatever the
// size. A merchant that already has orders is skipped; one whose load
// failed has no orders and is loaded afresh, so Seed can simply be run
// again, as `exportd dev` does at every start.
func Seed(ctx context.Context, pool *pgxpool.Pool, opts SeedOptions) (SeedResult, error) {
	merchants, start, end, err := normalizeSeed(opts)
	if err != nil {
		return SeedResult{}, err
	}
	if err := checkIDBlocks(ctx, pool, merchants); err != nil {
		return SeedResult{}, err
	}
	var res SeedResult
	loaded := false
	for _, m := range merchants {
		sm, err := seedMerchant(ctx, pool, opts.Seed, m, start, end)
		if err != nil {
			return res, err
		}
		loaded = loaded || !sm.Skipped
		res.Merchants = append(res.Merchants, sm)
		if opts.Progress != nil {
			opts.Progress(sm)
		}
	}
	if loaded {
		// Fresh statistics keep the export's plans on the indexes right
		// after a large load, before autovacuum gets to it.
		if _, err := pool.Exec(ctx, "ANALYZE orders, order_items, transactions"); err != nil {
			return res, fmt.Errorf("error analyzing seeded tables: %w", err)
		}
	}
	return res, nil
}

func normalizeSeed(opts SeedOptions) ([]SeedMerchant, time.Time, time.Time, error) {
	start, end := opts.Start, opts.End
	if start.IsZero() {
		start = defaultSeedStart
	}
	if end.IsZero() {
		end = defaultSeedEnd
	}
	if !start.Before(end) {
		return nil, start, end, errors.New("seed window must have start before end")
	}
	merchants := opts.Merchants
	if len(merchants) == 0 {
		merchants = DefaultSeedMerchants()
	}
	perMerchant := opts.OrdersPerMerchant
	if perMerchant == 0 {
		perMerchant = 10_000
	}
	out := make([]SeedMerchant, len(merchants))
	seen := map[string]bool{}
	for i, m := range merchants {
		switch {
		case m.ID == "":
			return nil, start, end, errors.New("seed merchant without an id")
		case seen[m.ID]:
			return nil, start, end, fmt.Errorf("seed merchant %s given twice", m.ID)
		case len(m.Currency) != 3:
			return nil, start, end, fmt.Errorf("seed merchant %s: currency must be an ISO 4217 code", m.ID)
		case m.Locations < 0 || m.Locations > 99:
			return nil, start, end, fmt.Errorf("seed merchant %s: locations must be between 1 and 99", m.ID)
		case m.Orders < 0 || perMerchant < 0:
			return nil, start, end, fmt.Errorf("seed merchant %s: negative order count", m.ID)
		case m.Orders >= 1<<idSeqBits/4:
			return nil, start, end, fmt.Errorf("seed merchant %s: too many orders for its id range", m.ID)
		}
		seen[m.ID] = true
		if m.Name == "" {
			m.Name = m.ID
		}
		if m.Timezone == "" {
			m.Timezone = "UTC"
		}
		// Checked up front so that a typo fails before anything loads.
		if _, err := time.LoadLocation(m.Timezone); err != nil {
			return nil, start, end, fmt.Errorf("seed merchant %s: %w", m.ID, err)
		}
		if m.Locations == 0 {
			m.Locations = 3
		}
		if m.Orders == 0 {
			m.Orders = perMerchant
		}
		out[i] = m
	}
	return out, start, end, nil
}

// checkIDBlocks refuses to seed when two merchants, known or new, would
// share an ID block: their orders would collide.
func checkIDBlocks(ctx context.Context, pool *pgxpool.Pool, merchants []SeedMerchant) error {
	rows, err := pool.Query(ctx, "SELECT id FROM merchants")
	if err != nil {
		return fmt.Errorf("error listing merchants: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("error listing merchants: %w", err)
	}
	for _, m := range merchants {
		ids = append(ids, m.ID)
	}
	owner := map[int64]string{}
	for _, id := range ids {
		b := idBlock(id)
		if other, ok := owner[b]; ok && other != id {
			return fmt.Errorf("merchants %s and %s would share seeded order ids: rename one", other, id)
		}
		owner[b] = id
	}
	return nil
}

// seedMerchant loads one merchant. The three tables load at once on three
// connections, since a single COPY keeps one server backend busy and
// leaves the other cores idle; the orders commit last, so a merchant counts
// as seeded only once everything is in. Rows a crash left behind between
// those commits are cleared by the next run before it loads again.
func seedMerchant(ctx context.Context, pool *pgxpool.Pool, seed uint64, m SeedMerchant, start, end time.Time) (SeededMerchant, error) {
	began := time.Now()
	sm := SeededMerchant{ID: m.ID}
	g, err := newGenerator(seed, m, start, end)
	if err != nil {
		return sm, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return sm, fmt.Errorf("error acquiring connection: %w", err)
	}
	// Two seeds of one merchant at once would both find it empty.
	h := fnv.New64a()
	h.Write([]byte("exportd seed " + m.ID))
	lockKey := int64(h.Sum64())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		conn.Release()
		return sm, fmt.Errorf("error locking merchant %s for seeding: %w", m.ID, err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
			// Ending the session is what releases the lock then.
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
			return
		}
		conn.Release()
	}()

	seeded, err := prepareMerchant(ctx, conn.Conn(), m, g)
	if err != nil {
		return sm, err
	}
	if seeded {
		sm.Skipped = true
		sm.Elapsed = time.Since(began)
		return sm, nil
	}

	jobs := []copyJob{
		{table: "order_items", columns: itemColumns, rows: &sm.Items, source: func(g *generator) pgx.CopyFromSource { return newItemSource(g) }},
		{table: "transactions", columns: txnColumns, rows: &sm.Transactions, source: func(g *generator) pgx.CopyFromSource { return newTxnSource(g) }},
		{table: "orders", columns: orderColumns, rows: &sm.Orders, source: func(g *generator) pgx.CopyFromSource { return newOrderSource(g) }},
	}
	conns := []*pgx.Conn{conn.Conn()}
	// A pool too small for three connections gets one transaction.
	if pool.Config().MaxConns >= int32(len(jobs)) {
		for range jobs[1:] {
			c, err := pool.Acquire(ctx)
			if err != nil {
				return sm, fmt.Errorf("error acquiring connection: %w", err)
			}
			defer c.Release()
			conns = append(conns, c.Conn())
		}
	}
	if err := runCopies(ctx, conns, jobs, func() (*generator, error) { return newGenerator(seed, m, start, end) }); err != nil {
		return sm, fmt.Errorf("error seeding merchant %s: %w", m.ID, err)
	}
	sm.Elapsed = time.Since(began)
	return sm, nil
}

// prepareMerchant inserts the merchant and its locations and clears rows of
// an interrupted earlier load. It reports whether the merchant has orders
// already.
func prepareMerchant(ctx context.Context, conn *pgx.Conn, m SeedMerchant, g *generator) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("error beginning seed of %s: %w", m.ID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `INSERT INTO merchants (id, name, timezone, currency) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, m.ID, m.Name, m.Timezone, m.Currency); err != nil {
		return false, fmt.Errorf("error inserting merchant %s: %w", m.ID, err)
	}
	var seeded bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM orders WHERE merchant_id = $1)", m.ID).Scan(&seeded); err != nil {
		return false, fmt.Errorf("error checking orders of %s: %w", m.ID, err)
	}
	if seeded {
		return true, tx.Commit(ctx)
	}
	for _, l := range g.locations {
		if _, err := tx.Exec(ctx, `INSERT INTO locations (id, merchant_id, name, classifier) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, l.id, m.ID, l.name, l.classifier); err != nil {
			return false, fmt.Errorf("error inserting location %s: %w", l.id, err)
		}
	}
	lo, hi := idRange(m.ID)
	if _, err := tx.Exec(ctx, "DELETE FROM transactions WHERE id BETWEEN $1 AND $2 AND merchant_id = $3", lo, hi, m.ID); err != nil {
		return false, fmt.Errorf("error clearing partial seed of %s: %w", m.ID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM order_items i WHERE order_id BETWEEN $1 AND $2
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id)`, lo, hi); err != nil {
		return false, fmt.Errorf("error clearing partial seed of %s: %w", m.ID, err)
	}
	var taken bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE id BETWEEN $1 AND $2)
		OR EXISTS (SELECT 1 FROM transactions WHERE id BETWEEN $1 AND $2)
		OR EXISTS (SELECT 1 FROM order_items WHERE order_id BETWEEN $1 AND $2)`, lo, hi).Scan(&taken); err != nil {
		return false, fmt.Errorf("error checking id range of %s: %w", m.ID, err)
	}
	if taken {
		return false, fmt.Errorf("seed ids of merchant %s (%d-%d) are taken by other rows", m.ID, lo, hi)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("error committing merchant %s: %w", m.ID, err)
	}
	return false, nil
}

// copyJob is the COPY of one table from a fresh generator.
type copyJob struct {
	table   string
	columns []string
	source  func(*generator) pgx.CopyFromSource
	rows    *int64
}

// runCopies runs the jobs in one transaction per connection, jobs spread
// over the connections, and commits in job order once all have succeeded.
func runCopies(ctx context.Context, conns []*pgx.Conn, jobs []copyJob, newGen func() (*generator, error)) error {
	txs := make([]pgx.Tx, len(conns))
	for i, c := range conns {
		tx, err := c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("error beginning copy: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		// The load inserts new orders, each stamped by its own insert: the
		// triggers that stamp an order when its items or payments change
		// have nothing to do (migration 0006).
		if _, err := tx.Exec(ctx, "SET LOCAL exportd.bulk_load = 'on'"); err != nil {
			return fmt.Errorf("error beginning copy: %w", err)
		}
		txs[i] = tx
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for j := w; j < len(jobs); j += len(conns) {
				job := jobs[j]
				g, err := newGen()
				if err == nil {
					*job.rows, err = txs[w].CopyFrom(ctx, pgx.Identifier{job.table}, job.columns, job.source(g))
				}
				if err != nil {
					errs[w] = fmt.Errorf("error copying %s: %w", job.table, err)
					cancel() // the others would only be rolled back
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, tx := range txs {
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("error committing copy: %w", err)
		}
	}
	return nil
}

// The COPY sources hand pgx pointers to the generator's reused rows: a
// pointer in an interface costs no allocation, and pgtype encodes the
// pgtype values behind them without reflection.

type orderSource struct {
	g    *generator
	vals []any
}

func newOrderSource(g *generator) *orderSource {
	o := &g.order
	return &orderSource{g: g, vals: []any{&o.id, &o.merchantID, &o.locationID, &o.createdAt, &o.updatedAt,
		&o.state, &o.currency, &o.subtotal, &o.tax, &o.tip, &o.total, &o.customerRef, &o.note}}
}

func (s *orderSource) Next() bool             { return s.g.next() }
func (s *orderSource) Values() ([]any, error) { return s.vals, nil }
func (s *orderSource) Err() error             { return nil }

type itemSource struct {
	g    *generator
	i    int
	vals [len(generator{}.items)][]any
}

func newItemSource(g *generator) *itemSource {
	s := &itemSource{g: g}
	for i := range g.items {
		it := &g.items[i]
		s.vals[i] = []any{&it.orderID, &it.line, &it.sku, &it.name, &it.quantity, &it.unitPrice, &it.amount}
	}
	return s
}

func (s *itemSource) Next() bool {
	s.i++
	for s.i >= s.g.nItems {
		if !s.g.next() {
			return false
		}
		s.i = 0
	}
	return true
}

func (s *itemSource) Values() ([]any, error) { return s.vals[s.i], nil }
func (s *itemSource) Err() error             { return nil }

type txnSource struct {
	g    *generator
	i    int
	vals [len(generator{}.txns)][]any
}

func newTxnSource(g *generator) *txnSource {
	s := &txnSource{g: g}
	for i := range g.txns {
		x := &g.txns[i]
		s.vals[i] = []any{&x.id, &x.orderID, &x.merchantID, &x.locationID, &x.createdAt, &x.kind, &x.tender,
			&x.brand, &x.result, &x.amount}
	}
	return s
}

func (s *txnSource) Next() bool {
	s.i++
	for s.i >= s.g.nTxns {
		if !s.g.next() {
			return false
		}
		s.i = 0
	}
	return true
}

func (s *txnSource) Values() ([]any, error) { return s.vals[s.i], nil }
func (s *txnSource) Err() error             { return nil }
