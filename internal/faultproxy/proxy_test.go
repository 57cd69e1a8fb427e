package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echo starts a TCP server that sends back what it reads, and stops it
// when t ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// dial connects to p, and closes the connection when t ends.
func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := p.Dial(context.Background(), "tcp", "192.0.2.1:6379") // the address is ignored
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	return readN(t, c, len(msg))
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

// await fails t when ch is not closed within a bound that only a hang
// reaches.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("hang: %s", what)
	}
}

func TestHoldReply(t *testing.T) {
	p := New(t, echo(t))
	c := dial(t, p)
	if got := roundTrip(t, c, "ping"); got != "ping" {
		t.Fatalf("forwarded %q, want ping", got)
	}

	h := p.HoldReply("slow")
	if _, err := c.Write([]byte("slow-1")); err != nil {
		t.Fatal(err)
	}
	await(t, h.Taken(), "the request takes the hold")
	// Nothing comes back while the reply is held, however long one waits:
	// a short read deadline only ends the wait.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := c.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes (%v) of a held reply", n, err)
	}
	select {
	case <-h.Released():
		t.Fatal("released before Release")
	default:
	}
	c.SetReadDeadline(time.Time{})
	h.Release()
	if got := readN(t, c, 6); got != "slow-1" {
		t.Fatalf("released %q, want slow-1", got)
	}
	await(t, h.Released(), "Released after the reply went")

	// The hold is used up: the same marker passes now.
	if got := roundTrip(t, c, "slow-2"); got != "slow-2" {
		t.Fatalf("forwarded %q, want slow-2", got)
	}
}

func TestHoldsAreTakenInOrder(t *testing.T) {
	p := New(t, echo(t))
	a, b := dial(t, p), dial(t, p)
	first, second := p.HoldReply("k"), p.HoldReply("k")
	if _, err := a.Write([]byte("k-a")); err != nil {
		t.Fatal(err)
	}
	await(t, first.Taken(), "the first hold is taken first")
	if _, err := b.Write([]byte("k-b")); err != nil {
		t.Fatal(err)
	}
	await(t, second.Taken(), "the second request takes the second hold")
	second.Release()
	if got := readN(t, b, 3); got != "k-b" {
		t.Fatalf("got %q", got)
	}
	first.Release()
	if got := readN(t, a, 3); got != "k-a" {
		t.Fatalf("got %q", got)
	}
}

func TestCount(t *testing.T) {
	p := New(t, echo(t))
	c := dial(t, p)
	ctr := p.Count("abc")
	roundTrip(t, c, "abcab") // one, and the start of a second ...
	roundTrip(t, c, "c-abc") // ... ended by the next read: three in all
	// Another connection adds to the same counter.
	roundTrip(t, dial(t, p), "xabcx")
	if n := ctr.Load(); n != 4 {
		t.Fatalf("counted %d, want 4", n)
	}
	if n := p.Count("abc").Load(); n != 0 {
		t.Fatalf("a new counter starts at %d, want 0", n)
	}
}

func TestCloseLetsHeldRepliesGo(t *testing.T) {
	p := New(t, echo(t))
	c := dial(t, p)
	h := p.HoldReply("x")
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	await(t, h.Taken(), "the request takes the hold")
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	await(t, closed, "Close returns with a reply held")
	await(t, h.Released(), "a held reply is let go on Close")
	io.ReadAll(c) // ends: the proxy closed the connection
}
