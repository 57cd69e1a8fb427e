package hammer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShadow checks shadow mode: decisions and charges as usual, denials
// turned into allowing Decisions with Shadow set, observed apart; and the
// near-limit signal on allowed checks.
func TestShadow(t *testing.T) {
	ctx := context.Background()
	b, _ := miniBackend(t)
	clk := newClock(1_700_000_000_000)
	shadowRec, realRec := &recorder{}, &recorder{}
	shadow := New(b, WithClock(clk.now), WithShadow(), WithObserver(shadowRec))
	enforced := New(b, WithClock(clk.now), WithObserver(realRec))

	t.Run("CheckRate", func(t *testing.T) {
		var got []Decision
		for i := 0; i < 12; i++ {
			d, err := shadow.CheckRate(ctx, "c", time.Second, 10)
			require.NoError(t, err)
			got = append(got, d)
		}
		for i, d := range got {
			assert.True(t, d.Allowed, i)
			assert.Equal(t, int64(i+1), d.Count, "denied hits still count")
			assert.Equal(t, i >= 10, d.Shadow, i)
		}
		// The shadow Limiter charged as usual: an enforcing one sees 13.
		d, err := enforced.CheckRate(ctx, "c", time.Second, 10)
		require.NoError(t, err)
		assert.Equal(t, Decision{Count: 13, Limit: 10, ResetAfter: d.ResetAfter}, d)
		assert.Equal(t, append(repeat(OutcomeAllowed, 10), OutcomeShadowDenied, OutcomeShadowDenied), shadowRec.outcomes())
		assert.Equal(t, []Outcome{OutcomeDenied}, realRec.outcomes())
		var near []bool
		for _, ev := range shadowRec.events {
			near = append(near, ev.NearLimit)
		}
		// Remaining after each allowed hit: 9..0; at most 1 of 10 is near.
		assert.Equal(t, []bool{false, false, false, false, false, false, false, false, true, true, false, false}, near)
	})

	t.Run("Hit", func(t *testing.T) {
		rules := []Rule{TokenBucket(1, time.Second, 2), FixedWindow(time.Minute, 100)}
		var got []Decision
		for i := 0; i < 3; i++ {
			d, err := shadow.Hit(ctx, "h", rules...)
			require.NoError(t, err)
			got = append(got, d)
		}
		assert.False(t, got[0].Shadow)
		assert.False(t, got[1].Shadow)
		assert.True(t, got[2].Allowed)
		assert.True(t, got[2].Shadow)
		assert.Equal(t, time.Second, got[2].RetryAfter, "the denial's fields are kept")
		// A denied Hit charges nothing, in shadow mode too.
		peek, err := enforced.Peek(ctx, "h", rules...)
		require.NoError(t, err)
		assert.Equal(t, int64(98), peek.Rules[1].Remaining)
	})
}

// TestShadowDenyCache checks that a denial answered by the deny cache is
// a shadow denial too.
func TestShadowDenyCache(t *testing.T) {
	ctx := context.Background()
	b, _ := miniBackend(t)
	rec := &recorder{}
	l := New(b, WithClock(newClock(1_700_000_000_000).now), WithShadow(), WithDenyCache(10), WithObserver(rec))
	for i := 0; i < 3; i++ {
		d, err := l.CheckRate(ctx, "c", time.Second, 1)
		require.NoError(t, err)
		assert.True(t, d.Allowed)
		assert.Equal(t, i > 0, d.Shadow)
		assert.Equal(t, i > 1, d.Cached)
	}
	assert.Equal(t, []Outcome{OutcomeAllowed, OutcomeShadowDenied, OutcomeShadowDenied}, rec.outcomes())
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}
