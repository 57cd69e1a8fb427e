package hammer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coalescing: when many goroutines hit at once, their script calls are
// queued per master and sent as pipelines, one pipeline per flush. There is
// no timer: a flush starts as soon as one of the node's flushers is free,
// and carries whatever queued while the previous flushes were in flight. A
// caller that finds its master idle sends its own hit at once, from its own
// goroutine, as the direct path does: a lone caller pays nothing for
// coalescing.

// coalescer queues hits per node and flushes them as pipelines.
type coalescer struct {
	b        *ClusterBackend
	cc       *redis.ClusterClient // nil: one node, b.client itself
	slots    chan struct{}        // one per queued or in-flight hit: the bound
	maxBatch int
	flushers int           // flushes in flight per node, at most
	timeout  time.Duration // of one flush

	mu     sync.RWMutex
	queues map[redis.Cmdable]*nodeQueue
}

// nodeQueue is the queue of one node.
type nodeQueue struct {
	node    redis.Cmdable // the node's client: Pipeline
	mu      sync.Mutex
	pending []*hitReq
	active  int // running flushers
}

// hitReq is one queued hit. The flusher sends on done once n and err are
// set; a caller that gave up leaves it behind, and the result is dropped.
type hitReq struct {
	keys [2]string
	now  int64
	inc  int64
	n    int64
	err  error
	done chan struct{}
}

var reqPool = sync.Pool{New: func() any { return &hitReq{done: make(chan struct{}, 1)} }}

func newCoalescer(b *ClusterBackend, maxQueue, maxBatch, flushers int, timeout time.Duration) *coalescer {
	c := &coalescer{
		b:        b,
		slots:    make(chan struct{}, maxQueue),
		maxBatch: maxBatch,
		flushers: flushers,
		timeout:  timeout,
		queues:   map[redis.Cmdable]*nodeQueue{},
	}
	c.cc, _ = b.client.(*redis.ClusterClient)
	return c
}

// hit counts a hit through the node's queue. It returns when the hit is
// counted, or at once when ctx ends, with ctx's error.
func (c *coalescer) hit(ctx context.Context, bucket, index string, now, inc int64) (int64, error) {
	q, err := c.queue(ctx, bucket)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	if q.active == 0 {
		// The node is idle: send this hit now, and let the callers that
		// come meanwhile queue for the next flush.
		q.active++
		q.mu.Unlock()
		n, err := c.b.runHit(ctx, []string{bucket, index}, now, inc)
		if obs := c.b.cfg.batchObs; obs != nil {
			obs.ObserveBatch(ctx, 1)
		}
		c.finished(q)
		return n, err
	}
	q.mu.Unlock()

	select { // backpressure: wait for room in the bounded queue
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	r := reqPool.Get().(*hitReq)
	r.keys = [2]string{bucket, index}
	r.now, r.inc, r.n, r.err = now, inc, 0, nil

	q.mu.Lock()
	q.pending = append(q.pending, r)
	start := q.active < c.flushers
	if start {
		q.active++
	}
	q.mu.Unlock()
	if start {
		go c.flush(q)
	}

	select {
	case <-r.done:
		n, err := r.n, r.err
		reqPool.Put(r)
		return n, err
	case <-ctx.Done():
		return 0, ctx.Err() // r stays with the flusher; its result is dropped
	}
}

// queue returns the queue of the master that owns key.
func (c *coalescer) queue(ctx context.Context, key string) (*nodeQueue, error) {
	var node redis.Cmdable = c.b.client
	if c.cc != nil {
		n, err := c.cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		node = n
	}
	c.mu.RLock()
	q := c.queues[node]
	c.mu.RUnlock()
	if q != nil {
		return q, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q = c.queues[node]; q == nil {
		q = &nodeQueue{node: node}
		c.queues[node] = q
	}
	return q, nil
}

// finished ends a caller's own send, and starts a flusher for the hits that
// queued meanwhile.
func (c *coalescer) finished(q *nodeQueue) {
	q.mu.Lock()
	q.active--
	start := len(q.pending) > 0 && q.active < c.flushers
	if start {
		q.active++
	}
	q.mu.Unlock()
	if start {
		go c.flush(q)
	}
}

// flushBuf holds a flusher's slices, reused across flushers.
type flushBuf struct {
	batch []*hitReq
	cmds  []*redis.Cmd
}

var flushBufs = sync.Pool{New: func() any { return new(flushBuf) }}

// flush sends the queue's hits as pipelines of at most maxBatch, until the
// queue is empty.
func (c *coalescer) flush(q *nodeQueue) {
	buf := flushBufs.Get().(*flushBuf)
	defer flushBufs.Put(buf)
	batch, cmds := buf.batch[:0], buf.cmds[:0]
	defer func() { buf.batch, buf.cmds = batch[:0], cmds[:0] }()
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.active--
			q.mu.Unlock()
			return
		}
		n := min(len(q.pending), c.maxBatch)
		batch = append(batch[:0], q.pending[:n]...)
		rest := copy(q.pending, q.pending[n:])
		clear(q.pending[rest:])
		q.pending = q.pending[:rest]
		q.mu.Unlock()

		cmds = c.exec(q.node, batch, cmds[:0])
		clear(batch)
	}
}

// exec sends one batch as a pipeline and hands each caller its result.
func (c *coalescer) exec(node redis.Cmdable, batch []*hitReq, cmds []*redis.Cmd) []*redis.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	pipe := node.Pipeline()
	for _, r := range batch {
		cmds = append(cmds, pipe.EvalSha(ctx, hitSHA, r.keys[:], r.now, r.inc, c.b.expiryArg, c.b.indexArg))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	if obs := c.b.cfg.batchObs; obs != nil {
		obs.ObserveBatch(ctx, len(batch))
	}
	for i, r := range batch {
		r.n, r.err = cmds[i].Int64()
		if r.err != nil && notRun(r.err) {
			// The node did not run it: a NOSCRIPT, a redirect, a slot
			// being moved or a failover. Send it alone, the way the direct
			// path does: EVAL on NOSCRIPT, redirects followed.
			r.n, r.err = c.b.runHit(ctx, r.keys[:], r.now, r.inc)
		}
		r.done <- struct{}{}
		<-c.slots
	}
	clear(cmds)
	return cmds[:0]
}

// notRun tells whether a reply error means the node did not run the
// command, so that sending it again cannot count a hit twice.
func notRun(err error) bool {
	if errors.Is(err, redis.ErrClosed) {
		return true // the node's client was closed after a slot-map reload
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	switch firstWord(rerr.Error()) {
	case "NOSCRIPT", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "LOADING", "MASTERDOWN":
		return true
	}
	return false
}
