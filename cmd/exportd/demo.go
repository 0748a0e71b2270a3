package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/bench"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/wiring"
)

// demoWindow covers the demo data (postgres.Seed's default window).
var demoWindow = [2]time.Time{
	time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
}

// runDemo exports the first demo merchant's orders in all four formats
// through the HTTP API, as a client would, then checks the files against
// their manifest and the manifest against SQL.
func runDemo(ctx context.Context, out io.Writer, stack *wiring.Stack) error {
	app := stack.Info.Apps[0]
	merchant := app.Merchants[0]
	body := fmt.Sprintf(`{"merchantId": %q, "dataset": "orders", "start": %q, "end": %q, "formats": ["parquet", "arrow", "jsonl.gz", "csv.gz"], "maxRowsPerFile": 5000}`,
		merchant, demoWindow[0].Format(time.RFC3339), demoWindow[1].Format(time.RFC3339))
	fmt.Fprintf(out, "demo: POST %s/v1/exports\n      %s\n", stack.Info.APIURL, body)
	var doc bench.StatusDoc
	status, err := bench.Call(ctx, http.MethodPost, stack.Info.APIURL+"/v1/exports", app.APIKey, body, &doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: %d %s, export %s\n", status, http.StatusText(status), doc.ID)
	fmt.Fprintf(out, "demo: watch it in the Web UI: %s/namespaces/default/workflows/%s\n\n",
		stack.Info.TemporalUIURL, contract.WorkflowID(doc.ID))

	if err := demoWait(ctx, out, stack, app.APIKey, &doc); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: %-9s 100.0%%  %d rows, available until %s\n\n", doc.Status, doc.Progress.Rows, doc.AvailableUntil.Format(time.RFC3339))

	fmt.Fprintf(out, "  %-24s %-9s %7s %10s  %s\n", "file", "format", "rows", "bytes", "sha256 (downloaded, checked)")
	var manifest exportd.Manifest
	if _, err := bench.Call(ctx, http.MethodGet, stack.Info.APIURL+"/v1/exports/"+doc.ID+"/manifest", app.APIKey, "", &manifest); err != nil {
		return err
	}
	for _, f := range doc.Files {
		b, err := demoDownload(ctx, f.URL, app.APIKey)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Bytes {
			return fmt.Errorf("%s: downloaded %d bytes with sha256 %x, manifest says %d bytes, %s", f.Name, len(b), sum, f.Bytes, f.SHA256)
		}
		fmt.Fprintf(out, "  %-24s %-9s %7d %10d  %s... ok\n", f.Name, f.Format, f.Rows, f.Bytes, f.SHA256[:16])
	}

	var rows, total, txns, amount int64
	err = stack.Pool.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(total), 0),
		       coalesce((SELECT count(*) FROM transactions t JOIN orders o2 ON o2.id = t.order_id
		                 WHERE o2.merchant_id = $1 AND o2.created_at >= $2 AND o2.created_at < $3), 0),
		       coalesce((SELECT sum(t.amount) FROM transactions t JOIN orders o2 ON o2.id = t.order_id
		                 WHERE o2.merchant_id = $1 AND o2.created_at >= $2 AND o2.created_at < $3), 0)
		FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
		merchant, demoWindow[0], demoWindow[1]).Scan(&rows, &total, &txns, &amount)
	if err != nil {
		return fmt.Errorf("error querying the source: %w", err)
	}
	fmt.Fprintf(out, "\n  %-22s %12s %16s %14s %16s\n", "", "orders", "sum(total)", "transactions", "sum(amount)")
	fmt.Fprintf(out, "  %-22s %12d %16d %14d %16d\n", "SQL over the window", rows, total, txns, amount)
	fmt.Fprintf(out, "  %-22s %12d %16d %14d %16d\n", "export manifest", manifest.Rows, manifest.Totals.Total, manifest.Tally.Transactions, manifest.Tally.Amount)
	if rows != manifest.Rows || total != manifest.Totals.Total || txns != manifest.Tally.Transactions || amount != manifest.Tally.Amount {
		return fmt.Errorf("the export does not match SQL")
	}
	fmt.Fprintf(out, "\ndemo: every file matches its sha256, and the export matches SQL.\n")
	fmt.Fprintf(out, "demo: try it yourself:\n  curl -H 'Authorization: Bearer %s' %s/v1/exports/%s\n\n", app.APIKey, stack.Info.APIURL, doc.ID)
	if err := runChangeDemo(ctx, out, stack, app.APIKey, merchant); err != nil {
		return fmt.Errorf("change exports: %w", err)
	}
	return nil
}

func demoDownload(ctx context.Context, url, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// demoWait polls an export until it succeeds, printing its progress.
func demoWait(ctx context.Context, out io.Writer, stack *wiring.Stack, key string, doc *bench.StatusDoc) error {
	last := ""
	for doc.Status != "succeeded" {
		if doc.Status == "failed" || doc.Status == "canceled" || doc.Status == "expired" {
			return fmt.Errorf("export ended %s: %+v", doc.Status, doc.Error)
		}
		line := fmt.Sprintf("%-9s %5.1f%%  %d of %d rows", doc.Status, doc.Progress.Percent, doc.Progress.Rows, doc.Progress.Total)
		if line != last {
			fmt.Fprintf(out, "demo: %s\n", line)
			last = line
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := bench.Call(ctx, http.MethodGet, stack.Info.APIURL+"/v1/exports/"+doc.ID, key, "", doc); err != nil {
			return err
		}
	}
	return nil
}

// runChangeDemo keeps a copy of the merchant's orders in sync with change
// exports: the backfill, then, after a few edits, an insert and a delete
// in the source, the change export from the backfill's cursor, which
// holds exactly those.
func runChangeDemo(ctx context.Context, out io.Writer, stack *wiring.Stack, key, merchant string) error {
	api := stack.Info.APIURL + "/v1/exports"
	run := func(cursor string) (bench.StatusDoc, map[string]int, error) {
		body := fmt.Sprintf(`{"merchantId": %q, "dataset": "orders", "mode": "changes", "formats": ["parquet", "jsonl.gz"]}`, merchant)
		if cursor != "" {
			body = body[:len(body)-1] + fmt.Sprintf(`, "cursor": %q}`, cursor)
		}
		shown := body
		if cursor != "" {
			shown = strings.Replace(body, cursor, demoShorten(cursor), 1)
		}
		fmt.Fprintf(out, "demo: POST %s\n      %s\n", api, shown)
		var doc bench.StatusDoc
		if _, err := bench.Call(ctx, http.MethodPost, api, key, body, &doc); err != nil {
			return doc, nil, err
		}
		if err := demoWait(ctx, out, stack, key, &doc); err != nil {
			return doc, nil, err
		}
		ops := map[string]int{}
		for _, f := range doc.Files {
			if f.Format != string(exportd.JSONL) {
				continue
			}
			b, err := demoDownload(ctx, f.URL, key)
			if err != nil {
				return doc, nil, err
			}
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return doc, nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			dec := json.NewDecoder(zr)
			for {
				var rec struct {
					Op string `json:"op"`
				}
				if err := dec.Decode(&rec); err == io.EOF {
					break
				} else if err != nil {
					return doc, nil, fmt.Errorf("%s: %w", f.Name, err)
				}
				ops[rec.Op]++
			}
		}
		fmt.Fprintf(out, "demo: %s: %d upserts, %d deletes; nextCursor %s\n\n", doc.ID, ops["upsert"], ops["delete"], demoShorten(doc.NextCursor))
		return doc, ops, nil
	}

	fmt.Fprintf(out, "demo: keeping a copy in sync: a change export without a cursor is the backfill\n")
	backfill, ops, err := run("")
	if err != nil {
		return err
	}
	var current int
	if err := stack.Pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE merchant_id = $1", merchant).Scan(&current); err != nil {
		return fmt.Errorf("error querying the source: %w", err)
	}
	if ops["upsert"] != current || ops["delete"] != 0 {
		return fmt.Errorf("the backfill has %d upserts and %d deletes; the merchant has %d orders", ops["upsert"], ops["delete"], current)
	}

	// Three edits, one new order and one deleted, as the systems writing
	// the source would make them.
	var created, deleted int64
	err = pgx.BeginFunc(ctx, stack.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE orders SET note = 'edited by the demo', updated_at = now()
			WHERE id IN (SELECT id FROM orders WHERE merchant_id = $1 ORDER BY created_at DESC, id LIMIT 3)`, merchant); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO orders (id, merchant_id, location_id, created_at, updated_at, state, currency, subtotal, tax, tip, total, customer_ref, note)
			SELECT (SELECT max(id) + 1 FROM orders), merchant_id, location_id, now(), now(), 'open', currency, 0, 0, NULL, 0, NULL, 'demo'
			FROM orders WHERE merchant_id = $1 LIMIT 1 RETURNING id`, merchant).Scan(&created); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT id FROM orders WHERE merchant_id = $1 ORDER BY created_at, id LIMIT 1", merchant).Scan(&deleted); err != nil {
			return err
		}
		for _, q := range []string{"DELETE FROM transactions WHERE order_id = $1", "DELETE FROM order_items WHERE order_id = $1", "DELETE FROM orders WHERE id = $1"} {
			if _, err := tx.Exec(ctx, q, deleted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("error editing the source: %w", err)
	}
	fmt.Fprintf(out, "demo: in the source: the 3 newest orders edited, order %d created, order %d deleted\n", created, deleted)
	_, ops, err = run(backfill.NextCursor)
	if err != nil {
		return err
	}
	if ops["upsert"] != 4 || ops["delete"] != 1 {
		return fmt.Errorf("the change export has %d upserts and %d deletes; 4 orders were edited or created and 1 deleted", ops["upsert"], ops["delete"])
	}
	fmt.Fprintf(out, "demo: the change export holds exactly what changed since the backfill's cursor (README: Keeping a copy in sync).\n\n")
	return nil
}

// demoShorten abbreviates a cursor in what the demo prints.
func demoShorten(cursor string) string {
	if len(cursor) > 24 {
		return cursor[:24] + "..."
	}
	return cursor
}
