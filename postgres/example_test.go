package postgres_test

import (
	"context"
	"fmt"
	"time"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/postgres"
	"github.com/exportd/exportd/postgres/pgtest"
)

// Example seeds a merchant and pages a day of its orders out the way an
// export does.
func Example() {
	ctx := context.Background()
	url, drop, err := pgtest.CreateDatabase(ctx)
	if err != nil {
		panic(err)
	}
	defer drop(ctx)
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	_, err = postgres.Seed(ctx, pool, postgres.SeedOptions{
		Seed:              1,
		Merchants:         []postgres.SeedMerchant{{ID: "corner-shop", Name: "Corner Shop", Timezone: "Europe/London", Currency: "GBP"}},
		OrdersPerMerchant: 2000,
		Start:             start,
		End:               start.AddDate(0, 0, 7),
	})
	if err != nil {
		panic(err)
	}

	src := &postgres.Source{Pool: pool, PageSize: 100}
	q := postgres.Query{MerchantID: "corner-shop", Dataset: exportd.Orders, Start: start, End: start.AddDate(0, 0, 1)}
	total, err := src.Count(ctx, q)
	if err != nil {
		panic(err)
	}
	var rows, pages, items int
	var last exportd.Key
	err = src.Stream(ctx, q, func(b *exportd.Batch) error {
		pages++
		rows += b.Len()
		for _, o := range b.Orders {
			items += len(o.Items)
		}
		// The batch is reused for the next page: keep values, not pointers.
		last = b.Key(b.Len() - 1)
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("planned", total, "streamed", rows, "in", pages, "pages")
	fmt.Println("items", items)
	fmt.Println("resume after", last.CreatedAt.Format(time.RFC3339Nano), last.ID)
	// Output:
	// planned 343 streamed 343 in 4 pages
	// items 772
	// resume after 2025-03-01T23:50:44.207Z 5260527483748628
}
