package httplimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecondsUp(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{1001 * time.Millisecond, 2},
		{time.Minute, 60},
		{time.Minute + time.Millisecond, 61},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, secondsUp(c.d), "%v", c.d)
	}
}

func TestDraft06Policy(t *testing.T) {
	cases := []struct {
		rules []hammer.Rule
		want  string
	}{
		{[]hammer.Rule{hammer.FixedWindow(time.Millisecond, 3)}, "3;w=1"},
		{[]hammer.Rule{hammer.FixedWindow(500*time.Millisecond, 3)}, "3;w=1"},
		{[]hammer.Rule{hammer.FixedWindow(1500*time.Millisecond, 3)}, "3;w=2"},
		{[]hammer.Rule{hammer.FixedWindow(time.Hour, 3)}, "3;w=3600"},
		{[]hammer.Rule{hammer.SlidingWindow(time.Minute, 100), hammer.TokenBucket(1, time.Second, 10)}, "100;w=60, 10;w=10"},
		{[]hammer.Rule{hammer.LeakyBucket(2, time.Minute, 5)}, "5;w=150"},
	}
	for _, c := range cases {
		ps := Rule{Rules: c.rules}.policies()
		assert.Equal(t, c.want, draft06Policy(ps), "%v", c.rules)
	}
}

func TestPrefersJSON(t *testing.T) {
	cases := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/html"}, false},
		{[]string{"application/json"}, true},
		{[]string{"Application/JSON"}, true},
		{[]string{"application/*"}, true},
		{[]string{"application/json, text/plain, */*"}, true}, // tie: the first named wins
		{[]string{"text/plain, application/json"}, false},
		{[]string{"text/plain;q=0.5, application/json"}, true},
		{[]string{"application/json;q=0.5, text/plain"}, false},
		{[]string{"application/json;q=0.9, */*;q=0.1"}, true},
		{[]string{"application/json;q=0"}, false},
		{[]string{"*/*, application/json"}, true}, // named beats the wildcard
		{[]string{"text/*, application/json"}, true},
		{[]string{"text/html", "application/json"}, true},
		{[]string{"application/json;q=bogus"}, true},
		{[]string{";;;, application/json"}, true},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, prefersJSON(c.accept), "%q", c.accept)
	}
}

func TestHeaderSlicesAreOwn(t *testing.T) {
	for _, opts := range [][]Option{{WithLegacyHeaders()}, {WithDraft06Headers(), WithLegacyHeaders()}} {
		var c config
		for _, o := range opts {
			o(&c)
		}
		rule := Rule{Scale: time.Minute, Limit: 7}
		hv, err := newHeaderValues(rule, rule.policies(), c)
		require.NoError(t, err)
		h := http.Header{}
		hv.set(h, hammer.Decision{Allowed: true, Limit: 7, Remaining: 3, ResetAfter: 1500 * time.Millisecond})
		for name := range h {
			h[name][0] = "changed"
		}
		h.Add(hLegacyRemain, "x")

		h2 := http.Header{}
		hv.set(h2, hammer.Decision{Allowed: true, Limit: 7, Remaining: 2, ResetAfter: time.Second})
		want := http.Header{
			"Ratelimit-Policy": {`"fixed_window(1m0s,7)";q=7;w=60`}, "Ratelimit": {`"fixed_window(1m0s,7)";r=2;t=1`},
			"X-Ratelimit-Limit": {"7"}, "X-Ratelimit-Remaining": {"2"}, "X-Ratelimit-Reset": {"1"},
		}
		if c.draft06 {
			want = http.Header{
				"Ratelimit-Limit": {"7"}, "Ratelimit-Remaining": {"2"}, "Ratelimit-Reset": {"1"}, "Ratelimit-Policy": {"7;w=60"},
				"X-Ratelimit-Limit": {"7"}, "X-Ratelimit-Remaining": {"2"}, "X-Ratelimit-Reset": {"1"},
			}
		}
		assert.Equal(t, want, h2)
		for name, v := range h {
			if name == hLegacyRemain {
				assert.Equal(t, []string{"changed", "x"}, v)
				continue
			}
			assert.Equal(t, []string{"changed"}, v, name)
		}
	}
}
