// Package arrowfile writes export records as an Arrow IPC file (the random
// access "Feather v2" format) with uncompressed bodies.
//
// Rows collect in builders across Write calls and leave as record batches
// of exactly batchRows rows (the last one shorter), so the file's bytes
// depend only on the records and never on how they were split into batches.
// Memory is bounded by one record batch.
package arrowfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/exportd/exportd"
)

// DefaultBatchRows is the number of rows per record batch: big enough that
// per-batch metadata is noise, small enough to keep a batch of orders with
// their items in tens of megabytes.
const DefaultBatchRows = 64 << 10

// Writer writes one dataset as an Arrow IPC file.
type Writer struct {
	d         exportd.Dataset
	bw        *bufio.Writer
	fw        *ipc.FileWriter
	rb        *array.RecordBuilder
	orders    orderCols
	payments  paymentCols
	batchRows int // rows per record batch; tests lower it
	rows      int // rows in the builders
	err       error
	closed    bool
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) (*Writer, error) {
	return newWriter(d, w, DefaultBatchRows)
}

func newWriter(d exportd.Dataset, w io.Writer, batchRows int) (*Writer, error) {
	cols := d.Columns()
	schema := schemaOf(cols)
	// The Go allocator hands out zeroed memory, so padding and the values
	// under null slots are zero bytes rather than leftovers of earlier use.
	mem := memory.NewGoAllocator()
	// The IPC writer issues many small writes; buffer them.
	bw := bufio.NewWriterSize(w, 256<<10)
	fw, err := ipc.NewFileWriter(bw, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("error creating arrow file writer: %w", err)
	}
	aw := &Writer{
		d:         d,
		bw:        bw,
		fw:        fw,
		rb:        array.NewRecordBuilder(mem, schema),
		batchRows: batchRows,
	}
	if d == exportd.Payments {
		aw.payments = newPaymentCols(builders{cols: cols, field: aw.rb.Field})
	} else {
		aw.orders = newOrderCols(builders{cols: cols, field: aw.rb.Field})
	}
	return aw, nil
}

// Write appends the records of b, emitting a record batch each time
// batchRows rows have collected.
func (w *Writer) Write(b *exportd.Batch) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("arrowfile: write after close")
	}
	if b.Dataset != w.d {
		return fmt.Errorf("arrowfile: batch of %q written to a %q file", b.Dataset, w.d)
	}
	for i := range b.Len() {
		if w.d == exportd.Payments {
			w.payments.append(&b.Payments[i])
		} else {
			w.orders.append(&b.Orders[i])
		}
		w.rows++
		if w.rows == w.batchRows {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the collected rows as one record batch.
func (w *Writer) flush() error {
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.rows = 0
	if err := w.fw.Write(rec); err != nil {
		w.err = fmt.Errorf("error writing arrow record batch: %w", err)
	}
	return w.err
}

// Close writes the last record batch and the footer. A file without rows
// still holds the schema.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	defer w.rb.Release()
	if w.err != nil {
		return w.err
	}
	if w.rows > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if err := w.fw.Close(); err != nil {
		w.err = fmt.Errorf("error closing arrow file: %w", err)
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("error flushing arrow file: %w", err)
	}
	return w.err
}

func (c *orderCols) append(o *exportd.Order) {
	c.id.Append(o.ID)
	c.merchantID.Append(o.MerchantID)
	appendOptString(c.locationID, o.LocationID)
	c.createdAt.Append(arrow.Timestamp(o.CreatedAt.UnixMicro()))
	c.updatedAt.Append(arrow.Timestamp(o.UpdatedAt.UnixMicro()))
	c.state.Append(o.State)
	c.currency.Append(o.Currency)
	c.subtotal.Append(o.Subtotal)
	c.tax.Append(o.Tax)
	if o.Tip != nil {
		c.tip.Append(*o.Tip)
	} else {
		c.tip.AppendNull()
	}
	c.total.Append(o.Total)
	appendOptString(c.custRef, o.CustomerRef)
	appendOptString(c.note, o.Note)

	c.items.list.Append(true)
	for i := range o.Items {
		it := &o.Items[i]
		c.items.elem.Append(true)
		c.items.line.Append(it.Line)
		appendOptString(c.items.sku, it.SKU)
		c.items.name.Append(it.Name)
		c.items.quantity.Append(it.Quantity)
		c.items.unitPrice.Append(it.UnitPrice)
		c.items.amount.Append(it.Amount)
	}

	c.payList.Append(true)
	for i := range o.Payments {
		c.payElem.Append(true)
		c.payments.append(&o.Payments[i])
	}
}

func (c *paymentCols) append(p *exportd.Payment) {
	c.id.Append(p.ID)
	c.orderID.Append(p.OrderID)
	c.merchantID.Append(p.MerchantID)
	appendOptString(c.locationID, p.LocationID)
	c.createdAt.Append(arrow.Timestamp(p.CreatedAt.UnixMicro()))
	c.kind.Append(p.Kind)
	c.tender.Append(p.Tender)
	appendOptString(c.brand, p.CardBrand)
	c.result.Append(p.Result)
	c.amount.Append(p.Amount)
}

func appendOptString(b *array.StringBuilder, s *string) {
	if s == nil {
		b.AppendNull()
		return
	}
	b.Append(*s)
}
