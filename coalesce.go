package hammer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coalescing: when many goroutines hit at once, their script calls are
// queued per master and sent as pipelines, one pipeline per flush. There is
// no timer: a flush starts as soon as one of the master's senders is free,
// and carries whatever queued while the previous sends were in flight. A
// caller that finds its master idle sends its own call at once, from its
// own goroutine, as the direct path does: a lone caller pays nothing for
// coalescing. Every send, alone or in a pipeline, goes through sender.send.

// coalescer queues calls per master and flushes them as pipelines.
type coalescer struct {
	s        *sender
	cc       *redis.ClusterClient // nil: one node, s.client itself
	slots    chan struct{}        // one token per queued or in-flight call: the bound
	maxBatch int
	flushers int           // senders per master, at most: lone callers and flushers
	timeout  time.Duration // of one flush
	batchObs BatchObserver

	mu     sync.RWMutex
	queues map[conn]*nodeQueue
}

// nodeQueue is the queue of one master.
//
// active counts the master's senders: a lone caller sending its own call,
// or a flusher goroutine. It goes up when a caller finds it 0 and sends
// its own call, or when a call is queued while it is below flushers and a
// flusher is started; it goes down when a lone caller's send returns (and
// a flusher is started in its place if calls queued meanwhile), or when a
// flusher finds the queue empty and ends. Both happen under mu, so a
// queued call always has a sender that will take it.
type nodeQueue struct {
	node    conn // the master's client
	mu      sync.Mutex
	pending []*call
	active  int
}

// Life of a queued call (call.state). The caller and the flusher each move
// it on with a compare-and-swap, so exactly one of them settles what the
// caller sees:
//
//	waiting → taken      the flusher took it from the queue to send it
//	waiting → abandoned  the caller's context ended first: never sent
//	taken   → done       the flusher settled it and signals done
//	taken   → left       the caller's context ended while it was sent:
//	                     the caller returns, and the result is dropped
const (
	waiting int32 = iota
	taken
	abandoned
	done
	left
)

// queued is what a call in a master's queue holds besides the call
// itself. The call holds a token of slots from the moment it is queued
// until the flusher removes it from the queue (abandoned) or has sent it
// (taken).
type queued struct {
	ctx   context.Context // the caller's
	state atomic.Int32
	done  chan struct{}
}

func newCoalescer(s *sender, maxQueue, maxBatch, flushers int, timeout time.Duration, obs BatchObserver) *coalescer {
	c := &coalescer{
		s:        s,
		slots:    make(chan struct{}, maxQueue),
		maxBatch: maxBatch,
		flushers: flushers,
		timeout:  timeout,
		batchObs: obs,
		queues:   map[conn]*nodeQueue{},
	}
	c.cc, _ = s.client.(*redis.ClusterClient)
	return c
}

// do sends cl through the queue of its master, and returns how it ended:
// settled, or left at once when ctx ends. A call whose context ends before
// it is sent is never sent.
func (c *coalescer) do(ctx context.Context, cl *call) outcome {
	q, err := c.queue(ctx, cl.keys[0])
	if err != nil {
		return outcome{err: err}
	}
	q.mu.Lock()
	if q.active == 0 {
		// The master is idle: send this call now, and let the calls that
		// come meanwhile queue for the next flush.
		q.active++
		q.mu.Unlock()
		c.s.send(ctx, q.node, []*call{cl})
		c.observe(ctx, 1)
		c.finished(q)
		return cl.outcome()
	}
	q.mu.Unlock()

	select { // backpressure: wait for room in the bounded queue
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return outcome{err: ctx.Err()}
	}
	if err := ctx.Err(); err != nil { // select picks at random when both are ready
		<-c.slots
		return outcome{err: err}
	}
	r := cl
	r.ctx, r.done = ctx, doneChans.Get().(chan struct{})
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
	out := r.wait()
	// Every way out of wait leaves done empty, and the flusher sends on it
	// only to a caller that waits: it can serve another call.
	doneChans.Put(r.done)
	return out
}

// doneChans holds the done channels of queued calls, for reuse.
var doneChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// wait waits until the queued call r is settled or its caller's context
// ends, and returns how it ended.
func (r *call) wait() outcome {
	select {
	case <-r.done:
		return r.outcome()
	case <-r.ctx.Done():
		if r.state.CompareAndSwap(waiting, abandoned) {
			return outcome{err: r.ctx.Err()} // never sent
		}
		if r.state.CompareAndSwap(taken, left) {
			return outcome{err: r.ctx.Err(), ran: true} // on its way: may run
		}
		<-r.done // settled meanwhile
		return r.outcome()
	}
}

// queue returns the queue of the master that owns key.
func (c *coalescer) queue(ctx context.Context, key string) (*nodeQueue, error) {
	var node conn = c.s.client
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

// finished ends a lone caller's send, and starts a flusher for the calls
// that queued meanwhile.
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

// flush sends the queue's calls as pipelines of at most maxBatch, until
// the queue is empty.
func (c *coalescer) flush(q *nodeQueue) {
	var batch, calls []*call
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

		calls = calls[:0]
		for _, r := range batch {
			if !r.state.CompareAndSwap(waiting, taken) {
				<-c.slots // abandoned by its caller: never sent
				continue
			}
			if err := r.ctx.Err(); err != nil {
				r.err = err // its caller is leaving: never sent
				r.settle()
				<-c.slots
				continue
			}
			calls = append(calls, r)
		}
		if len(calls) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			c.s.sendMany(ctx, q.node, calls)
			c.observe(ctx, len(calls))
			cancel()
			for _, r := range calls {
				r.settle()
				<-c.slots
			}
		}
		clear(batch)
		clear(calls)
	}
}

// settle hands a taken call's result to its caller, unless the caller left.
func (r *call) settle() {
	if r.state.CompareAndSwap(taken, done) {
		r.done <- struct{}{}
	}
}

func (c *coalescer) observe(ctx context.Context, size int) {
	if c.batchObs != nil {
		c.batchObs.ObserveBatch(ctx, size)
	}
}
