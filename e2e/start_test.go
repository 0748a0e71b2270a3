package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/starter"
)

// cliRun is the outcome of one `exportd` subprocess.
type cliRun struct {
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs `exportd <args>` with the environment dev.json hands to
// separate processes, and nothing EXPORTD_* from the test's own.
func runCLI(t *testing.T, bin string, s *stack, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXPORTD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else {
		require.NoError(t, err, "%s", r)
	}
	return r
}

func TestStartCommand(t *testing.T) {
	s := startDev(t, "--seed-orders", "3000")
	bin := buildExportd(t)
	app, other := s.Apps[0], s.Apps[1]
	merchant := app.Merchants[0]
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	require.NotEmpty(t, s.Env["EXPORTD_BLOB_DIR"])
	require.NotEmpty(t, s.Env["EXPORTD_TEMPORAL_ADDRESS"])

	// Start, follow, download and verify, with a plain date as --from.
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"start", "--merchant", merchant, "--dataset", "orders", "--from", "2025-01-01", "--to", window[1],
		"--format", "parquet,csv.gz", "--max-rows-per-file", "1000", "--id", "cli-1"}
	r := runCLI(t, bin, s, append(args, "--wait", "--out", out)...)
	require.Equal(t, 0, r.code, "%s", r)
	require.True(t, strings.HasPrefix(r.stdout, "export cli-1 started (workflow export-cli-1)\n"), "%s", r)

	var rows, sumTotal int64
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*), sum(total) FROM orders
		WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`, merchant, window[0], window[1]).Scan(&rows, &sumTotal))
	require.Equal(t, int64(3000), rows)

	b, err := os.ReadFile(filepath.Join(out, exportd.ManifestName))
	require.NoError(t, err, "the manifest is written last, after every file matched")
	var m exportd.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "cli-1", m.ExportID)
	require.Equal(t, rows, m.Rows)
	require.Equal(t, sumTotal, m.Totals.Total)
	require.Len(t, m.Files, 6, "3 parts x 2 formats")
	require.Contains(t, r.stdout, fmt.Sprintf("export cli-1 succeeded: %d rows in 6 files", rows))

	// Every file is in out with the sha256 the manifest promises, listed
	// as checked; the CSV files hold exactly the SQL rows and totals.
	var csvRows, csvTotal int64
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(out, f.Name))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, f.SHA256, hex.EncodeToString(sum[:]), f.Name)
		require.Regexp(t, `(?m)^\s+`+f.Name+`\s.*sha256 `+f.SHA256+`  ok$`, r.stdout)
		if f.Format == exportd.CSV {
			n, total := csvTotals(t, data)
			require.Equal(t, f.Rows, n, f.Name)
			csvRows += n
			csvTotal += total
		}
	}
	require.Equal(t, rows, csvRows)
	require.Equal(t, sumTotal, csvTotal)
	require.NoError(t, starter.Verify(out, m))

	// The progress bar ends at every row, on stderr only.
	require.Contains(t, r.stderr, "100%")
	require.Contains(t, r.stderr, fmt.Sprintf("(%d/%d) rows", rows, rows))
	require.NotContains(t, r.stdout, "|")

	// An export with no owning app is visible to every app the merchant
	// installed, and to no other.
	var doc exportDoc
	resp := call(t, http.MethodGet, s.APIURL+"/v1/exports/cli-1", app.APIKey, nil, &doc)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "succeeded", doc.Status)
	require.Len(t, doc.Files, len(m.Files))
	for i, f := range doc.Files {
		require.Equal(t, m.Files[i].SHA256, f.SHA256)
	}
	resp = call(t, http.MethodGet, s.APIURL+"/v1/exports/cli-1", other.APIKey, nil, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A file corrupted after the download is caught by Verify.
	victim := filepath.Join(out, m.Files[1].Name)
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(victim, data, 0o600))
	err = starter.Verify(out, m)
	var verr *starter.VerifyError
	require.ErrorAs(t, err, &verr)
	require.Len(t, verr.Mismatches, 1)
	require.Equal(t, m.Files[1].Name, verr.Mismatches[0].File.Name)

	// A file corrupted in the blob store fails the download: the same
	// request with the same id follows the existing export, finds the
	// mismatch, leaves nothing under that name and exits 1.
	stored := filepath.Join(s.Env["EXPORTD_BLOB_DIR"], "cli-1", m.Files[2].Name)
	data, err = os.ReadFile(stored)
	require.NoError(t, err)
	data[0] ^= 0xff
	require.NoError(t, os.WriteFile(stored, data, 0o644))
	out2 := filepath.Join(t.TempDir(), "out2")
	r = runCLI(t, bin, s, append(args, "--out", out2)...)
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stdout, "export cli-1 already started with this request")
	require.Regexp(t, `(?m)^\s+`+m.Files[2].Name+`\s.*MISMATCH: sha256 [0-9a-f]{64}, manifest says `+m.Files[2].SHA256+`$`, r.stdout)
	require.Contains(t, r.stderr, "exportd start: 1 of 6 files of export cli-1 do not match the manifest: "+m.Files[2].Name+": sha256 ")
	require.NoFileExists(t, filepath.Join(out2, m.Files[2].Name))
	require.NoFileExists(t, filepath.Join(out2, exportd.ManifestName))
	require.FileExists(t, filepath.Join(out2, m.Files[0].Name), "the files that matched are kept")

	// The same id with another request is refused.
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--from", "2025-01-01", "--to", "2025-02-01", "--id", "cli-1")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "exportd start: export cli-1 already exists with a different request; choose another --id")

	// Without --wait: the id, at once, and the export goes on by itself.
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--from", "2025-03-01T00:00:00Z", "--to", "2025-04-01T00:00:00+02:00")
	require.Equal(t, 0, r.code, "%s", r)
	fields := strings.Fields(r.stdout)
	require.Greater(t, len(fields), 2, "%s", r)
	id := fields[1]
	require.Equal(t, fmt.Sprintf("export %s started (workflow export-%s)\n", id, id), r.stdout)
	require.Empty(t, r.stderr, "no progress bar without --wait")
	doc, _ = waitFor(t, s, app.APIKey, id)
	require.Equal(t, "succeeded", doc.Status)

	// A window that ends before it starts fails before anything starts.
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--from", "2025-02-01", "--to", "2025-01-01", "--wait")
	require.Equal(t, 1, r.code, "%s", r)
	require.Equal(t, "exportd start: invalid export: end must be after start (the window is [start, end))\n", r.stderr)
	require.Empty(t, r.stdout)

	// A required flag left out is a usage error.
	r = runCLI(t, bin, s, "start", "--from", "2025-01-01", "--to", "2025-02-01")
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stderr, "--merchant is required")

	// A change export: the backfill prints the next cursor; after an edit,
	// the change export from it has that one order.
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--changes", "--format", "jsonl.gz", "--wait")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, fmt.Sprintf("succeeded: %d rows", rows))
	cursor := regexp.MustCompile(`(?m)^next change export: --changes --cursor (\S+)$`).FindStringSubmatch(r.stdout)
	require.Len(t, cursor, 2, "%s", r)
	_, err = db.Exec(ctx, "UPDATE orders SET note = 'cli' WHERE id = (SELECT min(id) FROM orders WHERE merchant_id = $1)", merchant)
	require.NoError(t, err)
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--changes", "--cursor", cursor[1], "--format", "jsonl.gz", "--wait")
	require.Equal(t, 0, r.code, "%s", r)
	require.Contains(t, r.stdout, "succeeded: 1 rows")
	r = runCLI(t, bin, s, "start", "--merchant", merchant, "--changes", "--from", "2025-01-01")
	require.Equal(t, 1, r.code, "%s", r)
	require.Contains(t, r.stderr, "a change export (--changes) selects by --cursor")
}
