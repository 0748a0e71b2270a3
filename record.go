package exportd

import "time"

// Order is one row of the orders dataset with its line items and payments
// nested. Money is integer cents; times are UTC.
type Order struct {
	ID          int64     `parquet:"id"`
	MerchantID  string    `parquet:"merchant_id"`
	LocationID  *string   `parquet:"location_id,optional"`
	CreatedAt   time.Time `parquet:"created_at,timestamp(microsecond)"`
	UpdatedAt   time.Time `parquet:"updated_at,timestamp(microsecond)"`
	State       string    `parquet:"state"`
	Currency    string    `parquet:"currency"`
	Subtotal    int64     `parquet:"subtotal"`
	Tax         int64     `parquet:"tax"`
	Tip         *int64    `parquet:"tip,optional"`
	Total       int64     `parquet:"total"`
	CustomerRef *string   `parquet:"customer_ref,optional"`
	Note        *string   `parquet:"note,optional"`
	Items       []Item    `parquet:"items,list"`
	Payments    []Payment `parquet:"payments,list"`
	// Op and DeletedAt are set by change exports only (see ChangeOp); the
	// formats of ordinary exports do not carry them.
	Op        ChangeOp   `parquet:"-" json:"op,omitempty"`
	DeletedAt *time.Time `parquet:"-" json:"deletedAt,omitempty"`
}

// Item is one line item of an order.
type Item struct {
	Line      int32   `parquet:"line"`
	SKU       *string `parquet:"sku,optional"`
	Name      string  `parquet:"name"`
	Quantity  int32   `parquet:"quantity"`
	UnitPrice int64   `parquet:"unit_price"`
	Amount    int64   `parquet:"amount"`
}

// Payment is one transaction against an order: a sale, or a refund with a
// negative amount. It is a row of the payments dataset and a nested element
// of an Order.
type Payment struct {
	ID         int64     `parquet:"id"`
	OrderID    int64     `parquet:"order_id"`
	MerchantID string    `parquet:"merchant_id"`
	LocationID *string   `parquet:"location_id,optional"`
	CreatedAt  time.Time `parquet:"created_at,timestamp(microsecond)"`
	Kind       string    `parquet:"kind"`
	Tender     string    `parquet:"tender"`
	CardBrand  *string   `parquet:"card_brand,optional"`
	Result     string    `parquet:"result"`
	Amount     int64     `parquet:"amount"`
	// Op and DeletedAt are set by change exports only, as on Order.
	Op        ChangeOp   `parquet:"-" json:"op,omitempty"`
	DeletedAt *time.Time `parquet:"-" json:"deletedAt,omitempty"`
}

// ChangeOp says what a record of a change export does to a copy of the
// dataset: replace the record with the same id, or remove it.
type ChangeOp string

// The change operations. A delete carries the record's id, merchant,
// created_at and DeletedAt, nothing else.
const (
	OpUpsert ChangeOp = "upsert"
	OpDelete ChangeOp = "delete"
)

// Batch is a page of records of one dataset, in export order. Exactly one
// of Orders and Payments is used, according to the dataset.
type Batch struct {
	Dataset  Dataset
	Orders   []Order
	Payments []Payment
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int {
	if b.Dataset == Payments {
		return len(b.Payments)
	}
	return len(b.Orders)
}

// Key returns the export-order key of record i.
func (b *Batch) Key(i int) Key {
	if b.Dataset == Payments {
		return Key{CreatedAt: b.Payments[i].CreatedAt, ID: b.Payments[i].ID}
	}
	return Key{CreatedAt: b.Orders[i].CreatedAt, ID: b.Orders[i].ID}
}

// Slice returns the records [i, j) as a batch sharing this batch's memory.
func (b *Batch) Slice(i, j int) *Batch {
	s := &Batch{Dataset: b.Dataset}
	if b.Dataset == Payments {
		s.Payments = b.Payments[i:j]
	} else {
		s.Orders = b.Orders[i:j]
	}
	return s
}

// Key is a record's position in export order: (created_at, id). It is the
// keyset cursor of the export and the first/last key of each file.
type Key struct {
	CreatedAt time.Time `json:"createdAt"`
	ID        int64     `json:"id"`
}

// IsZero reports whether k is the zero key, which sorts before every record.
func (k Key) IsZero() bool { return k.ID == 0 && k.CreatedAt.IsZero() }

// Less reports whether k sorts before o.
func (k Key) Less(o Key) bool {
	if !k.CreatedAt.Equal(o.CreatedAt) {
		return k.CreatedAt.Before(o.CreatedAt)
	}
	return k.ID < o.ID
}
