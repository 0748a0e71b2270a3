package format_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format"
	"github.com/exportd/exportd/format/internal/recordtest"
)

func changeWriterFor(f exportd.Format, d exportd.Dataset) recordtest.NewWriter {
	return func(t testing.TB, w io.Writer) recordtest.Writer {
		t.Helper()
		fw, err := format.NewChanges(f, d, w)
		require.NoError(t, err)
		return fw
	}
}

// changeSizes are the record counts of the change round trips: none, one
// upsert, and enough for many deletes among upserts across record batches.
var changeSizes = []int{0, 1, 1000}

// TestChangesRoundTrip writes a change export's records, upserts with
// items, payments and nulls between deletes, through NewChanges in every
// general format and reads every column of every row back with the
// independent readers of the formats' own tests.
func TestChangesRoundTrip(t *testing.T) {
	for _, f := range exportd.Formats {
		for _, d := range recordtest.Datasets {
			for _, n := range changeSizes {
				t.Run(fmt.Sprintf("%s/%s/%d", f, d, n), func(t *testing.T) {
					src := recordtest.ChangeSource(d, n)
					file := recordtest.Write(t, changeWriterFor(f, d), src, 100)
					want := exportd.ColumnNames(d.ChangeColumns())
					switch f {
					case exportd.Parquet:
						got, names := readParquetChanges(t, d, file)
						require.Equal(t, want, names)
						require.Equal(t, recordtest.NormalizeChanges(src), got)
					case exportd.Arrow:
						got, names := readArrowChanges(t, d, file)
						require.Equal(t, want, names)
						require.Equal(t, recordtest.NormalizeChanges(src), got)
					case exportd.JSONL:
						lines := readJSONLines(t, file)
						require.Len(t, lines, n)
						for i, line := range lines {
							require.Equal(t, recordtest.JSONChangeRecord(t, src, i), recordtest.Decode(t, line), "line %d", i+1)
						}
					case exportd.CSV:
						rows := readCSV(t, file)
						require.Len(t, rows, n+1)
						require.Equal(t, want, rows[0])
						for i, row := range rows[1:] {
							requireCSVChangeRow(t, d.ChangeColumns(), recordtest.JSONChangeRecord(t, src, i).(map[string]any), row, i)
						}
					default:
						t.Fatalf("no reader for format %q", f)
					}
				})
			}
		}
	}
}

// readParquetChanges reads a file with arrow-go's Parquet reader, which
// shares no code with parquet-go, and returns its records and the names
// of its top-level columns.
func readParquetChanges(t *testing.T, d exportd.Dataset, data []byte) (*exportd.Batch, []string) {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 333}, memory.NewGoAllocator())
	require.NoError(t, err)
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	require.NoError(t, err)
	defer rr.Release()
	var names []string
	for _, f := range rr.Schema().Fields() {
		names = append(names, f.Name)
	}
	got := &exportd.Batch{Dataset: d}
	for rr.Next() {
		recordtest.AppendArrowChanges(t, got, rr.RecordBatch())
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		require.NoError(t, err)
	}
	return got, names
}

// readArrowChanges reads a file with arrow-go's IPC file reader.
func readArrowChanges(t *testing.T, d exportd.Dataset, data []byte) (*exportd.Batch, []string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := ipc.NewFileReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	require.NoError(t, err)
	defer r.Close()
	var names []string
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name)
	}
	got := &exportd.Batch{Dataset: d}
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		require.NoError(t, err)
		recordtest.AppendArrowChanges(t, got, rec)
	}
	return got, names
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func readJSONLines(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var lines [][]byte
	s := bufio.NewScanner(bytes.NewReader(gunzip(t, data)))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, bytes.Clone(s.Bytes()))
	}
	require.NoError(t, s.Err())
	return lines
}

func readCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(gunzip(t, data))).ReadAll()
	require.NoError(t, err)
	return rows
}

// requireCSVChangeRow checks the cells of a row against the reference
// JSON object of its record: a key the object lacks (a delete's data
// columns, an upsert's deleted_at) or holds null is an empty cell.
func requireCSVChangeRow(t *testing.T, cols []exportd.Column, ref map[string]any, row []string, i int) {
	t.Helper()
	require.Len(t, row, len(cols), "row %d", i)
	for j, c := range cols {
		switch v := ref[c.Name].(type) {
		case nil:
			require.Empty(t, row[j], "row %d column %s", i, c.Name)
		case string:
			// encoding/csv drops the CR of a CRLF, even inside quotes.
			require.Equal(t, strings.ReplaceAll(v, "\r\n", "\n"), row[j], "row %d column %s", i, c.Name)
		case json.Number:
			require.Equal(t, v.String(), row[j], "row %d column %s", i, c.Name)
		default:
			require.Equal(t, v, recordtest.Decode(t, []byte(row[j])), "row %d column %s", i, c.Name)
		}
	}
}

// TestChangesEveryFormat holds the change writers to what every writer
// promises: the same bytes however the records are batched, no memory of
// a batch kept after Write, and a file even without records.
func TestChangesEveryFormat(t *testing.T) {
	for _, f := range exportd.Formats {
		for _, d := range recordtest.Datasets {
			t.Run(fmt.Sprintf("%s/%s", f, d), func(t *testing.T) {
				recordtest.RequireDeterministic(t, changeWriterFor(f, d), recordtest.ChangeSource(d, 300))
				recordtest.RequireNoRetention(t, changeWriterFor(f, d), recordtest.ChangeSource(d, 300))
				empty := recordtest.Write(t, changeWriterFor(f, d), &exportd.Batch{Dataset: d}, 0)
				require.NotEmpty(t, empty)
			})
		}
	}
}

// TestChangesRefuseBadOps checks that a batch with a record that is
// neither an upsert nor a delete is refused whole: the file written after
// it is the file of the good batches alone.
func TestChangesRefuseBadOps(t *testing.T) {
	for _, f := range exportd.Formats {
		for _, d := range recordtest.Datasets {
			t.Run(fmt.Sprintf("%s/%s", f, d), func(t *testing.T) {
				src := recordtest.ChangeSource(d, 20)
				want := recordtest.Write(t, changeWriterFor(f, d), src, 0)

				bad := recordtest.ChangeSource(d, 20)
				if d == exportd.Payments {
					bad.Payments[5].Op = ""
				} else {
					bad.Orders[5].Op = "update"
				}
				var buf bytes.Buffer
				w, err := format.NewChanges(f, d, &buf)
				require.NoError(t, err)
				require.NoError(t, w.Write(src.Slice(0, 10)))
				err = w.Write(bad.Slice(0, 10))
				require.ErrorContains(t, err, "has op")
				require.NoError(t, w.Write(src.Slice(10, 20)))
				require.NoError(t, w.Close())
				require.Equal(t, want, buf.Bytes())
			})
		}
	}
}

func TestNewChangesRejects(t *testing.T) {
	for _, tc := range []struct {
		f       exportd.Format
		d       exportd.Dataset
		wantErr string
	}{
		{exportd.CloverJSON, exportd.Orders, `format "clover-json" cannot carry a change export`},
		{exportd.DoshiiJSON, exportd.Orders, `format "doshii-json.gzip" cannot carry a change export`},
		{"xlsx", exportd.Orders, `unknown format "xlsx"`},
		{exportd.Parquet, "refunds", `unknown dataset "refunds"`},
	} {
		t.Run(string(tc.f), func(t *testing.T) {
			w, err := format.NewChanges(tc.f, tc.d, io.Discard)
			require.EqualError(t, err, tc.wantErr)
			require.Nil(t, w)
		})
	}
}
