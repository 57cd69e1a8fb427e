package hammer

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modelBase is a unix ms divisible by every window the tables use.
const modelBase = int64(1_700_000_000_000) - int64(1_700_000_000_000)%(90_000*7)

// modelStep is one call of a table over instants, on one rule.
type modelStep struct {
	at        int64 // ms after modelBase
	cost      int64
	peek      bool
	allowed   bool
	remaining int64
	reset     int64 // ResetAfter, ms
	retry     int64 // RetryAfter, ms
}

// runModel runs steps on rule r from a missing state, checking each
// decision, that RetryAfter and ResetAfter are exact, and that only an
// allowed hit changes the state.
func runModel(t *testing.T, r Rule, steps []modelStep) {
	t.Helper()
	require.NoError(t, r.Validate())
	var st ruleState
	for i, s := range steps {
		now := modelBase + s.at
		checkExact(t, st, r, now, s.cost)
		res := evalRules([]ruleState{st}, []Rule{r}, now, s.cost, !s.peek)
		want := RuleDecision{
			Rule: r, Allowed: s.allowed, Limit: r.Limit(), Remaining: s.remaining,
			ResetAfter: time.Duration(s.reset) * time.Millisecond,
			RetryAfter: time.Duration(s.retry) * time.Millisecond,
		}
		require.Equal(t, s.allowed, res.allowed, "step %d", i)
		require.Equal(t, []RuleDecision{want}, res.decisions, "step %d (at %d, cost %d)", i, s.at, s.cost)
		if s.allowed && !s.peek {
			require.Len(t, res.ttlsMs, 1, "step %d: TTL", i)
			checkExpiry(t, now, s.reset, res.ttlsMs[0])
			require.True(t, res.states[0].set, "step %d", i)
		} else {
			require.Nil(t, res.ttlsMs, "step %d: nothing written", i)
			require.Equal(t, st, res.states[0], "step %d: state unchanged", i)
		}
		st = res.states[0]
	}
}

// checkExact checks, for rule r in state st at now, that RetryAfter is
// exact (denied at now+retry-1, allowed at now+retry) and that ResetAfter
// is too (full at now+reset, not at now+reset-1), with no other hits.
func checkExact(t *testing.T, st ruleState, r Rule, now, cost int64) {
	t.Helper()
	ev := evalRule(st, r, now, cost)
	switch {
	case ev.allowed:
		assert.Zero(t, ev.retryMs)
	case ev.retryMs == MaxValue:
		// capped: a wait of over 280,000 years
	default:
		require.Positive(t, ev.retryMs, "%v at %d cost %d", r, now, cost)
		assert.False(t, evalRule(st, r, now+ev.retryMs-1, cost).allowed, "%v at %d cost %d: denied at now+retry-1", r, now, cost)
		assert.True(t, evalRule(st, r, now+ev.retryMs, cost).allowed, "%v at %d cost %d: allowed at now+retry", r, now, cost)
	}
	if ev.resetMs == MaxValue {
		return
	}
	if ev.resetMs > 0 {
		assert.Positive(t, evalRule(st, r, now+ev.resetMs-1, cost).resetMs, "%v at %d: not full at now+reset-1", r, now)
	}
	full := evalRule(st, r, now+ev.resetMs, cost)
	assert.Zero(t, full.resetMs, "%v at %d: full at now+reset", r, now)
	assert.Equal(t, r.Limit(), full.remaining, "%v at %d: full at now+reset", r, now)
}

func TestModelFixedWindow(t *testing.T) {
	runModel(t, FixedWindow(time.Second, 3), []modelStep{
		{at: 0, cost: 1, allowed: true, remaining: 2, reset: 1000},
		{at: 1, cost: 2, allowed: true, remaining: 0, reset: 999},
		{at: 500, cost: 1, remaining: 0, reset: 500, retry: 500}, // denied: until the window ends
		{at: 600, cost: 1, peek: true, reset: 400, retry: 400},
		{at: 999, cost: 1, reset: 1, retry: 1},                        // last ms of the window
		{at: 1000, cost: 3, allowed: true, remaining: 0, reset: 1000}, // a new window, all of it
		{at: 999, cost: 1, reset: 1001, retry: 1001},                  // clock back: still window 1000, waits on the caller's clock
		{at: 2000, cost: 1, allowed: true, remaining: 2, reset: 1000},
		{at: 1500, cost: 1, allowed: true, remaining: 1, reset: 1500}, // clock back: counted in window 2000
		{at: 2999, cost: 1, allowed: true, remaining: 0, reset: 1},
		{at: 5000, cost: 2, peek: true, allowed: true, remaining: 1, reset: 1000}, // a peek says what the hit would leave
		{at: 5000, cost: 2, allowed: true, remaining: 1, reset: 1000},
	})
}

func TestModelSlidingWindow(t *testing.T) {
	runModel(t, SlidingWindow(time.Second, 10), []modelStep{
		{at: 0, cost: 10, allowed: true, remaining: 0, reset: 2000}, // cur weighs until window 1 ends
		// cur=10: only past the edge, as prev's weight falls:
		// 10*(1000-100) + 1*1000 <= 10*1000 at 1100.
		{at: 500, cost: 1, remaining: 0, reset: 1500, retry: 600},
		{at: 1099, cost: 1, remaining: 0, reset: 901, retry: 1},
		{at: 1100, cost: 1, allowed: true, remaining: 0, reset: 1900},
		// prev=10, cur=1, el=500: room 10000-5000-1000 = 4000 < 5*1000;
		// 10*(1000-600) + 6*1000 <= 10000 at 1600.
		{at: 1500, cost: 5, remaining: 4, reset: 1500, retry: 100},
		{at: 1600, cost: 5, allowed: true, remaining: 0, reset: 1400},
		// window 2: prev=6 at weight 1/2, cur=0: 10 - 3 - 1 = 6 left.
		{at: 2500, cost: 1, allowed: true, remaining: 6, reset: 1500},
		// clock back: evaluated at 2500, waits measured from 2400.
		{at: 2400, cost: 1, peek: true, allowed: true, remaining: 5, reset: 1600},
		{at: 2400, cost: 6, allowed: true, remaining: 0, reset: 1600},
		// prev=6, cur=7, el=500: 6*(1000-el) <= 2000 at el=667, 167 ms after
		// 2500, which is 267 ms after 2400.
		{at: 2400, cost: 1, remaining: 0, reset: 1600, retry: 267},
		{at: 5000, cost: 1, allowed: true, remaining: 9, reset: 2000}, // old windows forgotten
		// window 6: prev=1 at weight 1/2, cur=0: 9500 < 10000; full at 7000.
		{at: 6500, cost: 10, remaining: 9, reset: 500, retry: 500},
		{at: 6999, cost: 10, remaining: 9, reset: 1, retry: 1},
		{at: 7000, cost: 10, allowed: true, remaining: 0, reset: 2000},
	})
}

func TestModelTokenBucket(t *testing.T) {
	t.Run("7 per 1s", func(t *testing.T) {
		// Scaled by perMs = 1000: full at 10000, +7 per ms; one token is 1000.
		runModel(t, TokenBucket(7, time.Second, 10), []modelStep{
			{at: 0, cost: 10, allowed: true, remaining: 0, reset: 1429}, // 10000/7 = 1428.57
			{at: 100, cost: 1, remaining: 0, reset: 1329, retry: 43},    // 700 held: (1000-700)/7 = 42.9
			{at: 142, cost: 1, remaining: 0, reset: 1287, retry: 1},     // 994 held
			{at: 143, cost: 1, allowed: true, remaining: 0, reset: 1429},
			{at: 100, cost: 1, remaining: 0, reset: 43 + 1429, retry: 43 + 143}, // clock back: no negative refill
			{at: 10_000, cost: 3, allowed: true, remaining: 7, reset: 429},      // full again, capped at burst
			{at: 10_000, cost: 8, peek: true, remaining: 7, reset: 429, retry: 143},
			{at: 10_000, cost: 7, peek: true, allowed: true, remaining: 0, reset: 1429},
		})
	})
	t.Run("1 per 90s", func(t *testing.T) {
		runModel(t, TokenBucket(1, 90*time.Second, 2), []modelStep{
			{at: 0, cost: 2, allowed: true, remaining: 0, reset: 180_000},
			{at: 45_000, cost: 1, remaining: 0, reset: 135_000, retry: 45_000},
			{at: 89_999, cost: 1, remaining: 0, reset: 90_001, retry: 1},
			{at: 90_000, cost: 1, allowed: true, remaining: 0, reset: 180_000},
			{at: 200_000, cost: 1, allowed: true, remaining: 0, reset: 160_000}, // 110000 held: 1.2 tokens
		})
	})
}

func TestModelLeakyBucket(t *testing.T) {
	t.Run("7 per 1s", func(t *testing.T) {
		// Scaled by perMs = 1000: capacity 10000, -7 per ms.
		runModel(t, LeakyBucket(7, time.Second, 10), []modelStep{
			{at: 0, cost: 10, allowed: true, remaining: 0, reset: 1429},
			{at: 100, cost: 1, remaining: 0, reset: 1329, retry: 43}, // level 9300
			{at: 143, cost: 1, allowed: true, remaining: 0, reset: 1429},
			// level 9999 of 10000: a cost of 1 would overshoot, so it waits.
			{at: 143, cost: 1, remaining: 0, reset: 1429, retry: 143},
			{at: 100, cost: 1, remaining: 0, reset: 43 + 1429, retry: 43 + 143}, // clock back
			{at: 10_000, cost: 3, allowed: true, remaining: 7, reset: 429},
			{at: 10_000, cost: 8, remaining: 7, reset: 429, retry: 143}, // never above capacity
		})
	})
	t.Run("1 per 90s", func(t *testing.T) {
		runModel(t, LeakyBucket(1, 90*time.Second, 3), []modelStep{
			{at: 0, cost: 2, allowed: true, remaining: 1, reset: 180_000},
			{at: 1000, cost: 2, remaining: 1, reset: 179_000, retry: 89_000},
			{at: 90_000, cost: 2, allowed: true, remaining: 0, reset: 270_000},
			{at: 90_000, cost: 1, remaining: 0, reset: 270_000, retry: 90_000},
		})
	})
}

// randRule returns a random valid rule with small parameters, so that
// random clocks cross windows and refill buckets often.
func randRule(rng *rand.Rand) Rule {
	periods := []time.Duration{time.Millisecond, 7 * time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 90 * time.Second}
	p := periods[rng.IntN(len(periods))]
	limit := 1 + rng.Int64N(20)
	rate := 1 + rng.Int64N(20)
	switch rng.IntN(4) {
	case 0:
		return FixedWindow(p, limit)
	case 1:
		return SlidingWindow(p, limit)
	case 2:
		return TokenBucket(rate, p, limit)
	default:
		return LeakyBucket(rate, p, limit)
	}
}

// randBigRule returns a random valid rule whose scaled levels come near
// 2^53, where doubles are exact only just.
func randBigRule(rng *rand.Rand) Rule {
	pMs := []int64{1, 7, 1000, 90_000}[rng.IntN(4)]
	p := time.Duration(pMs) * time.Millisecond
	limit := MaxValue/pMs - rng.Int64N(3)
	rate := []int64{1, 7, MaxValue - 1, MaxValue, 1 + rng.Int64N(MaxValue)}[rng.IntN(5)]
	switch rng.IntN(4) {
	case 0:
		return FixedWindow(p, MaxValue-rng.Int64N(3))
	case 1:
		return SlidingWindow(p, limit)
	case 2:
		return TokenBucket(rate, p, limit)
	default:
		return LeakyBucket(rate, p, limit)
	}
}

// randRules returns 1 to 3 distinct rules.
func randRules(rng *rand.Rand, big bool) []Rule {
	var rules []Rule
	for n := 1 + rng.IntN(3); len(rules) < n; {
		r := randRule(rng)
		if big {
			r = randBigRule(rng)
		}
		if checkRules(append(rules[:len(rules):len(rules)], r), 1) == nil {
			rules = append(rules, r)
		}
	}
	return rules
}

// randRuleCost returns a cost that every rule could allow, often the least
// limit itself.
func randRuleCost(rng *rand.Rand, rules []Rule) int64 {
	m := rules[0].Limit()
	for _, r := range rules {
		m = min(m, r.Limit())
	}
	switch rng.IntN(4) {
	case 0:
		return m
	case 1:
		return 1
	default:
		return 1 + rng.Int64N(m)
	}
}

// randClockStep returns a clock step in ms: mostly small and forward, sometimes
// back, sometimes far.
func randClockStep(rng *rand.Rand) int64 {
	switch rng.IntN(10) {
	case 0:
		return -rng.Int64N(2000) // the clock goes back
	case 1:
		return rng.Int64N(400_000)
	case 2:
		return 0
	default:
		return rng.Int64N(50)
	}
}

// TestModelExact checks on random states, reached by random calls, that
// RetryAfter and ResetAfter are exact for every rule kind.
func TestModelExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := map[ruleKind]int{} // denials seen per kind
	for seq := 0; seq < 300; seq++ {
		big := seq%3 == 0
		rules := randRules(rng, big)
		states := make([]ruleState, len(rules))
		now := modelBase + rng.Int64N(1_000_000)
		for i := 0; i < 40; i++ {
			now += randClockStep(rng)
			cost := randRuleCost(rng, rules)
			for j, r := range rules {
				checkExact(t, states[j], r, now, cost)
				if !evalRule(states[j], r, now, cost).allowed {
					kinds[r.kind]++
				}
			}
			states = evalRules(states, rules, now, cost, true).states
		}
		if t.Failed() {
			t.Fatalf("sequence %d: %v", seq, rules)
		}
	}
	for _, k := range []ruleKind{kindFixed, kindSliding, kindToken, kindLeaky} {
		assert.Greater(t, kinds[k], 50, "denials of kind %s", k.code())
	}
}

// TestModelExpiredIsFresh checks that a written state means the same as a
// missing one once its TTL, less the margin, has passed on the caller's
// clock: a key that expires changes no decision.
func TestModelExpiredIsFresh(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	checked := 0
	for seq := 0; seq < 300; seq++ {
		rules := randRules(rng, seq%3 == 0)
		states := make([]ruleState, len(rules))
		now := modelBase + rng.Int64N(1_000_000)
		for i := 0; i < 30; i++ {
			now += randClockStep(rng)
			res := evalRules(states, rules, now, randRuleCost(rng, rules), true)
			states = res.states
			if res.ttlsMs == nil {
				continue
			}
			for j, r := range rules {
				if res.ttlsMs[j] == ruleMaxTTLMs {
					continue // dropped early, after 139 years
				}
				gone := now + res.ttlsMs[j] - ruleTTLMarginMs
				for _, at := range []int64{gone, gone + 1 + rng.Int64N(10_000)} {
					cost := 1 + rng.Int64N(r.Limit())
					want := evalRule(ruleState{}, r, at, cost)
					require.Equal(t, want, evalRule(states[j], r, at, cost), "%v: state %+v at %d", r, states[j], at)
					checked++
				}
			}
		}
	}
	assert.Greater(t, checked, 1000)
}

// TestModelTokenBucketBound checks that a token bucket with burst B at rate
// R per P allows at most B + R*span/P over any span, on random sequences:
// sum*P <= B*P + R*span, in integers.
func TestModelTokenBucketBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for seq := 0; seq < 200; seq++ {
		r := TokenBucket(1+rng.Int64N(10), time.Duration(1+rng.Int64N(1000))*time.Millisecond, 1+rng.Int64N(10))
		var (
			st      ruleState
			now     = modelBase
			times   []int64
			costs   []int64
			allowed int
		)
		for i := 0; i < 200; i++ {
			now += rng.Int64N(r.Window().Milliseconds()/2 + 1)
			cost := 1 + rng.Int64N(r.Limit())
			res := evalRules([]ruleState{st}, []Rule{r}, now, cost, true)
			st = res.states[0]
			if res.allowed {
				times, costs = append(times, now), append(costs, cost)
				allowed++
			}
		}
		p := r.Window().Milliseconds()
		for i := range times {
			var sum int64
			for j := i; j < len(times); j++ {
				sum += costs[j]
				span := times[j] - times[i]
				if sum*p > r.Limit()*p+r.rate*span {
					t.Fatalf("%v: %d allowed in [%d, %d]", r, sum, times[i], times[j])
				}
			}
		}
		require.Positive(t, allowed)
	}
}

// maxCostInSpan returns the most cost allowed within any span of w ms:
// [s, s+w) over the allowed calls at times with costs.
func maxCostInSpan(times, costs []int64, w int64) int64 {
	var best int64
	for i := range times {
		var sum int64
		for j := i; j < len(times) && times[j] < times[i]+w; j++ {
			sum += costs[j]
		}
		best = max(best, sum)
	}
	return best
}

// TestModelSlidingWindowEdge shows the difference at a window edge: a
// fixed window allows 2*limit within one window's length, a sliding window
// never does, on the same calls and on random ones.
func TestModelSlidingWindowEdge(t *testing.T) {
	const w, limit = 1000, 10
	burst := func(r Rule, at []int64) (times, costs []int64) {
		var st ruleState
		for _, ms := range at {
			res := evalRules([]ruleState{st}, []Rule{r}, modelBase+ms, 1, true)
			st = res.states[0]
			if res.allowed {
				times, costs = append(times, modelBase+ms), append(costs, 1)
			}
		}
		return times, costs
	}
	// limit calls in the last ms of a window, limit in the first of the next.
	var at []int64
	for i := 0; i < limit; i++ {
		at = append(at, w-1)
	}
	for i := 0; i < limit; i++ {
		at = append(at, w)
	}
	ft, fc := burst(FixedWindow(w*time.Millisecond, limit), at)
	assert.Equal(t, int64(2*limit), maxCostInSpan(ft, fc, w), "fixed window: 2*limit across the edge")
	st, sc := burst(SlidingWindow(w*time.Millisecond, limit), at)
	assert.Equal(t, int64(limit), maxCostInSpan(st, sc, w), "sliding window: limit across the edge")

	rng := rand.New(rand.NewPCG(5, 6))
	for seq := 0; seq < 200; seq++ {
		r := SlidingWindow(time.Duration(1+rng.Int64N(1000))*time.Millisecond, 1+rng.Int64N(20))
		var (
			s            ruleState
			now          = modelBase
			times, costs []int64
		)
		for i := 0; i < 300; i++ {
			now += rng.Int64N(r.Window().Milliseconds()/4 + 1)
			cost := 1 + rng.Int64N(r.Limit())
			res := evalRules([]ruleState{s}, []Rule{r}, now, cost, true)
			s = res.states[0]
			if res.allowed {
				times, costs = append(times, now), append(costs, cost)
			}
		}
		require.Less(t, maxCostInSpan(times, costs, r.Window().Milliseconds()), 2*r.Limit(), "%v", r)
	}
}

// TestModelAllOrNothing checks that a call denied by one rule charges no
// rule, reports every rule as it stands, and that a peek returns what the
// hit would and changes nothing.
func TestModelAllOrNothing(t *testing.T) {
	rules := []Rule{FixedWindow(time.Second, 5), TokenBucket(1, time.Second, 2)}
	now := modelBase
	states := make([]ruleState, 2)
	res := evalRules(states, rules, now, 2, true) // both allow; the bucket is empty after
	require.True(t, res.allowed)
	states = res.states

	denied := evalRules(states, rules, now+100, 2, true)
	assert.False(t, denied.allowed)
	assert.Equal(t, states, denied.states, "a denied call changes no state")
	assert.Nil(t, denied.ttlsMs)
	assert.Equal(t, []RuleDecision{
		{Rule: rules[0], Allowed: true, Limit: 5, Remaining: 3, ResetAfter: 900 * time.Millisecond},
		{Rule: rules[1], Allowed: false, Limit: 2, Remaining: 0, ResetAfter: 1900 * time.Millisecond, RetryAfter: 1900 * time.Millisecond},
	}, denied.decisions)
	ok, binding, retry := combine(denied.decisions)
	assert.Equal(t, []any{false, 1, 1900 * time.Millisecond}, []any{ok, binding, retry})

	peek := evalRules(states, rules, now+2000, 2, false)
	hit := evalRules(states, rules, now+2000, 2, true)
	assert.True(t, peek.allowed)
	assert.Equal(t, hit.decisions, peek.decisions, "a peek says what the hit would")
	assert.Equal(t, states, peek.states, "a peek changes no state")
	assert.Nil(t, peek.ttlsMs)
	assert.NotEqual(t, states, hit.states)

	// Random: a denied call or a peek never changes a state.
	rng := rand.New(rand.NewPCG(7, 8))
	for seq := 0; seq < 200; seq++ {
		rules := randRules(rng, seq%4 == 0)
		states := make([]ruleState, len(rules))
		now := modelBase
		for i := 0; i < 50; i++ {
			now += randClockStep(rng)
			charge := rng.IntN(5) > 0
			res := evalRules(states, rules, now, randRuleCost(rng, rules), charge)
			if !res.allowed || !charge {
				require.Equal(t, states, res.states)
				require.Nil(t, res.ttlsMs)
			} else {
				for j := range rules {
					require.Greater(t, res.ttlsMs[j], int64(ruleTTLMarginMs))
					if d := res.decisions[j].ResetAfter; d < msDuration(MaxValue) {
						checkExpiry(t, now, d.Milliseconds(), res.ttlsMs[j])
					}
				}
			}
			states = res.states
		}
	}
}

func TestModelCombine(t *testing.T) {
	d := func(allowed bool, remaining int64, retry time.Duration) RuleDecision {
		return RuleDecision{Allowed: allowed, Remaining: remaining, RetryAfter: retry}
	}
	cases := []struct {
		name    string
		ds      []RuleDecision
		allowed bool
		binding int
		retry   time.Duration
	}{
		{"none", nil, true, -1, 0},
		{"one allowed", []RuleDecision{d(true, 3, 0)}, true, 0, 0},
		{"least remaining binds", []RuleDecision{d(true, 3, 0), d(true, 1, 0), d(true, 2, 0)}, true, 1, 0},
		{"first on ties", []RuleDecision{d(true, 2, 0), d(true, 1, 0), d(true, 1, 0)}, true, 1, 0},
		{"largest retry of the denying", []RuleDecision{d(false, 0, time.Second), d(true, 0, 0), d(false, 4, 3*time.Second)}, false, 0, 3 * time.Second},
		{"denied with remaining", []RuleDecision{d(true, 1, 0), d(false, 2, time.Millisecond)}, false, 0, time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			allowed, binding, retry := combine(c.ds)
			assert.Equal(t, c.allowed, allowed)
			assert.Equal(t, c.binding, binding)
			assert.Equal(t, c.retry, retry)
		})
	}
}

func TestModelHelpers(t *testing.T) {
	for _, c := range []struct{ a, b, floor, ceil int64 }{
		{7, 2, 3, 4}, {-7, 2, -4, -3}, {6, 3, 2, 2}, {-6, 3, -2, -2}, {0, 5, 0, 0}, {MaxValue, 3, MaxValue / 3, MaxValue/3 + 1},
	} {
		assert.Equal(t, c.floor, divFloor(c.a, c.b), "floor(%d/%d)", c.a, c.b)
		assert.Equal(t, c.ceil, divCeil(c.a, c.b), "ceil(%d/%d)", c.a, c.b)
	}
	assert.Equal(t, int64(MaxValue), relMs(MaxValue, MaxValue))
	assert.Equal(t, time.Duration(1<<63-1), msDuration(MaxValue))
	assert.Equal(t, 5*time.Millisecond, msDuration(5))
}

// checkExpiry checks ttl, x - now for a state written at now whose reset
// is reset ms away: the reset plus the margin, rounded up so that x is a
// whole number of steps, at most ruleMaxTTLMs.
func checkExpiry(t *testing.T, now, reset, ttl int64) {
	t.Helper()
	if reset+ruleTTLMarginMs >= ruleMaxTTLMs {
		require.Equal(t, int64(ruleMaxTTLMs), ttl, "capped")
		return
	}
	require.GreaterOrEqual(t, ttl, reset+ruleTTLMarginMs, "at least the reset and the margin")
	if ttl == ruleMaxTTLMs {
		return
	}
	require.Less(t, ttl, reset+ruleTTLMarginMs+ruleXStepMs, "less than a step more")
	require.Zero(t, (now+ttl)%ruleXStepMs, "x is a whole number of steps")
}

func TestRuleExpiry(t *testing.T) {
	cases := []struct{ now, reset, want int64 }{
		{0, 0, 1000},
		{1, 0, 2000},
		{1, 999, 2000},
		{1, 1000, 3000},
		{1_764_283_288_000, 1, 1_764_283_290_000},
		{1_764_283_288_123, 7, 1_764_283_290_000},
		{1_764_283_288_999, 1, 1_764_283_290_000},
		{-5, 0, 1000},
		{-1500, 0, 0},
		{-2500, 1, -1000},
		{0, ruleMaxTTLMs, ruleMaxTTLMs},
		{10, ruleMaxTTLMs - 1000, 10 + ruleMaxTTLMs},
		{10, ruleMaxTTLMs - 1500, 4_398_046_511_000}, // 2^42 = 4,398,046,511,104
		{0, ruleMaxTTLMs - 1500, 4_398_046_511_000},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, ruleExpiry(c.now, c.reset), "now %d, reset %d", c.now, c.reset)
	}
}
