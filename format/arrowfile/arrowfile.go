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
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/changes"
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
	changes   *changeCols // nil but in a change export
	batchRows int         // rows per record batch; tests lower it
	rows      int         // rows in the builders
	err       error
	closed    bool
}

// NewWriter returns a writer of dataset d that writes to w.
func NewWriter(d exportd.Dataset, w io.Writer) (*Writer, error) {
	return newWriter(d, w, DefaultBatchRows)
}

// NewChangeWriter returns a writer of the records of a change export of
// dataset d that writes to w, with the columns of d.ChangeColumns(). A
// delete has its id, merchant_id, created_at, op and deleted_at; its other
// columns are null where nullable, else zero: "", 0, an empty list, and
// for updated_at 0 (1970-01-01T00:00:00Z).
func NewChangeWriter(d exportd.Dataset, w io.Writer) (*Writer, error) {
	return newChangeWriter(d, w, DefaultBatchRows)
}

func newWriter(d exportd.Dataset, w io.Writer, batchRows int) (*Writer, error) {
	return newWriterOf(d, d.Columns(), w, batchRows)
}

func newChangeWriter(d exportd.Dataset, w io.Writer, batchRows int) (*Writer, error) {
	cols := d.ChangeColumns()
	aw, err := newWriterOf(d, cols, w, batchRows)
	if err != nil {
		return nil, err
	}
	aw.changes = newChangeCols(builders{cols: cols, field: aw.rb.Field})
	return aw, nil
}

// newWriterOf returns a writer of dataset d in a file of the columns cols:
// d's own, and for a change export the trailing ones of its kind.
func newWriterOf(d exportd.Dataset, cols []exportd.Column, w io.Writer, batchRows int) (*Writer, error) {
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
	if w.changes != nil {
		if err := changes.Check(b); err != nil {
			return fmt.Errorf("arrowfile: %w", err)
		}
	}
	for i := range b.Len() {
		switch {
		case w.changes != nil:
			w.appendChange(b, i)
		case w.d == exportd.Payments:
			w.payments.append(&b.Payments[i])
		default:
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

// appendChange appends record i of b, a change export's record.
func (w *Writer) appendChange(b *exportd.Batch, i int) {
	if w.d == exportd.Payments {
		p := &b.Payments[i]
		if p.Op == exportd.OpDelete {
			w.payments.appendDelete(p)
		} else {
			w.payments.append(p)
		}
		w.changes.append(p.Op, p.DeletedAt)
		return
	}
	o := &b.Orders[i]
	if o.Op == exportd.OpDelete {
		w.orders.appendDelete(o)
	} else {
		w.orders.append(o)
	}
	w.changes.append(o.Op, o.DeletedAt)
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

// appendDelete appends the columns of the delete of o: its id,
// merchant_id and created_at, nulls, zeros and empty lists.
func (c *orderCols) appendDelete(o *exportd.Order) {
	c.id.Append(o.ID)
	c.merchantID.Append(o.MerchantID)
	c.locationID.AppendNull()
	c.createdAt.Append(arrow.Timestamp(o.CreatedAt.UnixMicro()))
	c.updatedAt.Append(0)
	c.state.Append("")
	c.currency.Append("")
	c.subtotal.Append(0)
	c.tax.Append(0)
	c.tip.AppendNull()
	c.total.Append(0)
	c.custRef.AppendNull()
	c.note.AppendNull()
	c.items.list.Append(true)
	c.payList.Append(true)
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

// appendDelete appends the columns of the delete of p: its id,
// merchant_id and created_at, nulls and zeros.
func (c *paymentCols) appendDelete(p *exportd.Payment) {
	c.id.Append(p.ID)
	c.orderID.Append(0)
	c.merchantID.Append(p.MerchantID)
	c.locationID.AppendNull()
	c.createdAt.Append(arrow.Timestamp(p.CreatedAt.UnixMicro()))
	c.kind.Append("")
	c.tender.Append("")
	c.brand.AppendNull()
	c.result.Append("")
	c.amount.Append(0)
}

// append appends a change record's op and deleted_at; an upsert's
// deleted_at is null.
func (c *changeCols) append(op exportd.ChangeOp, deletedAt *time.Time) {
	c.op.Append(string(op))
	if op == exportd.OpDelete && deletedAt != nil {
		c.deletedAt.Append(arrow.Timestamp(deletedAt.UnixMicro()))
	} else {
		c.deletedAt.AppendNull()
	}
}

func appendOptString(b *array.StringBuilder, s *string) {
	if s == nil {
		b.AppendNull()
		return
	}
	b.Append(*s)
}
