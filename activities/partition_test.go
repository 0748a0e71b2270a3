package activities_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/postgres"
)

// TestPartitionsCoverWindowOnce plans a window into partitions twice and
// gets the same partitions; exported partition by partition, in a
// shuffled order and with other page sizes, the files are byte for byte
// those of the unpartitioned export, every row once, although rows tie on
// created_at across a partition boundary.
func TestPartitionsCoverWindowOnce(t *testing.T) {
	pool := seededPool(t)
	ctx := context.Background()
	// 41 orders around the 300th share one created_at: the boundary of
	// the first partition falls inside the tie.
	_, err := pool.Exec(ctx, `UPDATE orders SET created_at = t.at FROM (
			SELECT (array_agg(created_at ORDER BY created_at, id))[1] AS at,
			       array_agg(id ORDER BY created_at, id) AS ids
			FROM (SELECT created_at, id FROM orders WHERE merchant_id = $1 ORDER BY created_at, id OFFSET 280 LIMIT 41) x
		) t WHERE orders.id = ANY(t.ids)`, merchant)
	require.NoError(t, err)

	ref := newFixture(t, pool)
	s := spec("whole", exportd.Orders, seedStart, seedEnd, 100, exportd.Formats...)
	refMan, refFin := ref.run(t, s)
	want := ref.files(t, "whole")
	require.Greater(t, refMan.Rows, int64(2000))

	f := newFixture(t, pool)
	f.acts.PartitionRows = 300
	f.acts.Parallelism = 3
	s.ExportID = "parts"
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	plan := func() (activities.PlanResult, []postgres.Partition) {
		v, err := env.ExecuteActivity(f.acts.Plan, activities.PlanInput{Spec: s})
		require.NoError(t, err)
		var res activities.PlanResult
		require.NoError(t, v.Get(&res))
		var ps []postgres.Partition
		for i := range res.Partitions {
			p, err := (&postgres.Files{Pool: pool}).Partition(ctx, "parts", i)
			require.NoError(t, err)
			ps = append(ps, p)
		}
		return res, ps
	}
	res, ps := plan()
	again, ps2 := plan()
	require.Equal(t, res, again)
	require.Equal(t, ps, ps2, "the same data and request give the same partitions")
	require.Equal(t, refMan.Rows, res.Total)
	require.Equal(t, int((res.Total+299)/300), res.Partitions)
	require.Equal(t, 3, res.Parallelism)
	var planned int64
	for i, p := range ps {
		require.Equal(t, i*3, p.BasePart, "partitions start on part boundaries")
		planned += p.Rows
		if i > 0 {
			require.Equal(t, ps[i-1].Through, p.After, "partitions are contiguous")
		}
	}
	require.Equal(t, res.Total, planned)
	var before, after int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE id <= $3), count(*) FILTER (WHERE id > $3)
		FROM orders WHERE merchant_id = $1 AND created_at = $2`, merchant, ps[0].Through.CreatedAt, ps[0].Through.ID).Scan(&before, &after))
	require.Positive(t, before)
	require.Positive(t, after, "rows tie on created_at across the first boundary")

	order := rand.New(rand.NewPCG(1, 2)).Perm(len(ps))
	for n, i := range order {
		f.acts.Source = &postgres.Source{Pool: pool, PageSize: 37 + 13*n}
		v, err := env.ExecuteActivity(f.acts.Export, activities.ExportInput{Spec: s, Total: res.Total, Partitioned: true, Partition: i})
		require.NoError(t, err)
		var out activities.ExportResult
		require.NoError(t, v.Get(&out))
		require.Equal(t, ps[i].Rows, out.Rows, "partition %d", i)
	}
	v, err := env.ExecuteActivity(f.acts.Finalize, activities.FinalizeInput{Spec: s, GeneratedAt: seedEnd})
	require.NoError(t, err)
	var fin activities.FinalizeResult
	require.NoError(t, v.Get(&fin))
	require.Equal(t, refFin.Tally, fin.Tally, "distinct locations are counted once across partitions")
	got := f.files(t, "parts")
	delete(want, exportd.ManifestName)
	delete(got, exportd.ManifestName)
	require.Equal(t, want, got, "the same files, byte for byte")
	m := f.manifest(t, "parts")
	require.Equal(t, refMan.Files, m.Files)
	require.Equal(t, refMan.Totals, m.Totals)
}
