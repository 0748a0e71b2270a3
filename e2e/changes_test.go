package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// changeDoc is the part of a change export's status document the tests
// read.
type changeDoc struct {
	exportDoc
	Mode       string `json:"mode"`
	Cursor     string `json:"cursor"`
	NextCursor string `json:"nextCursor"`
}

// changeRow is one record of a change export's JSON lines.
type changeRow struct {
	ID        int64   `json:"id"`
	Op        string  `json:"op"`
	Note      *string `json:"note"`
	Total     int64   `json:"total"`
	DeletedAt *string `json:"deleted_at"`
}

// copyOrder is what the test keeps of an order, in the copy and in SQL.
type copyOrder struct {
	Note  string
	Total int64
}

// changeExport runs a change export of the app's first merchant through
// the API and returns its document and records.
func changeExport(t *testing.T, s *stack, key, merchant, cursor string) (changeDoc, []changeRow) {
	t.Helper()
	body := map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "changes", "formats": []string{"jsonl.gz", "parquet"}, "maxRowsPerFile": 400}
	if cursor != "" {
		body["cursor"] = cursor
	}
	var doc changeDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", key, body, &doc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "changes", doc.Mode)
	require.Equal(t, cursor, doc.Cursor)
	require.Empty(t, doc.NextCursor, "no cursor before the export succeeded")
	final, _ := waitFor(t, s, key, doc.ID)
	require.Equal(t, "succeeded", final.Status, "%+v", final.Error)
	call(t, http.MethodGet, s.APIURL+"/v1/exports/"+doc.ID, key, nil, &doc)
	require.NotEmpty(t, doc.NextCursor)
	rows := changeRecords(t, key, doc)
	return doc, rows
}

// changeRecords downloads a change export's JSON lines.
func changeRecords(t *testing.T, key string, doc changeDoc) []changeRow {
	t.Helper()
	var rows []changeRow
	for _, f := range doc.Files {
		if f.Format != "jsonl.gz" {
			continue
		}
		resp, b := download(t, f.URL, key, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		zr, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r changeRow
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
			rows = append(rows, r)
		}
		require.NoError(t, sc.Err())
	}
	require.Equal(t, doc.Progress.Rows, int64(len(rows)))
	return rows
}

// currentOrders is the merchant's orders in SQL, as a replayed copy
// holds them.
func currentOrders(t *testing.T, db *pgx.Conn, merchant string) map[int64]copyOrder {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT id, coalesce(note, ''), total FROM orders WHERE merchant_id = $1", merchant)
	require.NoError(t, err)
	out := map[int64]copyOrder{}
	for rows.Next() {
		var id int64
		var o copyOrder
		require.NoError(t, rows.Scan(&id, &o.Note, &o.Total))
		out[id] = o
	}
	require.NoError(t, rows.Err())
	return out
}

// apply replays a change export's records onto a copy.
func apply(t *testing.T, cp map[int64]copyOrder, rows []changeRow) {
	t.Helper()
	for _, r := range rows {
		switch r.Op {
		case "upsert":
			note := ""
			if r.Note != nil {
				note = *r.Note
			}
			cp[r.ID] = copyOrder{Note: note, Total: r.Total}
		case "delete":
			require.NotNil(t, r.DeletedAt, "delete of %d has deleted_at", r.ID)
			delete(cp, r.ID)
		default:
			t.Fatalf("record %d has op %q", r.ID, r.Op)
		}
	}
}

// TestChangeExportsThroughTheAPI backfills a merchant with a change
// export, then edits, inserts and deletes orders between two more; each
// export holds exactly the changes since the previous one's cursor, and
// replaying the chain gives the merchant's current orders. Cursors are
// refused for another app, merchant or dataset, forged, and with a time
// window.
func TestChangeExportsThroughTheAPI(t *testing.T) {
	s := startDev(t, "--seed-orders", "1000")
	apps := devApps(t, s)
	app, other := apps[0], apps[1]
	merchant := app.Merchants[0]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	exec := func(sql string, args ...any) {
		_, err := db.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	ids := func(n, offset int) []int64 {
		rows, err := db.Query(ctx, "SELECT id FROM orders WHERE merchant_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3", merchant, n, offset)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return ids
	}

	cp := map[int64]copyOrder{}
	backfill, rows := changeExport(t, s, app.APIKey, merchant, "")
	require.Len(t, rows, 1000, "the backfill holds every current order")
	apply(t, cp, rows)
	require.Equal(t, currentOrders(t, db, merchant), cp)

	// Edits, a new order, deletes; then the second export holds exactly
	// those.
	edited := ids(4, 100)
	for _, id := range edited {
		exec("UPDATE orders SET note = 'edited once', updated_at = clock_timestamp() WHERE id = $1", id)
	}
	exec(`INSERT INTO orders (id, merchant_id, location_id, created_at, updated_at, state, currency, subtotal, tax, tip, total, customer_ref, note)
		SELECT 990000001, merchant_id, location_id, now(), now(), 'open', currency, 0, 0, NULL, 0, NULL, 'new' FROM orders WHERE id = $1`, edited[0])
	deleted := ids(2, 500)
	for _, id := range deleted {
		exec("DELETE FROM transactions WHERE order_id = $1", id)
		exec("DELETE FROM order_items WHERE order_id = $1", id)
		exec("DELETE FROM orders WHERE id = $1", id)
	}
	second, rows := changeExport(t, s, app.APIKey, merchant, backfill.NextCursor)
	ops := map[int64]string{}
	for _, r := range rows {
		ops[r.ID] = r.Op
	}
	want := map[int64]string{990000001: "upsert", deleted[0]: "delete", deleted[1]: "delete"}
	for _, id := range edited {
		want[id] = "upsert"
	}
	require.Equal(t, want, ops)
	apply(t, cp, rows)
	require.Equal(t, currentOrders(t, db, merchant), cp)

	// An order edited again and then deleted, one edited twice.
	exec("UPDATE orders SET note = 'edited twice', total = total + 1, updated_at = clock_timestamp() WHERE id = $1", edited[1])
	exec("UPDATE orders SET note = 'edited thrice', updated_at = clock_timestamp() WHERE id = $1", edited[1])
	exec("UPDATE orders SET note = 'gone soon', updated_at = clock_timestamp() WHERE id = 990000001")
	exec("DELETE FROM orders WHERE id = 990000001")
	third, rows := changeExport(t, s, app.APIKey, merchant, second.NextCursor)
	require.Len(t, rows, 2, "%+v", rows)
	apply(t, cp, rows)
	require.Equal(t, currentOrders(t, db, merchant), cp, "the chain replays to the current orders")

	// The manifest carries the cursors too.
	var m struct {
		Mode, Cursor, NextCursor string
	}
	call(t, http.MethodGet, s.APIURL+"/v1/exports/"+third.ID+"/manifest", app.APIKey, nil, &m)
	require.Equal(t, "changes", m.Mode)
	require.Equal(t, second.NextCursor, m.Cursor)
	require.Equal(t, third.NextCursor, m.NextCursor)

	// Refusals: each a 400 problem naming the field.
	forged := strings.TrimSuffix(third.NextCursor, third.NextCursor[len(third.NextCursor)-4:]) + "AAAA"
	refusals := []struct {
		name, key, field string
		body             map[string]any
	}{
		{"window with changes", app.APIKey, "start", map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "changes", "start": window[0], "end": window[1]}},
		{"end with changes", app.APIKey, "end", map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "changes", "end": window[1]}},
		{"forged cursor", app.APIKey, "cursor", map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "changes", "cursor": forged}},
		{"malformed cursor", app.APIKey, "cursor", map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "changes", "cursor": "not-a-cursor"}},
		{"other dataset", app.APIKey, "cursor", map[string]any{"merchantId": merchant, "dataset": "payments", "mode": "changes", "cursor": third.NextCursor}},
		{"other merchant", app.APIKey, "cursor", map[string]any{"merchantId": app.Merchants[1], "dataset": "orders", "mode": "changes", "cursor": third.NextCursor}},
		{"other app", other.APIKey, "cursor", map[string]any{"merchantId": other.Merchants[0], "dataset": "orders", "mode": "changes", "cursor": third.NextCursor}},
		{"cursor without changes", app.APIKey, "cursor", map[string]any{"merchantId": merchant, "dataset": "orders", "start": window[0], "end": window[1], "cursor": third.NextCursor}},
		{"unknown mode", app.APIKey, "mode", map[string]any{"merchantId": merchant, "dataset": "orders", "mode": "since"}},
	}
	for _, r := range refusals {
		var p problem
		resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", r.key, r.body, &p)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, r.name)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), r.name)
		require.Equal(t, r.field, p.Field, "%s: %+v", r.name, p)
	}
}
