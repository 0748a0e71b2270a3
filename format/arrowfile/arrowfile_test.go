package arrowfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

// smallBatch makes a thousand rows cross many record batches.
const smallBatch = 64

func writerFor(d exportd.Dataset, batchRows int) recordtest.NewWriter {
	return func(t testing.TB, w io.Writer) recordtest.Writer {
		t.Helper()
		aw, err := newWriter(d, w, batchRows)
		require.NoError(t, err)
		return aw
	}
}

// read decodes a file with arrow-go's IPC file reader.
func read(t *testing.T, d exportd.Dataset, file []byte) (*exportd.Batch, *arrow.Schema, []int64) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := ipc.NewFileReader(bytes.NewReader(file), ipc.WithAllocator(mem))
	require.NoError(t, err)
	defer r.Close()
	got := &exportd.Batch{Dataset: d}
	var sizes []int64
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		require.NoError(t, err)
		sizes = append(sizes, rec.NumRows())
		recordtest.AppendArrow(t, got, rec)
	}
	return got, r.Schema(), sizes
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				got, schema, sizes := read(t, d, recordtest.Write(t, writerFor(d, smallBatch), src, 100))
				require.Equal(t, recordtest.Normalize(src), got)

				want := schemaFor(d)
				require.True(t, want.Equal(schema), "schema\n%s\nwant\n%s", schema, want)
				for i, size := range sizes {
					if i < len(sizes)-1 {
						require.EqualValues(t, smallBatch, size, "batch %d", i)
					} else {
						require.LessOrEqual(t, size, int64(smallBatch))
					}
				}
				require.Len(t, sizes, (n+smallBatch-1)/smallBatch)
			})
		}
	}
}

func schemaFor(d exportd.Dataset) *arrow.Schema { return schemaOf(d.Columns()) }

// TestSchemaFollowsColumns checks the schema against the column tables: the
// names in order, a column nullable exactly when the table says so (when
// its Go field is a pointer), lists of non-null structs, and timestamps in
// microseconds, UTC.
func TestSchemaFollowsColumns(t *testing.T) {
	var check func(path string, cols []exportd.Column, fs []arrow.Field)
	check = func(path string, cols []exportd.Column, fs []arrow.Field) {
		require.Len(t, fs, len(cols), path)
		for i, c := range cols {
			f := fs[i]
			p := path + "/" + c.Name
			require.Equal(t, c.Name, f.Name, p)
			require.Equal(t, c.Nullable, f.Nullable, p)
			switch dt := f.Type.(type) {
			case *arrow.ListType:
				require.Equal(t, exportd.List, c.Type, p)
				require.False(t, dt.ElemField().Nullable, p)
				st, ok := dt.Elem().(*arrow.StructType)
				require.True(t, ok, p)
				check(p, c.Elem, st.Fields())
			case *arrow.TimestampType:
				require.Equal(t, exportd.Timestamp, c.Type, p)
				require.Equal(t, arrow.Microsecond, dt.Unit, p)
				require.Equal(t, "UTC", dt.TimeZone, p)
			default:
				want := map[exportd.Type]arrow.DataType{
					exportd.Int32: arrow.PrimitiveTypes.Int32, exportd.Int64: arrow.PrimitiveTypes.Int64,
					exportd.String: arrow.BinaryTypes.String,
				}[c.Type]
				require.True(t, arrow.TypeEqual(want, f.Type), "%s: %s", p, f.Type)
			}
		}
	}
	for _, d := range recordtest.Datasets {
		check(string(d), d.Columns(), schemaFor(d).Fields())
		check(string(d)+" changes", d.ChangeColumns(), schemaOf(d.ChangeColumns()).Fields())
	}
}

// TestChangesRoundTrip reads a change export's records back across many
// record batches: every column of every row, op and deleted_at included,
// and the schema of the change tables.
func TestChangesRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.ChangeSource(d, 1000)
			newW := func(t testing.TB, w io.Writer) recordtest.Writer {
				t.Helper()
				aw, err := newChangeWriter(d, w, smallBatch)
				require.NoError(t, err)
				return aw
			}
			file := recordtest.RequireDeterministic(t, newW, src)
			recordtest.RequireNoRetention(t, newW, src)

			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r, err := ipc.NewFileReader(bytes.NewReader(file), ipc.WithAllocator(mem))
			require.NoError(t, err)
			defer r.Close()
			want := schemaOf(d.ChangeColumns())
			require.True(t, want.Equal(r.Schema()), "schema\n%s\nwant\n%s", r.Schema(), want)
			got := &exportd.Batch{Dataset: d}
			for i := range r.NumRecords() {
				rec, err := r.RecordBatch(i)
				require.NoError(t, err)
				recordtest.AppendArrowChanges(t, got, rec)
			}
			require.Equal(t, recordtest.NormalizeChanges(src), got)
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, rows := range []int{smallBatch, DefaultBatchRows} {
			t.Run(fmt.Sprintf("%s/%d", d, rows), func(t *testing.T) {
				recordtest.RequireDeterministic(t, writerFor(d, rows), recordtest.Source(d, 1000))
			})
		}
	}
}

func TestMisuse(t *testing.T) {
	w, err := NewWriter(exportd.Orders, io.Discard)
	require.NoError(t, err)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}), "payments")
	require.NoError(t, w.Close())
	require.Error(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}))
	require.NoError(t, w.Close(), "second close")
}

func TestWriteError(t *testing.T) {
	w, err := newWriter(exportd.Orders, failingWriter{}, smallBatch)
	require.NoError(t, err)
	err = w.Write(recordtest.Source(exportd.Orders, 1000))
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
			recordtest.Bench(b, writerFor(d, DefaultBatchRows), recordtest.BenchSource(d, 1000))
		})
	}
}

func BenchmarkChangeWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, func(t testing.TB, w io.Writer) recordtest.Writer {
				t.Helper()
				aw, err := NewChangeWriter(d, w)
				require.NoError(t, err)
				return aw
			}, recordtest.BenchChangeSource(d, 1000))
		})
	}
}
