// Package faultproxy is a TCP proxy on 127.0.0.1 for tests that need a Redis
// node to answer late. It forwards bytes both ways, as they come; it can hold
// the reply to a chosen request after the node has run it, and count the
// requests that carry a given string.
//
//	p := faultproxy.New(t, m.Addr())
//	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), Dialer: p.Dial})
//	h := p.HoldReply("user:1") // the next request naming user:1 ...
//	// ... send it; it runs on the node at once
//	<-h.Taken()
//	h.Release() // its reply goes back now
//
// The proxy knows nothing of the protocol: a "request" is whatever one read
// from the client returns, so a pipeline written at once is one request,
// and a reply is whatever the node sends next on that connection. That is
// exact for a client that waits for each reply before it writes again, as
// go-redis does on a connection.
package faultproxy

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards every connection it accepts to one target address.
type Proxy struct {
	ln     net.Listener
	target string
	quit   chan struct{}  // closed by Close: every hold is let go
	wg     sync.WaitGroup // the accept loop and the copiers

	mu        sync.Mutex
	holds     []*Hold    // armed and not yet taken, oldest first
	counters  []*Counter // every counter made
	maxMarker int        // the longest marker of a hold or counter
	conns     map[net.Conn]struct{}
	closed    bool
}

// New starts a proxy to target and closes it when tb ends.
func New(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("faultproxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, quit: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Dial connects to the proxy, whatever addr is. As the Dialer of a go-redis
// client, it sends every connection through the proxy, also those to the
// nodes a cluster client learns from CLUSTER SLOTS.
func (p *Proxy) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.Addr())
}

// Hold is a reply that the proxy holds back.
type Hold struct {
	marker      []byte
	taken       chan struct{}
	release     chan struct{}
	released    chan struct{}
	releaseOnce sync.Once
}

// HoldReply arms a hold. The first request sent after this call whose bytes
// contain marker takes it (holds armed earlier with a matching marker are
// taken first, one per request): the request goes to the node at once, and
// what the node sends back on that connection is held until Release or
// Close.
func (p *Proxy) HoldReply(marker string) *Hold {
	h := &Hold{
		marker:   []byte(marker),
		taken:    make(chan struct{}),
		release:  make(chan struct{}),
		released: make(chan struct{}),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxMarker = max(p.maxMarker, len(marker))
	p.holds = append(p.holds, h)
	return h
}

// Taken is closed when a request has taken the hold: it has been passed to
// the node.
func (h *Hold) Taken() <-chan struct{} { return h.taken }

// Release lets the held reply go. It may be called more than once, and
// before the hold is taken: the reply then goes back at once.
func (h *Hold) Release() { h.releaseOnce.Do(func() { close(h.release) }) }

// Released is closed once the held reply has been forwarded, or dropped
// because a connection was closed.
func (h *Hold) Released() <-chan struct{} { return h.released }

// Counter counts the occurrences of a marker in the bytes clients send.
type Counter struct {
	marker []byte
	n      atomic.Int64
}

// Count returns a counter of the occurrences of marker in the bytes that
// clients send through the proxy from now on, over all connections. A
// marker split between two reads is counted once.
func (p *Proxy) Count(marker string) *Counter {
	c := &Counter{marker: []byte(marker)}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxMarker = max(p.maxMarker, len(marker))
	p.counters = append(p.counters, c)
	return c
}

// Load returns the occurrences counted so far.
func (c *Counter) Load() int64 { return c.n.Load() }

// Close stops the proxy: it closes every connection, lets every held reply
// go (to be dropped), and returns once all its goroutines have ended. It may
// be called more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track adds c to the connections Close closes, and reports false (having
// closed c) when the proxy is closed already.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack drops a connection that has been closed.
func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			client.Close()
			server.Close()
			return
		}
		c := &conn{p: p, client: client, server: server, armed: make(chan *Hold, 64), done: make(chan struct{})}
		p.wg.Add(2)
		go c.up()
		go c.down()
	}
}

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	client, server net.Conn
	armed          chan *Hold    // holds taken by requests, for down
	done           chan struct{} // closed when up ends: no hold comes any more
}

// up copies client to server. A request takes the first armed hold whose
// marker it carries, and adds to the counters.
func (c *conn) up() {
	defer c.p.wg.Done()
	defer close(c.done)
	defer c.p.untrack(c.server)
	defer c.server.Close()
	var tail []byte // the end of the previous read, for markers split in two
	buf := make([]byte, 64<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			window := append(tail, buf[:n]...)
			c.scan(window, len(tail))
			if _, werr := c.server.Write(buf[:n]); werr != nil {
				return
			}
			keep := min(len(window), max(c.p.keep(), 0))
			tail = append(tail[:0], window[len(window)-keep:]...)
		}
		if err != nil {
			return
		}
	}
}

// keep returns how many bytes of a read are kept to find a marker split
// between two reads.
func (p *Proxy) keep() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxMarker - 1
}

// scan counts the markers in window that end after window[:from], and hands
// the first armed hold found there to down.
func (c *conn) scan(window []byte, from int) {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ctr := range p.counters {
		if n := occurrences(window, ctr.marker, from); n > 0 {
			ctr.n.Add(int64(n))
		}
	}
	for i, h := range p.holds {
		if occurrences(window, h.marker, from) > 0 {
			p.holds = append(p.holds[:i], p.holds[i+1:]...)
			c.armed <- h // before the request is written: its reply is held
			close(h.taken)
			return
		}
	}
}

// occurrences counts the matches of m in w that end after w[:from].
func occurrences(w, m []byte, from int) int {
	if len(m) == 0 {
		return 0
	}
	n := 0
	for i := max(0, from-len(m)+1); ; {
		j := bytes.Index(w[i:], m)
		if j < 0 {
			return n
		}
		n++
		i += j + 1
	}
}

// down copies server to client. Bytes that come after a request took a
// hold wait for its release.
func (c *conn) down() {
	defer c.p.wg.Done()
	defer c.p.untrack(c.client)
	defer c.client.Close()
	var pending []*Hold // taken holds not yet released, when down stops
	defer func() {
		for _, h := range pending {
			close(h.released)
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			for h := range takenHolds(c.armed) {
				pending = append(pending, h)
				select {
				case <-h.release:
				case <-c.p.quit:
				}
			}
			_, werr := c.client.Write(buf[:n])
			for _, h := range pending {
				close(h.released)
			}
			pending = pending[:0]
			if werr != nil {
				err = werr
			}
		}
		if err != nil {
			// Holds taken by requests whose reply never came are released
			// once up has ended, and no request takes one any more.
			c.client.Close()
			<-c.done
			for h := range takenHolds(c.armed) {
				pending = append(pending, h)
			}
			return
		}
	}
}

// takenHolds yields the holds in armed without waiting for more.
func takenHolds(armed chan *Hold) func(yield func(*Hold) bool) {
	return func(yield func(*Hold) bool) {
		for {
			select {
			case h := <-armed:
				if !yield(h) {
					return
				}
			default:
				return
			}
		}
	}
}
