package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/exportd/exportd"
)

// Window is the export window a bench run measures.
type Window struct {
	MerchantID string
	Dataset    exportd.Dataset
	Start, End time.Time
}

// LimitPart is one COPY of the limit and what it took.
type LimitPart struct {
	Name    string
	Rows    int64
	Bytes   int64
	Seconds float64
}

// LimitQueries returns the queries an export of w runs, unpaged, in export
// order: for orders, the orders themselves and then their items and
// payments (the export reads the children of every page with two more
// queries); for payments, the transactions alone. The values are inlined,
// as COPY takes no parameters.
func LimitQueries(w Window) [][2]string {
	cond := func(alias string) string {
		return fmt.Sprintf("%[1]smerchant_id = %[2]s AND %[1]screated_at >= %[3]s AND %[1]screated_at < %[4]s", alias,
			quote(w.MerchantID), quote(w.Start.UTC().Format(time.RFC3339Nano)), quote(w.End.UTC().Format(time.RFC3339Nano)))
	}
	in, oin := cond(""), cond("o.")
	if w.Dataset == exportd.Payments {
		return [][2]string{{"transactions",
			"SELECT id, order_id, location_id, created_at, kind, tender, card_brand, result, amount FROM transactions WHERE " +
				in + " ORDER BY created_at, id"}}
	}
	return [][2]string{
		{"orders", "SELECT id, location_id, created_at, updated_at, state, currency, subtotal, tax, tip, total, customer_ref, note FROM orders WHERE " +
			in + " ORDER BY created_at, id"},
		{"items", "SELECT i.order_id, i.line, i.sku, i.name, i.quantity, i.unit_price, i.amount FROM orders o JOIN order_items i ON i.order_id = o.id WHERE " +
			oin + " ORDER BY o.created_at, o.id, i.line"},
		{"payments", "SELECT t.id, t.order_id, t.location_id, t.created_at, t.kind, t.tender, t.card_brand, t.result, t.amount FROM orders o JOIN transactions t ON t.order_id = o.id AND t.merchant_id = o.merchant_id WHERE " +
			oin + " ORDER BY o.created_at, o.id, t.created_at, t.id"},
	}
}

// CopyLimit times PostgreSQL's own `COPY (query) TO STDOUT (FORMAT binary)`
// into io.Discard for each of the window's queries, one after the other on
// one connection, as the export reads them: the practical limit of any
// export of the window.
func CopyLimit(ctx context.Context, conn *pgconn.PgConn, w Window) ([]LimitPart, error) {
	var parts []LimitPart
	for _, q := range LimitQueries(w) {
		var n countingWriter
		start := time.Now()
		tag, err := conn.CopyTo(ctx, &n, "COPY ("+q[1]+") TO STDOUT (FORMAT binary)")
		if err != nil {
			return nil, fmt.Errorf("error copying %s: %w", q[0], err)
		}
		parts = append(parts, LimitPart{Name: q[0], Rows: tag.RowsAffected(), Bytes: int64(n), Seconds: time.Since(start).Seconds()})
	}
	return parts, nil
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return io.Discard.Write(p)
}

// quote makes a SQL string literal.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// NaivePipeline times what a user would write instead of exportd: each of
// the window's queries as `COPY (query) TO STDOUT (FORMAT csv)` piped
// through `gzip -1` into a flat file in dir, one after the other on one
// connection. It needs gzip on PATH.
func NaivePipeline(ctx context.Context, conn *pgconn.PgConn, w Window, dir string) (float64, error) {
	start := time.Now()
	for _, q := range LimitQueries(w) {
		out, err := os.Create(filepath.Join(dir, q[0]+".csv.gz"))
		if err != nil {
			return 0, err
		}
		gz := exec.CommandContext(ctx, "gzip", "-1")
		gz.Stdout = out
		in, err := gz.StdinPipe()
		if err == nil {
			err = gz.Start()
		}
		if err != nil {
			out.Close()
			return 0, fmt.Errorf("error starting gzip: %w", err)
		}
		_, cerr := conn.CopyTo(ctx, in, "COPY ("+q[1]+") TO STDOUT (FORMAT csv)")
		in.Close()
		werr := gz.Wait()
		out.Close()
		if cerr != nil {
			return 0, fmt.Errorf("error copying %s: %w", q[0], cerr)
		}
		if werr != nil {
			return 0, fmt.Errorf("gzip of %s: %w", q[0], werr)
		}
	}
	return time.Since(start).Seconds(), nil
}
