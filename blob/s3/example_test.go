package s3_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	s3 "github.com/exportd/exportd/blob/s3"
)

// Write a file, commit it, and hand out a link to it; gofakes3 stands in
// for the bucket.
func Example() {
	backend := s3mem.New()
	_ = backend.CreateBucket("exports")
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()

	ctx := context.Background()
	store, err := s3.New(ctx, s3.Config{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "exports", Region: "us-east-1",
		AccessKey: "key", SecretKey: "secret",
	})
	if err != nil {
		panic(err)
	}
	up, err := store.Create(ctx, "x1/orders-00000.csv.gz", "attempt1")
	if err != nil {
		panic(err)
	}
	defer up.Abort() // a no-op once committed
	io.WriteString(up, "hello")
	if err := up.Commit(); err != nil {
		panic(err)
	}
	link, err := store.PresignGet(ctx, "x1/orders-00000.csv.gz", 15*time.Minute, "orders.csv.gz")
	if err != nil {
		panic(err)
	}
	resp, err := http.Get(link)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), resp.Header.Get("Content-Disposition"))
	// Output: 200 hello attachment; filename=orders.csv.gz
}
