package recordtest

import (
	"time"

	"github.com/exportd/exportd"
)

// ChangeSource returns n records of dataset d as a change export has them:
// Source's records, every third one from the second on turned into a
// delete (id, merchant, created_at and deleted_at only), the others
// upserts, so that deletes sit between upserts with items, payments and
// nulls.
func ChangeSource(d exportd.Dataset, n int) *exportd.Batch {
	b := Source(d, n)
	for i := range b.Len() {
		del := i%3 == 1
		if d == exportd.Payments {
			p := &b.Payments[i]
			if del {
				at := deletedAt(p.CreatedAt, i)
				*p = exportd.Payment{ID: p.ID, MerchantID: p.MerchantID, CreatedAt: p.CreatedAt, Op: exportd.OpDelete, DeletedAt: &at}
			} else {
				p.Op = exportd.OpUpsert
			}
			continue
		}
		o := &b.Orders[i]
		if del {
			at := deletedAt(o.CreatedAt, i)
			*o = exportd.Order{ID: o.ID, MerchantID: o.MerchantID, CreatedAt: o.CreatedAt, Op: exportd.OpDelete, DeletedAt: &at}
		} else {
			o.Op = exportd.OpUpsert
		}
	}
	return b
}

// deletedAt is a delete time some hours after created, with microseconds.
func deletedAt(created time.Time, i int) time.Time {
	return created.Add(time.Duration(i)*time.Hour + time.Duration(i*7919)*time.Microsecond)
}

// Epoch is what the binary formats hold in a delete's updated_at, a column
// that is never null: the zero of its int64 microseconds.
var Epoch = time.Unix(0, 0).UTC()

// NormalizeChanges returns a copy of b's change records in the form the
// Parquet and Arrow readers produce: Normalize's, with an order delete's
// updated_at the Epoch.
func NormalizeChanges(b *exportd.Batch) *exportd.Batch {
	n := Normalize(b)
	for i := range n.Orders {
		if o := &n.Orders[i]; o.Op == exportd.OpDelete {
			o.UpdatedAt = Epoch
		}
	}
	return n
}

// BenchChangeSource returns n ordinary records of dataset d as a change
// export has them: BenchSource's, every tenth one a delete.
func BenchChangeSource(d exportd.Dataset, n int) *exportd.Batch {
	b := BenchSource(d, n)
	for i := range b.Len() {
		op, at := exportd.OpUpsert, (*time.Time)(nil)
		if i%10 == 9 {
			op, at = exportd.OpDelete, new(time.Time)
		}
		if d == exportd.Payments {
			p := &b.Payments[i]
			if op == exportd.OpDelete {
				*at = deletedAt(p.CreatedAt, i)
				*p = exportd.Payment{ID: p.ID, MerchantID: p.MerchantID, CreatedAt: p.CreatedAt}
			}
			p.Op, p.DeletedAt = op, at
			continue
		}
		o := &b.Orders[i]
		if op == exportd.OpDelete {
			*at = deletedAt(o.CreatedAt, i)
			*o = exportd.Order{ID: o.ID, MerchantID: o.MerchantID, CreatedAt: o.CreatedAt}
		}
		o.Op, o.DeletedAt = op, at
	}
	return b
}
