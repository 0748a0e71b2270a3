package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

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
		if _, err := bench.Call(ctx, http.MethodGet, stack.Info.APIURL+"/v1/exports/"+doc.ID, app.APIKey, "", &doc); err != nil {
			return err
		}
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
