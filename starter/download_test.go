package starter_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/starter"
)

// file is one result file as a test writes it into a store.
type file struct {
	name, data string
}

// publish commits files and their manifest.json under exportID, as the
// Export and Finalize activities would, and returns the manifest and its
// bytes as stored.
func publish(t *testing.T, store blob.Store, exportID string, files ...file) (exportd.Manifest, []byte) {
	t.Helper()
	m := exportd.Manifest{ExportID: exportID, MerchantID: "m1", Dataset: exportd.Orders,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC),
		GeneratedAt: time.Date(2025, 2, 1, 0, 0, 1, 0, time.UTC), SchemaVersion: exportd.SchemaVersion}
	for i, f := range files {
		put(t, store, exportID+"/"+f.name, f.data)
		m.Files = append(m.Files, info(f.name, f.data, i))
		m.Rows++
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	put(t, store, exportID+"/"+exportd.ManifestName, string(raw))
	return m, raw
}

func info(name, data string, part int) exportd.FileInfo {
	sum := sha256.Sum256([]byte(data))
	return exportd.FileInfo{Name: name, Format: exportd.CSV, Part: part, Rows: 1,
		Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func put(t *testing.T, store blob.Store, key, data string) {
	t.Helper()
	up, err := store.Create(context.Background(), key, "test")
	require.NoError(t, err)
	defer up.Abort()
	_, err = io.WriteString(up, data)
	require.NoError(t, err)
	require.NoError(t, up.Commit())
}

func newStore(t *testing.T) *blob.Local {
	t.Helper()
	store, err := blob.NewLocal(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return store
}

// names lists dir, hidden files (temporary downloads) included.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := []string{}
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestDownload(t *testing.T) {
	store := newStore(t)
	want, raw := publish(t, store, "x1",
		file{"orders-00000.csv.gz", "first part"}, file{"orders-00001.csv.gz", "second part, longer"})
	publish(t, store, "x10", file{"orders-00000.csv.gz", "another export"})
	dir := filepath.Join(t.TempDir(), "out", "x1") // created as needed

	m, err := starter.Download(context.Background(), store, "x1", dir)
	require.NoError(t, err)
	require.Equal(t, want.Files, m.Files)
	require.Equal(t, want.Rows, m.Rows)
	require.Equal(t, []string{"manifest.json", "orders-00000.csv.gz", "orders-00001.csv.gz"}, names(t, dir))
	for name, data := range map[string]string{"orders-00000.csv.gz": "first part", "orders-00001.csv.gz": "second part, longer", "manifest.json": string(raw)} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, data, string(b), "%s is copied as stored", name)
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	require.NoError(t, starter.Verify(dir, m))

	// A second download into the same directory replaces the files.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "orders-00000.csv.gz"), []byte("stale"), 0o600))
	_, err = starter.Download(context.Background(), store, "x1", dir)
	require.NoError(t, err)
	require.NoError(t, starter.Verify(dir, m))
}

func TestDownloadTamperedFile(t *testing.T) {
	for _, tc := range []struct {
		name, data, msg string
	}{
		// The same size with other bytes: only the sha256 tells.
		{"same size", "second pArt", "orders-00001.csv.gz: sha256 "},
		{"truncated", "second", "orders-00001.csv.gz: 6 bytes, manifest says 11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			publish(t, store, "x1", file{"orders-00000.csv.gz", "first part"}, file{"orders-00001.csv.gz", "second part"})
			put(t, store, "x1/orders-00001.csv.gz", tc.data) // after the manifest was written
			dir := t.TempDir()
			// A copy from an earlier download must not survive either.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "orders-00001.csv.gz"), []byte("second part"), 0o600))

			_, err := starter.Download(context.Background(), store, "x1", dir)
			var verr *starter.VerifyError
			require.ErrorAs(t, err, &verr)
			require.Len(t, verr.Mismatches, 1)
			require.Equal(t, "orders-00001.csv.gz", verr.Mismatches[0].File.Name)
			require.Contains(t, err.Error(), "1 of 2 files of export x1 do not match the manifest: "+tc.msg)
			require.Equal(t, []string{"orders-00000.csv.gz"}, names(t, dir),
				"nothing under the tampered file's name, no temporary file, and no manifest.json")
		})
	}
}

func TestDownloadRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("no manifest", func(t *testing.T) {
		_, err := starter.Download(ctx, newStore(t), "x1", t.TempDir())
		require.ErrorIs(t, err, blob.ErrNotFound)
		require.ErrorContains(t, err, "export x1 has no manifest in this blob store")
	})
	t.Run("invalid export id", func(t *testing.T) {
		for _, id := range []string{"", "x1/..", "../x1", "x1/orders"} {
			_, err := starter.Download(ctx, newStore(t), id, t.TempDir())
			require.ErrorContains(t, err, "invalid export id", id)
		}
	})
	t.Run("manifest of another export", func(t *testing.T) {
		store := newStore(t)
		_, raw := publish(t, store, "x2", file{"orders-00000.csv.gz", "data"})
		put(t, store, "x1/manifest.json", string(raw))
		_, err := starter.Download(ctx, store, "x1", t.TempDir())
		require.EqualError(t, err, `the manifest under export x1 names export "x2"`)
	})
	t.Run("unsafe file names", func(t *testing.T) {
		for _, name := range []string{"../escape", "sub/file", ".hidden", "manifest.json", ""} {
			store := newStore(t)
			m, _ := publish(t, store, "x1", file{"orders-00000.csv.gz", "data"})
			m.Files = append(m.Files, info(name, "evil", 1))
			raw, err := json.Marshal(m)
			require.NoError(t, err)
			put(t, store, "x1/manifest.json", string(raw))
			dir := filepath.Join(t.TempDir(), "out")
			_, err = starter.Download(ctx, store, "x1", dir)
			require.ErrorContains(t, err, "unsafe file name", name)
			require.NoDirExists(t, dir, "refused before anything is written")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		store := newStore(t)
		publish(t, store, "x1", file{"orders-00000.csv.gz", "data"})
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		dir := t.TempDir()
		_, err := starter.Download(ctx, store, "x1", dir)
		require.ErrorIs(t, err, context.Canceled)
		require.Empty(t, names(t, dir))
	})
}
