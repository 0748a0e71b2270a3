package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// BenchmarkSourceStream pages 200k seeded orders (with their ~450k items
// and ~230k payments), and the payments alone, through Source.Stream:
//
//	go test ./postgres -run '^$' -bench SourceStream -benchtime 5x
func BenchmarkSourceStream(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.New(b)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 3, 0)
	m := postgres.SeedMerchant{ID: "bench", Timezone: "America/Chicago", Currency: "USD", Orders: 200_000}
	_, err := postgres.Seed(ctx, pool, postgres.SeedOptions{Seed: 1, Merchants: []postgres.SeedMerchant{m}, Start: start, End: end})
	require.NoError(b, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE orders, order_items, transactions")
	require.NoError(b, err)

	for _, ds := range []exportd.Dataset{exportd.Orders, exportd.Payments} {
		b.Run(string(ds), func(b *testing.B) {
			src := &postgres.Source{Pool: pool}
			q := postgres.Query{MerchantID: m.ID, Dataset: ds, Start: start, End: end}
			var rows int64
			b.ReportAllocs()
			for b.Loop() {
				err := src.Stream(ctx, q, func(batch *exportd.Batch) error {
					rows += int64(batch.Len())
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkSeed loads 200k orders (with their ~450k items and ~230k
// payments) into a fresh database per iteration, the cost the change
// tracking triggers must keep small:
//
//	go test ./postgres -run '^$' -bench Seed -benchtime 3x
func BenchmarkSeed(b *testing.B) {
	ctx := context.Background()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := postgres.SeedMerchant{ID: "bench", Timezone: "America/Chicago", Currency: "USD", Orders: 200_000}
	opts := postgres.SeedOptions{Seed: 1, Merchants: []postgres.SeedMerchant{m}, Start: start, End: start.AddDate(0, 3, 0)}
	var rows int64
	for b.Loop() {
		b.StopTimer()
		pool := pgtest.New(b)
		b.StartTimer()
		res, err := postgres.Seed(ctx, pool, opts)
		if err != nil {
			b.Fatal(err)
		}
		sm := res.Merchants[0]
		rows += sm.Orders + sm.Items + sm.Transactions
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
