package format_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format"
	"github.com/exportd/exportd/format/internal/recordtest"
)

func writerFor(f exportd.Format, d exportd.Dataset) recordtest.NewWriter {
	return func(t testing.TB, w io.Writer) recordtest.Writer {
		t.Helper()
		fw, err := format.New(f, d, w)
		require.NoError(t, err)
		return fw
	}
}

// TestEveryFormat runs each format with its production limits: the same
// records written in any batching give the same bytes, and an empty file
// is still a file.
func TestEveryFormat(t *testing.T) {
	for _, f := range exportd.Formats {
		for _, d := range recordtest.Datasets {
			t.Run(fmt.Sprintf("%s/%s", f, d), func(t *testing.T) {
				recordtest.RequireDeterministic(t, writerFor(f, d), recordtest.Source(d, 300))
				recordtest.RequireNoRetention(t, writerFor(f, d), recordtest.Source(d, 300))
				empty := recordtest.Write(t, writerFor(f, d), &exportd.Batch{Dataset: d}, 0)
				require.NotEmpty(t, empty)
			})
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       exportd.Format
		d       exportd.Dataset
		wantErr string
	}{
		{"unknown format", "xlsx", exportd.Orders, `unknown format "xlsx"`},
		{"unknown dataset", exportd.Parquet, "refunds", `unknown dataset "refunds"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := format.New(tc.f, tc.d, io.Discard)
			require.EqualError(t, err, tc.wantErr)
			require.Nil(t, w)
		})
	}
}

func ExampleNew() {
	var file bytes.Buffer
	w, err := format.New(exportd.CSV, exportd.Payments, &file)
	if err != nil {
		panic(err)
	}
	brand := "visa"
	err = w.Write(&exportd.Batch{Dataset: exportd.Payments, Payments: []exportd.Payment{{
		ID: 1, OrderID: 7, MerchantID: "M1", CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		Kind: "refund", Tender: "card", CardBrand: &brand, Result: "success", Amount: -250,
	}}})
	if err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	zr, err := gzip.NewReader(&file)
	if err != nil {
		panic(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		panic(err)
	}
	for _, line := range strings.SplitAfter(string(data), "\r\n") {
		if line != "" {
			fmt.Printf("%q\n", line)
		}
	}
	// Output:
	// "id,order_id,merchant_id,location_id,created_at,kind,tender,card_brand,result,amount\r\n"
	// "1,7,M1,,2024-05-06T07:08:09.123456Z,refund,card,visa,success,-250\r\n"
}
