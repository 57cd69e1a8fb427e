// Package hammertest holds the test helpers that the packages and nested
// modules of this repository share: a settable clock, and a Limiter over a
// fresh miniredis.
package hammertest

import (
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// WindowStart is the start of a minute, so of every window of 1s, 10s and
// 1m.
var WindowStart = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Clock is a settable clock for hammer.WithClock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the time the clock is set to.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Timeout is the dial, read and write timeout of NewLimiter's client:
// short, so that tests of a stopped miniredis end quickly.
const Timeout = 200 * time.Millisecond

// NewLimiter returns a Limiter over a fresh miniredis (closed when t
// ends), reached through the cluster client with Timeout, on a Clock set
// to WindowStart, with opts after the clock.
func NewLimiter(t testing.TB, opts ...hammer.Option) (*hammer.Limiter, *miniredis.Miniredis, *Clock) {
	t.Helper()
	m := miniredis.RunT(t)
	b, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{m.Addr()},
		RedisOptions: &redis.ClusterOptions{
			DialTimeout:  Timeout,
			ReadTimeout:  Timeout,
			WriteTimeout: Timeout,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	c := NewClock(WindowStart)
	return hammer.New(b, append([]hammer.Option{hammer.WithClock(c.Now)}, opts...)...), m, c
}
