package activities_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
)

// changeRec is what the test reads of a change export's JSON lines.
type changeRec struct {
	ID        int64   `json:"id"`
	Op        string  `json:"op"`
	DeletedAt *string `json:"deleted_at"`
	Note      *string `json:"note"`
}

func (f *fixture) changeRecs(t *testing.T, exportID string, files []exportd.FileInfo) []changeRec {
	t.Helper()
	var out []changeRec
	f.eachJSONL(t, exportID, files, func(line []byte) {
		var r changeRec
		require.NoError(t, json.Unmarshal(line, &r))
		out = append(out, r)
	})
	return out
}

func changeSpec(id, cursor string) exportd.Spec {
	s := exportd.Spec{ExportID: id, AppID: "app_test", MerchantID: merchant, Dataset: exportd.Orders, Mode: exportd.ModeChanges,
		Cursor: cursor, Formats: []exportd.Format{exportd.JSONL, exportd.Parquet}, MaxRowsPerFile: 700}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

// runChanges runs Plan, Export and Finalize of a change export and
// returns its manifest and records.
func (f *fixture) runChanges(t *testing.T, s exportd.Spec) (exportd.Manifest, []changeRec) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(f.acts.Plan, activities.PlanInput{Spec: s})
	require.NoError(t, err)
	var plan activities.PlanResult
	require.NoError(t, v.Get(&plan))
	require.Equal(t, 1, plan.Partitions, "a change export is never partitioned")
	v, err = env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: plan.Total})
	require.NoError(t, err)
	var out activities.ExportResult
	require.NoError(t, v.Get(&out))
	require.NotEmpty(t, out.NextCursor)
	v, err = env.ExecuteActivity(f.acts.Finalize, activities.FinalizeInput{Spec: s, GeneratedAt: seedEnd, NextCursor: out.NextCursor})
	require.NoError(t, err)
	var fin activities.FinalizeResult
	require.NoError(t, v.Get(&fin))
	m := f.manifest(t, s.ExportID)
	require.Equal(t, fin.Tally, m.Tally)
	require.Equal(t, exportd.ModeChanges, m.Mode)
	require.Equal(t, s.Cursor, m.Cursor)
	require.Equal(t, out.NextCursor, m.NextCursor)
	require.Equal(t, out.Rows, m.Rows)
	recs := f.changeRecs(t, s.ExportID, m.Files)
	require.Len(t, recs, int(m.Rows))
	return m, recs
}

// TestChangeExportChain runs a backfill and two change exports through
// the activities, with edits and deletes between them, and checks each
// export holds exactly the changes since the previous one's cursor.
func TestChangeExportChain(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	f.acts.Cursors = exportd.Cursors{Key: []byte("change cursor test key")}
	ctx := context.Background()

	m1, recs := f.runChanges(t, changeSpec("chg-1", ""))
	all := sqlIDs(t, pool, "orders", seedStart.AddDate(-10, 0, 0), seedEnd.AddDate(10, 0, 0))
	require.Len(t, recs, len(all), "the backfill holds every current order")
	for i, r := range recs {
		require.Equal(t, all[i], r.ID)
		require.Equal(t, "upsert", r.Op)
	}

	edited, deleted := all[10:13], all[20:22]
	for _, id := range edited {
		_, err := pool.Exec(ctx, "UPDATE orders SET note = 'edited', updated_at = clock_timestamp() WHERE id = $1", id)
		require.NoError(t, err)
	}
	for _, id := range deleted {
		for _, q := range []string{"DELETE FROM transactions WHERE order_id = $1", "DELETE FROM order_items WHERE order_id = $1", "DELETE FROM orders WHERE id = $1"} {
			_, err := pool.Exec(ctx, q, id)
			require.NoError(t, err)
		}
	}
	m2, recs := f.runChanges(t, changeSpec("chg-2", m1.NextCursor))
	got := map[int64]string{}
	for _, r := range recs {
		got[r.ID] = r.Op
		if r.Op == "upsert" {
			require.Equal(t, "edited", *r.Note)
		} else {
			require.NotNil(t, r.DeletedAt, "a delete carries deleted_at")
		}
	}
	want := map[int64]string{edited[0]: "upsert", edited[1]: "upsert", edited[2]: "upsert", deleted[0]: "delete", deleted[1]: "delete"}
	require.Equal(t, want, got)
	require.Equal(t, int64(3), m2.Tally.Orders, "deletes are not tallied as orders")

	// Nothing changed since: an empty export, still with a cursor and one
	// (empty) file per format.
	m3, recs := f.runChanges(t, changeSpec("chg-3", m2.NextCursor))
	require.Empty(t, recs)
	require.Len(t, m3.Files, 2)
	require.NotEqual(t, m2.NextCursor, m3.NextCursor)
}

// TestChangeExportRefusesForeignCursor checks that a cursor sealed for
// another merchant or app, or altered, ends the export at once as an
// invalid request naming the cursor.
func TestChangeExportRefusesForeignCursor(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	f.acts.Cursors = exportd.Cursors{Key: []byte("change cursor test key")}
	other := f.acts.Cursors.Seal(exportd.ChangeCursor{Mark: "1:1:", AppID: "app_test", MerchantID: "another", Dataset: exportd.Orders})
	otherApp := f.acts.Cursors.Seal(exportd.ChangeCursor{Mark: "1:1:", AppID: "app_other", MerchantID: merchant, Dataset: exportd.Orders})
	forged := exportd.Cursors{Key: []byte("not the key")}.Seal(exportd.ChangeCursor{Mark: "1:1:", AppID: "app_test", MerchantID: merchant, Dataset: exportd.Orders})
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	for name, c := range map[string]string{"other merchant": other, "other app": otherApp, "forged": forged} {
		_, err := env.ExecuteActivity(f.acts.Plan, activities.PlanInput{Spec: changeSpec("chg-bad", c)})
		var app *temporal.ApplicationError
		require.ErrorAs(t, err, &app, name)
		require.Equal(t, exportd.CodeInvalidRequest, app.Type(), name)
		require.True(t, app.NonRetryable(), name)
		require.Contains(t, app.Message(), "cursor", name)
	}
}

// TestChangeExportAttemptStartsOver checks that a second attempt of a
// change export (its first attempt's mark is gone with its session)
// discards what the first wrote and writes every record as of its own
// mark: no file of the first attempt is left, none is recorded twice.
func TestChangeExportAttemptStartsOver(t *testing.T) {
	pool := seededPool(t)
	f := newFixture(t, pool)
	f.acts.Cursors = exportd.Cursors{Key: []byte("change cursor test key")}
	ctx := context.Background()
	m1, _ := f.runChanges(t, changeSpec("chg-base", ""))

	s := changeSpec("chg-retry", m1.NextCursor)
	s.MaxRowsPerFile = 1
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	all := sqlIDs(t, pool, "orders", seedStart.AddDate(-10, 0, 0), seedEnd.AddDate(10, 0, 0))
	for _, id := range all[:5] {
		_, err := pool.Exec(ctx, "UPDATE orders SET note = 'first' WHERE id = $1", id)
		require.NoError(t, err)
	}
	_, err := env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: 5, Attempt: 1})
	require.NoError(t, err)
	require.Len(t, f.manifestOf(t, pool, s.ExportID), 10, "5 parts of 2 formats")

	// The first attempt's result is lost; meanwhile two more orders
	// change. The second attempt has all seven, under fresh upload names.
	for _, id := range all[5:7] {
		_, err := pool.Exec(ctx, "UPDATE orders SET note = 'second' WHERE id = $1", id)
		require.NoError(t, err)
	}
	v, err := env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: 5, Attempt: 2, Shown: 5})
	require.NoError(t, err)
	var out activities.ExportResult
	require.NoError(t, v.Get(&out))
	require.Equal(t, int64(7), out.Rows)
	files := f.manifestOf(t, pool, s.ExportID)
	require.Len(t, files, 14)
	names := map[string]bool{}
	for _, fi := range files {
		require.False(t, names[fi.Name], "%s recorded twice", fi.Name)
		names[fi.Name] = true
	}
	on := f.files(t, s.ExportID)
	require.Len(t, on, 14, "only the second attempt's files are in the store: %v", on)
	recs := f.changeRecs(t, s.ExportID, files)
	require.Len(t, recs, 7)
}
