package format

import (
	"errors"
	"fmt"
	"sync"

	"github.com/exportd/exportd"
)

// Parallel is a Writer that writes every batch to several writers at once,
// each in its own goroutine, all fed the same batch. Write returns when
// every writer is done with the batch, so the caller may reuse it as with
// any Writer: nothing is copied or queued, memory stays that of the
// writers themselves, and a slow writer holds back the caller rather than
// letting batches pile up. One batch takes as long as its slowest format
// instead of the sum of all of them.
//
// Errors are deterministic: when several writers fail on the same call,
// the error is the one of the first writer in the order given, as a
// *WriterError naming it. An error sticks: every later Write returns it.
// Close closes every writer, in parallel, even after an error.
type Parallel struct {
	ws     []Writer
	errs   []error
	err    error
	closed bool
}

// WriterError is the failure of one writer of a Parallel.
type WriterError struct {
	Index int // the writer's position in NewParallel's arguments
	Err   error
}

func (e *WriterError) Error() string { return fmt.Sprintf("writer %d: %v", e.Index, e.Err) }

// Unwrap returns the writer's own error.
func (e *WriterError) Unwrap() error { return e.Err }

// NewParallel returns a writer that writes to all of ws.
func NewParallel(ws ...Writer) *Parallel {
	return &Parallel{ws: ws, errs: make([]error, len(ws))}
}

// Write hands b to every writer and waits until all of them return.
func (p *Parallel) Write(b *exportd.Batch) error {
	if p.err != nil {
		return p.err
	}
	if p.closed {
		return errors.New("format: write after close")
	}
	p.err = p.each(func(w Writer) error { return w.Write(b) })
	return p.err
}

// Close closes every writer and returns the first error in writer order,
// the earlier error of Write if there was one.
func (p *Parallel) Close() error {
	if p.closed {
		return p.err
	}
	p.closed = true
	err := p.each(Writer.Close)
	if p.err == nil {
		p.err = err
	}
	return p.err
}

// each runs fn on every writer, each but the first in a goroutine of its
// own, and returns the first error in writer order.
func (p *Parallel) each(fn func(Writer) error) error {
	var wg sync.WaitGroup
	for i := 1; i < len(p.ws); i++ {
		wg.Go(func() { p.errs[i] = fn(p.ws[i]) })
	}
	if len(p.ws) > 0 {
		p.errs[0] = fn(p.ws[0])
	}
	wg.Wait()
	for i, err := range p.errs {
		if err != nil {
			clear(p.errs)
			return &WriterError{Index: i, Err: err}
		}
	}
	return nil
}
