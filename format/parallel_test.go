package format_test

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format"
	"github.com/exportd/exportd/format/internal/recordtest"
)

// TestParallelMatchesEachFormat writes every format at once through
// Parallel, in batches, and requires each file to be the one the format's
// writer makes alone.
func TestParallelMatchesEachFormat(t *testing.T) {
	for _, d := range recordtest.Datasets {
		t.Run(string(d), func(t *testing.T) {
			src := recordtest.Source(d, 1000)
			bufs := make([]bytes.Buffer, len(exportd.Formats))
			ws := make([]format.Writer, len(exportd.Formats))
			for i, f := range exportd.Formats {
				w, err := format.New(f, d, &bufs[i])
				require.NoError(t, err)
				ws[i] = w
			}
			p := format.NewParallel(ws...)
			for i := 0; i < src.Len(); i += 77 {
				require.NoError(t, p.Write(src.Slice(i, min(i+77, src.Len()))))
			}
			require.NoError(t, p.Close())
			for i, f := range exportd.Formats {
				want := recordtest.Write(t, writerFor(f, d), src, 0)
				require.True(t, bytes.Equal(want, bufs[i].Bytes()), "%s differs", f)
			}
		})
	}
}

// fakeWriter fails its Write number failAt (from 1) after a delay, and
// counts its calls.
type fakeWriter struct {
	failAt      int
	delay       time.Duration
	err         error
	writes      int
	closes      atomic.Int32
	concurrency *atomic.Int32
	peak        *atomic.Int32
}

func (w *fakeWriter) Write(*exportd.Batch) error {
	n := w.concurrency.Add(1)
	defer w.concurrency.Add(-1)
	for p := w.peak.Load(); n > p && !w.peak.CompareAndSwap(p, n); p = w.peak.Load() {
	}
	w.writes++
	time.Sleep(w.delay)
	if w.writes == w.failAt {
		return w.err
	}
	return nil
}

func (w *fakeWriter) Close() error { w.closes.Add(1); return nil }

func TestParallelErrors(t *testing.T) {
	var conc, peak atomic.Int32
	errSlow, errFast := errors.New("slow failure"), errors.New("fast failure")
	ws := []*fakeWriter{
		{concurrency: &conc, peak: &peak, delay: 20 * time.Millisecond},
		// Both fail on the second batch; the slower one is first in order.
		{concurrency: &conc, peak: &peak, failAt: 2, delay: 100 * time.Millisecond, err: errSlow},
		{concurrency: &conc, peak: &peak, delay: 20 * time.Millisecond},
		{concurrency: &conc, peak: &peak, failAt: 2, delay: 20 * time.Millisecond, err: errFast},
	}
	p := format.NewParallel(ws[0], ws[1], ws[2], ws[3])
	b := &exportd.Batch{Dataset: exportd.Orders}
	require.NoError(t, p.Write(b))
	require.EqualValues(t, 4, peak.Load(), "the writers ran at the same time")

	err := p.Write(b)
	require.ErrorIs(t, err, errSlow)
	var we *format.WriterError
	require.ErrorAs(t, err, &we)
	require.Equal(t, 1, we.Index)

	require.Equal(t, err, p.Write(b), "the error sticks")
	require.Equal(t, 2, ws[0].writes, "no write after the error")
	require.Equal(t, err, p.Close())
	require.Equal(t, err, p.Close(), "second close")
	for i, w := range ws {
		require.EqualValues(t, 1, w.closes.Load(), "writer %d closed once", i)
	}
}

func TestParallelWriteAfterClose(t *testing.T) {
	p := format.NewParallel(mustNew(t, exportd.CSV, exportd.Orders, io.Discard))
	require.NoError(t, p.Close())
	require.Error(t, p.Write(&exportd.Batch{Dataset: exportd.Orders}))
}

func mustNew(t testing.TB, f exportd.Format, d exportd.Dataset, w io.Writer) format.Writer {
	t.Helper()
	fw, err := format.New(f, d, w)
	require.NoError(t, err)
	return fw
}

// BenchmarkAllFormats writes batches of 1000 orders to the four formats
// on io.Discard, one after the other as one goroutine does, and through
// Parallel.
func BenchmarkAllFormats(b *testing.B) {
	batch := recordtest.BenchSource(exportd.Orders, 1000)
	for _, mode := range []string{"sequential", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			ws := make([]format.Writer, len(exportd.Formats))
			for i, f := range exportd.Formats {
				ws[i] = mustNew(b, f, exportd.Orders, io.Discard)
			}
			var w format.Writer = sequential(ws)
			if mode == "parallel" {
				w = format.NewParallel(ws...)
			}
			b.ReportAllocs()
			rows := 0
			for b.Loop() {
				if err := w.Write(batch); err != nil {
					b.Fatal(err)
				}
				rows += batch.Len()
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// sequential is what the exporter does today: each writer in turn.
type sequential []format.Writer

func (s sequential) Write(b *exportd.Batch) error {
	for _, w := range s {
		if err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (s sequential) Close() error {
	var errs []error
	for _, w := range s {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}
