package parquetfile

import (
	"time"

	"github.com/exportd/exportd"
)

// OrderChange is a row of a change export of orders: the order's columns,
// then op and deleted_at (exportd.ChangeColumns). parquet-go flattens the
// embedded Order into its columns and skips the Order's own Op and
// DeletedAt (`parquet:"-"`), which the fields below shadow. Embedding keeps
// the columns the Order's without a copy of its field list to maintain.
//
// The type is for writing. parquet-go v0.32.0 writes the nulls of an
// embedded struct's optional fields but does not read them back into one
// (they come back as pointers to zero values), so a Go client should read
// change files into a flat struct of its own.
type OrderChange struct {
	exportd.Order
	Op        string     `parquet:"op"` // an exportd.ChangeOp
	DeletedAt *time.Time `parquet:"deleted_at,optional,timestamp(microsecond)"`
}

// PaymentChange is a row of a change export of payments, as OrderChange is
// of orders.
type PaymentChange struct {
	exportd.Payment
	Op        string     `parquet:"op"` // an exportd.ChangeOp
	DeletedAt *time.Time `parquet:"deleted_at,optional,timestamp(microsecond)"`
}

// epoch is what a delete holds in a timestamp column that is never null
// but that a delete has no value for (an order's updated_at): the zero of
// the column's int64, rather than Go's zero time, year 1, which many
// readers cannot represent.
var epoch = time.Unix(0, 0).UTC()

// orderChange sets r to the row of o. A delete keeps its id, merchant_id,
// created_at and deleted_at; its other columns are null where nullable,
// else zero ("", 0, epoch, empty lists), whatever o holds. An upsert's
// deleted_at is null.
func orderChange(r *OrderChange, o *exportd.Order) {
	if o.Op == exportd.OpDelete {
		*r = OrderChange{
			Order:     exportd.Order{ID: o.ID, MerchantID: o.MerchantID, CreatedAt: o.CreatedAt, UpdatedAt: epoch},
			Op:        string(exportd.OpDelete),
			DeletedAt: o.DeletedAt,
		}
		return
	}
	*r = OrderChange{Order: *o, Op: string(exportd.OpUpsert)}
}

// paymentChange sets r to the row of p, as orderChange does for orders.
func paymentChange(r *PaymentChange, p *exportd.Payment) {
	if p.Op == exportd.OpDelete {
		*r = PaymentChange{
			Payment:   exportd.Payment{ID: p.ID, MerchantID: p.MerchantID, CreatedAt: p.CreatedAt},
			Op:        string(exportd.OpDelete),
			DeletedAt: p.DeletedAt,
		}
		return
	}
	*r = PaymentChange{Payment: *p, Op: string(exportd.OpUpsert)}
}

// changeRecords writes the records (R) of a change export as rows of type
// T. Rows are made a chunk at a time in a fixed scratch array, each
// window ending where the group writer's current chunk does, so whole
// chunks go to parquet-go straight from the scratch as the records of an
// ordinary export go from the batch, and only the rows a batch leaves in
// an unfinished chunk are copied into the arena. The scratch is cleared
// after each window: it refers to the caller's memory.
type changeRecords[R, T any] struct {
	g       *groupWriter[T]
	of      func(*exportd.Batch) []R // the batch's records
	row     func(*T, *R)             // makes a record's row
	scratch [chunkRows]T
}

func (c *changeRecords[R, T]) writeBatch(b *exportd.Batch) error {
	recs := c.of(b)
	for len(recs) > 0 {
		n := min(len(recs), c.g.room())
		rows := c.scratch[:n]
		for i := range rows {
			c.row(&rows[i], &recs[i])
		}
		err := c.g.write(rows)
		clear(rows)
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

func (c *changeRecords[R, T]) close() error { return c.g.close() }
