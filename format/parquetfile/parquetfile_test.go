package parquetfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

// smallGroup makes a thousand rows cross many row groups.
const smallGroup = 100

func writerFor(d exportd.Dataset, maxRows, maxBytes int64) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return newWriter(d, w, maxRows, maxBytes) }
}

// read decodes a file with arrow-go's Parquet reader, which shares no code
// with parquet-go.
func read(t *testing.T, d exportd.Dataset, data []byte) (*exportd.Batch, *metadata.FileMetaData) {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer pf.Close()
	// No checked allocator: arrow-go's delta decoder leaks a few bytes.
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 333}, memory.NewGoAllocator())
	require.NoError(t, err)
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	require.NoError(t, err)
	defer rr.Release()
	got := &exportd.Batch{Dataset: d}
	for rr.Next() {
		recordtest.AppendArrow(t, got, rr.RecordBatch())
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		require.NoError(t, err)
	}
	return got, pf.MetaData()
}

func TestRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, n := range recordtest.Sizes {
			t.Run(fmt.Sprintf("%s/%d", d, n), func(t *testing.T) {
				src := recordtest.Source(d, n)
				got, md := read(t, d, recordtest.Write(t, writerFor(d, smallGroup, DefaultMaxBytesPerRowGroup), src, 70))
				require.Equal(t, recordtest.Normalize(src), got)

				require.EqualValues(t, n, md.NumRows)
				require.Equal(t, (n+smallGroup-1)/smallGroup, md.NumRowGroups())
				for i := range md.NumRowGroups() {
					rg := md.RowGroup(i)
					if i < md.NumRowGroups()-1 {
						require.EqualValues(t, smallGroup, rg.NumRows(), "row group %d", i)
					}
					for j := range rg.NumColumns() {
						cc, err := rg.ColumnChunk(j)
						require.NoError(t, err)
						require.Equal(t, compress.Codecs.Zstd, cc.Compression(), "column %s", cc.PathInSchema())
					}
				}
				requireSchema(t, d, md.Schema)
			})
		}
	}
}

// requireSchema checks the physical layout readers rely on: timestamps as
// UTC microseconds, money as int64, nested lists as standard 3-level LISTs.
func requireSchema(t *testing.T, d exportd.Dataset, s *schema.Schema) {
	t.Helper()
	paths := map[string]*schema.Column{}
	for i := range s.NumColumns() {
		c := s.Column(i)
		paths[c.Path()] = c
		switch c.Name() {
		case "created_at", "updated_at":
			ts, ok := c.LogicalType().(schema.TimestampLogicalType)
			require.True(t, ok, "%s is %s", c.Path(), c.LogicalType())
			require.True(t, ts.IsAdjustedToUTC(), c.Path())
			require.Equal(t, schema.TimeUnitMicros, ts.TimeUnit(), c.Path())
			require.Equal(t, parquet.Types.Int64, c.PhysicalType(), c.Path())
		case "subtotal", "tax", "tip", "total", "amount", "unit_price", "id", "order_id":
			require.Equal(t, parquet.Types.Int64, c.PhysicalType(), c.Path())
		}
	}
	if d == exportd.Orders {
		for _, p := range []string{"items.list.element.sku", "payments.list.element.created_at"} {
			require.Contains(t, paths, p)
			require.EqualValues(t, 1, paths[p].MaxRepetitionLevel(), p)
		}
		require.EqualValues(t, 0, paths["note"].MaxRepetitionLevel())
		require.EqualValues(t, 1, paths["note"].MaxDefinitionLevel(), "note is optional")
	}
}

func TestRowGroupBytes(t *testing.T) {
	src := recordtest.Source(exportd.Orders, 1000)
	newW := writerFor(exportd.Orders, 1<<30, 32<<10)
	data := recordtest.RequireDeterministic(t, newW, src)
	got, md := read(t, exportd.Orders, data)
	require.Equal(t, recordtest.Normalize(src), got)
	require.Greater(t, md.NumRowGroups(), 3, "a byte limit of 32 KiB should cut several row groups")
}

func TestDeterministic(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, rows := range []int64{smallGroup, DefaultMaxRowsPerRowGroup} {
			t.Run(fmt.Sprintf("%s/%d", d, rows), func(t *testing.T) {
				recordtest.RequireDeterministic(t, writerFor(d, rows, DefaultMaxBytesPerRowGroup), recordtest.Source(d, 1000))
				recordtest.RequireNoRetention(t, writerFor(d, rows, DefaultMaxBytesPerRowGroup), recordtest.Source(d, 1000))
			})
		}
	}
}

func TestMisuse(t *testing.T) {
	w := NewWriter(exportd.Orders, io.Discard)
	require.ErrorContains(t, w.Write(&exportd.Batch{Dataset: exportd.Payments}), "payments")
	require.NoError(t, w.Close())
	require.Error(t, w.Write(&exportd.Batch{Dataset: exportd.Orders}))
	require.NoError(t, w.Close(), "second close")
}

func TestWriteError(t *testing.T) {
	w := newWriter(exportd.Orders, failingWriter{}, smallGroup, DefaultMaxBytesPerRowGroup)
	err := w.Write(recordtest.Source(exportd.Orders, 1000))
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
			recordtest.Bench(b, writerFor(d, DefaultMaxRowsPerRowGroup, DefaultMaxBytesPerRowGroup), recordtest.BenchSource(d, 1000))
		})
	}
}

func changeWriterFor(d exportd.Dataset, maxRows, maxBytes int64) recordtest.NewWriter {
	return func(_ testing.TB, w io.Writer) recordtest.Writer { return newChangeWriter(d, w, maxRows, maxBytes) }
}

// TestChangesRoundTrip reads a change export's records back with arrow-go
// across many row groups, every column of every row with op and
// deleted_at, and checks the change columns' physical types.
func TestChangesRoundTrip(t *testing.T) {
	for _, d := range recordtest.Datasets {
		for _, rows := range []int64{smallGroup, DefaultMaxRowsPerRowGroup} {
			t.Run(fmt.Sprintf("%s/%d", d, rows), func(t *testing.T) {
				src := recordtest.ChangeSource(d, 1000)
				newW := changeWriterFor(d, rows, DefaultMaxBytesPerRowGroup)
				data := recordtest.RequireDeterministic(t, newW, src)
				recordtest.RequireNoRetention(t, newW, src)

				pf, err := file.NewParquetReader(bytes.NewReader(data))
				require.NoError(t, err)
				defer pf.Close()
				fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 333}, memory.NewGoAllocator())
				require.NoError(t, err)
				rr, err := fr.GetRecordReader(context.Background(), nil, nil)
				require.NoError(t, err)
				defer rr.Release()
				got := &exportd.Batch{Dataset: d}
				for rr.Next() {
					recordtest.AppendArrowChanges(t, got, rr.RecordBatch())
				}
				if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
					require.NoError(t, err)
				}
				require.Equal(t, recordtest.NormalizeChanges(src), got)

				md := pf.MetaData()
				require.Equal(t, int(1000/rows)+map[bool]int{true: 1, false: 0}[1000%rows != 0], md.NumRowGroups())
				requireSchema(t, d, md.Schema)
				op := md.Schema.Column(md.Schema.ColumnIndexByName("op"))
				require.Equal(t, parquet.Types.ByteArray, op.PhysicalType())
				require.EqualValues(t, 0, op.MaxDefinitionLevel(), "op is required")
				del := md.Schema.Column(md.Schema.ColumnIndexByName("deleted_at"))
				ts, ok := del.LogicalType().(schema.TimestampLogicalType)
				require.True(t, ok, "deleted_at is %s", del.LogicalType())
				require.True(t, ts.IsAdjustedToUTC())
				require.Equal(t, schema.TimeUnitMicros, ts.TimeUnit())
				require.Equal(t, parquet.Types.Int64, del.PhysicalType())
				require.EqualValues(t, 1, del.MaxDefinitionLevel(), "deleted_at is optional")
			})
		}
	}
}

func BenchmarkChangeWriter(b *testing.B) {
	for _, d := range recordtest.Datasets {
		b.Run(string(d), func(b *testing.B) {
			recordtest.Bench(b, changeWriterFor(d, DefaultMaxRowsPerRowGroup, DefaultMaxBytesPerRowGroup), recordtest.BenchChangeSource(d, 1000))
		})
	}
}
