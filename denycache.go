package hammer

import (
	"hash/maphash"
	"sync"
)

// denyCache remembers, per id, the windows already over their limit, so that
// later checks in the same window are denied in-process, with no Redis
// command. It is bounded in entries; since ids are bounded in bytes
// (MaxIDBytes), it is bounded in memory too. It is safe for concurrent use.
type denyCache struct {
	seed     maphash.Seed
	shards   [denyShards]denyShard
	perShard int
}

const denyShards = 32

type denyShard struct {
	mu sync.RWMutex
	m  map[string][]denyEntry // id -> its denied windows, usually one
	n  int                    // entries in m
}

// denyEntry is one denied window: the bucket of id under scaleMs that went
// over limit, with the count last seen there.
type denyEntry struct {
	scaleMs, limit, bucket, count int64
}

func newDenyCache(maxEntries int) *denyCache {
	c := &denyCache{seed: maphash.MakeSeed(), perShard: max(1, maxEntries/denyShards)}
	for i := range c.shards {
		c.shards[i].m = map[string][]denyEntry{}
	}
	return c
}

func (c *denyCache) shard(id string) *denyShard {
	return &c.shards[maphash.String(c.seed, id)%denyShards]
}

// denied returns the count last seen in a window of id that is known to be
// over limit, and whether there is one.
func (c *denyCache) denied(id string, scaleMs, limit, bucket int64) (int64, bool) {
	s := c.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.m[id] {
		if e.scaleMs == scaleMs && e.limit == limit && e.bucket == bucket {
			return e.count, true
		}
	}
	return 0, false
}

// deny records that a window of id went over limit with count. It replaces
// the id's older windows of the same scale and limit, which are over.
func (c *denyCache) deny(id string, scaleMs, limit, bucket, count int64) {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.m[id]
	for i := range es {
		if es[i].scaleMs == scaleMs && es[i].limit == limit {
			if bucket >= es[i].bucket {
				es[i].bucket, es[i].count = bucket, count
			}
			return
		}
	}
	if s.n >= c.perShard {
		// Full: evict one id, the first the map's random order gives.
		for victim, ves := range s.m {
			s.n -= len(ves)
			delete(s.m, victim)
			break
		}
		es = s.m[id] // nil if id was the victim
	}
	s.m[id] = append(es, denyEntry{scaleMs: scaleMs, limit: limit, bucket: bucket, count: count})
	s.n++
}

// forget drops every entry of id.
func (c *denyCache) forget(id string) {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n -= len(s.m[id])
	delete(s.m, id)
}

// len returns the number of entries.
func (c *denyCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}
