package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/blob/s3"
	"github.com/exportd/exportd/contract"
	"github.com/exportd/exportd/postgres"
)

// exportErr runs one Export attempt and returns its failure as the
// workflow sees it.
func exportErr(t *testing.T, acts *activities.Activities, s exportd.Spec) *temporal.ApplicationError {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.Export, activities.ExportInput{Spec: s, Total: 1})
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	return app
}

// TestExportSchemaChangeIsPermanent changes a column's type under the
// source, as an operator's migration would: the export fails at once
// with a source_error naming the column, instead of retrying forever.
func TestExportSchemaChangeIsPermanent(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	_, err := pool.Exec(context.Background(), "ALTER TABLE orders ALTER COLUMN tip TYPE numeric")
	require.NoError(t, err)
	app := exportErr(t, f.acts, spec("schema1", exportd.Orders, seedStart, seedEnd, 1000, exportd.Parquet))
	require.Equal(t, exportd.CodeSourceError, app.Type())
	require.True(t, app.NonRetryable(), "no retry can read a column of another type")
	require.Contains(t, app.Message(), "orders.tip")
	require.Contains(t, app.Message(), "numeric")
}

// TestExportStorageErrorsAreRetryable fails the blob store under an
// export, a local directory that cannot be created and an S3 server
// answering 503, and expects a retryable storage_error naming the file.
func TestExportStorageErrorsAreRetryable(t *testing.T) {
	pool := seededPool(t)
	s := spec("storage1", exportd.Orders, seedStart, seedEnd, 1000, exportd.CSV)

	t.Run("local", func(t *testing.T) {
		f := newFixture(t, pool)
		// A file where the export's directory should be: root or not,
		// nothing can be created under it.
		require.NoError(t, os.WriteFile(filepath.Join(f.dir, "storage1"), []byte("in the way"), 0o644))
		app := exportErr(t, f.acts, s)
		require.Equal(t, exportd.CodeStorageError, app.Type())
		require.False(t, app.NonRetryable())
	})

	t.Run("s3", func(t *testing.T) {
		backend := s3mem.New()
		require.NoError(t, backend.CreateBucket("exports"))
		fake := gofakes3.New(backend).Server()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut || r.Method == http.MethodPost {
				http.Error(w, "<Error><Code>ServiceUnavailable</Code><Message>slow down</Message></Error>", http.StatusServiceUnavailable)
				return
			}
			fake.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		store, err := s3.New(context.Background(), s3.Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "exports",
			AccessKey: "AKIDTEST", SecretKey: "secret", Region: "us-east-1"})
		require.NoError(t, err)
		acts := &activities.Activities{Source: &postgres.Source{Pool: pool}, Store: store, Records: &postgres.Files{Pool: pool}}
		app := exportErr(t, acts, s)
		require.Equal(t, exportd.CodeStorageError, app.Type(), app.Message())
		require.False(t, app.NonRetryable())
		require.Contains(t, app.Message(), "orders-00000.csv.gz")
	})
}

// TestPayloadsIndependentOfFileCount measures every Temporal payload of
// an export with 10 parts and with 2,500: heartbeats, the Export result,
// and Finalize's input and result must not grow with the file count.
func TestPayloadsIndependentOfFileCount(t *testing.T) {
	pool := seededPool(t)
	sizes := func(id string, maxRows int) map[string]int {
		f := newFixture(t, pool)
		s := spec(id, exportd.Orders, seedStart, seedEnd, maxRows, exportd.JSONL)
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		env.RegisterActivity(f.acts)
		size := func(v any) int {
			p, err := converter.GetDefaultDataConverter().ToPayloads(v)
			require.NoError(t, err)
			return p.Size()
		}
		got := map[string]int{}
		env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
			var hb contract.Heartbeat
			require.NoError(t, d.Get(&hb))
			got["heartbeat"] = max(got["heartbeat"], size(hb))
		})
		in := activities.ExportInput{Spec: s, Total: 2500}
		got["export input"] = size(in)
		v, err := env.ExecuteActivity(f.acts.Export, in)
		require.NoError(t, err)
		var out activities.ExportResult
		require.NoError(t, v.Get(&out))
		got["export result"] = size(out)
		fin := activities.FinalizeInput{Spec: s, GeneratedAt: seedEnd}
		got["finalize input"] = size(fin)
		v, err = env.ExecuteActivity(f.acts.Finalize, fin)
		require.NoError(t, err)
		var res activities.FinalizeResult
		require.NoError(t, v.Get(&res))
		got["finalize result"] = size(res)
		got["files"] = out.FileCount
		return got
	}
	few := sizes("few", 250)
	many := sizes("many", 1)
	require.Equal(t, 10, few["files"])
	require.Equal(t, 2500, many["files"])
	for k, n := range few {
		if k == "files" {
			continue
		}
		require.Positive(t, n, k)
		require.Less(t, many[k]-n, 1024, "%s: %d bytes with 10 files, %d with 2,500", k, n, many[k])
		t.Logf("%-16s %4d bytes with 10 files, %4d with 2,500", k, n, many[k])
	}
	m := newFixture(t, pool).manifestOf(t, pool, "many")
	require.Len(t, m, 2500, "the manifest still lists every file")
}
