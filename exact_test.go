package hammer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer/internal/faultproxy"
	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Exactness under faults: a hit either returns the count of a hit that ran
// exactly once, or an error; an error wrapping ErrMaybeCounted means the
// hit was sent and its reply lost (it may have counted, once, and was never
// sent again); any other error means it was not counted. Each test makes a
// reply late or lost and compares what the callers were told with what
// Redis holds, exactly.
//
// The miniredis tests put a faultproxy between the backend and the server:
// a request always reaches the server at once and runs there, and the proxy
// holds its reply until the test releases it. The real-cluster tests stop a
// master (SIGSTOP) or leave a slot half migrated.

// hangGuard bounds every wait of these tests: only a call that hangs
// reaches it, and the test then fails instead of hanging.
const hangGuard = 30 * time.Second

// lateReadTimeout is the read timeout of the clients whose replies are
// held past it; patientReadTimeout that of the clients whose replies are
// held only until the test releases them.
const (
	lateReadTimeout    = 300 * time.Millisecond
	patientReadTimeout = 10 * time.Second
)

// proxied is a miniredis behind a faultproxy.
type proxied struct {
	m      *miniredis.Miniredis
	p      *faultproxy.Proxy
	raw    *redis.Client // straight to miniredis, past the proxy
	prefix string
}

func newProxied(t *testing.T) *proxied {
	t.Helper()
	m := miniredis.RunT(t)
	raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { raw.Close() })
	return &proxied{m: m, p: faultproxy.New(t, m.Addr()), raw: raw, prefix: namespace()}
}

// clientKind is the go-redis client that carries a backend's hits.
type clientKind struct {
	name string
	// options returns Options whose client sends every connection through
	// e's proxy, with the given read timeout. ctxTimeouts sets
	// ContextTimeoutEnabled on a supplied client (the backend's own client
	// always has it).
	options func(t *testing.T, e *proxied, readTimeout time.Duration, ctxTimeouts bool) Options
}

var clientKinds = []clientKind{
	{"InitServers", func(t *testing.T, e *proxied, rt time.Duration, _ bool) Options {
		return Options{
			InitServers:  []string{e.m.Addr()},
			RedisOptions: &redis.ClusterOptions{ReadTimeout: rt, Dialer: e.p.Dial},
		}
	}},
	{"Client", func(t *testing.T, e *proxied, rt time.Duration, ctxTimeouts bool) Options {
		// MaxRetries is left at go-redis's default, 3.
		c := redis.NewClient(&redis.Options{Addr: e.m.Addr(), ReadTimeout: rt, Dialer: e.p.Dial, ContextTimeoutEnabled: ctxTimeouts})
		t.Cleanup(func() { c.Close() })
		return Options{Client: c}
	}},
	{"ClusterClient", func(t *testing.T, e *proxied, rt time.Duration, ctxTimeouts bool) Options {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{e.m.Addr()}, ReadTimeout: rt, Dialer: e.p.Dial, ContextTimeoutEnabled: ctxTimeouts})
		t.Cleanup(func() { c.Close() })
		return Options{Client: c}
	}},
}

// backend returns a backend on e with opts, after edit, and one hit on
// another id: the script is loaded and the slot map known, so that the
// test's first EVALSHA runs.
func (e *proxied) backend(t *testing.T, opts Options, edit func(*Options)) *ClusterBackend {
	t.Helper()
	opts.ExpiryMs, opts.KeyPrefix = 60_000, e.prefix
	if edit != nil {
		edit(&opts)
	}
	b, err := NewClusterBackend(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	n, err := b.CountHit(context.Background(), BucketKey{Bucket: 1, ID: "warm-up"}, 1)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	return b
}

// marker returns the bucket key of key: every request that carries a hit
// of key names it, and no other request does.
func (e *proxied) marker(key BucketKey) string { return bucketKey(e.prefix, key) }

// stored returns the count Redis holds in the bucket of key, 0 when there
// is no bucket.
func (e *proxied) stored(t *testing.T, key BucketKey) int64 {
	t.Helper()
	n, err := e.raw.HGet(context.Background(), e.marker(key), fieldCount).Int64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	require.NoError(t, err)
	return n
}

// await waits for ch to be closed.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("hang: %s, not within %v", what, hangGuard)
	}
}

// holdTaken tells whether a request has taken h.
func holdTaken(h *faultproxy.Hold) bool {
	select {
	case <-h.Taken():
		return true
	default:
		return false
	}
}

// awaitHit waits for the result of a hit.
func awaitHit(t *testing.T, ch <-chan hitResult) hitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("hang: a hit did not return within %v", hangGuard)
		return hitResult{}
	}
}

// maybeCounted tells whether err says that its hit was sent and its reply
// lost: it wraps ErrMaybeCounted and ErrUnavailable.
func maybeCounted(err error) bool {
	return errors.Is(err, ErrMaybeCounted) && errors.Is(err, ErrUnavailable)
}

// tally sorts the results of hits that all ran on the server: each must be
// a count or a maybe-counted error.
type tally struct {
	counts []int64 // of the hits that returned one
	maybe  int64   // hits that returned a maybe-counted error
	others []error // any other error: a hit that ran, reported as not counted
}

func (ta *tally) add(r hitResult) {
	switch {
	case r.err == nil:
		ta.counts = append(ta.counts, r.n)
	case maybeCounted(r.err):
		ta.maybe++
	default:
		ta.others = append(ta.others, r.err)
	}
}

func (ta *tally) acked() int64 { return int64(len(ta.counts)) }

// check asserts that every hit is accounted for: stored == acked +
// maybe-counted == want, each count told once.
func (ta *tally) check(t *testing.T, stored, want int64) {
	t.Helper()
	t.Logf("stored %d, acknowledged %d (counts %v), maybe counted %d, other errors %d", stored, ta.acked(), ta.counts, ta.maybe, len(ta.others))
	for _, err := range ta.others {
		assert.Failf(t, "a hit that ran was reported as not counted", "%v", err)
	}
	assert.Equal(t, want, stored, "stored count: each hit counted once")
	assert.Equal(t, stored, ta.acked()+ta.maybe, "stored == acknowledged + maybe counted")
	seen := map[int64]bool{}
	for _, n := range ta.counts {
		assert.False(t, seen[n], "count %d told twice", n)
		seen[n] = true
	}
}

func TestExactLateReply(t *testing.T) {
	// A late reply: the node runs the hit at once, and its reply comes
	// after the client's read timeout (it is held until the caller has
	// returned). The callers' context has no deadline. The hit must not be
	// sent again: the caller is told it may have counted, and Redis holds
	// one hit per caller.
	const queued = 8
	paths := []struct {
		name string
		mode CoalesceMode
	}{{"direct", CoalesceOff}, {"lone", CoalesceOn}, {"batch", CoalesceOn}}
	for _, kind := range clientKinds {
		for _, path := range paths {
			t.Run(kind.name+"/"+path.name, func(t *testing.T) {
				e := newProxied(t)
				b := e.backend(t, kind.options(t, e, lateReadTimeout, false), func(o *Options) {
					o.Coalesce, o.CoalesceFlushers = path.mode, 1
				})
				ctx := context.Background()
				key := BucketKey{Bucket: 1, ID: "late"}
				wire := e.p.Count(e.marker(key))

				first := e.p.HoldReply(e.marker(key))
				results := []<-chan hitResult{goHit(b, ctx, key)}
				await(t, first.Taken(), "the first hit reaches the node")
				var batch *faultproxy.Hold
				if path.name == "batch" {
					// The first hit is in flight, sent by its caller: the
					// next ones queue, and go out together, late as well.
					batch = e.p.HoldReply(e.marker(key))
					for i := 0; i < queued; i++ {
						results = append(results, goHit(b, ctx, key))
					}
					waitQueued(t, b, queued)
				}
				var ta tally
				for _, ch := range results {
					r := awaitHit(t, ch)
					ta.add(r)
					if r.err != nil {
						assert.True(t, maybeCounted(r.err), "a late reply: want an error wrapping ErrUnavailable and ErrMaybeCounted, got %v", r.err)
					} else {
						assert.Failf(t, "a late reply was waited for, or the hit sent again", "count %d, no error", r.n)
					}
				}
				first.Release()
				await(t, first.Released(), "the held reply is let go")
				want := int64(1)
				if batch != nil {
					assert.True(t, holdTaken(batch), "the queued hits went out as a pipeline")
					batch.Release()
					await(t, batch.Released(), "the held pipeline reply is let go")
					want += queued
				}
				ta.check(t, e.stored(t, key), want)
				assert.Equal(t, want, wire.Load(), "hits that reached the node: each sent once")
			})
		}
	}
}

func TestExactStallNoDeadline(t *testing.T) {
	// A master stops (SIGSTOP) for longer than the read timeout (500 ms)
	// and shorter than the cluster-node-timeout (2 s, so no failover),
	// under a load whose calls have no deadline. The hits in flight run
	// when it continues; none may have been sent twice.
	const workers, stall = 4, 1200 * time.Millisecond
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Config{})
			b, prefix := faultBackend(t, c, m.mode)
			t.Cleanup(func() { b.Close() })
			victim := c.Masters(t)[0]
			ids := idsByMaster(t, c, prefix, workers)[victim]
			start := time.Now()
			l := startExactLoad(t, b, ids, workers)
			waitFor(t, hangGuard, "the load warms up", func() bool { return l.okSince(start) })

			c.Pause(t, victim)
			time.Sleep(stall)
			c.Resume(t, victim)
			resumed := time.Now()
			waitFor(t, hangGuard, "every id succeeds after SIGCONT", func() bool { return l.okSince(resumed) })
			l.halt(t)

			var acked, maybe, notCounted, stored int64
			for _, id := range ids {
				st := l.stats[id]
				info, err := b.GetBucket(context.Background(), BucketKey{Bucket: loadBucket, ID: id})
				require.NoError(t, err)
				require.NotNil(t, info, "id %q", id)
				a, mc, nc := st.acked.Load(), st.maybe.Load(), st.notCounted.Load()
				t.Logf("%s: id %q: stored %d, acknowledged %d, maybe counted %d, not counted %d", m.name, id, info.Count, a, mc, nc)
				assert.GreaterOrEqual(t, info.Count, a, "id %q: an acknowledged hit was lost", id)
				assert.LessOrEqual(t, info.Count, a+mc, "id %q: hits counted that no caller was told may have counted (sent twice?)", id)
				acked, maybe, notCounted, stored = acked+a, maybe+mc, notCounted+nc, stored+info.Count
			}
			t.Logf("%s: %v stall: stored %d, acknowledged %d, maybe counted %d, not counted %d; sample errors: %s",
				m.name, stall, stored, acked, maybe, notCounted, l.sample())
			assert.Positive(t, maybe+notCounted+stored-acked, "the stall caught hits in flight")
		})
	}
}

// exactLoad hits ids from several goroutines, each call with
// context.Background(), and sorts what each id was told.
type exactLoad struct {
	b     *ClusterBackend
	ids   []string
	stats map[string]*exactStats
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	samples []string // a few errors
}

type exactStats struct {
	acked      atomic.Int64 // returned a count
	maybe      atomic.Int64 // returned a maybe-counted error
	notCounted atomic.Int64 // returned another error
	lastOK     atomic.Int64 // unix ns
}

func startExactLoad(t *testing.T, b *ClusterBackend, ids []string, workers int) *exactLoad {
	l := &exactLoad{b: b, ids: ids, stats: map[string]*exactStats{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, id := range ids {
		l.stats[id] = &exactStats{}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.hit(ids[i%len(ids)])
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(func() { l.halt(t) })
	return l
}

func (l *exactLoad) hit(id string) {
	st := l.stats[id]
	_, err := l.b.CountHit(context.Background(), BucketKey{Bucket: loadBucket, ID: id}, 1)
	switch {
	case err == nil:
		st.acked.Add(1)
		st.lastOK.Store(time.Now().UnixNano())
		return
	case errors.Is(err, ErrMaybeCounted):
		st.maybe.Add(1)
	default:
		st.notCounted.Add(1)
	}
	l.mu.Lock()
	if len(l.samples) < 3 {
		l.samples = append(l.samples, err.Error())
	}
	l.mu.Unlock()
}

// okSince tells whether every id had a success after t.
func (l *exactLoad) okSince(t time.Time) bool {
	for _, id := range l.ids {
		if l.stats[id].lastOK.Load() <= t.UnixNano() {
			return false
		}
	}
	return true
}

// halt stops the workers and waits for their calls to return.
func (l *exactLoad) halt(t *testing.T) {
	t.Helper()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	await(t, l.done, "the load's calls return")
}

func (l *exactLoad) sample() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.samples, "; ")
}

func TestExactCancelledCallers(t *testing.T) {
	// Callers whose context ended before their hit was sent are never
	// counted; one whose context ends after it was sent is told it may
	// have counted. The first hit is held until released, so the master
	// is busy meanwhile.
	ctx := context.Background()
	setup := func(t *testing.T, mode CoalesceMode) (*proxied, *ClusterBackend, BucketKey) {
		e := newProxied(t)
		b := e.backend(t, clientKinds[0].options(t, e, patientReadTimeout, false), func(o *Options) {
			o.Coalesce, o.CoalesceFlushers = mode, 1
		})
		return e, b, BucketKey{Bucket: 1, ID: "cancel"}
	}
	// busy holds the reply of a first hit, and returns its result and hold.
	busy := func(t *testing.T, e *proxied, b *ClusterBackend, key BucketKey) (<-chan hitResult, *faultproxy.Hold) {
		t.Helper()
		h := e.p.HoldReply(e.marker(key))
		first := goHit(b, ctx, key)
		await(t, h.Taken(), "the first hit reaches the node")
		return first, h
	}
	// settle releases the first hit, then sends one more: it returns after
	// whatever queued before it was sent, and says how many hits counted.
	settle := func(t *testing.T, b *ClusterBackend, key BucketKey, first <-chan hitResult, h *faultproxy.Hold) int64 {
		t.Helper()
		h.Release()
		r := awaitHit(t, first)
		require.NoError(t, r.err)
		assert.Equal(t, int64(1), r.n)
		n, err := b.CountHit(ctx, key, 1)
		require.NoError(t, err)
		return n
	}

	for _, m := range modes {
		t.Run("already cancelled/"+m.name, func(t *testing.T) {
			e, b, key := setup(t, m.mode)
			first, h := busy(t, e, b, key)
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			const callers = 50
			var gone []<-chan hitResult
			for i := 0; i < callers; i++ {
				gone = append(gone, goHit(b, cctx, key))
			}
			for _, ch := range gone {
				r := awaitHit(t, ch)
				assert.ErrorIs(t, r.err, context.Canceled)
				assert.NotErrorIs(t, r.err, ErrMaybeCounted, "a hit of an ended context is never sent")
			}
			n := settle(t, b, key, first, h)
			assert.Equal(t, int64(2), n, "the cancelled callers' hits were counted")
			assert.Equal(t, int64(2), e.stored(t, key))
		})
	}

	t.Run("cancelled while queued", func(t *testing.T) {
		e, b, key := setup(t, CoalesceOn)
		first, h := busy(t, e, b, key)
		cctx, cancel := context.WithCancel(ctx)
		queued := goHit(b, cctx, key)
		waitQueued(t, b, 1)
		cancel()
		r := awaitHit(t, queued)
		assert.ErrorIs(t, r.err, context.Canceled)
		assert.NotErrorIs(t, r.err, ErrMaybeCounted, "a queued hit is taken out of the queue")
		n := settle(t, b, key, first, h)
		assert.Equal(t, int64(2), n, "the hit of a caller gone from the queue was sent")
		assert.Equal(t, int64(2), e.stored(t, key))
	})

	t.Run("cancelled after sent", func(t *testing.T) {
		e, b, key := setup(t, CoalesceOn)
		first, h := busy(t, e, b, key)
		// The next hit queues behind the first, and is held in its turn.
		sent := e.p.HoldReply(e.marker(key))
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		late := goHit(b, cctx, key)
		waitQueued(t, b, 1)
		h.Release()
		r := awaitHit(t, first)
		require.NoError(t, r.err)
		assert.Equal(t, int64(1), r.n)
		await(t, sent.Taken(), "the queued hit is sent")
		cancel()
		r = awaitHit(t, late)
		assert.ErrorIs(t, r.err, context.Canceled)
		assert.ErrorIs(t, r.err, ErrMaybeCounted, "the hit was sent when its caller left")
		sent.Release()
		await(t, sent.Released(), "the held reply is let go")
		n, err := b.CountHit(ctx, key, 1)
		require.NoError(t, err)
		assert.Equal(t, int64(3), n, "acknowledged 2, maybe counted 1: it ran")
		assert.Equal(t, int64(3), e.stored(t, key))
	})
}

func TestExactCoalesceTimeout(t *testing.T) {
	// A pipeline held past CoalesceTimeout: its callers are told their hits
	// may have counted, and no hit goes to the node twice.
	const queued = 8
	for _, kind := range clientKinds {
		t.Run(kind.name, func(t *testing.T) {
			e := newProxied(t)
			b := e.backend(t, kind.options(t, e, patientReadTimeout, true), func(o *Options) {
				o.CoalesceFlushers, o.CoalesceTimeout = 1, 200*time.Millisecond
			})
			ctx := context.Background()
			key := BucketKey{Bucket: 1, ID: "flush"}
			wire := e.p.Count(e.marker(key))

			h := e.p.HoldReply(e.marker(key))
			first := goHit(b, ctx, key)
			await(t, h.Taken(), "the first hit reaches the node")
			flush := e.p.HoldReply(e.marker(key))
			var rest []<-chan hitResult
			for i := 0; i < queued; i++ {
				rest = append(rest, goHit(b, ctx, key))
			}
			waitQueued(t, b, queued)
			h.Release()
			r := awaitHit(t, first)
			require.NoError(t, r.err, "a caller's own hit is bounded by its context and the read timeout, not CoalesceTimeout")
			assert.Equal(t, int64(1), r.n)

			ta := tally{counts: []int64{r.n}}
			for _, ch := range rest {
				r := awaitHit(t, ch)
				ta.add(r)
				assert.True(t, maybeCounted(r.err), "a flush past CoalesceTimeout: want ErrUnavailable and ErrMaybeCounted, got %d, %v", r.n, r.err)
			}
			assert.True(t, holdTaken(flush), "the queued hits went out as a pipeline")
			flush.Release()
			await(t, flush.Released(), "the held pipeline reply is let go")
			ta.check(t, e.stored(t, key), 1+queued)
			assert.Equal(t, int64(1+queued), wire.Load(), "hits that reached the node: each sent once")
		})
	}
}

// batchSizes records the sizes a BatchObserver sees.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (s *batchSizes) ObserveBatch(_ context.Context, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, n)
}

func (s *batchSizes) take() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sizes
	s.sizes = nil
	return out
}

func TestExactSplitBatch(t *testing.T) {
	// 2*maxBatch+1 hits queue while the first is in flight: they go out as
	// pipelines of maxBatch, maxBatch and 1, in the order they queued.
	const maxBatch = 4
	ctx := context.Background()
	// run queues the hits, A then B then A: the second pipeline holds the
	// hits of B only.
	run := func(t *testing.T, lateB bool) {
		e := newProxied(t)
		sizes := &batchSizes{}
		b := e.backend(t, clientKinds[0].options(t, e, patientReadTimeout, false), func(o *Options) {
			o.CoalesceFlushers, o.CoalesceMaxBatch, o.BatchObserver = 1, maxBatch, sizes
			o.CoalesceTimeout = 300 * time.Millisecond
		})
		sizes.take() // the warm-up
		a, bk := BucketKey{Bucket: 1, ID: "split-a"}, BucketKey{Bucket: 1, ID: "split-b"}
		wireA, wireB := e.p.Count(e.marker(a)), e.p.Count(e.marker(bk))

		h := e.p.HoldReply(e.marker(a))
		first := goHit(b, ctx, a)
		await(t, h.Taken(), "the first hit reaches the node")
		var held *faultproxy.Hold
		if lateB {
			held = e.p.HoldReply(e.marker(bk))
		}
		var onA, onB []<-chan hitResult
		for i := 0; i < 2*maxBatch+1; i++ {
			if i >= maxBatch && i < 2*maxBatch {
				onB = append(onB, goHit(b, ctx, bk))
			} else {
				onA = append(onA, goHit(b, ctx, a))
			}
			waitQueued(t, b, i+1) // one by one: the queue's order is known
		}
		h.Release()
		r := awaitHit(t, first)
		require.NoError(t, r.err)
		taA := tally{counts: []int64{r.n}}
		for _, ch := range onA {
			r := awaitHit(t, ch)
			require.NoError(t, r.err, "a pipeline next to a late one")
			taA.add(r)
		}
		var taB tally
		for _, ch := range onB {
			r := awaitHit(t, ch)
			taB.add(r)
			if lateB {
				assert.True(t, maybeCounted(r.err), "the late pipeline: want ErrUnavailable and ErrMaybeCounted, got %d, %v", r.n, r.err)
			} else {
				assert.NoError(t, r.err)
			}
		}
		if held != nil {
			assert.True(t, holdTaken(held), "B's pipeline is sent")
			held.Release()
			await(t, held.Released(), "the held pipeline reply is let go")
		}

		assert.Equal(t, []int{1, maxBatch, maxBatch, 1}, sizes.take(), "pipeline sizes: the lone hit, then maxBatch, maxBatch, 1")
		taA.check(t, e.stored(t, a), maxBatch+2)
		slices.Sort(taA.counts)
		assert.Equal(t, []int64{1, 2, 3, 4, 5, 6}, taA.counts, "every caller of A gets its own count, in queue order")
		taB.check(t, e.stored(t, bk), maxBatch)
		if !lateB {
			slices.Sort(taB.counts)
			assert.Equal(t, []int64{1, 2, 3, 4}, taB.counts)
		}
		assert.Equal(t, int64(maxBatch+2), wireA.Load(), "hits of A that reached the node: each sent once")
		assert.Equal(t, int64(maxBatch), wireB.Load(), "hits of B that reached the node: each sent once")
	}
	t.Run("on time", func(t *testing.T) { run(t, false) })
	t.Run("middle pipeline late", func(t *testing.T) { run(t, true) })
}

// roundTrips is a go-redis hook that records the commands of every round
// trip: one command, or one pipeline.
type roundTrips struct {
	mu    sync.Mutex
	trips [][]redis.Cmder
}

func (rt *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (rt *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		rt.record([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (rt *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rt.record(slices.Clone(cmds))
		return next(ctx, cmds)
	}
}

func (rt *roundTrips) record(cmds []redis.Cmder) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.trips = append(rt.trips, cmds)
}

func (rt *roundTrips) take() [][]redis.Cmder {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := rt.trips
	rt.trips = nil
	return out
}

// scriptCalls returns how many commands of cmds carry a hit (EVALSHA or
// EVAL) and how many send the script's source (EVAL or SCRIPT LOAD).
func scriptCalls(cmds []redis.Cmder) (hits, loads int) {
	for _, c := range cmds {
		switch c.Name() {
		case "evalsha":
			hits++
		case "eval":
			hits++
			loads++
		case "script":
			if args := c.Args(); len(args) > 1 && strings.EqualFold(fmt.Sprint(args[1]), "load") {
				loads++
			}
		}
	}
	return hits, loads
}

func TestExactNoScriptBatch(t *testing.T) {
	// After SCRIPT FLUSH, every hit of a queued batch gets NOSCRIPT: the
	// batch is sent again as one pipeline, with the script loaded once.
	const queued = 64
	e := newProxied(t)
	trips := &roundTrips{}
	client := redis.NewClient(&redis.Options{Addr: e.m.Addr(), Dialer: e.p.Dial, ReadTimeout: patientReadTimeout})
	client.AddHook(trips)
	t.Cleanup(func() { client.Close() })
	// The pipeline of single calls, as where batch scripts are not taken
	// (miniredis); TestBatchNoScript covers batch scripts.
	b := e.backend(t, Options{Client: client, NoBatchScript: true}, func(o *Options) { o.CoalesceFlushers = 1 })
	ctx := context.Background()
	key := BucketKey{Bucket: 1, ID: "noscript"}
	wire := e.p.Count(e.marker(key))

	h := e.p.HoldReply(e.marker(key))
	first := goHit(b, ctx, key)
	await(t, h.Taken(), "the first hit reaches the node")
	// Taken means the hit was passed to the node, which may still read
	// SCRIPT FLUSH (on another connection) first: wait until it has run.
	require.Eventually(t, func() bool {
		n, err := e.raw.HGet(ctx, e.marker(key), fieldCount).Int64()
		return err == nil && n == 1
	}, 10*time.Second, time.Millisecond, "the first hit runs")
	require.NoError(t, e.raw.ScriptFlush(ctx).Err())
	var rest []<-chan hitResult
	for i := 0; i < queued; i++ {
		rest = append(rest, goHit(b, ctx, key))
	}
	waitQueued(t, b, queued)
	trips.take()
	h.Release()

	ta := tally{}
	ta.add(awaitHit(t, first))
	for _, ch := range rest {
		r := awaitHit(t, ch)
		require.NoError(t, r.err)
		ta.add(r)
	}
	ta.check(t, e.stored(t, key), 1+queued)
	slices.Sort(ta.counts)
	for i, n := range ta.counts {
		require.Equal(t, int64(i+1), n, "counts 1..%d, each once", 1+queued)
	}

	var hitTrips, hitsSent, loads []int
	for _, cmds := range trips.take() {
		hits, l := scriptCalls(cmds)
		if hits > 0 {
			hitTrips = append(hitTrips, len(cmds))
			hitsSent = append(hitsSent, hits)
		}
		if l > 0 {
			loads = append(loads, l)
		}
	}
	t.Logf("round trips carrying hits after SCRIPT FLUSH: %d (commands %v, hits %v); script loads %v", len(hitTrips), hitTrips, hitsSent, loads)
	assert.Equal(t, []int{queued, queued}, hitsSent, "round trips carrying hits: the batch (NOSCRIPT), then the batch again as one pipeline")
	assert.Equal(t, []int{1}, loads, "the script is sent once")
	assert.Equal(t, int64(1+2*queued), wire.Load(), "hits that reached the node: the first, the batch twice")
}

func TestExactTryAgainBounded(t *testing.T) {
	// A slot stuck in migration, with one key of a hit moved and the other
	// not: the source answers TRYAGAIN for as long as the migration lasts.
	// A caller without a deadline gets ErrUnavailable after a few tries,
	// and nothing is counted.
	c := testcluster.Start(t, testcluster.Config{})
	ctx := context.Background()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			b, prefix := faultBackend(t, c, m.mode)
			defer b.Close()
			key := BucketKey{Bucket: loadBucket, ID: "tryagain-" + m.name}
			n, err := b.CountHit(ctx, key, 1)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)

			bk, _ := hitKeys(prefix, key)
			slot := testcluster.Slot(bk)
			from := c.MasterForSlot(t, slot)
			var to *testcluster.Node
			for _, node := range c.Masters(t) {
				if node != from {
					to = node
					break
				}
			}
			mig := c.BeginMigration(t, slot, to)
			mig.MigrateKey(t, bk) // the index stays on from

			r := awaitHit(t, goHit(b, ctx, key))
			require.Error(t, r.err, "a hit on a half-migrated slot")
			t.Logf("%s: %v", m.name, r.err)
			assert.ErrorIs(t, r.err, ErrUnavailable)
			assert.NotErrorIs(t, r.err, ErrMaybeCounted, "TRYAGAIN: the node ran nothing")

			mig.Finish(t)
			n, err = b.CountHit(ctx, key, 1)
			require.NoError(t, err)
			assert.Equal(t, int64(2), n, "the refused hit counted nothing")
		})
	}
}
