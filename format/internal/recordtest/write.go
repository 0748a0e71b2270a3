package recordtest

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
)

// Writer is the format.Writer interface, restated because the format
// package imports the packages under test.
type Writer interface {
	Write(b *exportd.Batch) error
	Close() error
}

// NewWriter makes a writer under test that writes to w.
type NewWriter func(t testing.TB, w io.Writer) Writer

// Write writes all of b through a new writer in batches of size records
// (all at once if size <= 0), closes it and returns the file.
func Write(t testing.TB, newWriter NewWriter, b *exportd.Batch, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newWriter(t, &buf)
	if size <= 0 {
		size = max(b.Len(), 1)
	}
	for i := 0; i < b.Len(); i += size {
		require.NoError(t, w.Write(b.Slice(i, min(i+size, b.Len()))))
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// RequireDeterministic writes b in batches of several sizes, including
// empty batches, and requires the same bytes each time. It returns them.
func RequireDeterministic(t testing.TB, newWriter NewWriter, b *exportd.Batch) []byte {
	t.Helper()
	want := Write(t, newWriter, b, 0)
	for _, size := range []int{1, 7, 1000} {
		got := Write(t, newWriter, b, size)
		require.True(t, bytes.Equal(want, got), "batches of %d: %d bytes differ from %d written at once", size, len(got), len(want))
	}

	var buf bytes.Buffer
	w := newWriter(t, &buf)
	require.NoError(t, w.Write(&exportd.Batch{Dataset: b.Dataset}))
	for i := 0; i < b.Len(); i += 13 {
		require.NoError(t, w.Write(b.Slice(i, min(i+13, b.Len()))))
		require.NoError(t, w.Write(&exportd.Batch{Dataset: b.Dataset}))
	}
	require.NoError(t, w.Close())
	require.True(t, bytes.Equal(want, buf.Bytes()), "with empty batches: bytes differ")
	return want
}

// Batch returns a batch of dataset d holding orders or payments.
func Batch(d exportd.Dataset, orders []exportd.Order, payments []exportd.Payment) *exportd.Batch {
	if d == exportd.Payments {
		return &exportd.Batch{Dataset: d, Payments: payments}
	}
	return &exportd.Batch{Dataset: d, Orders: orders}
}

// Normalize returns a copy of b's records with empty lists set to nil, the
// form the readers produce, so records compare with require.Equal.
func Normalize(b *exportd.Batch) *exportd.Batch {
	n := &exportd.Batch{Dataset: b.Dataset}
	if b.Dataset == exportd.Payments {
		n.Payments = append([]exportd.Payment(nil), b.Payments...)
		return n
	}
	n.Orders = append([]exportd.Order(nil), b.Orders...)
	for i := range n.Orders {
		o := &n.Orders[i]
		if len(o.Items) == 0 {
			o.Items = nil
		}
		if len(o.Payments) == 0 {
			o.Payments = nil
		}
	}
	return n
}

// Sizes are the record counts the round-trip tests use: none, one, and
// enough to cross several row groups or record batches of small limits.
var Sizes = []int{0, 1, 1000}

// Datasets are both datasets, for table tests.
var Datasets = []exportd.Dataset{exportd.Orders, exportd.Payments}

// Source returns n records of dataset d from the test generator.
func Source(d exportd.Dataset, n int) *exportd.Batch {
	if d == exportd.Payments {
		return Batch(d, nil, Payments(42, n))
	}
	return Batch(d, Orders(42, n), nil)
}

// BenchSource returns n ordinary records of dataset d.
func BenchSource(d exportd.Dataset, n int) *exportd.Batch {
	if d == exportd.Payments {
		return Batch(d, nil, BenchPayments(n))
	}
	return Batch(d, BenchOrders(n), nil)
}

// Bench writes batches of b to a writer on io.Discard for b.N rounds and
// reports rows per second.
func Bench(b *testing.B, newWriter NewWriter, batch *exportd.Batch) {
	w := newWriter(b, io.Discard)
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
}

// RequireNoRetention writes b in batches of 7 records, each a deep copy
// that is scribbled over as soon as Write returns, as a reader reusing its
// page memory would, and requires the bytes of b written at once.
func RequireNoRetention(t testing.TB, newWriter NewWriter, b *exportd.Batch) {
	t.Helper()
	want := Write(t, newWriter, b, 0)
	var buf bytes.Buffer
	w := newWriter(t, &buf)
	for i := 0; i < b.Len(); i += 7 {
		c := deepCopy(b.Slice(i, min(i+7, b.Len())))
		require.NoError(t, w.Write(c))
		scribble(c)
	}
	require.NoError(t, w.Close())
	require.True(t, bytes.Equal(want, buf.Bytes()), "a writer kept memory of a batch after Write returned")
}

func deepCopy(b *exportd.Batch) *exportd.Batch {
	c := &exportd.Batch{Dataset: b.Dataset}
	for _, p := range b.Payments {
		c.Payments = append(c.Payments, copyPayment(p))
	}
	for _, o := range b.Orders {
		o.LocationID, o.Tip, o.CustomerRef, o.Note = ptr(o.LocationID), ptr(o.Tip), ptr(o.CustomerRef), ptr(o.Note)
		o.DeletedAt = ptr(o.DeletedAt)
		if o.Items != nil {
			items := make([]exportd.Item, len(o.Items))
			for i, it := range o.Items {
				it.SKU = ptr(it.SKU)
				items[i] = it
			}
			o.Items = items
		}
		if o.Payments != nil {
			pays := make([]exportd.Payment, len(o.Payments))
			for i, p := range o.Payments {
				pays[i] = copyPayment(p)
			}
			o.Payments = pays
		}
		c.Orders = append(c.Orders, o)
	}
	return c
}

func copyPayment(p exportd.Payment) exportd.Payment {
	p.LocationID, p.CardBrand = ptr(p.LocationID), ptr(p.CardBrand)
	p.DeletedAt = ptr(p.DeletedAt)
	return p
}

func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// scribble overwrites everything a deep copy owns.
func scribble(b *exportd.Batch) {
	for i := range b.Payments {
		scribblePayment(&b.Payments[i])
	}
	for i := range b.Orders {
		o := &b.Orders[i]
		for _, s := range []*string{o.LocationID, o.CustomerRef, o.Note} {
			if s != nil {
				*s = "scribbled"
			}
		}
		if o.Tip != nil {
			*o.Tip = -1
		}
		if o.DeletedAt != nil {
			*o.DeletedAt = scribbledTime
		}
		for j := range o.Items {
			if o.Items[j].SKU != nil {
				*o.Items[j].SKU = "scribbled"
			}
			o.Items[j] = exportd.Item{Name: "scribbled", Line: -1}
		}
		for j := range o.Payments {
			scribblePayment(&o.Payments[j])
		}
		*o = exportd.Order{ID: -1, State: "scribbled"}
	}
}

func scribblePayment(p *exportd.Payment) {
	for _, s := range []*string{p.LocationID, p.CardBrand} {
		if s != nil {
			*s = "scribbled"
		}
	}
	if p.DeletedAt != nil {
		*p.DeletedAt = scribbledTime
	}
	*p = exportd.Payment{ID: -1, Kind: "scribbled"}
}

var scribbledTime = time.Date(1999, 9, 9, 9, 9, 9, 0, time.UTC)
