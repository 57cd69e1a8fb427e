package hammer

import (
	"context"
	"fmt"
	"sync"
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

func TestDenyCacheIsBounded(t *testing.T) {
	c := newDenyCache(64)
	for i := 0; i < 10_000; i++ {
		c.deny(fmt.Sprintf("id-%d", i), 1000, 5, 1, 6)
		c.deny(fmt.Sprintf("id-%d", i), 2000, 5, 1, 6) // a second window of the same id
	}
	assert.LessOrEqual(t, c.len(), 64)
	assert.Greater(t, c.len(), 0)
	c.forget("id-9999")
	_, ok := c.denied("id-9999", 1000, 5, 1)
	assert.False(t, ok)

	// A newer window replaces an older one; an older one never replaces.
	c = newDenyCache(64)
	c.deny("x", 1000, 5, 7, 6)
	c.deny("x", 1000, 5, 8, 9)
	c.deny("x", 1000, 5, 6, 7)
	_, ok = c.denied("x", 1000, 5, 7)
	assert.False(t, ok)
	n, ok := c.denied("x", 1000, 5, 8)
	assert.True(t, ok)
	assert.Equal(t, int64(9), n)
	assert.Equal(t, 1, c.len())
}

func TestDenyCacheConcurrent(t *testing.T) {
	c := newDenyCache(128)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				id := fmt.Sprintf("id-%d", (i*7+w)%300)
				switch i % 3 {
				case 0:
					c.deny(id, 1000, 5, int64(i/100), 6)
				case 1:
					c.denied(id, 1000, 5, int64(i/100))
				default:
					if i%30 == 2 {
						c.forget(id)
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, c.len(), 128)
	total := 0
	for i := range c.shards {
		for _, es := range c.shards[i].m {
			total += len(es)
		}
	}
	assert.Equal(t, c.len(), total, "the entry count matches the maps")
}
