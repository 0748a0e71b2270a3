// Command fakes3 serves an S3-compatible API from one bbolt file, so that
// `exportd cluster` can run exportd's S3 blob store against a server of
// its own without Docker (docker-compose.yml uses MinIO). It is gofakes3
// (github.com/johannesboyne/gofakes3) with its persistent backend: a
// development and test server, which checks no signatures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	bolt "go.etcd.io/bbolt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	path := flag.String("db", "s3.bolt", "bbolt file that holds the buckets and objects")
	bucket := flag.String("bucket", "exports", "bucket to create when missing (empty: none)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *path, *bucket); err != nil {
		log.Fatalf("fakes3: %v", err)
	}
}

func run(ctx context.Context, addr, path, bucket string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("error opening %s: %w", path, err)
	}
	defer db.Close()
	backend := s3bolt.New(db)
	if bucket != "" {
		exists, err := backend.BucketExists(bucket)
		if err != nil {
			return fmt.Errorf("error looking for bucket %s: %w", bucket, err)
		}
		if !exists {
			if err := backend.CreateBucket(bucket); err != nil {
				return fmt.Errorf("error creating bucket %s: %w", bucket, err)
			}
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("fakes3: serving %s on http://%s, bucket %q", path, ln.Addr(), bucket)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
