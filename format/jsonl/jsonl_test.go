package jsonl

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

func writerFor(d exportd.Dataset) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return NewWriter(d, w) }
}

// readLines decompresses a file with the standard library and splits it
// into lines, requiring each to end in "\n".
func readLines(t *testing.T, file []byte) [][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(file))
	require.NoError(t, err)
	require.Empty(t, zr.Name)
	require.True(t, zr.ModTime.IsZero(), "gzip header has a time: %v", zr.ModTime)
	r := bufio.NewReader(zr)
	var lines [][]byte
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			require.Empty(t, line, "last line does not end in a newline")
			break
		}
		require.NoError(t, err)
		lines = append(lines, bytes.TrimSuffix(line, []byte("\n")))
	}
	require.NoError(t, zr.Close())
	return lines
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				lines := readLines(t, recordtest.Write(t, writerFor(d), src, 100))
				require.Len(t, lines, n)
				for i, line := range lines {
					require.Equal(t, recordtest.JSONRecord(t, src, i), recordtest.Decode(t, line), "line %d", i+1)
				}
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			// Several megabytes of JSON: many buffer flushes into gzip.
			recordtest.RequireDeterministic(t, writerFor(d), recordtest.Source(d, 5000))
		})
	}
}

func TestLineLayout(t *testing.T) {
	p := exportd.Payment{ID: 1, OrderID: 2, MerchantID: "M", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Kind: "sale", Tender: "cash", Result: "success", Amount: 10}
	file := recordtest.Write(t, writerFor(exportd.Payments), &exportd.Batch{Dataset: exportd.Payments, Payments: []exportd.Payment{p, p}}, 0)
	want := `{"id":1,"order_id":2,"merchant_id":"M","location_id":null,"created_at":"2024-01-02T03:04:05.000006Z","kind":"sale","tender":"cash","card_brand":null,"result":"success","amount":10}`
	lines := readLines(t, file)
	require.Equal(t, []string{want, want}, []string{string(lines[0]), string(lines[1])})
}

func TestMisuse(t *testing.T) {
	w := NewWriter(exportd.Orders, io.Discard)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}), "payments")
	require.NoError(t, w.Close())
	require.Error(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}))
	require.NoError(t, w.Close(), "second close")
}

func TestWriteError(t *testing.T) {
	w := NewWriter(exportd.Orders, failingWriter{})
	err := w.Write(recordtest.Source(exportd.Orders, 2000))
	if err == nil {
		err = w.Close()
	}
	require.ErrorIs(t, err, errDiskFull)
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func BenchmarkWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, writerFor(d), recordtest.BenchSource(d, 1000))
		})
	}
}

func TestChangesRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.ChangeSource(d, 1000)
			newW := func(_ testing.TB, w io.Writer) recordtest.Writer { return NewChangeWriter(d, w) }
			lines := readLines(t, recordtest.RequireDeterministic(t, newW, src))
			require.Len(t, lines, src.Len())
			for i, line := range lines {
				require.Equal(t, recordtest.JSONChangeRecord(t, src, i), recordtest.Decode(t, line), "line %d", i+1)
			}
		})
	}
}

func BenchmarkChangeWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, func(_ testing.TB, w io.Writer) recordtest.Writer { return NewChangeWriter(d, w) }, recordtest.BenchChangeSource(d, 1000))
		})
	}
}
