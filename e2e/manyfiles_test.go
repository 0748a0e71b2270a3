package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestTwelveThousandFiles exports 15,000 orders in all four formats, five
// rows a file: 12,000 files. Nothing of that size may ride a Temporal
// payload, so the export must finish like a small one; its status
// document lists the first 100 files and links the rest, the listing
// pages through all 12,000 exactly once in manifest order, and the
// manifest's rows add up to SQL.
func TestTwelveThousandFiles(t *testing.T) {
	s := startDev(t, "--seed-orders", "15000")
	app := s.Apps[0]
	merchant := app.Merchants[0]
	body := map[string]any{"merchantId": merchant, "dataset": "orders", "start": window[0], "end": window[1],
		"formats": []string{"parquet", "arrow", "jsonl.gz", "csv.gz"}, "maxRowsPerFile": 5}
	var doc exportDoc
	resp := call(t, http.MethodPost, s.APIURL+"/v1/exports", app.APIKey, body, &doc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	began := time.Now()

	type statusDoc struct {
		Status    string `json:"status"`
		FileCount int    `json:"fileCount"`
		Files     []struct {
			Name string `json:"name"`
		} `json:"files"`
		Links map[string]string `json:"links"`
		Error *struct {
			Code, Message string
		} `json:"error"`
	}
	var st statusDoc
	var raw []byte
	for deadline := time.Now().Add(6 * time.Minute); ; {
		resp, b := download(t, s.APIURL+"/v1/exports/"+doc.ID, app.APIKey, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.Unmarshal(b, &st))
		raw = b
		if st.Status != "queued" && st.Status != "running" {
			break
		}
		require.True(t, time.Now().Before(deadline), "export %s still %s after 6 minutes", doc.ID, st.Status)
		time.Sleep(500 * time.Millisecond)
	}
	require.Equal(t, "succeeded", st.Status, "%+v", st.Error)
	t.Logf("12,000 files written in %s", time.Since(began).Round(time.Millisecond))
	require.Equal(t, 12_000, st.FileCount)
	require.Len(t, st.Files, 100, "the status document lists the first files inline")
	require.Less(t, len(raw), 128<<10, "and stays small: %d bytes", len(raw))
	require.NotEmpty(t, st.Links["nextFiles"])

	var m manifest
	resp = call(t, http.MethodGet, s.APIURL+"/v1/exports/"+doc.ID+"/manifest", app.APIKey, nil, &m)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, m.Files, 12_000, "the manifest is complete")

	// Page through every file, 1,000 at a time, following links.next.
	var names []string
	next := st.Links["files"] + "?limit=1000"
	pages := 0
	for next != "" {
		var page struct {
			Files []struct {
				Name   string `json:"name"`
				SHA256 string `json:"sha256"`
				URL    string `json:"url"`
			} `json:"files"`
			Links map[string]string `json:"links"`
		}
		resp := call(t, http.MethodGet, next, app.APIKey, nil, &page)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, f := range page.Files {
			names = append(names, f.Name)
		}
		next = page.Links["next"]
		pages++
	}
	require.Equal(t, 12, pages)
	require.Len(t, names, 12_000)
	for i, f := range m.Files {
		require.Equal(t, f.Name, names[i], "the listing is in manifest order, each file once")
	}
	for i, f := range st.Files {
		require.Equal(t, names[i], f.Name, "the status document lists the first files")
	}
	var after struct {
		Files []struct {
			Name string `json:"name"`
		} `json:"files"`
	}
	resp = call(t, http.MethodGet, st.Links["nextFiles"], app.APIKey, nil, &after)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, names[100], after.Files[0].Name, "links.nextFiles continues after them")

	// Rows add up, per format, to SQL.
	pool, err := pgxpool.New(context.Background(), s.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()
	var want int64
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(*) FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3", merchant, window[0], window[1]).Scan(&want))
	require.Equal(t, int64(15_000), want)
	perFormat := map[string]int64{}
	for _, f := range m.Files {
		perFormat[f.Format] += f.Rows
	}
	require.Equal(t, map[string]int64{"parquet": want, "arrow": want, "jsonl.gz": want, "csv.gz": want}, perFormat)
	require.Equal(t, want, m.Rows)

	// The last file downloads and matches its sha256.
	last := m.Files[len(m.Files)-1]
	resp, b := download(t, s.APIURL+"/v1/exports/"+doc.ID+"/files/"+last.Name, app.APIKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sum := sha256.Sum256(b)
	require.Equal(t, last.SHA256, hex.EncodeToString(sum[:]))
}
