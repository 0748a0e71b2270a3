package format

import (
	"io"

	"github.com/exportd/exportd"
)

// NewChanges is a placeholder until the change columns land (branch
// fmtchg): it writes the dataset's columns only.
func NewChanges(f exportd.Format, d exportd.Dataset, w io.Writer) (Writer, error) {
	return New(f, d, w)
}
