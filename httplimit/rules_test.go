package httplimit

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRules: several hammer rules on one route, charged all or nothing,
// with one item per rule in RateLimit.
func TestRules(t *testing.T) {
	l, m, c := newLimiter(t)
	c.Set(windowStart.Add(10 * time.Second))
	var served atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		ok(w, r)
	})
	h := Middleware(l, Rule{
		Rules:    []hammer.Rule{hammer.SlidingWindow(time.Minute, 5), hammer.TokenBucket(1, 2*time.Second, 2)},
		Names:    []string{"minute"},
		IDPrefix: "rules:",
	})(next)
	const policy = `"minute";q=5;w=60, "token_bucket(1/2s,2)";q=2;w=4`

	for i, want := range []string{
		`"minute";r=4;t=110, "token_bucket(1/2s,2)";r=1;t=2`,
		`"minute";r=3;t=110, "token_bucket(1/2s,2)";r=0;t=2`,
	} {
		w := serve(h, "203.0.113.7:1")
		require.Equal(t, http.StatusOK, w.Code, "request %d", i+1)
		assert.Equal(t, []string{policy}, w.Header().Values("RateLimit-Policy"))
		assert.Equal(t, []string{want}, w.Header().Values("RateLimit"))
		assert.Empty(t, w.Header().Values("Retry-After"))
	}

	// The bucket is empty: denied 500ms later, with the exact wait, 1.5s,
	// rounded up; nothing is charged, so the window keeps 3.
	c.Set(windowStart.Add(10*time.Second + 500*time.Millisecond))
	w := serve(h, "203.0.113.7:1")
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, `"minute";r=3;t=2, "token_bucket(1/2s,2)";r=0;t=2`, w.Header().Get("RateLimit"))
	assert.Equal(t, "2", w.Header().Get("Retry-After"))
	assert.Equal(t, "rate limit exceeded, retry in 2 s\n", w.Body.String())
	assert.Equal(t, int64(2), served.Load())

	// 1ms before the token: still denied, Retry-After rounded up to 1.
	c.Set(windowStart.Add(11*time.Second + 999*time.Millisecond))
	w = serve(h, "203.0.113.7:1")
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))

	c.Set(windowStart.Add(12 * time.Second))
	w = serve(h, "203.0.113.7:1")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `"minute";r=2;t=108, "token_bucket(1/2s,2)";r=0;t=2`, w.Header().Get("RateLimit"))

	// Another client has rules of its own; the keys carry the prefix.
	assert.Equal(t, http.StatusOK, serve(h, "203.0.113.8:1").Code)
	for _, k := range m.Keys() {
		assert.Contains(t, k, "rules:", "key %q", k)
	}
}

// TestRulesCountExactly: of 200 concurrent requests of one client under a
// limit of 10, exactly 10 are allowed, with Rules as with Scale and Limit.
// The client has no read timeout: 200 scripts queue up on one miniredis,
// and a reply that comes late must not turn into an error.
func TestRulesCountExactly(t *testing.T) {
	m := miniredis.RunT(t)
	b, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:     60 * 60 * 1000,
		InitServers:  []string{m.Addr()},
		RedisOptions: &redis.ClusterOptions{ReadTimeout: -1, WriteTimeout: -1, PoolSize: 200},
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	l := hammer.New(b, hammer.WithClock(func() time.Time { return windowStart }))
	for _, rule := range []Rule{
		{Rules: []hammer.Rule{hammer.FixedWindow(time.Minute, 10)}},
		{Rules: []hammer.Rule{hammer.SlidingWindow(time.Minute, 10), hammer.TokenBucket(1, time.Hour, 50)}, IDPrefix: "two:"},
		{Scale: time.Minute, Limit: 10, IDPrefix: "cr:"},
	} {
		h := Middleware(l, rule)(ok)
		var allowed, denied atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch serve(h, "203.0.113.7:1").Code {
				case http.StatusOK:
					allowed.Add(1)
				case http.StatusTooManyRequests:
					denied.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int64(10), allowed.Load(), "%+v", rule.Rules)
		assert.Equal(t, int64(190), denied.Load(), "%+v", rule.Rules)
	}
}

// TestShadow: a shadow Limiter lets would-be denials through to the
// handler, with the RateLimit fields of the denial and no Retry-After.
func TestShadow(t *testing.T) {
	for _, rule := range []Rule{
		{Scale: time.Minute, Limit: 1},
		{Rules: []hammer.Rule{hammer.SlidingWindow(time.Minute, 1), hammer.TokenBucket(1, time.Second, 5)}},
	} {
		name := "CheckRate"
		if rule.Rules != nil {
			name = "Hit"
		}
		t.Run(name, func(t *testing.T) {
			l, _, c := newLimiter(t, hammer.WithShadow())
			c.Set(windowStart.Add(15 * time.Second))
			var served atomic.Int64
			h := Middleware(l, rule, WithLegacyHeaders())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				ok(w, r)
			}))
			require.Equal(t, http.StatusOK, serve(h, "203.0.113.7:1").Code)
			for i := 0; i < 3; i++ {
				w := serve(h, "203.0.113.7:1")
				assert.Equal(t, http.StatusOK, w.Code)
				assert.Equal(t, "ok", w.Body.String())
				assert.Empty(t, w.Header().Values("Retry-After"))
				assert.Equal(t, "0", w.Header().Get("X-RateLimit-Remaining"))
				items := w.Header().Get("RateLimit")
				if rule.Rules == nil {
					assert.Equal(t, `"fixed_window(1m0s,1)";r=0;t=45`, items)
				} else {
					// The window denies until the hit at 15s weighs nothing, at
					// the end of the next window (120s); the bucket allows.
					assert.Equal(t, `"sliding_window(1m0s,1)";r=0;t=105, "token_bucket(1/1s,5)";r=4;t=1`, items)
				}
			}
			assert.Equal(t, int64(4), served.Load(), "every request reached the handler")
		})
	}
}

// TestRulesDraft06AndLegacy: the draft-06 and X-RateLimit-* fields of
// several rules give the rule with the least left, and a denial's reset is
// its Retry-After.
func TestRulesDraft06AndLegacy(t *testing.T) {
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(30 * time.Second))
	h := Middleware(l, Rule{Rules: []hammer.Rule{hammer.FixedWindow(time.Minute, 5), hammer.TokenBucket(1, 10*time.Second, 2)}},
		WithDraft06Headers(), WithLegacyHeaders())(ok)
	check := func(w *http.Response, limit, remaining, reset string) {
		t.Helper()
		for _, prefix := range []string{"", "X-"} {
			assert.Equal(t, limit, w.Header.Get(prefix+"RateLimit-Limit"))
			assert.Equal(t, remaining, w.Header.Get(prefix+"RateLimit-Remaining"))
			assert.Equal(t, reset, w.Header.Get(prefix+"RateLimit-Reset"))
		}
		assert.Equal(t, "5;w=60, 2;w=20", w.Header.Get("RateLimit-Policy"))
		assert.Empty(t, w.Header.Values("RateLimit"))
	}
	w := serve(h, "203.0.113.7:1").Result()
	check(w, "2", "1", "10") // the bucket has the least left
	w = serve(h, "203.0.113.7:1").Result()
	check(w, "2", "0", "20")
	c.Set(windowStart.Add(32 * time.Second))
	w = serve(h, "203.0.113.7:1").Result()
	require.Equal(t, http.StatusTooManyRequests, w.StatusCode)
	check(w, "2", "0", "8")
	assert.Equal(t, "8", w.Header.Get("Retry-After"))
}

// TestRulesInvalid: what New refuses in Rules and Names, with the reasons
// callers can test.
func TestRulesInvalid(t *testing.T) {
	l, m, _ := newLimiter(t)
	fw := hammer.FixedWindow(time.Minute, 10)
	cases := []struct {
		name   string
		rule   Rule
		policy bool // wraps rlheader.ErrInvalidPolicy
		hammer bool // wraps hammer.ErrInvalidArgument
	}{
		{"zero rule", Rule{Rules: []hammer.Rule{{}}}, true, true},
		{"invalid rule", Rule{Rules: []hammer.Rule{fw, hammer.TokenBucket(1, 1500*time.Microsecond, 1)}}, true, true},
		{"rule twice", Rule{Rules: []hammer.Rule{fw, fw}, Names: []string{"a", "b"}}, true, false},
		{"Rules and Scale", Rule{Rules: []hammer.Rule{fw}, Scale: time.Minute}, false, false},
		{"Rules and Limit", Rule{Rules: []hammer.Rule{fw}, Limit: 10}, false, false},
		{"more names than rules", Rule{Rules: []hammer.Rule{fw}, Names: []string{"a", "b"}}, false, false},
		{"more names than the window", Rule{Scale: time.Minute, Limit: 10, Names: []string{"a", "b"}}, false, false},
		{"name twice", Rule{Rules: []hammer.Rule{fw, hammer.SlidingWindow(time.Minute, 10)}, Names: []string{"a", "a"}}, true, false},
		{"name not ASCII", Rule{Rules: []hammer.Rule{fw}, Names: []string{"d\u00e9bit"}}, true, false},
		{"name with a newline", Rule{Scale: time.Minute, Limit: 10, Names: []string{"a\nb"}}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := New(l, tc.rule)
			assert.Nil(t, mw)
			require.ErrorIs(t, err, ErrInvalidRule)
			assert.Equal(t, tc.policy, errors.Is(err, rlheader.ErrInvalidPolicy), "%v", err)
			assert.Equal(t, tc.hammer, errors.Is(err, hammer.ErrInvalidArgument), "%v", err)
			assert.PanicsWithError(t, err.Error(), func() { Middleware(l, tc.rule) })
		})
	}
	assert.EqualValues(t, 0, m.CommandCount(), "no Redis command")

	// Names may be fewer than the rules, and "" keeps the default.
	h := Middleware(l, Rule{Rules: []hammer.Rule{fw, hammer.TokenBucket(1, time.Second, 5)}, Names: []string{""}})(ok)
	assert.Equal(t, `"fixed_window(1m0s,10)";q=10;w=60, "token_bucket(1/1s,5)";q=5;w=5`, serve(h, "203.0.113.7:1").Header().Get("RateLimit-Policy"))
	h = Middleware(l, Rule{Scale: time.Minute, Limit: 10, Names: []string{`the "page" limit`}})(ok)
	assert.Equal(t, `"the \"page\" limit";q=10;w=60`, serve(h, "203.0.113.7:1").Header().Get("RateLimit-Policy"))
}

// noRules is a Backend that keeps no rules.
type noRules struct{ hammer.Backend }

// TestRulesWithoutRuleBackend: Rules on a backend that keeps none fail
// every request with 500, a server error.
func TestRulesWithoutRuleBackend(t *testing.T) {
	var got error
	lim := hammer.New(noRules{})
	h := Middleware(lim, Rule{Rules: []hammer.Rule{hammer.FixedWindow(time.Minute, 1)}},
		WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			DefaultErrorHandler(w, r, err)
		}))(ok)
	w := serve(h, "203.0.113.7:1")
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.ErrorIs(t, got, hammer.ErrNoRuleBackend)
	assert.Equal(t, http.StatusInternalServerError, ErrorStatus(fmt.Errorf("wrapped: %w", hammer.ErrNoRuleBackend)))
}

// BenchmarkHeaders measures the headers of one Decision of two rules: the
// policy is formatted when the middleware is built, so a request costs the
// RateLimit value and the slice that holds the values.
func BenchmarkHeaders(b *testing.B) {
	rules := []hammer.Rule{hammer.SlidingWindow(time.Minute, 100), hammer.TokenBucket(1, time.Second, 5)}
	rule := Rule{Rules: rules}
	hv, err := newHeaderValues(rule, rule.policies(), config{})
	require.NoError(b, err)
	d := hammer.Decision{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second, Rules: []hammer.RuleDecision{
		{Rule: rules[0], Allowed: true, Limit: 100, Remaining: 99, ResetAfter: 90 * time.Second},
		{Rule: rules[1], Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second},
	}}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		hv.set(h, d)
	}
	if !strings.Contains(h.Get("RateLimit"), "r=99") {
		b.Fatal(h)
	}
}
