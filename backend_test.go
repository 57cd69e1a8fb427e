package hammer

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oddIDs are ids whose bytes have meaning somewhere: in glob patterns, in
// hash tags, in the key layout, in Lua strings.
var oddIDs = []string{
	"a", "a:b", "a:", ":a", "a*", "*", "a?", "?", "a[", "[a-z]", `a\`, `\`,
	"{a}", "{", "}", "}x", "{}", "x{y}z", "a}b{c", "{a}:1", "a}:1",
	"%", "%7D", "%25", "a%7Db", "a}b", "a b", " ", "a\x00b", "\x00",
	"\xff\xfe", "é", "a\nb", "i", "1", "-1", "a:i", "a:1",
	strings.Repeat("x", DefaultMaxIDBytes),
	strings.Repeat("}", DefaultMaxIDBytes),
}

// ---- Limiter semantics ----

func TestCheckRateWindows(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clk := newClock(0)
		l := New(e.backend(t, nil), WithClock(clk.now))
		const scale, limit = 1000 * time.Millisecond, 3
		base := int64(1_700_000_000_000) // a window boundary: divisible by 1000

		// Table over instants: each step sets the clock and checks one hit.
		steps := []struct {
			at      int64 // ms after base
			id      string
			allowed bool
			count   int64
			reset   time.Duration
		}{
			{0, "u", true, 1, 1000 * time.Millisecond}, // first ms of a window
			{1, "u", true, 2, 999 * time.Millisecond},
			{500, "u", true, 3, 500 * time.Millisecond},   // count == limit is allowed
			{999, "u", false, 4, 1 * time.Millisecond},    // last ms of the window: denied
			{999, "u", false, 5, 1 * time.Millisecond},    // denied hits still count
			{1000, "u", true, 1, 1000 * time.Millisecond}, // next window starts afresh
			{1000, "v", true, 1, 1000 * time.Millisecond}, // other ids are apart
			{1999, "u", true, 2, 1 * time.Millisecond},
			{5000, "u", true, 1, 1000 * time.Millisecond}, // a later window
		}
		for i, s := range steps {
			clk.set(base + s.at)
			d, err := l.CheckRate(ctx, s.id, scale, limit)
			require.NoError(t, err, "step %d", i)
			want := Decision{Allowed: s.allowed, Count: s.count, Limit: limit, Remaining: remaining(limit, s.count), ResetAfter: s.reset}
			assert.Equal(t, want, d, "step %d at +%dms", i, s.at)
		}
	})
}

func TestCheckRateInc(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clk := newClock(1_700_000_000_123)
		l := New(e.backend(t, nil), WithClock(clk.now))
		d, err := l.CheckRateInc(ctx, "upload", time.Minute, 10, 4)
		require.NoError(t, err)
		assert.Equal(t, Decision{Allowed: true, Count: 4, Limit: 10, Remaining: 6, ResetAfter: 60_000*time.Millisecond - 20_123*time.Millisecond}, d)
		d, err = l.CheckRateInc(ctx, "upload", time.Minute, 10, 6)
		require.NoError(t, err)
		assert.True(t, d.Allowed)
		assert.Equal(t, int64(10), d.Count)
		assert.Equal(t, int64(0), d.Remaining)
		d, err = l.CheckRateInc(ctx, "upload", time.Minute, 10, 1)
		require.NoError(t, err)
		assert.False(t, d.Allowed)
		assert.Equal(t, int64(11), d.Count)
		d, err = l.CheckRateInc(ctx, "big", time.Minute, MaxValue, MaxValue)
		require.NoError(t, err)
		assert.True(t, d.Allowed)
		assert.Equal(t, int64(MaxValue), d.Count)
		// Counts are exact up to 2^53: a hit past it fails, and counts
		// nothing.
		_, err = l.CheckRateInc(ctx, "big", time.Minute, MaxValue, 1)
		require.ErrorContains(t, err, "2^53")
		st, err := l.InspectBucket(ctx, "big", time.Minute, MaxValue)
		require.NoError(t, err)
		assert.Equal(t, int64(MaxValue), st.Count)
	})
}

func TestInspectBucket(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		start := int64(1_700_000_000_000)
		clk := newClock(start + 250)
		l := New(e.backend(t, nil), WithClock(clk.now))

		st, err := l.InspectBucket(ctx, "k", time.Second, 5)
		require.NoError(t, err)
		assert.Equal(t, BucketStatus{Count: 0, CountRemaining: 5, ResetAfter: 750 * time.Millisecond}, st)
		assert.Empty(t, e.keys(t), "inspecting an absent bucket writes nothing")

		for i := 0; i < 3; i++ {
			_, err := l.CheckRate(ctx, "k", time.Second, 5)
			require.NoError(t, err)
			clk.advance(100)
		}
		before := e.keys(t)
		want := BucketStatus{Count: 3, CountRemaining: 2, ResetAfter: 450 * time.Millisecond, CreatedAt: start + 250, UpdatedAt: start + 450}
		for i := 0; i < 2; i++ { // twice: inspecting changes nothing
			st, err = l.InspectBucket(ctx, "k", time.Second, 5)
			require.NoError(t, err)
			assert.Equal(t, want, st)
		}
		assert.Equal(t, before, e.keys(t))

		st, err = l.InspectBucket(ctx, "k", time.Second, 2)
		require.NoError(t, err)
		assert.Equal(t, int64(0), st.CountRemaining, "remaining never goes below 0")

		clk.advance(450) // next window: empty again
		st, err = l.InspectBucket(ctx, "k", time.Second, 5)
		require.NoError(t, err)
		assert.Equal(t, BucketStatus{Count: 0, CountRemaining: 5, ResetAfter: time.Second}, st)
	})
}

func TestMakeRateChecker(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clk := newClock(1_700_000_000_000)
		l := New(e.backend(t, nil), WithClock(clk.now))
		check := l.MakeRateChecker("login:", time.Minute, 2)
		for want := int64(1); want <= 3; want++ {
			d, err := check(ctx, "alice")
			require.NoError(t, err)
			assert.Equal(t, want, d.Count)
			assert.Equal(t, want <= 2, d.Allowed)
		}
		// The checker counts in the very bucket of CheckRate(prefix+id).
		d, err := l.CheckRate(ctx, "login:alice", time.Minute, 2)
		require.NoError(t, err)
		assert.Equal(t, int64(4), d.Count)
		d, err = check(ctx, "bob")
		require.NoError(t, err)
		assert.Equal(t, int64(1), d.Count)
	})
}

// ---- Backend ----

func TestGetBucket(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		key := BucketKey{Bucket: 42, ID: "g"}
		info, err := b.GetBucket(ctx, key)
		require.NoError(t, err)
		assert.Nil(t, info)

		n, err := b.CountHit(ctx, key, 1000)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		n, err = b.CountHitInc(ctx, key, 1500, 7)
		require.NoError(t, err)
		assert.Equal(t, int64(8), n)

		info, err = b.GetBucket(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, &BucketInfo{Key: key, Count: 8, Created: 1000, Updated: 1500}, info)

		info, err = b.GetBucket(ctx, BucketKey{Bucket: 43, ID: "g"})
		require.NoError(t, err)
		assert.Nil(t, info, "another window of the same id")
	})
}

func TestOddIDs(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		// Each id gets its own count, in two windows, so no two (id, bucket)
		// pairs may share a key.
		for i, id := range oddIDs {
			for _, bucket := range []int64{1, 12} {
				n, err := b.CountHitInc(ctx, BucketKey{Bucket: bucket, ID: id}, 5000, int64(i+1))
				require.NoError(t, err, "id %q", id)
				assert.Equal(t, int64(i+1), n, "id %q: a fresh bucket", id)
			}
		}
		for i, id := range oddIDs {
			for _, bucket := range []int64{1, 12} {
				info, err := b.GetBucket(ctx, BucketKey{Bucket: bucket, ID: id})
				require.NoError(t, err)
				require.NotNil(t, info, "id %q", id)
				assert.Equal(t, int64(i+1), info.Count, "id %q", id)
			}
		}
		// Every key of one id has the same non-empty hash tag, so one slot;
		// and the prefix is never part of it.
		keys := e.keys(t)
		assert.Len(t, keys, 3*len(oddIDs), "two buckets and one index per id")
		tags := map[string]int{}
		for _, k := range keys {
			tag := testcluster.HashTag(k)
			require.NotEqual(t, k, tag, "key %q has no hash tag", k)
			assert.NotContains(t, tag, e.prefix)
			tags[tag]++
		}
		assert.Len(t, tags, len(oddIDs), "one tag per id")
		for tag, n := range tags {
			assert.Equal(t, 3, n, "tag %q", tag)
		}
	})
}

func TestDeleteBucketsIsolation(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		keysOf := map[string][]string{}
		for _, id := range oddIDs {
			for bucket := int64(0); bucket < 3; bucket++ {
				_, err := b.CountHit(ctx, BucketKey{Bucket: bucket, ID: id}, 1000+bucket)
				require.NoError(t, err)
				bk, idx := hitKeys(e.prefix, BucketKey{Bucket: bucket, ID: id})
				keysOf[id] = append(keysOf[id], bk)
				if bucket == 0 {
					keysOf[id] = append(keysOf[id], idx)
				}
			}
		}
		for i, id := range oddIDs {
			n, err := b.DeleteBuckets(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, int64(3), n, "id %q", id)
			// The deleted ids are gone, and every later id is whole.
			var want []string
			for _, other := range oddIDs[i+1:] {
				want = append(want, keysOf[other]...)
			}
			sort.Strings(want)
			require.Equal(t, want, e.keys(t), "after deleting %q", id)
		}
		assert.Empty(t, e.keys(t), "no key is left behind")

		n, err := b.DeleteBuckets(ctx, "never-seen")
		require.NoError(t, err)
		assert.Equal(t, int64(0), n)
	})
}

// miniBackend returns a backend on a miniredis of its own, with default
// options but for an ExpiryMs of 60 s, closed when t ends.
func miniBackend(t *testing.T) (*ClusterBackend, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: []string{m.Addr()}})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b, m
}

// TestDeleteBucketsRoundTrips checks what DeleteBuckets sends: for an
// unknown id, one round trip (ZRANGE of the index and EXISTS of the rule
// record, pipelined); for an id with rules, one more, which deletes the
// record and counts its states.
func TestDeleteBucketsRoundTrips(t *testing.T) {
	b, m := miniBackend(t)
	ctx := context.Background()
	h := countCommands(t, b)
	_, err := b.DeleteBuckets(ctx, "warm-up") // dials, and sets up the connection
	require.NoError(t, err)

	h.trips.Store(0)
	h.n.Store(0)
	n, err := b.DeleteBuckets(ctx, "never-seen")
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, int64(1), h.trips.Load(), "round trips, unknown id")
	assert.Equal(t, int64(2), h.n.Load(), "commands, unknown id")

	l := New(b)
	for _, id := range []string{"warm-up", "rules"} { // the first loads the scripts
		_, err = l.Hit(ctx, id, TokenBucket(1, time.Second, 5), FixedWindow(time.Minute, 9))
		require.NoError(t, err)
	}
	_, err = b.DeleteBuckets(ctx, "warm-up")
	require.NoError(t, err)
	record, _ := ruleKeySet(defaultKeyPrefix, "rules", nil)
	require.True(t, m.Exists(record))
	h.trips.Store(0)
	n, err = b.DeleteBuckets(ctx, "rules")
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "both rules' states")
	assert.Equal(t, int64(2), h.trips.Load(), "round trips, an id with rules")
	assert.False(t, m.Exists(record))
}

func TestDeleteBucketsCountsLiveBucketsOnly(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		for bucket := int64(0); bucket < 4; bucket++ {
			_, err := b.CountHit(ctx, BucketKey{Bucket: bucket, ID: "x"}, bucket*1000)
			require.NoError(t, err)
		}
		// A bucket that expired (here: removed) is not counted.
		bk, _ := hitKeys(e.prefix, BucketKey{Bucket: 2, ID: "x"})
		require.NoError(t, e.raw.Del(ctx, bk).Err())
		n, err := b.DeleteBuckets(ctx, "x")
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
	})
}

func TestIndexStaysBounded(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		// A hot id takes a new bucket at every step, and its buckets live
		// for `live` steps (here they are removed, as if they expired). The
		// index lists every live bucket, and entries of gone buckets are
		// dropped as new buckets come: it never holds more than a few.
		const steps, live = 500, 5
		_, idx := hitKeys(e.prefix, BucketKey{ID: "hot"})
		maxSize := int64(0)
		for i := int64(0); i < steps; i++ {
			_, err := b.CountHit(ctx, BucketKey{Bucket: i, ID: "hot"}, i)
			require.NoError(t, err)
			if i >= live {
				gone, _ := hitKeys(e.prefix, BucketKey{Bucket: i - live, ID: "hot"})
				require.NoError(t, e.raw.Del(ctx, gone).Err())
			}
			size, err := e.raw.ZCard(ctx, idx).Result()
			require.NoError(t, err)
			maxSize = max(maxSize, size)
		}
		assert.LessOrEqual(t, maxSize, int64(2*live+2), "index size at worst")
		members, err := e.raw.ZRange(ctx, idx, 0, -1).Result()
		require.NoError(t, err)
		for i := int64(steps - live); i < steps; i++ {
			assert.Contains(t, members, strconv.FormatInt(i, 10), "live bucket %d is listed", i)
		}
		n, err := b.DeleteBuckets(ctx, "hot")
		require.NoError(t, err)
		assert.Equal(t, int64(live), n)
	})
}

func TestDeleteBucketsUnderClockSkew(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Two hosts share an id; one clock runs 2.5 s ahead of the other.
		// Each host's hit creates a bucket of its own window; both are
		// alive, and DeleteBuckets finds both, whichever host hit last.
		b := e.backend(t, func(o *Options) { o.ExpiryMs = 10_000 })
		base := int64(1_700_000_000_000)
		for _, order := range [][]int64{{0, 2500}, {2500, 0}} {
			for _, skew := range order {
				l := New(b, WithClock(newClock(base+skew).now))
				_, err := l.CheckRate(ctx, "skewed", time.Second, 10)
				require.NoError(t, err)
			}
			n, err := b.DeleteBuckets(ctx, "skewed")
			require.NoError(t, err)
			assert.Equal(t, int64(2), n, "hosts %v ms ahead", order)
		}
		// With an expiry of 1000 ms too: a bucket lives 1 s after its hit.
		b = e.backend(t, func(o *Options) { o.ExpiryMs = 1000 })
		for _, skew := range []int64{0, 2500} {
			l := New(b, WithClock(newClock(base+skew).now))
			_, err := l.CheckRate(ctx, "skewed-short", time.Second, 10)
			require.NoError(t, err)
		}
		n, err := b.DeleteBuckets(ctx, "skewed-short")
		require.NoError(t, err)
		assert.Equal(t, int64(2), n)
		assert.Empty(t, e.keys(t), "nothing left behind")
	})
}

func TestTTLOnEveryKey(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const expiry = 45_678
		b := e.backend(t, func(o *Options) { o.ExpiryMs = expiry })
		for i, id := range []string{"a", "b", "}x", "a\x00"} {
			for j := 0; j < 3; j++ {
				_, err := b.CountHit(ctx, BucketKey{Bucket: int64(j), ID: id}, int64(i*10+j))
				require.NoError(t, err)
			}
		}
		keys := e.keys(t)
		require.Len(t, keys, 4*4)
		for _, k := range keys {
			ttl, err := e.raw.PTTL(ctx, k).Result()
			require.NoError(t, err)
			isIndex := strings.HasSuffix(k, ":"+indexSuffix)
			max := time.Duration(expiry) * time.Millisecond
			if isIndex {
				max *= 2
			}
			assert.Greater(t, ttl, time.Duration(0), "key %q", k)
			assert.LessOrEqual(t, ttl, max, "key %q", k)
			// Millisecond precision: the TTL is not rounded to seconds.
			assert.Greater(t, ttl, max-5*time.Second, "key %q", k)
		}
	})
}

func TestConcurrentHitsAreExact(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		const workers, hits = 64, 20
		key := BucketKey{Bucket: 7, ID: "shared"}
		counts := make(chan int64, workers*hits)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < hits; i++ {
					n, err := b.CountHit(ctx, key, 1)
					if !assert.NoError(t, err) {
						return
					}
					counts <- n
				}
			}()
		}
		wg.Wait()
		close(counts)
		var got []int64
		for n := range counts {
			got = append(got, n)
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		require.Len(t, got, workers*hits)
		for i, n := range got { // each hit saw a count of its own: 1..N
			require.Equal(t, int64(i+1), n)
		}
		info, err := b.GetBucket(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, int64(workers*hits), info.Count)
	})
}

func TestScriptFlush(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		key := BucketKey{Bucket: 1, ID: "s"}
		for want := int64(1); want <= 3; want++ {
			e.flushScripts(t) // NOSCRIPT on the next call: it must fall back
			n, err := b.CountHit(ctx, key, 1)
			require.NoError(t, err)
			assert.Equal(t, want, n)
			_, err = b.CountHit(ctx, BucketKey{Bucket: 2, ID: "s"}, 1)
			require.NoError(t, err)
			e.flushScripts(t)
			_, err = b.DeleteBuckets(ctx, "other")
			require.NoError(t, err)
		}
	})
}

func TestUnexpectedValues(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		key := BucketKey{Bucket: 3, ID: "w"}
		bk, _ := hitKeys(e.prefix, key)

		// A key of another type: an error, not a panic. (Keys written here
		// get a TTL too: the cluster suite checks every key has one.)
		require.NoError(t, e.raw.Set(ctx, bk, "x", time.Minute).Err())
		_, err := b.CountHit(ctx, key, 1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "count hit")
		_, err = b.GetBucket(ctx, key)
		require.Error(t, err)

		// A hash with garbage in it.
		require.NoError(t, e.raw.Del(ctx, bk).Err())
		require.NoError(t, e.raw.HSet(ctx, bk, fieldCount, "many").Err())
		require.NoError(t, e.raw.PExpire(ctx, bk, time.Minute).Err())
		_, err = b.GetBucket(ctx, key)
		require.ErrorIs(t, err, errBadReply)
		assert.Contains(t, err.Error(), `get bucket "w"`)
		// A hit on it is an error too, and leaves the hash as it was.
		_, err = b.CountHit(ctx, key, 1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `count hit "w"`)
		got, err := e.raw.HGetAll(ctx, bk).Result()
		require.NoError(t, err)
		assert.Equal(t, map[string]string{fieldCount: "many"}, got)
	})
}

// ---- Errors ----

func TestRedisErrorsAreWrapped(t *testing.T) {
	b, err := NewClusterBackend(Options{
		ExpiryMs: 1000, ClusterName: "edge", InitServers: []string{"127.0.0.1:1"},
		RedisOptions: &redis.ClusterOptions{DialTimeout: 100 * time.Millisecond, MaxRetries: -1},
	})
	require.NoError(t, err, "construction does not need a reachable node")
	defer b.Close()
	ctx := context.Background()
	_, err = b.CountHit(ctx, BucketKey{ID: "u1"}, 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `hammer edge: count hit "u1"`)
	assert.ErrorIs(t, err, ErrUnavailable, "no node reachable")
	_, err = b.GetBucket(ctx, BucketKey{ID: "u2"})
	assert.ErrorContains(t, err, `get bucket "u2"`)
	_, err = b.DeleteBuckets(ctx, "u3")
	assert.ErrorContains(t, err, `delete buckets "u3"`)
}

// countingHook counts the commands a client sends, from any goroutine.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

func TestInvalidArguments(t *testing.T) {
	// A client that points nowhere, with a hook that sees any command.
	hook := &countingHook{}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	client.AddHook(hook)
	defer client.Close()
	b, err := NewClusterBackend(Options{ExpiryMs: 60_000, Client: client})
	require.NoError(t, err)
	l := New(b)
	ctx := context.Background()
	long := strings.Repeat("x", DefaultMaxIDBytes+1)

	cases := []struct {
		name string
		call func() error
	}{
		{"empty id", func() error { _, err := l.CheckRate(ctx, "", time.Second, 1); return err }},
		{"long id", func() error { _, err := l.CheckRate(ctx, long, time.Second, 1); return err }},
		{"zero scale", func() error { _, err := l.CheckRate(ctx, "a", 0, 1); return err }},
		{"negative scale", func() error { _, err := l.CheckRate(ctx, "a", -time.Second, 1); return err }},
		{"sub-ms scale", func() error { _, err := l.CheckRate(ctx, "a", 999*time.Microsecond, 1); return err }},
		{"fractional ms scale", func() error { _, err := l.CheckRate(ctx, "a", 1500*time.Microsecond, 1); return err }},
		{"scale over expiry", func() error { _, err := l.CheckRate(ctx, "a", 61*time.Second, 1); return err }},
		{"zero limit", func() error { _, err := l.CheckRate(ctx, "a", time.Second, 0); return err }},
		{"negative limit", func() error { _, err := l.CheckRate(ctx, "a", time.Second, -5); return err }},
		{"limit over 2^53", func() error { _, err := l.CheckRate(ctx, "a", time.Second, MaxValue+1); return err }},
		{"limit near 2^63", func() error { _, err := l.CheckRate(ctx, "a", time.Second, 1<<63-1); return err }},
		{"zero increment", func() error { _, err := l.CheckRateInc(ctx, "a", time.Second, 5, 0); return err }},
		{"negative increment", func() error { _, err := l.CheckRateInc(ctx, "a", time.Second, 5, -1); return err }},
		{"increment over 2^53", func() error { _, err := l.CheckRateInc(ctx, "a", time.Second, 5, MaxValue+1); return err }},
		{"increment near 2^63", func() error { _, err := l.CheckRateInc(ctx, "a", time.Second, 5, 1<<63-1); return err }},
		{"inspect empty id", func() error { _, err := l.InspectBucket(ctx, "", time.Second, 1); return err }},
		{"inspect zero limit", func() error { _, err := l.InspectBucket(ctx, "a", time.Second, 0); return err }},
		{"inspect bad scale", func() error { _, err := l.InspectBucket(ctx, "a", 0, 1); return err }},
		{"delete empty id", func() error { _, err := l.DeleteBuckets(ctx, ""); return err }},
		{"delete long id", func() error { _, err := l.DeleteBuckets(ctx, long); return err }},
		{"checker empty id", func() error { _, err := l.MakeRateChecker("", time.Second, 1)(ctx, ""); return err }},
		{"checker long id", func() error { _, err := l.MakeRateChecker("p:", time.Second, 1)(ctx, long[1:]); return err }},
		{"backend empty id", func() error { _, err := b.CountHit(ctx, BucketKey{}, 1); return err }},
		{"backend long id", func() error { _, err := b.CountHit(ctx, BucketKey{ID: long}, 1); return err }},
		{"backend zero increment", func() error { _, err := b.CountHitInc(ctx, BucketKey{ID: "a"}, 1, 0); return err }},
		{"backend increment over 2^53", func() error { _, err := b.CountHitInc(ctx, BucketKey{ID: "a"}, 1, MaxValue+1); return err }},
		{"backend get empty id", func() error { _, err := b.GetBucket(ctx, BucketKey{}); return err }},
		{"backend delete long id", func() error { _, err := b.DeleteBuckets(ctx, long); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.False(t, errors.Is(err, ErrInvalidOptions))
		})
	}
	assert.Zero(t, hook.n.Load(), "no command may be sent for a bad argument")

	// The limit of MaxIDBytes follows the backend's option.
	b2, err := NewClusterBackend(Options{ExpiryMs: 1000, Client: client, MaxIDBytes: 4})
	require.NoError(t, err)
	_, err = New(b2).CheckRate(ctx, "abcde", time.Second, 1)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = b2.CountHit(ctx, BucketKey{ID: "abcde"}, 1)
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Zero(t, hook.n.Load())
}

func TestInvalidOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	seeds := []string{"127.0.0.1:1"}
	cases := []struct {
		name string
		opts Options
	}{
		{"no expiry", Options{InitServers: seeds}},
		{"negative expiry", Options{ExpiryMs: -1, InitServers: seeds}},
		{"huge expiry", Options{ExpiryMs: MaxExpiryMs + 1, InitServers: seeds}},
		{"no servers, no client", Options{ExpiryMs: 1000}},
		{"empty server list", Options{ExpiryMs: 1000, InitServers: []string{}}},
		{"prefix with {", Options{ExpiryMs: 1000, Client: client, KeyPrefix: "app{"}},
		{"prefix with }", Options{ExpiryMs: 1000, Client: client, KeyPrefix: "}app:"}},
		{"negative MaxIDBytes", Options{ExpiryMs: 1000, Client: client, MaxIDBytes: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := NewClusterBackend(c.opts)
			require.ErrorIs(t, err, ErrInvalidOptions)
			assert.Nil(t, b)
		})
	}
}

func TestOptionsNotMutated(t *testing.T) {
	ro := &redis.ClusterOptions{Addrs: []string{"10.0.0.9:1"}, Username: "u", Password: "p"}
	roCopy := *ro
	roCopy.Addrs = append([]string(nil), ro.Addrs...)
	seeds := []string{"127.0.0.1:1", "127.0.0.1:2"}
	opts := Options{ExpiryMs: 1000, InitServers: seeds, RedisOptions: ro}
	b, err := NewClusterBackend(opts)
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, &roCopy, ro)
	assert.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2"}, seeds)
	assert.Equal(t, "", opts.KeyPrefix, "defaults are not written back")
	assert.Equal(t, 0, opts.MaxIDBytes)

	co := opts.clusterOptions()
	assert.Equal(t, seeds, co.Addrs, "InitServers replace RedisOptions.Addrs")
	assert.Equal(t, "u", co.Username)
	co.Addrs[0] = "changed"
	assert.Equal(t, "127.0.0.1:1", seeds[0], "the client's addresses are a copy")
}

func TestCloseOwnership(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if e.client == nil {
			// The backend made its client: Close closes it.
			b := e.backend(t, nil)
			_, err := b.CountHit(ctx, BucketKey{ID: "c"}, 1)
			require.NoError(t, err)
			require.NoError(t, b.Close())
			_, err = b.CountHit(ctx, BucketKey{ID: "c"}, 1)
			require.ErrorIs(t, err, redis.ErrClosed)
			return
		}
		// A given client stays open.
		b := e.backend(t, nil)
		require.NoError(t, b.Close())
		n, err := b.CountHit(ctx, BucketKey{ID: "c"}, 1)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
	})
}
