package exports

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/starter"
)

// How long a state read from Temporal is served again, by phase. A
// queued or running export's state is kept for runningTTL: a client sees
// progress and success at most that late, and however many clients poll
// one export, Temporal answers about twenty describes a second for it
// (concurrent reads also share one DescribeWorkflowExecution); a ready
// export's extension or
// cancellation made through another API replica shows within readyTTL
// (through this one, at once: it forgets the state); a final state never
// changes.
const (
	runningTTL = 50 * time.Millisecond
	readyTTL   = 2 * time.Second
	finalTTL   = 5 * time.Minute
	// maxCached bounds the cache; past it, expired entries go, then all.
	maxCached = 10_000
)

// stateCache keeps exports' states read through DescribeWorkflowExecution
// for a short while, and collapses concurrent reads of one export into
// one, so that status polling costs Temporal little however many clients
// poll. A ready export's first page of files is kept with its state: it
// does not change while the export is ready.
type stateCache struct {
	mu      sync.Mutex
	entries map[string]cachedState
	group   singleflight.Group
}

type cachedState struct {
	st      exportd.State
	until   time.Time
	page    []exportd.FileInfo // the first page of a ready export's files
	next    string
	hasPage bool
}

func ttl(st exportd.State, now time.Time) time.Time {
	switch {
	case st.Phase.Final():
		return now.Add(finalTTL)
	case st.Phase == exportd.PhaseReady:
		until := now.Add(readyTTL)
		if st.AvailableUntil != nil && st.AvailableUntil.Before(until) {
			until = *st.AvailableUntil // it expires then
		}
		return until
	}
	return now.Add(runningTTL)
}

// describe returns an export's state, from the cache while it is fresh.
func (s *Service) describe(ctx context.Context, id string) (exportd.State, error) {
	c := s.cache()
	now := s.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.st, nil
	}
	v, err, _ := c.group.Do(id, func() (any, error) {
		st, err := starter.Describe(context.WithoutCancel(ctx), s.Temporal, id)
		if err != nil {
			return st, err
		}
		// A running export's progress adds heartbeats to what its
		// workflows recorded; between an activity's completion and the
		// workflow recording it, its rows are briefly in neither. Progress
		// shown through this replica never goes back.
		c.mu.Lock()
		if prev, ok := c.entries[id]; ok && st.Phase == exportd.PhaseExporting && prev.st.Phase == exportd.PhaseExporting {
			st.Progress.Rows = max(st.Progress.Rows, prev.st.Progress.Rows)
		}
		c.mu.Unlock()
		c.put(id, cachedState{st: st, until: ttl(st, s.now())})
		return st, nil
	})
	if err != nil {
		return exportd.State{}, err
	}
	return v.(exportd.State), nil
}

// firstPage returns the cached first page of a ready export's files.
func (c *stateCache) firstPage(id string, st exportd.State) ([]exportd.FileInfo, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !e.hasPage || e.st.Phase != st.Phase || !sameTime(e.st.AvailableUntil, st.AvailableUntil) {
		return nil, "", false
	}
	return e.page, e.next, true
}

// keepPage keeps a ready export's first page of files beside its state.
func (c *stateCache) keepPage(id string, st exportd.State, page []exportd.FileInfo, next string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && e.st.Phase == st.Phase {
		e.page, e.next, e.hasPage = page, next, true
		c.entries[id] = e
	}
}

func (c *stateCache) put(id string, e cachedState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCached {
		now := time.Now()
		for k, v := range c.entries {
			if now.After(v.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCached {
			clear(c.entries)
		}
	}
	c.entries[id] = e
}

// forget drops an export's state, after this replica changed it.
func (s *Service) forget(id string) {
	c := s.cache()
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

func (s *Service) cache() *stateCache {
	s.cacheOnce.Do(func() { s.states = &stateCache{entries: map[string]cachedState{}} })
	return s.states
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
