// Package changes holds what the writers of change exports share. A
// record of a change export is an upsert (the record as it is) or a delete
// (its id, merchant_id, created_at and deleted_at only); every writer
// writes the dataset's columns, then op and deleted_at
// (exportd.ChangeColumns).
package changes

import (
	"fmt"

	"github.com/exportd/exportd"
)

// Check returns an error naming the first record of b whose op is neither
// an upsert nor a delete. Writers check a whole batch before writing any
// of it, so a refused batch leaves the file as it was.
func Check(b *exportd.Batch) error {
	if b.Dataset == exportd.Payments {
		for i := range b.Payments {
			if err := check(b.Payments[i].Op, b.Payments[i].ID); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range b.Orders {
		if err := check(b.Orders[i].Op, b.Orders[i].ID); err != nil {
			return err
		}
	}
	return nil
}

func check(op exportd.ChangeOp, id int64) error {
	if op != exportd.OpUpsert && op != exportd.OpDelete {
		return fmt.Errorf("record %d has op %q, neither %q nor %q", id, op, exportd.OpUpsert, exportd.OpDelete)
	}
	return nil
}
