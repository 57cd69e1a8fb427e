package hammer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDenyCache(t *testing.T) {
	for name, mode := range map[string]CoalesceMode{"coalesced": CoalesceOn, "direct": CoalesceOff} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			m := miniredis.RunT(t)
			b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: []string{m.Addr()}, Coalesce: mode})
			require.NoError(t, err)
			defer b.Close()
			clk := newClock(1_700_000_000_000)
			rec := &recorder{}
			l := New(b, WithClock(clk.now), WithDenyCache(100), WithObserver(rec))

			for i := 0; i < 3; i++ { // 2 allowed, then denied by Redis
				_, err := l.CheckRate(ctx, "abuser", time.Second, 2)
				require.NoError(t, err)
			}
			commands := m.CommandCount()
			for i := 0; i < 5; i++ {
				clk.advance(100)
				d, err := l.CheckRate(ctx, "abuser", time.Second, 2)
				require.NoError(t, err)
				assert.Equal(t, Decision{Count: 3, Limit: 2, ResetAfter: time.Duration(1000-100*(i+1)) * time.Millisecond, Cached: true}, d)
			}
			assert.Equal(t, commands, m.CommandCount(), "cached denials send no command")
			assert.Equal(t, []Outcome{OutcomeAllowed, OutcomeAllowed, OutcomeDenied, OutcomeDenied, OutcomeDenied, OutcomeDenied, OutcomeDenied, OutcomeDenied}, rec.outcomes())
			assert.True(t, rec.events[7].Cached)
			assert.False(t, rec.events[2].Cached)

			// Another limit, another scale or another id asks Redis.
			d, err := l.CheckRate(ctx, "abuser", time.Second, 10)
			require.NoError(t, err)
			assert.False(t, d.Cached)
			assert.Equal(t, int64(4), d.Count, "the cache did not count its denials")
			d, err = l.CheckRate(ctx, "abuser", 2*time.Second, 2)
			require.NoError(t, err)
			assert.False(t, d.Cached)
			d, err = l.CheckRate(ctx, "other", time.Second, 2)
			require.NoError(t, err)
			assert.True(t, d.Allowed)

			// The next window asks Redis again.
			clk.advance(500)
			d, err = l.CheckRate(ctx, "abuser", time.Second, 2)
			require.NoError(t, err)
			assert.Equal(t, Decision{Allowed: true, Count: 1, Limit: 2, Remaining: 1, ResetAfter: time.Second}, d)

			// DeleteBuckets forgets the id's denials.
			for i := 0; i < 3; i++ {
				d, err = l.CheckRate(ctx, "abuser", time.Second, 2)
				require.NoError(t, err)
			}
			assert.True(t, d.Cached)
			_, err = l.DeleteBuckets(ctx, "abuser")
			require.NoError(t, err)
			d, err = l.CheckRate(ctx, "abuser", time.Second, 2)
			require.NoError(t, err)
			assert.Equal(t, Decision{Allowed: true, Count: 1, Limit: 2, Remaining: 1, ResetAfter: time.Second}, d)
		})
	}
}

// TestDenyCacheEntries walks one cache through what an entry means: which
// checks it answers, until when, and which later denial replaces it.
func TestDenyCacheEntries(t *testing.T) {
	c := newDenyCache(10)
	window := func(bucket int64) denySig { return denySig{scaleMs: 1000, limit: 5, bucket: bucket} }
	hit := denySig{rules: "1000:5,60000:100;cost=1"}
	x := c.ticket("x") // nothing forgets x until the end, so one ticket serves

	c.deny("x", window(7), denyValue{count: 6}, 8000, 7100, x)
	n, ok := deniedCount(c, "x", window(7), 7100)
	assert.True(t, ok)
	assert.Equal(t, int64(6), n)
	_, ok = deniedCount(c, "x", window(7), 7999)
	assert.True(t, ok, "denied until the end of the window")
	_, ok = deniedCount(c, "x", window(7), 8000)
	assert.False(t, ok, "the end is exclusive")
	_, ok = deniedCount(c, "x", window(8), 7100)
	assert.False(t, ok, "another window")
	_, ok = deniedCount(c, "x", denySig{scaleMs: 1000, limit: 6, bucket: 7}, 7100)
	assert.False(t, ok, "another limit")
	_, ok = deniedCount(c, "y", window(7), 7100)
	assert.False(t, ok, "another id")

	// The next window of the same scale and limit replaces the finished
	// one; a slow check of the older window never replaces the newer.
	c.deny("x", window(8), denyValue{count: 9}, 9000, 8100, x)
	c.deny("x", window(7), denyValue{count: 7}, 8000, 7900, x)
	_, ok = deniedCount(c, "x", window(7), 7900)
	assert.False(t, ok)
	n, ok = deniedCount(c, "x", window(8), 8100)
	assert.True(t, ok)
	assert.Equal(t, int64(9), n)
	assert.Equal(t, 1, c.len())

	// A new denial of the same sig replaces the entry.
	c.deny("x", window(8), denyValue{count: 11}, 9000, 8200, x)
	n, _ = deniedCount(c, "x", window(8), 8200)
	assert.Equal(t, int64(11), n)
	assert.Equal(t, 1, c.len())

	// Another scale is another entry of the same id; so is a Hit's rule set,
	// whose end is the retry wait, and whose newer denial replaces it, end
	// included.
	c.deny("x", denySig{scaleMs: 2000, limit: 5, bucket: 4}, denyValue{count: 6}, 10_000, 8200, x)
	c.deny("x", hit, denyValue{count: 7}, 8700, 8200, x)
	assert.Equal(t, 3, c.len())
	n, ok = deniedCount(c, "x", hit, 8699)
	assert.True(t, ok)
	assert.Equal(t, int64(7), n)
	_, ok = deniedCount(c, "x", hit, 8700)
	assert.False(t, ok)
	c.deny("x", hit, denyValue{count: 8}, 8300, 8250, x)
	n, ok = deniedCount(c, "x", hit, 8299)
	assert.True(t, ok)
	assert.Equal(t, int64(8), n)
	_, ok = deniedCount(c, "x", hit, 8300)
	assert.False(t, ok)
	_, ok = deniedCount(c, "x", denySig{}, 8250)
	assert.False(t, ok, "a Hit's entry answers no CheckRate")
	assert.Equal(t, 3, c.len())

	// Nothing is stored for a denial whose end has come.
	c.deny("z", window(1), denyValue{count: 6}, 2000, 2000, c.ticket("z"))
	assert.Equal(t, 3, c.len())

	// forget drops every entry of the id.
	c.forget("x")
	assert.Equal(t, 0, c.len())
	_, ok = deniedCount(c, "x", window(8), 8200)
	assert.False(t, ok)
	verifyDenyCache(t, c, 10)
}

// TestDenyCacheTicket: a denial whose ticket was taken before forget is not
// stored; one taken after is.
func TestDenyCacheTicket(t *testing.T) {
	c := newDenyCache(10)
	sig := denySig{scaleMs: 1000, limit: 2, bucket: 5}
	stale := c.ticket("a")
	c.forget("a")
	c.deny("a", sig, denyValue{count: 3}, 6000, 5500, stale)
	_, ok := deniedCount(c, "a", sig, 5500)
	assert.False(t, ok, "a stale ticket stores nothing")
	assert.Equal(t, 0, c.len())

	c.deny("a", sig, denyValue{count: 3}, 6000, 5500, c.ticket("a"))
	n, ok := deniedCount(c, "a", sig, 5500)
	assert.True(t, ok, "a fresh ticket stores")
	assert.Equal(t, int64(3), n)
}

// TestDenyCacheBoundIsExact: the cache never holds more than maxEntries
// entries, and holds that many once its shards are full.
func TestDenyCacheBoundIsExact(t *testing.T) {
	for _, size := range []int{1, 2, 5, 16, 31, 32, 33, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newDenyCache(size)
			total := 0
			for _, s := range shardsOf(c) {
				_, capacity := occupancy(s)
				total += capacity
			}
			assert.Equal(t, size, total, "the shards' capacities sum to the bound")

			// Live entries, two windows per id, until every shard is full
			// (the loop's bound only guards against a cache that never is).
			deny := func(i int) {
				id := fmt.Sprintf("id-%d", i)
				tk := c.ticket(id)
				c.deny(id, denySig{scaleMs: 1000, limit: 5, bucket: 1}, denyValue{count: 6}, 2000, 1000, tk)
				c.deny(id, denySig{scaleMs: 2000, limit: 5, bucket: 0}, denyValue{count: 6}, 2000, 1000, tk)
			}
			i := 0
			for ; c.len() < size && i < 100*size+1000; i++ {
				deny(i)
				require.LessOrEqual(t, c.len(), size)
			}
			assert.Equal(t, size, c.len())
			for end := i + 2*size; i < end; i++ {
				deny(i)
				require.LessOrEqual(t, c.len(), size)
			}
			assert.Equal(t, size, c.len())
			verifyDenyCache(t, c, size)
		})
	}
}

// TestDenyCacheEvictsFinishedFirst: when a shard is full, the entries whose
// window has ended make room before any live one.
func TestDenyCacheEvictsFinishedFirst(t *testing.T) {
	for _, size := range []int{1, 5, 33, 64, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newDenyCache(size)
			window := denySig{scaleMs: 1000, limit: 5, bucket: 1}
			var finished, live []string
			for k, s := range shardsOf(c) {
				_, capacity := occupancy(s)
				finished = append(finished, idsIn(c, s, capacity, fmt.Sprintf("finished-%d-", k))...)
				live = append(live, idsIn(c, s, capacity, fmt.Sprintf("live-%d-", k))...)
			}
			for _, id := range finished { // denied at 1000, until 2000
				c.deny(id, window, denyValue{count: 6}, 2000, 1000, c.ticket(id))
			}
			require.Equal(t, size, c.len(), "every shard is full")

			// At 5000 all of them have ended. Live entries, which end in
			// an order unrelated to their shards, take their places.
			hit := denySig{rules: "60000:5;cost=1"}
			for j, id := range live {
				c.deny(id, hit, denyValue{count: 6}, 5001+int64(j%7), 5000, c.ticket(id))
			}
			for _, id := range live {
				_, ok := deniedCount(c, id, hit, 5000)
				assert.True(t, ok, "live %s is kept", id)
			}
			for _, id := range finished {
				_, ok := deniedCount(c, id, window, 1000) // when it was live
				assert.False(t, ok, "finished %s is evicted", id)
			}
			assert.Equal(t, size, c.len())
			verifyDenyCache(t, c, size)
		})
	}
}

// TestDenyCacheEvictsSoonestEnding: when a full shard holds no finished
// entry, each new one evicts the live entry that ends soonest.
func TestDenyCacheEvictsSoonestEnding(t *testing.T) {
	for _, size := range []int{1, 2, 5, 64, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newDenyCache(size)
			hit := denySig{rules: "60000:5;cost=1"}
			s := shardsOf(c)[0]
			_, capacity := occupancy(s)
			ids := idsIn(c, s, 2*capacity, "id-")
			old, fresh := ids[:capacity], ids[capacity:]
			// old[k] ends at 10_000+ends[k]: a fixed shuffle of 0..capacity-1.
			ends := rand.New(rand.NewPCG(1, 2)).Perm(capacity)
			for k, id := range old {
				c.deny(id, hit, denyValue{count: 6}, 10_000+int64(ends[k]), 5000, c.ticket(id))
			}
			for j, id := range fresh { // all end after every old one
				c.deny(id, hit, denyValue{count: 6}, 20_000+int64(j), 5000, c.ticket(id))
				for k, id := range old {
					_, ok := deniedCount(c, id, hit, 5000)
					assert.Equal(t, ends[k] > j, ok, "after %d new, old entry ending at +%d", j+1, ends[k])
				}
				for _, id := range fresh[:j+1] {
					_, ok := deniedCount(c, id, hit, 5000)
					assert.True(t, ok, "new %s is kept", id)
				}
				n, _ := occupancy(s)
				assert.Equal(t, capacity, n)
			}

			// Replacing an entry of a full shard evicts nothing.
			c.deny(fresh[0], hit, denyValue{count: 7}, 30_000, 5000, c.ticket(fresh[0]))
			for _, id := range fresh {
				_, ok := deniedCount(c, id, hit, 5000)
				assert.True(t, ok)
			}
			verifyDenyCache(t, c, size)
		})
	}
}

// TestDenyCacheDeleteWinsOverCheckInFlight: a check counted in Redis before
// DeleteBuckets, and denied after it, leaves no denial in the cache.
func TestDenyCacheDeleteWinsOverCheckInFlight(t *testing.T) {
	ctx := context.Background()
	clk := newClock(1_700_000_000_000)
	arrived, release := make(chan struct{}), make(chan struct{})
	b := &hookBackend{count: 3, onHit: func(n int64) {
		if n == 1 { // the first hit is counted, and waits to be answered
			close(arrived)
			<-release
		}
	}}
	l := New(b, WithClock(clk.now), WithDenyCache(10))

	type result struct {
		d   Decision
		err error
	}
	done := make(chan result)
	go func() {
		d, err := l.CheckRate(ctx, "user", time.Second, 2)
		done <- result{d, err}
	}()
	<-arrived
	n, err := l.DeleteBuckets(ctx, "user")
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	close(release)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, Decision{Count: 3, Limit: 2, ResetAfter: time.Second}, r.d)
	assert.Equal(t, 0, l.denies.len(), "the denial lost to the delete")

	// The next check asks the backend (whose count is fixed at 3).
	d, err := l.CheckRate(ctx, "user", time.Second, 2)
	require.NoError(t, err)
	assert.Equal(t, Decision{Count: 3, Limit: 2, ResetAfter: time.Second}, d)
	assert.Equal(t, int64(2), b.hits.Load())
	assert.Equal(t, 1, l.denies.len(), "with no delete around, the denial is kept")
}

// TestDenyCacheDeleteWinsOverCheckDuringDelete: a check that starts and ends
// while the backend deletes leaves no denial in the cache either, even when
// the delete fails.
func TestDenyCacheDeleteWinsOverCheckDuringDelete(t *testing.T) {
	for name, delErr := range map[string]error{"deleted": nil, "failed": fmt.Errorf("delete: %w", ErrUnavailable)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(1_700_000_000_000)
			b := &hookBackend{count: 3, delErr: delErr}
			l := New(b, WithClock(clk.now), WithDenyCache(10))
			b.onDelete = func() {
				d, err := l.CheckRate(ctx, "user", time.Second, 2)
				require.NoError(t, err)
				assert.Equal(t, Decision{Count: 3, Limit: 2, ResetAfter: time.Second}, d)
			}

			_, err := l.DeleteBuckets(ctx, "user")
			if delErr != nil {
				require.True(t, errors.Is(err, ErrUnavailable), "got %v", err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, int64(1), b.hits.Load())
			assert.Equal(t, 0, l.denies.len(), "the denial lost to the delete")

			d, err := l.CheckRate(ctx, "user", time.Second, 2)
			require.NoError(t, err)
			assert.Equal(t, Decision{Count: 3, Limit: 2, ResetAfter: time.Second}, d)
			assert.Equal(t, int64(2), b.hits.Load(), "the next check asked the backend")
		})
	}
}

func TestDenyCacheConcurrent(t *testing.T) {
	const size = 128
	c := newDenyCache(size)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				id := fmt.Sprintf("id-%d", (i*7+w)%300)
				now := int64(i) // some entries end while others are added
				sig := denySig{scaleMs: 100, limit: 5, bucket: now / 100}
				switch i % 4 {
				case 0:
					c.deny(id, sig, denyValue{count: 6}, (sig.bucket+1)*100, now, c.ticket(id))
				case 1:
					c.deny(id, denySig{rules: fmt.Sprint(w)}, denyValue{count: 6}, now+50, now, c.ticket(id))
				case 2:
					c.denied(id, sig, now)
				default:
					if i%40 == 3 {
						c.forget(id)
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, c.len(), size)
	verifyDenyCache(t, c, size)
}

// hookBackend is a Backend whose every hit counts to count, and which runs
// the test's hooks while a hit or a delete is in flight.
type hookBackend struct {
	count    int64         // what every CountHitInc returns
	onHit    func(n int64) // run inside CountHitInc, n counting hits from 1; nil: none
	onDelete func()        // run inside DeleteBuckets; nil: none
	delErr   error         // what DeleteBuckets returns
	hits     atomic.Int64
}

var _ Backend = (*hookBackend)(nil)

func (b *hookBackend) CountHit(ctx context.Context, key BucketKey, now int64) (int64, error) {
	return b.CountHitInc(ctx, key, now, 1)
}

func (b *hookBackend) CountHitInc(ctx context.Context, key BucketKey, now int64, inc int64) (int64, error) {
	n := b.hits.Add(1)
	if b.onHit != nil {
		b.onHit(n)
	}
	return b.count, nil
}

func (b *hookBackend) GetBucket(ctx context.Context, key BucketKey) (*BucketInfo, error) {
	return nil, nil
}

func (b *hookBackend) DeleteBuckets(ctx context.Context, id string) (int64, error) {
	if b.onDelete != nil {
		b.onDelete()
	}
	if b.delErr != nil {
		return 0, b.delErr
	}
	return 1, nil
}

// idsIn returns k ids, prefix followed by a number, that fall in shard s.
func idsIn(c *denyCache, s *denyShard, k int, prefix string) []string {
	var ids []string
	for i := 0; len(ids) < k; i++ {
		if id := fmt.Sprintf("%s%d", prefix, i); c.shard(id) == s {
			ids = append(ids, id)
		}
	}
	return ids
}

// shardsOf returns the cache's shards.
func shardsOf(c *denyCache) []*denyShard {
	out := make([]*denyShard, len(c.shards))
	for i := range c.shards {
		out[i] = &c.shards[i]
	}
	return out
}

// occupancy returns how many entries shard s holds, and how many it may.
func occupancy(s *denyShard) (n, capacity int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ends), s.cap
}

// verifyDenyCache checks the cache's invariants: the capacities sum to
// maxEntries, no shard holds more than its capacity, and each shard's heap
// is a heap holding exactly the entries of its map.
func verifyDenyCache(t *testing.T, c *denyCache, maxEntries int) {
	t.Helper()
	total := 0
	for _, s := range shardsOf(c) {
		s.mu.RLock()
		total += s.cap
		assert.LessOrEqual(t, len(s.ends), s.cap)
		inMap := 0
		for id, es := range s.m {
			assert.NotEmpty(t, es, "no empty list is kept")
			for _, e := range es {
				assert.Equal(t, id, e.id)
				require.Less(t, e.index, len(s.ends))
				assert.Same(t, e, s.ends[e.index])
			}
			inMap += len(es)
		}
		assert.Equal(t, len(s.ends), inMap, "the heap and the map hold the same entries")
		for i, e := range s.ends {
			assert.Equal(t, i, e.index)
			if i > 0 {
				assert.LessOrEqual(t, s.ends[(i-1)/2].until, e.until, "heap order")
			}
		}
		s.mu.RUnlock()
	}
	assert.Equal(t, maxEntries, total)
}

// deniedCount is c.denied's count.
func deniedCount(c *denyCache, id string, sig denySig, nowMs int64) (int64, bool) {
	v, ok := c.denied(id, sig, nowMs)
	return v.count, ok
}
