package hammer

import (
	"container/heap"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// denyCache remembers denials, so that later checks that Redis would deny
// again are denied in-process, with no Redis command. An entry says that id
// is denied for sig until an end (unix ms, exclusive), with the count last
// seen; an id may hold several entries, one per sig.
//
// Bound. The cache holds at most maxEntries entries, exactly: it is split
// into shards, for concurrency, whose capacities sum to maxEntries. Since ids
// are bounded in bytes (MaxIDBytes), it is bounded in memory too.
//
// Eviction. A full shard makes room for a new entry by evicting its entry
// that ends soonest. That is a finished one (end <= now) whenever there is
// one, since every finished entry ends before every live one; otherwise it is
// the live one nearest its end. Each shard keeps its entries in a min-heap on
// the end, so eviction, like storing or replacing an entry, costs O(log c)
// for a shard of capacity c, and forget costs O(k log c) for an id of k
// entries. A shard is full on its own: it may evict a live entry while
// another shard has room. That costs one Redis command later, no more.
//
// Deletes. forget drops an id's entries and moves its shard's generation; a
// denial whose check took its ticket before that is not stored (see ticket).
//
// Time is passed in (nowMs, unix ms by the Limiter's clock): the cache never
// reads the clock. It is safe for concurrent use.
type denyCache struct {
	seed   maphash.Seed
	shards []denyShard
}

// denySig identifies what was denied. An id's entry answers only the checks
// of the same sig.
type denySig struct {
	scaleMs, limit, bucket int64  // CheckRate's window; zero for other checks
	rules                  string // canonical rule set and cost of a Hit; "" for CheckRate
}

// replaces reports whether a new entry of sig takes the place of an entry
// of old of the same id: when they are equal, and for CheckRate when they are
// windows of the same scale and limit, only the latest of which can be live.
func (sig denySig) replaces(old denySig) bool {
	if sig.rules != "" || old.rules != "" {
		return sig == old
	}
	return sig.scaleMs == old.scaleMs && sig.limit == old.limit
}

const (
	// denyMaxShards is the most shards a cache has.
	denyMaxShards = 32
	// denyMinShardCap is the capacity below which a cache has fewer shards
	// rather than smaller ones: small caches have one shard, and so evict in
	// exact end order over all their entries.
	denyMinShardCap = 16
)

// denyShard is a part of the cache, for the ids that hash to it.
type denyShard struct {
	mu   sync.RWMutex
	gen  atomic.Uint64           // moved by forget, under mu; see ticket
	cap  int                     // the most entries it holds, >= 1
	m    map[string][]*denyEntry // id -> its entries, usually one
	ends denyHeap                // the same entries, soonest end first
}

// denyEntry is one denial.
type denyEntry struct {
	id    string
	sig   denySig
	val   denyValue
	until int64 // unix ms; denied while now < until
	index int   // position in the shard's heap
}

// denyValue is what a denial remembers of the reply that denied: for
// CheckRate the count last seen; for Hit the binding rule's index, its
// remaining (in count) and when it is back to full (resetAt, unix ms).
// denied sets until, the denial's end (unix ms).
type denyValue struct {
	count   int64
	binding int
	resetAt int64
	until   int64
}

// newDenyCache returns a cache of at most maxEntries entries; maxEntries < 1
// is taken as 1. It has min(32, max(1, maxEntries/16)) shards, whose
// capacities differ by at most one.
func newDenyCache(maxEntries int) *denyCache {
	maxEntries = max(1, maxEntries)
	n := min(denyMaxShards, max(1, maxEntries/denyMinShardCap))
	c := &denyCache{seed: maphash.MakeSeed(), shards: make([]denyShard, n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = maxEntries / n
		if i < maxEntries%n {
			s.cap++
		}
		s.m = map[string][]*denyEntry{}
	}
	return c
}

// shard returns the shard of id.
func (c *denyCache) shard(id string) *denyShard {
	return &c.shards[maphash.String(c.seed, id)%uint64(len(c.shards))]
}

// denied reports the value of a denied entry for id and sig at nowMs, if
// there is one whose end is after nowMs.
func (c *denyCache) denied(id string, sig denySig, nowMs int64) (denyValue, bool) {
	s := c.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.m[id] {
		if e.sig == sig && nowMs < e.until {
			v := e.val
			v.until = e.until
			return v, true
		}
	}
	return denyValue{}, false
}

// ticket returns the ticket a check takes before it sends its hit, to pass to
// deny. forget(id) makes every ticket taken before it stale, so that the
// denial of a check that started before a delete finished is never stored.
//
// The generation is per shard, not per id: forget makes the tickets of the
// shard's other ids stale too, and their denials are then not stored. That is
// harmless, since the cache is an optimisation: those ids ask Redis once more.
func (c *denyCache) ticket(id string) uint64 {
	return c.shard(id).gen.Load()
}

// deny records that id is denied for sig until untilMs (exclusive), with
// the value v. It stores nothing when ticket is stale or untilMs <= nowMs. It
// replaces the entry of id for the same sig and, for CheckRate, an entry of
// an older window of the same scale and limit; an older window never
// replaces a newer one. A new entry in a full shard evicts the one that ends
// soonest.
func (c *denyCache) deny(id string, sig denySig, v denyValue, untilMs, nowMs int64, ticket uint64) {
	if untilMs <= nowMs {
		return
	}
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != ticket {
		return
	}
	for _, e := range s.m[id] {
		if sig.replaces(e.sig) {
			if sig.bucket < e.sig.bucket {
				return
			}
			e.sig, e.val, e.until = sig, v, untilMs
			heap.Fix(&s.ends, e.index)
			return
		}
	}
	if len(s.ends) >= s.cap {
		s.remove(s.ends[0])
	}
	e := &denyEntry{id: id, sig: sig, val: v, until: untilMs}
	heap.Push(&s.ends, e)
	s.m[id] = append(s.m[id], e)
}

// forget drops every entry of id and makes every ticket of its shard taken
// so far stale.
func (c *denyCache) forget(id string) {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen.Add(1)
	for _, e := range s.m[id] {
		heap.Remove(&s.ends, e.index)
	}
	delete(s.m, id)
}

// len returns the number of entries.
func (c *denyCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.ends)
		s.mu.RUnlock()
	}
	return n
}

// remove drops e from the shard, whose lock the caller holds.
func (s *denyShard) remove(e *denyEntry) {
	heap.Remove(&s.ends, e.index)
	es := s.m[e.id]
	for i := range es {
		if es[i] == e {
			last := len(es) - 1
			es[i], es[last] = es[last], nil
			es = es[:last]
			break
		}
	}
	if len(es) == 0 {
		delete(s.m, e.id)
	} else {
		s.m[e.id] = es
	}
}

// denyHeap is a min-heap of entries on their end, for container/heap. Each
// entry keeps its index in it.
type denyHeap []*denyEntry

// Len returns the number of entries.
func (h denyHeap) Len() int { return len(h) }

// Less orders entries by end, soonest first.
func (h denyHeap) Less(i, j int) bool { return h[i].until < h[j].until }

// Swap swaps two entries and their indexes.
func (h denyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

// Push appends x, a *denyEntry.
func (h *denyHeap) Push(x any) {
	e := x.(*denyEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

// Pop removes and returns the last entry.
func (h *denyHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
