package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/devenv"
	"github.com/exportd/exportd/postgres"
)

// faultStack is the dev stack assembled in the test process from the
// parts `exportd dev` is made of (devenv's PostgreSQL and Temporal dev
// server, the migrations, the seed, an app with a key), with the API and
// the workers as separate `exportd api` and `exportd worker` processes
// configured only through EXPORTD_* variables. Owning every part lets a
// test kill a worker, and stop and start PostgreSQL and Temporal, while an
// export runs.
type faultStack struct {
	owner    *testing.T // the test the stack lives as long as
	dir      string
	pg       *devenv.Postgres
	temporal *devenv.Temporal
	pool     *pgxpool.Pool // the test's own, for SQL checks
	tc       client.Client // the test's own, to see activity attempts
	vars     map[string]string
	apiURL   string
	api      *child
	key      string
	merchant string
	workers  int // numbers worker logs
}

// newFaultStack starts PostgreSQL and Temporal, seeds the first demo
// merchant with orders, and starts `exportd api`. Workers are up to the
// test.
func newFaultStack(t *testing.T, orders int) *faultStack {
	t.Helper()
	began := time.Now()
	ctx := context.Background()
	dir := reachableTempDir(t)
	logf, err := os.Create(filepath.Join(dir, "stack.log"))
	require.NoError(t, err)
	t.Cleanup(func() { logf.Close() })
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &faultStack{owner: t, dir: dir}
	s.pg = &devenv.Postgres{Dir: dir, NoSync: true, Log: log}
	s.temporal = &devenv.Temporal{Bin: temporalBin(t), DataDir: dir, Logger: log,
		SearchAttributes: contract.SearchAttributeNames}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if s.tc != nil {
			s.tc.Close()
		}
		if s.pool != nil {
			s.pool.Close()
		}
		_ = s.temporal.Stop(sctx)
		_ = s.pg.Stop(sctx)
		if t.Failed() {
			for _, f := range []string{"stack.log", "temporal.log", "postgres.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, tail(b, 4000))
			}
		}
	})
	// Both servers take seconds to come up, and the binary to build:
	// all three at once.
	root := repoRoot(t)
	var wg sync.WaitGroup
	var pgErr, tErr, binErr error
	wg.Go(func() { pgErr = s.pg.Start(ctx) })
	wg.Go(func() { tErr = s.temporal.Start(ctx) })
	wg.Go(func() { _, binErr = buildShared(root) })
	wg.Wait()
	require.NoError(t, pgErr, "starting PostgreSQL")
	require.NoError(t, tErr, "starting Temporal")
	require.NoError(t, binErr)

	s.pool, err = postgres.Open(ctx, s.pg.URL())
	require.NoError(t, err)
	require.NoError(t, postgres.Migrate(ctx, s.pool))
	m := postgres.DefaultSeedMerchants()[0]
	m.Orders = orders
	_, err = postgres.Seed(ctx, s.pool, postgres.SeedOptions{Seed: 1, Merchants: []postgres.SeedMerchant{m}})
	require.NoError(t, err)
	s.merchant = m.ID

	masterKey := make([]byte, 32)
	_, _ = rand.Read(masterKey)
	sealer, err := postgres.NewSealer(masterKey)
	require.NoError(t, err)
	access := &postgres.Access{Pool: s.pool, Sealer: sealer}
	app, err := access.CreateApp(ctx, "Fault App")
	require.NoError(t, err)
	key, err := access.CreateAPIKey(ctx, app.ID)
	require.NoError(t, err)
	require.NoError(t, access.Install(ctx, app.ID, m.ID))
	s.key = key.Key

	s.tc, err = client.Dial(client.Options{HostPort: s.temporal.Address(), Namespace: devenv.TemporalNamespace,
		Logger: sdklog.NewStructuredLogger(log.With("component", "test-temporal-client"))})
	require.NoError(t, err)

	addr := freeAddr(t)
	s.apiURL = "http://" + addr
	s.vars = map[string]string{
		"EXPORTD_DATABASE_URL":     s.pg.URL(),
		"EXPORTD_TEMPORAL_ADDRESS": s.temporal.Address(),
		"EXPORTD_BLOB_DIR":         filepath.Join(dir, "blobs"),
		"EXPORTD_MASTER_KEY":       hex.EncodeToString(masterKey),
		"EXPORTD_PUBLIC_URL":       s.apiURL,
	}
	s.api = s.startAPI(t, addr, "api")
	t.Logf("fault stack up in %s: %d orders, PostgreSQL %s, Temporal %s, API %s",
		time.Since(began).Round(time.Millisecond), orders, s.pg.URL(), s.temporal.Address(), s.apiURL)
	return s
}

// startAPI runs `exportd api` on addr and waits until it answers.
func (s *faultStack) startAPI(t *testing.T, addr, name string) *child {
	t.Helper()
	vars := map[string]string{"EXPORTD_API_ADDR": addr}
	for k, v := range s.vars {
		vars[k] = v
	}
	c := startChild(t, s.owner, s.dir, name, childEnv(vars), "api")
	waitHealthy(t, c, "http://"+addr)
	return c
}

// startWorker runs one more `exportd worker`.
func (s *faultStack) startWorker(t *testing.T) *child {
	t.Helper()
	s.workers++
	vars := map[string]string{"EXPORTD_METRICS_ADDR": workerMetricsAddr}
	for k, v := range s.vars {
		vars[k] = v
	}
	return startChild(t, s.owner, s.dir, fmt.Sprintf("worker-%d", s.workers), childEnv(vars), "worker")
}

// bigExport is the "large" request of the fault tests: every seeded order
// in all four formats, rotated every partRows rows so that an attempt has
// many commits to resume between.
func (s *faultStack) bigExport(partRows int) map[string]any {
	return map[string]any{"merchantId": s.merchant, "dataset": "orders", "start": window[0], "end": window[1],
		"formats": []string{"parquet", "arrow", "jsonl.gz", "csv.gz"}, "maxRowsPerFile": partRows}
}

// create posts an export and returns its id.
func (s *faultStack) create(t *testing.T, body map[string]any) string {
	t.Helper()
	var doc exportDoc
	resp := call(t, http.MethodPost, s.apiURL+"/v1/exports", s.key, body, &doc)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	return doc.ID
}

// get reads an export's status without failing the test: while a
// dependency is down the API may answer an error, or not at all.
func (s *faultStack) get(ctx context.Context, id string) (exportDoc, error) {
	var doc exportDoc
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.apiURL+"/v1/exports/"+id, nil)
	if err != nil {
		return doc, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return doc, err
	}
	if resp.StatusCode != http.StatusOK {
		return doc, fmt.Errorf("GET export: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return doc, json.Unmarshal(b, &doc)
}

// waitMidPart polls the blob store until the export has committed at
// least parts parts and is writing the next one (its uploads exist), and
// returns the running attempt as Temporal sees it: a fault injected now
// lands in the middle of a part. The blob store, not the API, is watched
// because the API's progress comes from heartbeats, which reach Temporal
// only every few seconds.
func (s *faultStack) waitMidPart(t *testing.T, id string, parts int) exportAttempt {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if committed, uploads := s.blobFiles(t, id); s.parts(committed) >= parts && len(uploads) > 0 {
			a, err := s.exportAttempt(context.Background(), id)
			require.NoError(t, err)
			require.True(t, a.Running, "export %s has no running attempt while writing part %d", id, parts)
			return a
		}
		if doc, err := s.get(context.Background(), id); err == nil {
			require.NotContains(t, []string{"succeeded", "failed", "canceled", "expired"}, doc.Status,
				"export %s ended before it wrote part %d: %+v", id, parts, doc.Error)
		}
		require.True(t, time.Now().Before(deadline), "export %s not writing part %d within 2 minutes", id, parts)
		time.Sleep(20 * time.Millisecond)
	}
}

// parts counts the committed parts among an export's files: every part
// has one file per format, parquet among them.
func (s *faultStack) parts(committed []string) int {
	n := 0
	for _, name := range committed {
		if strings.HasSuffix(name, ".parquet") {
			n++
		}
	}
	return n
}

// committedParts is how many parts of the export are committed now.
func (s *faultStack) committedParts(t *testing.T, id string) int {
	t.Helper()
	committed, _ := s.blobFiles(t, id)
	return s.parts(committed)
}

// waitProgressBeyond polls until the export shows progress past rows or
// finishes, tolerating errors while a dependency is down, and returns
// when that happened.
func (s *faultStack) waitProgressBeyond(t *testing.T, id string, rows int64) time.Time {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		doc, err := s.get(context.Background(), id)
		if err == nil {
			require.NotContains(t, []string{"failed", "canceled", "expired"}, doc.Status, "export %s: %+v", id, doc.Error)
			if doc.Status == "succeeded" || doc.Progress.Rows > rows {
				return time.Now()
			}
		}
		require.True(t, time.Now().Before(deadline), "export %s made no progress past %d rows within 2 minutes (%v)", id, rows, err)
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSucceeded polls until the export ends, tolerating errors, and
// requires that it succeeded.
func (s *faultStack) waitSucceeded(t *testing.T, id string) exportDoc {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		doc, err := s.get(context.Background(), id)
		if err == nil {
			switch doc.Status {
			case "succeeded":
				return doc
			case "failed", "canceled", "expired":
				t.Fatalf("export %s ended %s: %+v", id, doc.Status, doc.Error)
			}
		}
		require.True(t, time.Now().Before(deadline), "export %s not finished within 3 minutes (last: %s %+v, %v)", id, doc.Status, doc.Progress, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// exportAttempt is the pending Export activity of an export as Temporal
// sees it (attempt 0: none is pending), with its last heartbeat. The
// workflow retries the step itself, each attempt an activity of its own,
// so the attempt number counts the Export activities scheduled so far.
type exportAttempt struct {
	Attempt    int32
	Running    bool
	Beat       bool // the attempt has heartbeated
	Checkpoint contract.Heartbeat
}

func (s *faultStack) exportAttempt(ctx context.Context, id string) (exportAttempt, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := s.tc.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
	if err != nil {
		return exportAttempt{}, err
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == "Export" {
			n, err := s.exportsScheduled(ctx, id)
			if err != nil {
				return exportAttempt{}, err
			}
			a := exportAttempt{Attempt: n, Running: pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED}
			if pa.GetHeartbeatDetails() != nil {
				if err := converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &a.Checkpoint); err != nil {
					return a, fmt.Errorf("error decoding heartbeat: %w", err)
				}
				a.Beat = true
			}
			return a, nil
		}
	}
	return exportAttempt{}, nil
}

// finalAttempt returns the attempt of the Export activity that completed
// a finished export, from the workflow's history.
func (s *faultStack) finalAttempt(ctx context.Context, id string) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.exportsScheduled(ctx, id)
}

// exportsScheduled counts the Export activities in an export's history.
func (s *faultStack) exportsScheduled(ctx context.Context, id string) (int32, error) {
	it := s.tc.GetWorkflowHistory(ctx, contract.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var n int32
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return 0, err
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Export" {
			n++
		}
	}
	return n, nil
}

// waitAttemptRunning polls until an Export attempt numbered above after
// is running, or the export has finished, and returns when that happened.
func (s *faultStack) waitAttemptRunning(t *testing.T, id string, after int32) (time.Time, exportAttempt) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a, err := s.exportAttempt(context.Background(), id)
		if err == nil && a.Running && a.Beat && a.Attempt > after {
			return time.Now(), a
		}
		if doc, err := s.get(context.Background(), id); err == nil && doc.Status == "succeeded" {
			return time.Now(), a
		}
		require.True(t, time.Now().Before(deadline), "no Export attempt after #%d running within 2 minutes", after)
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWriting polls until an Export attempt numbered at least minAttempt
// is running and writing (its uploads are in the blob store), or the
// export has finished, and returns when that happened and the attempt.
func (s *faultStack) waitWriting(t *testing.T, id string, minAttempt int32) (time.Time, int32) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a, err := s.exportAttempt(context.Background(), id)
		if err == nil && a.Running && a.Attempt >= minAttempt && len(s.uploadsOf(t, id, a.Attempt)) > 0 {
			return time.Now(), a.Attempt
		}
		if doc, err := s.get(context.Background(), id); err == nil && doc.Status == "succeeded" {
			return time.Now(), a.Attempt
		}
		require.True(t, time.Now().Before(deadline), "export %s: no attempt from #%d writing within 2 minutes", id, minAttempt)
		time.Sleep(20 * time.Millisecond)
	}
}

// manifestSums is name -> sha256 from an export's manifest.json.
func (s *faultStack) manifestSums(t *testing.T, id string) map[string]string {
	t.Helper()
	var m manifest
	resp := call(t, http.MethodGet, s.apiURL+"/v1/exports/"+id+"/manifest", s.key, nil, &m)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sums := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		sums[f.Name] = f.SHA256
	}
	return sums
}

// blobFiles lists an export's directory in the blob store: committed
// files, and uploads (".<name>.<attempt tag>.upload") that an attempt
// began and has not committed.
func (s *faultStack) blobFiles(t *testing.T, id string) (committed, uploads []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.vars["EXPORTD_BLOB_DIR"], id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing written yet
	}
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".upload") {
			uploads = append(uploads, e.Name())
		} else {
			committed = append(committed, e.Name())
		}
	}
	return committed, uploads
}

// uploadsOf returns the uploads an attempt left behind.
func (s *faultStack) uploadsOf(t *testing.T, id string, attempt int32) []string {
	t.Helper()
	_, uploads := s.blobFiles(t, id)
	tag := fmt.Sprintf(".attempt%d.upload", attempt)
	var of []string
	for _, u := range uploads {
		if strings.HasSuffix(u, tag) {
			of = append(of, u)
		}
	}
	return of
}

// verifySame checks a disturbed export against the undisturbed one of the
// same request: the manifest names the same files with the same sha256;
// the blob store holds exactly those files and the manifest, no upload an
// interrupted attempt left behind; every file downloads with that sha256;
// and the JSON lines parts, read back, hold every order of the window
// exactly once, in (created_at, id) order.
func (s *faultStack) verifySame(t *testing.T, id string, want map[string]string) {
	t.Helper()
	got := s.manifestSums(t, id)
	require.Equal(t, want, got, "export %s is not byte-identical to the undisturbed export", id)
	committed, uploads := s.blobFiles(t, id)
	require.Empty(t, uploads, "uncommitted parts left behind")
	stored := map[string]string{}
	for _, name := range committed {
		stored[name] = got[name]
	}
	require.Len(t, committed, len(got)+1, "stored files: %v", committed)
	require.Contains(t, committed, "manifest.json")
	delete(stored, "manifest.json")
	require.Equal(t, got, stored, "the blob store holds exactly the manifest's files")
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows int64
	var last struct {
		at string
		id int64
	}
	for _, name := range names {
		resp, b := download(t, s.apiURL+"/v1/exports/"+id+"/files/"+name, s.key, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, name)
		sum := sha256.Sum256(b)
		require.Equal(t, got[name], hex.EncodeToString(sum[:]), "downloaded %s", name)
		if !strings.HasSuffix(name, ".jsonl.gz") {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var o struct {
				ID        int64  `json:"id"`
				CreatedAt string `json:"created_at"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &o))
			// The fixed-width UTC timestamps sort as text.
			require.True(t, o.CreatedAt > last.at || (o.CreatedAt == last.at && o.ID > last.id),
				"%s: order %d at %s does not follow order %d at %s", name, o.ID, o.CreatedAt, last.id, last.at)
			last.at, last.id = o.CreatedAt, o.ID
			rows++
		}
		require.NoError(t, sc.Err())
	}
	var n int64
	require.NoError(t, s.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3",
		s.merchant, window[0], window[1]).Scan(&n))
	require.Equal(t, n, rows, "orders in the JSON lines parts vs SQL")
}

// undisturbed runs body to completion with nothing going wrong and returns
// its manifest's sums and how long it took.
func (s *faultStack) undisturbed(t *testing.T, body map[string]any) (map[string]string, time.Duration) {
	t.Helper()
	began := time.Now()
	id := s.create(t, body)
	doc := s.waitSucceeded(t, id)
	took := time.Since(began)
	want := s.manifestSums(t, id)
	t.Logf("undisturbed export %s: %d rows, %d files in %s", id, doc.Progress.Rows, len(want), took.Round(time.Millisecond))
	return want, took
}
