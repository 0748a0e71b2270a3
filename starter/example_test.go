package starter_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/blob"
	"github.com/exportd/exportd/starter"
)

// A Go service exports a month of a merchant's orders, follows its
// progress, and downloads the files, checked against the manifest. It
// needs the Temporal address and the worker's blob store; without access
// to the store, download through the HTTP API instead.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(client.Options{HostPort: "127.0.0.1:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	store, err := blob.NewLocal("/var/lib/exportd/blobs") // the worker's --blob-dir
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	id, err := starter.StartExport(ctx, c, exportd.Spec{
		MerchantID: "cafe-lumiere",
		Dataset:    exportd.Orders,
		Start:      time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		End:        time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC),
		Formats:    []exportd.Format{exportd.Parquet, exportd.CSV},
	})
	if err != nil {
		log.Fatal(err)
	}
	st, err := starter.Wait(ctx, c, id, starter.WaitOptions{
		OnProgress: func(s exportd.State) {
			log.Printf("%s %.1f%% (%d of %d rows)", s.Phase.Status(), s.Progress.Percent(), s.Progress.Rows, s.Progress.Total)
		},
	})
	var ended *starter.EndedError
	if errors.As(err, &ended) && ended.State.Error != nil {
		log.Fatalf("export failed (%s): %s", ended.State.Error.Code, ended.State.Error.Message)
	}
	if err != nil {
		log.Fatal(err)
	}
	m, err := starter.Download(ctx, store, id, filepath.Join("exports", id))
	if err != nil {
		log.Fatal(err) // a *starter.VerifyError names each file that did not match
	}
	fmt.Printf("%d rows in %d files, available until %s\n", st.Rows, len(m.Files), st.AvailableUntil)
}

// Wait reports an export's phase and progress after every poll; the total
// is known once the export has counted its rows.
func ExampleWait() {
	ctx := context.Background()
	c, err := client.Dial(client.Options{HostPort: "127.0.0.1:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	st, err := starter.Wait(ctx, c, "xexampleexportid", starter.WaitOptions{
		Interval: time.Second,
		OnProgress: func(s exportd.State) {
			fmt.Printf("\r%-9s %d/%d rows", s.Phase.Status(), s.Progress.Rows, s.Progress.Total)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n%d files ready until %s\n", st.Files, st.AvailableUntil)
}

// Download needs the store the worker writes to: here an S3-compatible
// bucket would do as well as the local directory of `exportd dev`.
func ExampleDownload() {
	store, err := blob.NewLocal(".data/blobs")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	m, err := starter.Download(context.Background(), store, "xexampleexportid", "out")
	var verr *starter.VerifyError
	if errors.As(err, &verr) {
		for _, mm := range verr.Mismatches {
			fmt.Println("corrupt:", mm)
		}
		os.Exit(1)
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range m.Files {
		fmt.Println(f.Name, f.SHA256, "ok")
	}
}

// Verify checks files already on disk, for example after they were
// copied elsewhere, against the manifest that came with them.
func ExampleVerify() {
	dir, err := os.MkdirTemp("", "export")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := []byte("id,total\r\n1,1250\r\n")
	sum := sha256.Sum256(data)
	m := exportd.Manifest{ExportID: "x1", Files: []exportd.FileInfo{
		{Name: "orders-00000.csv", Rows: 1, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])},
		{Name: "orders-00001.csv", Rows: 1, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])},
	}}
	for _, f := range m.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), data, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("as written:", starter.Verify(dir, m))

	// One byte changed, one file gone.
	_ = os.WriteFile(filepath.Join(dir, "orders-00000.csv"), []byte("id,total\r\n1,9250\r\n"), 0o600)
	_ = os.Remove(filepath.Join(dir, "orders-00001.csv"))
	err = starter.Verify(dir, m)
	var verr *starter.VerifyError
	if errors.As(err, &verr) {
		fmt.Printf("%d of %d files do not match:\n", len(verr.Mismatches), verr.Files)
		for _, mm := range verr.Mismatches {
			if mm.Missing {
				fmt.Println(mm)
				continue
			}
			fmt.Printf("%s: sha256 %.12s..., manifest says %.12s...\n", mm.File.Name, mm.SHA256, mm.File.SHA256)
		}
	}
	// Output:
	// as written: <nil>
	// 2 of 2 files do not match:
	// orders-00000.csv: sha256 914516c2f804..., manifest says 5f1c8502373d...
	// orders-00001.csv: missing
}
