package rlheader

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/hammertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// start is the start of a minute, so of every window of 1s, 10s and 1m.
var start = hammertest.WindowStart

type clock = hammertest.Clock

// newLimiter returns a Limiter over a fresh miniredis, on a clock set to
// start.
func newLimiter(t *testing.T, opts ...hammer.Option) (*hammer.Limiter, *clock) {
	t.Helper()
	l, _, c := hammertest.NewLimiter(t, opts...)
	return l, c
}

// policiesOf returns a Policy with the default name for each rule.
func policiesOf(rules ...hammer.Rule) []Policy {
	ps := make([]Policy, len(rules))
	for i, r := range rules {
		ps[i].Rule = r
	}
	return ps
}

func TestDefaultName(t *testing.T) {
	rules := []hammer.Rule{
		hammer.FixedWindow(time.Minute, 10),
		hammer.SlidingWindow(1500*time.Millisecond, 100),
		hammer.TokenBucket(7, time.Second, 10),
		hammer.LeakyBucket(1, 90*time.Second, 5),
		hammer.FixedWindow(time.Millisecond, hammer.MaxValue),
		hammer.TokenBucket(hammer.MaxValue, 1001*time.Millisecond, 1),
	}
	for _, r := range rules {
		require.NoError(t, r.Validate())
		assert.Equal(t, r.String(), DefaultName(r))
		assert.NoError(t, checkString(DefaultName(r)), "%v", r)
	}
	assert.Equal(t, "fixed_window(1m0s,10)", DefaultName(rules[0]))
	assert.Equal(t, "token_bucket(7/1s,10)", DefaultName(rules[2]))
}

func TestValidate(t *testing.T) {
	fw := hammer.FixedWindow(time.Minute, 10)
	tb := hammer.TokenBucket(1, time.Second, 5)
	cases := []struct {
		name     string
		policies []Policy
		hammer   bool // the error wraps hammer.ErrInvalidArgument too
	}{
		{"none", nil, false},
		{"zero rule", []Policy{{}}, true},
		{"invalid rule", []Policy{{Rule: hammer.SlidingWindow(time.Second, 0)}}, true},
		{"invalid second rule", []Policy{{Rule: fw}, {Rule: hammer.TokenBucket(0, time.Second, 1)}}, true},
		{"rule twice", []Policy{{Rule: fw, Name: "a"}, {Rule: fw, Name: "b"}}, false},
		{"name twice", []Policy{{Rule: fw, Name: "a"}, {Rule: tb, Name: "a"}}, false},
		{"name of another's default", []Policy{{Rule: fw}, {Rule: tb, Name: fw.String()}}, false},
		{"control character", []Policy{{Rule: fw, Name: "a\nb"}}, false},
		{"not ASCII", []Policy{{Rule: fw, Name: "d\u00e9bit"}}, false},
		{"DEL", []Policy{{Rule: fw, Name: "a\x7f"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.policies)
			require.ErrorIs(t, err, ErrInvalidPolicy)
			assert.Equal(t, c.hammer, errorsIs(err, hammer.ErrInvalidArgument), "%v", err)
			_, err2 := NewEncoder(c.policies)
			assert.Equal(t, err, err2)
			p, r := Fields(c.policies, hammer.Decision{Allowed: true, Limit: 10})
			assert.Empty(t, p)
			assert.Empty(t, r)
		})
	}
	assert.NoError(t, Validate([]Policy{{Rule: fw}, {Rule: tb}, {Rule: hammer.SlidingWindow(time.Minute, 10), Name: `quotes " and \ backslashes`}}))
	assert.NoError(t, Validate([]Policy{{Rule: fw, Name: ""}, {Rule: tb, Name: " "}}))
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestQuota(t *testing.T) {
	cases := []struct {
		rule hammer.Rule
		q, w int64
	}{
		{hammer.FixedWindow(time.Minute, 10), 10, 60},
		{hammer.FixedWindow(time.Millisecond, 10), 10, 1},
		{hammer.FixedWindow(1500*time.Millisecond, 10), 10, 2},
		{hammer.FixedWindow(time.Minute, hammer.MaxValue), maxInteger, 60},
		{hammer.SlidingWindow(90*time.Second, 100), 100, 90},
		// A token bucket gives back its burst in burst*per/rate.
		{hammer.TokenBucket(1, time.Second, 10), 10, 10},
		{hammer.TokenBucket(7, time.Second, 10), 10, 2},  // 10/7 s, rounded up
		{hammer.TokenBucket(10, time.Second, 10), 10, 1}, // exactly 1 s
		{hammer.TokenBucket(100, time.Second, 10), 10, 1},
		{hammer.TokenBucket(1, time.Minute, 60), 60, 3600},
		// A leaky bucket drains its capacity in capacity*per/rate.
		{hammer.LeakyBucket(1, 90*time.Second, 5), 5, 450},
		{hammer.LeakyBucket(3, time.Second, 5), 5, 2},
	}
	for _, c := range cases {
		q, w := Quota(c.rule)
		assert.Equal(t, [2]int64{c.q, c.w}, [2]int64{q, w}, "%v", c.rule)
	}
	// The zero Rule has no shape; it never gets this far (Validate).
	assert.Equal(t, kindUnknown, shapeOf(hammer.Rule{}).kind)
	tb := hammer.TokenBucket(7, time.Second, 10)
	assert.Equal(t, shape{kind: kindToken, limit: 10, window: time.Second, rate: 7}, shapeOf(tb))
	lb := hammer.LeakyBucket(1, 90*time.Second, 5)
	assert.Equal(t, shape{kind: kindLeaky, limit: 5, window: 90 * time.Second, rate: 1}, shapeOf(lb))
	assert.Equal(t, shape{kind: kindSliding, limit: 3, window: time.Minute}, shapeOf(hammer.SlidingWindow(time.Minute, 3)))
}

func TestRetryAfterSeconds(t *testing.T) {
	cases := []struct {
		d    hammer.Decision
		want int64
	}{
		{hammer.Decision{RetryAfter: time.Millisecond, ResetAfter: time.Hour}, 1},
		{hammer.Decision{RetryAfter: time.Second}, 1},
		{hammer.Decision{RetryAfter: 1001 * time.Millisecond}, 2},
		{hammer.Decision{RetryAfter: 59*time.Second + 999*time.Millisecond}, 60},
		{hammer.Decision{ResetAfter: 45 * time.Second}, 45}, // CheckRate
		{hammer.Decision{ResetAfter: 44*time.Second + time.Nanosecond}, 45},
		{hammer.Decision{}, 1},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, RetryAfterSeconds(c.d), "%+v", c.d)
	}
}

// step is one call in a table of calls over instants.
type step struct {
	at        time.Duration // since start
	rateLimit string        // the RateLimit field
	retry     int64         // RetryAfterSeconds when denied, else 0
}

// run hits id with rules at each step's instant and checks the fields.
func run(t *testing.T, policies []Policy, steps []step) {
	t.Helper()
	l, c := newLimiter(t)
	rules := make([]hammer.Rule, len(policies))
	for i, p := range policies {
		rules[i] = p.Rule
	}
	e, err := NewEncoder(policies)
	require.NoError(t, err)
	for i, s := range steps {
		c.Set(start.Add(s.at))
		d, err := l.Hit(context.Background(), "id", rules...)
		require.NoError(t, err)
		policy, rateLimit := Fields(policies, d)
		assert.Equal(t, e.Policy(), policy)
		assert.Equal(t, s.rateLimit, rateLimit, "step %d at %v", i, s.at)
		assert.Equal(t, rateLimit, e.RateLimit(d))
		if s.retry > 0 {
			assert.False(t, d.Allowed, "step %d", i)
			assert.Equal(t, s.retry, RetryAfterSeconds(d), "step %d", i)
		} else {
			assert.True(t, d.Allowed, "step %d", i)
		}
	}
}

// TestFieldsPerAlgorithm: what each algorithm puts in q, w, r and t.
func TestFieldsPerAlgorithm(t *testing.T) {
	sec := time.Second
	ms := time.Millisecond
	t.Run("fixed window", func(t *testing.T) {
		// r counts down; t is the end of the window, where all comes back.
		p := policiesOf(hammer.FixedWindow(time.Minute, 2))
		assert.Equal(t, `"fixed_window(1m0s,2)";q=2;w=60`, mustEncoder(t, p).Policy())
		run(t, p, []step{
			{20 * sec, `"fixed_window(1m0s,2)";r=1;t=40`, 0},
			{30 * sec, `"fixed_window(1m0s,2)";r=0;t=30`, 0},
			{59*sec + 1*ms, `"fixed_window(1m0s,2)";r=0;t=1`, 1},
			{60 * sec, `"fixed_window(1m0s,2)";r=1;t=60`, 0},
		})
	})
	t.Run("sliding window", func(t *testing.T) {
		// t is when the counts of the last hit stop weighing: the end of
		// the window after the current one (an upper bound; the estimate
		// falls before). A denial's t is the exact wait.
		p := policiesOf(hammer.SlidingWindow(10*sec, 2))
		assert.Equal(t, `"sliding_window(10s,2)";q=2;w=10`, mustEncoder(t, p).Policy())
		run(t, p, []step{
			{5 * sec, `"sliding_window(10s,2)";r=1;t=15`, 0},
			{8 * sec, `"sliding_window(10s,2)";r=0;t=12`, 0},
			{9 * sec, `"sliding_window(10s,2)";r=0;t=6`, 6},
			// 10s in: the two hits weigh 2*(1-el/10); one more fits at el=5s.
			{15 * sec, `"sliding_window(10s,2)";r=0;t=15`, 0},
		})
	})
	t.Run("token bucket", func(t *testing.T) {
		// q is the burst, w the time to refill it; t is when the next token
		// comes, not when the bucket is full.
		p := policiesOf(hammer.TokenBucket(1, 2*sec, 3))
		assert.Equal(t, `"token_bucket(1/2s,3)";q=3;w=6`, mustEncoder(t, p).Policy())
		run(t, p, []step{
			{0, `"token_bucket(1/2s,3)";r=2;t=2`, 0},
			{0, `"token_bucket(1/2s,3)";r=1;t=2`, 0},
			{0, `"token_bucket(1/2s,3)";r=0;t=2`, 0},
			{500 * ms, `"token_bucket(1/2s,3)";r=0;t=2`, 2}, // 1.5 s to go
			{1999 * ms, `"token_bucket(1/2s,3)";r=0;t=1`, 1},
			{2 * sec, `"token_bucket(1/2s,3)";r=0;t=2`, 0},
			{5 * sec, `"token_bucket(1/2s,3)";r=0;t=1`, 0}, // 1.5 tokens came, 1 taken: 0.5 left
		})
	})
	t.Run("leaky bucket", func(t *testing.T) {
		// q is the capacity, w the time to drain it; t is when one more
		// fits.
		p := policiesOf(hammer.LeakyBucket(2, sec, 3))
		assert.Equal(t, `"leaky_bucket(2/1s,3)";q=3;w=2`, mustEncoder(t, p).Policy())
		run(t, p, []step{
			{0, `"leaky_bucket(2/1s,3)";r=2;t=1`, 0},
			{0, `"leaky_bucket(2/1s,3)";r=1;t=1`, 0},
			{0, `"leaky_bucket(2/1s,3)";r=0;t=1`, 0},
			{100 * ms, `"leaky_bucket(2/1s,3)";r=0;t=1`, 1}, // 400 ms to go
			{500 * ms, `"leaky_bucket(2/1s,3)";r=0;t=1`, 0},
		})
	})
}

func mustEncoder(t *testing.T, policies []Policy) *Encoder {
	t.Helper()
	e, err := NewEncoder(policies)
	require.NoError(t, err)
	return e
}

// TestFieldsSeveralRules: one item per rule, in order, named; in a denial
// no t is later than Retry-After.
func TestFieldsSeveralRules(t *testing.T) {
	policies := []Policy{
		{Rule: hammer.FixedWindow(time.Hour, 100), Name: "hourly"},
		{Rule: hammer.TokenBucket(1, time.Second, 2), Name: `burst "b"`},
	}
	assert.Equal(t, `"hourly";q=100;w=3600, "burst \"b\"";q=2;w=2`, mustEncoder(t, policies).Policy())
	run(t, policies, []step{
		{0, `"hourly";r=99;t=3600, "burst \"b\"";r=1;t=1`, 0},
		{0, `"hourly";r=98;t=3600, "burst \"b\"";r=0;t=1`, 0},
		// Denied by the bucket: the hourly item's t is cut to Retry-After.
		{300 * time.Millisecond, `"hourly";r=98;t=1, "burst \"b\"";r=0;t=1`, 1},
		{time.Second, `"hourly";r=97;t=3599, "burst \"b\"";r=0;t=1`, 0},
	})
}

// TestFieldsOddDecisions: Decisions without Rules for several policies,
// Rules in another order, rules the policies do not know.
func TestFieldsOddDecisions(t *testing.T) {
	a, b := hammer.FixedWindow(time.Minute, 10), hammer.TokenBucket(1, time.Second, 5)
	e := mustEncoder(t, policiesOf(a, b))
	na, nb := `"`+a.String()+`"`, `"`+b.String()+`"`

	// The deny cache answers with the binding rule's figures only: the
	// item is the policy of that Limit.
	cached := hammer.Decision{Limit: 5, Remaining: 0, ResetAfter: 5 * time.Second, RetryAfter: 700 * time.Millisecond, Cached: true}
	assert.Equal(t, nb+";r=0;t=1", e.RateLimit(cached))
	assert.Empty(t, e.RateLimit(hammer.Decision{Limit: 7, Allowed: true}), "no policy of that Limit")

	// Rules in another order keep their own names.
	d := hammer.Decision{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second, Rules: []hammer.RuleDecision{
		{Rule: b, Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second},
		{Rule: a, Allowed: true, Limit: 10, Remaining: 9, ResetAfter: time.Minute},
		{Rule: hammer.FixedWindow(time.Hour, 1), Allowed: true, Limit: 1},
	}}
	assert.Equal(t, nb+";r=4;t=1, "+na+";r=9;t=60", e.RateLimit(d))

	// A rule with its whole quota left has nothing more to come: no t.
	d.Rules[0].ResetAfter = 0
	d.Rules[0].Remaining = 5
	assert.Equal(t, nb+";r=5, "+na+";r=9;t=60", e.RateLimit(d))
}

// TestFieldsShadow: a shadow Decision gets the fields of the denial.
func TestFieldsShadow(t *testing.T) {
	rules := []hammer.Rule{hammer.SlidingWindow(time.Minute, 100), hammer.TokenBucket(1, time.Second, 1)}
	policies := policiesOf(rules...)
	var fields [2]string
	for i, opts := range [][]hammer.Option{nil, {hammer.WithShadow()}} {
		l, c := newLimiter(t, opts...)
		c.Set(start.Add(10 * time.Second))
		_, err := l.Hit(context.Background(), "id", rules...)
		require.NoError(t, err)
		c.Set(start.Add(10*time.Second + 200*time.Millisecond))
		d, err := l.Hit(context.Background(), "id", rules...)
		require.NoError(t, err)
		assert.Equal(t, i == 1, d.Allowed && d.Shadow)
		assert.Equal(t, int64(1), RetryAfterSeconds(d))
		_, fields[i] = Fields(policies, d)
	}
	assert.Equal(t, `"sliding_window(1m0s,100)";r=99;t=1, "token_bucket(1/1s,1)";r=0;t=1`, fields[0])
	assert.Equal(t, fields[0], fields[1])
}

// TestFieldsKeepTheirWord checks the fields against the Limiter on random
// calls over random rules: each item is parsed back (names, r), an
// allowed call's t is never earlier than more quota (a Peek t seconds
// later finds more than r left), a denying rule allows again t seconds
// later, and no t of a denial is later than Retry-After, after which the
// call is allowed.
func TestFieldsKeepTheirWord(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	randRule := func() hammer.Rule {
		per := time.Duration(1+rng.IntN(5000)) * time.Millisecond
		limit := int64(1 + rng.IntN(6))
		switch rng.IntN(4) {
		case 0:
			return hammer.FixedWindow(per, limit)
		case 1:
			return hammer.SlidingWindow(per, limit)
		case 2:
			return hammer.TokenBucket(int64(1+rng.IntN(4)), per, limit)
		}
		return hammer.LeakyBucket(int64(1+rng.IntN(4)), per, limit)
	}
	checked := map[string]int{}
	for round := 0; round < 12; round++ {
		l, c := newLimiter(t)
		var rules []hammer.Rule
		for len(rules) < 1+round%3 {
			r := randRule()
			if !strings.Contains(fmt.Sprint(rules), r.String()) {
				rules = append(rules, r)
			}
		}
		e := mustEncoder(t, policiesOf(rules...))
		now := start.Add(time.Duration(rng.IntN(60000)) * time.Millisecond)
		id := fmt.Sprint("id", round)
		for i := 0; i < 40; i++ {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			c.Set(now)
			d, err := l.Hit(ctx, id, rules...)
			require.NoError(t, err)
			items, err := parseList(e.RateLimit(d))
			require.NoError(t, err)
			require.Len(t, items, len(rules))
			at := func(secs int64) time.Time { return now.Add(time.Duration(secs) * time.Second) }
			for j, it := range items {
				rd := hammer.RuleDecision{Rule: rules[0], Allowed: d.Allowed, Remaining: d.Remaining}
				if d.Rules != nil {
					rd = d.Rules[j]
				}
				require.Equal(t, rules[j].String(), it.val)
				r, _ := it.param("r")
				require.Equal(t, rd.Remaining, r)
				tv, hasT := it.param("t")
				if !hasT {
					require.Equal(t, rules[j].Limit(), rd.Remaining, "only a full quota has no t")
					continue
				}
				secs := tv.(int64)
				switch {
				case !d.Allowed:
					require.LessOrEqual(t, secs, RetryAfterSeconds(d), "t after Retry-After")
					if rd.Allowed {
						continue
					}
					c.Set(at(secs))
					p, err := l.Peek(ctx, id, rules[j])
					require.NoError(t, err)
					require.True(t, p.Allowed, "%v denies %ds after t=%d", rules[j], secs, secs)
					checked["denying rule allows at t"]++
				default:
					c.Set(at(secs))
					p, err := l.Peek(ctx, id, rules[j])
					require.NoError(t, err)
					// A Peek reports what a hit would leave: more than r
					// available is r left after one.
					require.True(t, p.Allowed && p.Remaining >= rd.Remaining, "%v: r=%d t=%d, then %+v", rules[j], rd.Remaining, secs, p)
					checked["more quota at t"]++
				}
			}
			if !d.Allowed {
				c.Set(at(RetryAfterSeconds(d)))
				p, err := l.Peek(ctx, id, rules...)
				require.NoError(t, err)
				require.True(t, p.Allowed, "denied after Retry-After")
				checked["allowed after Retry-After"]++
			}
		}
	}
	for _, what := range []string{"denying rule allows at t", "more quota at t", "allowed after Retry-After"} {
		assert.Positive(t, checked[what], what)
	}
	t.Log(checked)
}

// BenchmarkRateLimit compares an Encoder, made once, with Fields, which
// formats the policy at each call.
func BenchmarkRateLimit(b *testing.B) {
	rules := []hammer.Rule{hammer.SlidingWindow(time.Minute, 100), hammer.TokenBucket(1, time.Second, 5)}
	policies := policiesOf(rules...)
	d := hammer.Decision{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second, Rules: []hammer.RuleDecision{
		{Rule: rules[0], Allowed: true, Limit: 100, Remaining: 99, ResetAfter: 90 * time.Second},
		{Rule: rules[1], Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second},
	}}
	e, err := NewEncoder(policies)
	require.NoError(b, err)
	b.Run("Encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.RateLimit(d)
		}
	})
	b.Run("AppendRateLimit", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf = e.AppendRateLimit(buf[:0], d)
		}
	})
	b.Run("Fields", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = Fields(policies, d)
		}
	})
}
