package activities_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const merchant = "act-merchant"

var (
	seedStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	seedEnd   = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
)

// fixture is a seeded database and an empty store.
type fixture struct {
	pool  *pgxpool.Pool
	dir   string
	store *blob.Local
	acts  *activities.Activities
}

func newFixture(t *testing.T, pool *pgxpool.Pool) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := blob.NewLocal(dir)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	// An odd page size makes pages straddle part boundaries.
	return &fixture{pool: pool, dir: dir, store: store,
		acts: &activities.Activities{Source: &postgres.Source{Pool: pool, PageSize: 97}, Store: store, Records: &postgres.Files{Pool: pool}}}
}

func seededPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.New(t)
	_, err := postgres.Seed(context.Background(), pool, postgres.SeedOptions{
		Seed:      7,
		Merchants: []postgres.SeedMerchant{{ID: merchant, Name: "Activity Test", Timezone: "UTC", Currency: "USD", Locations: 3, Orders: 2500}},
		Start:     seedStart, End: seedEnd,
	})
	require.NoError(t, err)
	return pool
}

func spec(id string, d exportd.Dataset, start, end time.Time, maxRows int, formats ...exportd.Format) exportd.Spec {
	s := exportd.Spec{ExportID: id, MerchantID: merchant, Dataset: d, Start: start, End: end, Formats: formats, MaxRowsPerFile: maxRows}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

// run executes the whole activity sequence of a successful export and
// returns its manifest.
func (f *fixture) run(t *testing.T, s exportd.Spec) (exportd.Manifest, activities.FinalizeResult) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(f.acts.Plan, activities.PlanInput{Spec: s})
	require.NoError(t, err)
	var plan activities.PlanResult
	require.NoError(t, v.Get(&plan))
	v, err = env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: plan.Total})
	require.NoError(t, err)
	var out activities.ExportResult
	require.NoError(t, v.Get(&out))
	require.Equal(t, plan.Total, out.Rows, "rows written equal rows planned")
	v, err = env.ExecuteActivity(f.acts.Finalize, activities.FinalizeInput{Spec: s, GeneratedAt: seedEnd})
	require.NoError(t, err)
	var fin activities.FinalizeResult
	require.NoError(t, v.Get(&fin))
	m := f.manifest(t, s.ExportID)
	require.Equal(t, out.Rows, m.Rows)
	require.Equal(t, out.FileCount, len(m.Files))
	return m, fin
}

// manifestOf lists an export's recorded files, as Finalize reads them.
func (f *fixture) manifestOf(t *testing.T, pool *pgxpool.Pool, exportID string) []exportd.FileInfo {
	t.Helper()
	var out []exportd.FileInfo
	require.NoError(t, (&postgres.Files{Pool: pool}).Each(context.Background(), exportID, func(fi exportd.FileInfo) error {
		out = append(out, fi)
		return nil
	}))
	return out
}

// manifest reads an export's committed manifest.json.
func (f *fixture) manifest(t *testing.T, exportID string) exportd.Manifest {
	t.Helper()
	obj, err := f.store.Open(context.Background(), exportID+"/"+exportd.ManifestName)
	require.NoError(t, err)
	defer obj.Close()
	var m exportd.Manifest
	require.NoError(t, json.NewDecoder(obj).Decode(&m))
	return m
}

// files returns name -> sha256 of everything under an export's directory,
// uploads included, straight from the file system.
func (f *fixture) files(t *testing.T, exportID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(f.dir, exportID)
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(root, path)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	}))
	return out
}

// jsonlIDs reads the record ids of an export's JSON lines files, in file
// order.
func (f *fixture) jsonlIDs(t *testing.T, exportID string, files []exportd.FileInfo) []int64 {
	t.Helper()
	var ids []int64
	f.eachJSONL(t, exportID, files, func(line []byte) {
		var rec struct {
			ID int64 `json:"id"`
		}
		require.NoError(t, json.Unmarshal(line, &rec))
		ids = append(ids, rec.ID)
	})
	return ids
}

// eachJSONL calls fn with each line of an export's JSON lines files, in
// file order, and checks each file has the rows its record says.
func (f *fixture) eachJSONL(t *testing.T, exportID string, files []exportd.FileInfo, fn func(line []byte)) {
	t.Helper()
	for _, fi := range files {
		if fi.Format != exportd.JSONL {
			continue
		}
		fh, err := os.Open(filepath.Join(f.dir, exportID, fi.Name))
		require.NoError(t, err)
		zr, err := gzip.NewReader(fh)
		require.NoError(t, err)
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := int64(0)
		for sc.Scan() {
			fn(sc.Bytes())
			n++
		}
		require.NoError(t, sc.Err())
		require.Equal(t, fi.Rows, n, fi.Name)
		fh.Close()
	}
}

func sqlIDs(t *testing.T, pool *pgxpool.Pool, table string, start, end time.Time) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT id FROM "+table+" WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY created_at, id",
		merchant, start, end)
	require.NoError(t, err)
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// windowEdges returns a window whose start is exactly some order's
// created_at (included) and whose end is exactly another's (excluded).
func windowEdges(t *testing.T, pool *pgxpool.Pool) (time.Time, time.Time) {
	t.Helper()
	var start, end time.Time
	err := pool.QueryRow(context.Background(), `
		SELECT (SELECT created_at FROM orders WHERE merchant_id = $1 ORDER BY created_at, id OFFSET 100 LIMIT 1),
		       (SELECT created_at FROM orders WHERE merchant_id = $1 ORDER BY created_at, id OFFSET 2300 LIMIT 1)`,
		merchant).Scan(&start, &end)
	require.NoError(t, err)
	return start.UTC(), end.UTC()
}

func TestExportOrdersMatchesSQL(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	start, end := windowEdges(t, pool)
	s := spec("orders1", exportd.Orders, start, end, 700, exportd.Formats...)
	out, fin := f.run(t, s)

	want := sqlIDs(t, pool, "orders", start, end)
	require.Greater(t, len(want), 2000)
	require.Equal(t, int64(len(want)), out.Rows)
	// Every record lands in exactly one file, in order, and the window's
	// edges are half-open.
	require.Equal(t, want, f.jsonlIDs(t, "orders1", out.Files))

	parts := (len(want) + 699) / 700
	require.Len(t, out.Files, parts*len(exportd.Formats))
	disk := f.files(t, "orders1")
	require.Len(t, disk, len(out.Files)+1, "data files plus manifest, no leftover uploads")
	var prevLast exportd.Key
	for i, fi := range out.Files {
		require.Equal(t, disk[fi.Name], fi.SHA256, fi.Name)
		require.Equal(t, i/len(exportd.Formats), fi.Part)
		require.False(t, fi.FirstKey.Less(prevLast), "parts are in key order")
		require.False(t, fi.LastKey.Less(fi.FirstKey))
		if i%len(exportd.Formats) == len(exportd.Formats)-1 {
			prevLast = fi.LastKey
		}
	}

	var sumTotal, txns, amount int64
	var locations int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT coalesce(sum(total), 0), count(DISTINCT location_id),
		       (SELECT count(*) FROM transactions t WHERE t.order_id IN (SELECT id FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3)),
		       (SELECT coalesce(sum(amount), 0) FROM transactions t WHERE t.order_id IN (SELECT id FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3))
		FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3`,
		merchant, start, end).Scan(&sumTotal, &locations, &txns, &amount))
	require.Equal(t, sumTotal, out.Totals.Total)
	require.Equal(t, exportd.Tally{Locations: locations, Orders: int64(len(want)), Transactions: txns, Amount: amount}, fin.Tally)
	require.Equal(t, fin.Tally, out.Tally)
	require.Equal(t, exportd.SchemaVersion, out.SchemaVersion)

	// The manifest's bytes are what json.MarshalIndent gives, though
	// its files were streamed from their records.
	obj, err := f.store.Open(context.Background(), "orders1/"+exportd.ManifestName)
	require.NoError(t, err)
	defer obj.Close()
	raw, err := io.ReadAll(obj)
	require.NoError(t, err)
	want2, err := json.MarshalIndent(out, "", "  ")
	require.NoError(t, err)
	require.Equal(t, string(append(want2, '\n')), string(raw))
	sum := sha256.Sum256(raw)
	require.Equal(t, hex.EncodeToString(sum[:]), fin.SHA256)
	require.Equal(t, int64(len(raw)), fin.Bytes)
}

func TestExportPaymentsTallyCountsDistinctOrders(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	s := spec("pay1", exportd.Payments, seedStart, seedEnd, 1000, exportd.JSONL, exportd.Parquet)
	out, fin := f.run(t, s)
	want := sqlIDs(t, pool, "transactions", seedStart, seedEnd)
	require.Equal(t, want, f.jsonlIDs(t, "pay1", out.Files))

	var orders, amount int64
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(DISTINCT order_id), sum(amount) FROM transactions WHERE merchant_id = $1", merchant).Scan(&orders, &amount))
	require.Equal(t, orders, fin.Tally.Orders)
	require.Equal(t, amount, fin.Tally.Amount)
	require.Equal(t, int64(len(want)), fin.Tally.Transactions)
}

func TestExportEmptyWindowWritesEmptyFiles(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	s := spec("empty1", exportd.Orders, seedEnd, seedEnd.Add(time.Hour), 100, exportd.Formats...)
	out, fin := f.run(t, s)
	require.Zero(t, out.Rows)
	require.Len(t, out.Files, len(exportd.Formats), "one valid, empty file per format")
	for _, fi := range out.Files {
		require.Zero(t, fi.Rows)
		require.Positive(t, fi.Bytes, "%s still has a schema or header", fi.Name)
	}
	require.Equal(t, exportd.Tally{}, fin.Tally)
}

// failingSource fails Stream once it has handed out a number of pages,
// the way a worker crash or a PostgreSQL restart cuts an attempt short.
type failingSource struct {
	activities.Source
	pages int
}

var errCrash = errors.New("simulated crash")

func (s *failingSource) Stream(ctx context.Context, q postgres.Query, fn func(*exportd.Batch) error) error {
	n := 0
	return s.Source.Stream(ctx, q, func(b *exportd.Batch) error {
		if n == s.pages {
			return errCrash
		}
		n++
		return fn(b)
	})
}

// TestExportResumeIsByteIdentical interrupts an export mid-part, then runs
// a second attempt, which resumes after the last part recorded in
// PostgreSQL (and, in the unrecorded case, after an older one, as after a
// crash between a part's blob commit and its record). The result must be
// the same files, byte for byte, as an uninterrupted export, each
// recorded once.
func TestExportResumeIsByteIdentical(t *testing.T) {
	pool := seededPool(t)
	ref := newFixture(t, pool)
	s := spec("resume1", exportd.Orders, seedStart, seedEnd, 600, exportd.Formats...)
	refMan, refFin := ref.run(t, s)
	want := ref.files(t, "resume1")
	// The reference's records go; each case writes its own.
	require.NoError(t, (&postgres.Files{Pool: pool}).Delete(context.Background(), "resume1"))

	for _, tc := range []struct {
		name       string
		unrecorded bool
	}{{"last part recorded", false}, {"last part committed but not recorded", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, pool)
			f.acts.Source = &failingSource{Source: f.acts.Source, pages: 15} // 15 pages of 97 rows: 2 parts and some
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestActivityEnvironment()
			env.RegisterActivity(f.acts)
			var beats []contract.Heartbeat
			env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
				var hb contract.Heartbeat
				require.NoError(t, d.Get(&hb))
				beats = append(beats, hb)
			})
			_, err := env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: refMan.Rows})
			require.ErrorContains(t, err, errCrash.Error())
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, exportd.CodeSourceError, app.Type(), "an unclassified source failure is a transient source error")
			require.False(t, app.NonRetryable())
			var last contract.Heartbeat
			require.NoError(t, app.Details(&last), "the failure carries the progress made")
			require.Equal(t, contract.Heartbeat{Done: 15 * 97, Total: refMan.Rows, Part: 2, Rows: 1200}, last)
			require.NotEmpty(t, beats)

			records := &postgres.Files{Pool: pool}
			from, err := records.Resume(context.Background(), "resume1")
			require.NoError(t, err)
			require.Equal(t, 2, from.Part)
			require.Equal(t, int64(1200), from.Rows)
			if tc.unrecorded {
				_, err := pool.Exec(context.Background(), "DELETE FROM export_parts WHERE export_id = 'resume1' AND part = 1")
				require.NoError(t, err)
				_, err = pool.Exec(context.Background(), "DELETE FROM export_files WHERE export_id = 'resume1' AND part = 1")
				require.NoError(t, err)
			}
			// A failed attempt aborts its open part; a killed one cannot,
			// and leaves a half-written upload like this one behind.
			require.Empty(t, uploads(f.files(t, "resume1")))
			up, err := f.store.Create(context.Background(), "resume1/orders-00002.parquet", "attempt1")
			require.NoError(t, err)
			_, err = up.Write([]byte("half a part"))
			require.NoError(t, err)
			require.NotEmpty(t, uploads(f.files(t, "resume1")))

			f.acts.Source = &postgres.Source{Pool: pool, PageSize: 50} // a different page size, too
			env2 := ts.NewTestActivityEnvironment()
			env2.RegisterActivity(f.acts)
			v, err := env2.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: refMan.Rows})
			require.NoError(t, err)
			var out activities.ExportResult
			require.NoError(t, v.Get(&out))
			require.Equal(t, refMan.Rows, out.Rows)
			require.Equal(t, len(refMan.Files), out.FileCount)

			v, err = env2.ExecuteActivity(f.acts.Finalize, activities.FinalizeInput{Spec: s, GeneratedAt: seedEnd})
			require.NoError(t, err)
			var fin activities.FinalizeResult
			require.NoError(t, v.Get(&fin))
			require.Equal(t, refFin, fin, "same manifest, byte for byte: every part recorded once")
			require.Equal(t, refMan, f.manifest(t, "resume1"))

			got := f.files(t, "resume1")
			require.Empty(t, uploads(got), "uncommitted parts are discarded")
			require.Equal(t, want, got)
			require.NoError(t, records.Delete(context.Background(), "resume1"))
		})
	}
}

func uploads(files map[string]string) []string {
	var out []string
	for name := range files {
		if strings.HasPrefix(filepath.Base(name), ".") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func TestPurgeRemovesEverything(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	s := spec("purge1", exportd.Orders, seedStart, seedEnd, 1000, exportd.CSV)
	f.run(t, s)
	require.NotEmpty(t, f.files(t, "purge1"))
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	_, err := env.ExecuteActivity(f.acts.Purge, activities.PurgeInput{ExportID: "purge1"})
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(f.dir, "purge1", "orders-00000.csv.gz"))
	require.ErrorIs(t, err, os.ErrNotExist)
	recorded, err := (&postgres.Files{Pool: pool}).Recorded(context.Background(), "purge1")
	require.NoError(t, err)
	require.False(t, recorded, "the purge forgets the records too")
	// Purging again is fine: the workflow may retry it.
	_, err = env.ExecuteActivity(f.acts.Purge, activities.PurgeInput{ExportID: "purge1"})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(f.acts.Purge, activities.PurgeInput{ExportID: "../etc"})
	require.Error(t, err)
}
