package bench_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/activities"
	"github.com/exportd/exportd/bench"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

var orders = flag.Int("orders", 200_000, "orders seeded for BenchmarkExport")

func TestMain(m *testing.M) { pgtest.Main(m) }

// BenchmarkExport runs the Export activity in process, without Temporal:
// the PostgreSQL reader, the writers, sha256 and the blob store, for each
// format alone and all four in one pass, beside the reader alone and the
// COPY limit over the same window:
//
//	go test ./bench -run '^$' -bench Export -benchtime 3x -cpuprofile cpu.out [-args -orders 1000000]
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.New(b)
	start, end := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	m := postgres.SeedMerchant{ID: "bench", Timezone: "America/Chicago", Currency: "USD", Locations: 5, Orders: *orders}
	if _, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 1, Merchants: []postgres.SeedMerchant{m}, Start: start, End: end}); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) orders, order_items, transactions"); err != nil {
		b.Fatal(err)
	}
	w := bench.Window{MerchantID: m.ID, Dataset: exportd.Orders, Start: start, End: end}
	rows := int64(*orders)

	b.Run("limit", func(b *testing.B) {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		for b.Loop() {
			if _, err := bench.CopyLimit(ctx, conn.Conn().PgConn(), w); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("reader", func(b *testing.B) {
		src := &postgres.Source{Pool: pool}
		q := postgres.Query{MerchantID: m.ID, Dataset: exportd.Orders, Start: start, End: end}
		b.ReportAllocs()
		for b.Loop() {
			if err := src.Stream(ctx, q, func(*exportd.Batch) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
	})
	for r, run := range []string{"parquet", "arrow", "jsonl.gz", "csv.gz", "all"} {
		formats := exportd.Formats
		if run != "all" {
			formats = []exportd.Format{exportd.Format(run)}
		}
		b.Run(run, func(b *testing.B) {
			dir := b.TempDir()
			store, err := blob.NewLocal(dir)
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			acts := &activities.Activities{Source: &postgres.Source{Pool: pool}, Store: store, Records: &postgres.Files{Pool: pool}}
			var ts testsuite.WorkflowTestSuite
			ts.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
			env := ts.NewTestActivityEnvironment()
			env.RegisterActivity(acts)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				spec := exportd.Spec{ExportID: fmt.Sprintf("bench-%d-%d", r, i), MerchantID: m.ID, Dataset: exportd.Orders,
					Start: start, End: end, Formats: formats}
				if err := spec.Normalize(); err != nil {
					b.Fatal(err)
				}
				if _, err := env.ExecuteActivity(acts.Export, activities.ExportInput{Spec: spec, Total: rows}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(filepath.Join(dir, spec.ExportID)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
