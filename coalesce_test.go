package hammer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gate holds hits, alone or in pipelines, until it is opened, and records
// how many each send carries. Other commands (a new connection's
// handshake, EVAL after NOSCRIPT) pass.
type gate struct {
	open    chan struct{}
	entered chan int // size of each pipeline, as it arrives
}

func newGate() *gate { return &gate{open: make(chan struct{}), entered: make(chan int, 100)} }

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" {
			g.entered <- 1
			<-g.open
		}
		return next(ctx, cmd)
	}
}
func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() != "evalsha" {
			return next(ctx, cmds)
		}
		g.entered <- len(cmds)
		<-g.open
		return next(ctx, cmds)
	}
}

// gatedBackend returns a coalescing backend over a miniredis whose
// pipelines wait at g, with one flusher, so batches are deterministic.
func gatedBackend(t *testing.T, edit func(*Options)) (*ClusterBackend, *gate, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	g := newGate()
	client.AddHook(g)
	raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { client.Close(); raw.Close() })
	opts := Options{ExpiryMs: 60_000, Client: client, Coalesce: CoalesceOn, CoalesceFlushers: 1}
	if edit != nil {
		edit(&opts)
	}
	b, err := NewClusterBackend(opts)
	require.NoError(t, err)
	return b, g, raw
}

type hitResult struct {
	n   int64
	err error
}

func goHit(b *ClusterBackend, ctx context.Context, key BucketKey) <-chan hitResult {
	ch := make(chan hitResult, 1)
	go func() {
		n, err := b.CountHit(ctx, key, 1)
		ch <- hitResult{n, err}
	}()
	return ch
}

func TestCoalescedBatchesCarryWhatQueued(t *testing.T) {
	b, g, _ := gatedBackend(t, nil)
	ctx := context.Background()
	first := goHit(b, ctx, BucketKey{Bucket: 1, ID: "a"})
	assert.Equal(t, 1, <-g.entered, "a lone caller's hit is sent at once, alone")

	// While the first pipeline is in flight, ten more callers queue up.
	var rest []<-chan hitResult
	for i := 0; i < 10; i++ {
		rest = append(rest, goHit(b, ctx, BucketKey{Bucket: 1, ID: "a"}))
	}
	waitQueued(t, b, 10)
	close(g.open)
	assert.Equal(t, 10, <-g.entered, "the next flush carries all that queued")

	r := <-first
	require.NoError(t, r.err)
	assert.Equal(t, int64(1), r.n)
	seen := map[int64]bool{}
	for _, ch := range rest {
		r := <-ch
		require.NoError(t, r.err)
		seen[r.n] = true
	}
	assert.Len(t, seen, 10, "each caller gets its own count")
	for n := int64(2); n <= 11; n++ {
		assert.True(t, seen[n], "count %d", n)
	}
}

// waitQueued waits until n hits wait in the backend's only queue.
func waitQueued(t *testing.T, b *ClusterBackend, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		b.co.mu.RLock()
		defer b.co.mu.RUnlock()
		for _, q := range b.co.queues {
			q.mu.Lock()
			l := len(q.pending)
			q.mu.Unlock()
			if l == n {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
}

func TestCoalescedCallerContext(t *testing.T) {
	b, g, raw := gatedBackend(t, nil)
	key := BucketKey{Bucket: 1, ID: "c"}
	first := goHit(b, context.Background(), key)
	<-g.entered

	// A caller whose context ends returns at once with its context's
	// error, while the batch it joined is still held.
	ctx, cancel := context.WithCancel(context.Background())
	gone := goHit(b, ctx, key)
	waitQueued(t, b, 1)
	cancel()
	r := <-gone
	assert.ErrorIs(t, r.err, context.Canceled)

	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	late := goHit(b, ctx2, key)
	r = <-late
	assert.ErrorIs(t, r.err, context.DeadlineExceeded)
	assert.NotErrorIs(t, r.err, ErrMaybeCounted, "taken out of the queue, never sent")

	// The batch goes on without them: their hits are not counted.
	close(g.open)
	require.NoError(t, (<-first).err)
	n, err := b.CountHit(context.Background(), key, 1)
	require.NoError(t, err)
	bk, _ := hitKeys(defaultKeyPrefix, key)
	stored, err := raw.HGet(context.Background(), bk, fieldCount).Int64()
	require.NoError(t, err)
	assert.Equal(t, n, stored)
	assert.Equal(t, int64(2), n, "only the acknowledged hits are counted")
}

func TestCoalescedErrorsArePerRequest(t *testing.T) {
	b, g, raw := gatedBackend(t, nil)
	ctx := context.Background()
	// A key of the wrong type, set up before the batch.
	bad := BucketKey{Bucket: 9, ID: "bad"}
	bk, _ := hitKeys(defaultKeyPrefix, bad)
	require.NoError(t, raw.Set(ctx, bk, "x", 0).Err())

	hold := goHit(b, ctx, BucketKey{Bucket: 1, ID: "first"})
	<-g.entered
	// The script cache is gone: every EVALSHA of the next batch gets
	// NOSCRIPT and must be resent alone.
	require.NoError(t, raw.ScriptFlush(ctx).Err())
	var good []<-chan hitResult
	for i := 0; i < 5; i++ {
		good = append(good, goHit(b, ctx, BucketKey{Bucket: 1, ID: "good"}))
	}
	badRes := goHit(b, ctx, bad)
	waitQueued(t, b, 6)
	close(g.open)
	require.NoError(t, (<-hold).err)

	r := <-badRes
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "WRONGTYPE")
	for _, ch := range good {
		require.NoError(t, (<-ch).err, "one bad request does not fail its neighbours")
	}
	info, err := b.GetBucket(ctx, BucketKey{Bucket: 1, ID: "good"})
	require.NoError(t, err)
	assert.Equal(t, int64(5), info.Count, "each NOSCRIPT hit counted once")
}

func TestCoalescedQueueIsBounded(t *testing.T) {
	b, g, _ := gatedBackend(t, func(o *Options) { o.CoalesceMaxQueue = 2 })
	key := BucketKey{Bucket: 1, ID: "q"}
	// One hit in flight, sent by its caller; two fill the queue.
	held := []<-chan hitResult{goHit(b, context.Background(), key)}
	<-g.entered
	for i := 0; i < 2; i++ {
		held = append(held, goHit(b, context.Background(), key))
	}
	waitQueued(t, b, 2)

	// A full queue pushes back: the next caller waits, and leaves when its
	// context ends, without having queued anything.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	r := <-goHit(b, ctx, key)
	require.True(t, errors.Is(r.err, context.DeadlineExceeded), "%v", r.err)
	waitQueued(t, b, 2)

	close(g.open)
	for _, ch := range held {
		require.NoError(t, (<-ch).err)
	}
	info, err := b.GetBucket(context.Background(), key)
	require.NoError(t, err)
	assert.Equal(t, int64(3), info.Count, "the pushed-back caller counted nothing")
}

func TestCoalesceOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, o := range []Options{
		{Coalesce: 7}, {CoalesceMaxBatch: -1}, {CoalesceMaxQueue: -1}, {CoalesceFlushers: -1}, {CoalesceTimeout: -1},
	} {
		o.ExpiryMs, o.Client = 1000, client
		_, err := NewClusterBackend(o)
		assert.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
	b, err := NewClusterBackend(Options{ExpiryMs: 1000, Client: client, Coalesce: CoalesceOff})
	require.NoError(t, err)
	assert.Nil(t, b.co)
	b, err = NewClusterBackend(Options{ExpiryMs: 1000, Client: client})
	require.NoError(t, err)
	require.NotNil(t, b.co, "coalescing is on by default")
	assert.Equal(t, defaultCoalesceMaxBatch, b.co.maxBatch)
	assert.Equal(t, defaultCoalesceMaxQueue, cap(b.co.slots))
	assert.Equal(t, defaultCoalesceFlushers, b.co.flushers)
}
