package hammer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hit, HitN and Peek through the Limiter, on every target of the suite:
// the decisions against the model (model.go), the properties of the rule
// kinds, concurrency, argument checks, keys and TTLs, the deny cache and
// the failure policy. What the script alone does is covered in
// rule_script_test.go; here every call goes through the public API.

var hitSeed = flag.Uint64("hit.seed", 0, "seed of TestHitMatchesModel; 0 means the fixed default")

// hitDefaultSeed is the seed of TestHitMatchesModel unless -hit.seed is given.
const hitDefaultSeed = 20260101

// hourBase is a unix ms at the start of an hour (and so of a second and a
// minute).
const hourBase = int64(1_700_000_000_000) - int64(1_700_000_000_000)%3_600_000

// wantDecision is the Decision of a Hit, HitN or Peek whose rules decided
// ds, as Decision documents it: the binding rule's figures, the largest
// RetryAfter of the denying rules, and the per-rule decisions when there
// are several rules.
func wantDecision(ds []RuleDecision) Decision {
	allowed, b, retry := combine(ds)
	d := Decision{Allowed: allowed, Limit: ds[b].Limit, Remaining: ds[b].Remaining, ResetAfter: ds[b].ResetAfter, RetryAfter: retry}
	if len(ds) > 1 {
		d.Rules = ds
	}
	return d
}

// isRealCluster tells whether e is a real cluster, where TTLs run in real
// time while the tests' clocks are fake.
func isRealCluster(e *env) bool {
	_, ok := e.raw.(*redis.ClusterClient)
	return ok
}

// holdRecord raises the TTL of the rule record of id to 10 minutes on a
// real cluster, where TTLs pass in real time while the tests' clocks are
// fake: a state the model still holds must not expire there. It changes no
// decision: the script reads entries, never TTLs.
func holdRecord(t *testing.T, e *env, id string) {
	t.Helper()
	if !isRealCluster(e) {
		return
	}
	key, _ := ruleKeySet(e.prefix, id, nil)
	require.NoError(t, e.raw.PExpire(context.Background(), key, 10*time.Minute).Err())
}

// hitRulePool is the rules one random sequence draws its calls from: three
// or four distinct rules, of the curated ones (fractional rates, windows
// that are not a power of ten) and of randRule's.
func hitRulePool(rng *rand.Rand) []Rule {
	curated := []Rule{
		FixedWindow(time.Second, 5),
		FixedWindow(100*time.Millisecond, 3),
		SlidingWindow(time.Second, 10),
		SlidingWindow(7*time.Millisecond, 4),
		TokenBucket(7, time.Second, 10),
		TokenBucket(3, 100*time.Millisecond, 2),
		LeakyBucket(1, 90*time.Second, 3),
		LeakyBucket(7, time.Second, 5),
	}
	var pool []Rule
	for n := 3 + rng.IntN(2); len(pool) < n; {
		r := randRule(rng)
		if rng.IntN(3) > 0 {
			r = curated[rng.IntN(len(curated))]
		}
		if !slices.Contains(pool, r) {
			pool = append(pool, r)
		}
	}
	return pool
}

// hitCounts counts what the random calls did, to show that they went down
// every path.
type hitCounts struct {
	allowed, denied, peeks int
	partial                int // rules that allowed a denied call
	back                   int // steps back in time
	deniedBy               map[ruleKind]int
}

// TestHitMatchesModel is the differential test of the Limiter: random
// sequences of clock steps (back too), costs, rule sets and calls (Hit,
// HitN, Peek) on one id per sequence, whose calls take 1 to 3 rules, in any
// order, from a pool the sequence keeps: rules that recur share their
// state. Every Decision must be the model's, whole, and after every call
// Redis must hold exactly the model's state of every rule of the pool.
//
// Entries of the pool's rules that a call does not charge are dropped by a
// charged call at or after their x, and by the model too.
//
// On the real cluster the states written are held (holdRecord).
func TestHitMatchesModel(t *testing.T) {
	seed := *hitSeed
	if seed == 0 {
		seed = hitDefaultSeed
	}
	forEachTarget(t, func(t *testing.T, e *env) {
		real := isRealCluster(e)
		steps := 800
		switch {
		case real && testing.Short():
			steps = 90
		case real:
			steps = 240
		case testing.Short():
			steps = 400
		}
		t.Logf("seed %d (set with -hit.seed), %d steps", seed, steps)
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		clk := newClock(modelBase)
		l := New(e.backend(t, nil), WithClock(clk.now))
		cnt := hitCounts{deniedBy: map[ruleKind]int{}}
		for seq, done := 0, 0; done < steps; seq++ {
			n := min(30, steps-done)
			runHitSeq(t, e, l, clk, rng, seq, n, &cnt)
			done += n
		}
		t.Logf("%+v", cnt)
		assert.Positive(t, cnt.allowed)
		assert.Positive(t, cnt.denied)
		assert.Positive(t, cnt.peeks)
		assert.Positive(t, cnt.partial, "rules that allowed a denied call")
		assert.Positive(t, cnt.back, "steps back in time")
		if steps >= 240 {
			for _, k := range []ruleKind{kindFixed, kindSliding, kindToken, kindLeaky} {
				assert.Positive(t, cnt.deniedBy[k], "denials by kind %s", k.code())
			}
		}
	})
}

// runHitSeq runs one random sequence of n calls on a fresh id.
func runHitSeq(t *testing.T, e *env, l *Limiter, clk *clock, rng *rand.Rand, seq, n int, cnt *hitCounts) {
	t.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("seq-%d", seq)
	if seq%3 == 1 {
		id = oddIDs[rng.IntN(len(oddIDs))] + id
	}
	pool := hitRulePool(rng)
	model := map[Rule]recEntry{}
	now := modelBase + rng.Int64N(10_000_000)
	for step := 0; step < n; step++ {
		d := randClockStep(rng)
		if d < 0 {
			cnt.back++
		}
		now += d
		clk.set(now)
		var rules []Rule
		for _, i := range rng.Perm(len(pool))[:1+rng.IntN(3)] {
			rules = append(rules, pool[i])
		}
		op := rng.IntN(5)
		cost, charge := int64(1), op > 0
		if op >= 3 {
			cost = randRuleCost(rng, rules)
		}
		where := fmt.Sprintf("seq %d step %d: id %q %v now=%d cost=%d charge=%v", seq, step, id, rules, now, cost, charge)

		states := make([]ruleState, len(rules))
		for i, r := range rules {
			states[i] = model[r].st
		}
		res := evalRules(states, rules, now, cost, charge)
		var got Decision
		var err error
		switch op {
		case 0:
			got, err = l.Peek(ctx, id, rules...)
		case 1, 2:
			got, err = l.Hit(ctx, id, rules...)
		default:
			got, err = l.HitN(ctx, id, cost, rules...)
		}
		require.NoError(t, err, where)
		require.Equal(t, wantDecision(res.decisions), got, where)

		switch {
		case !charge:
			cnt.peeks++
		case res.allowed:
			cnt.allowed++
		default:
			cnt.denied++
		}
		if !res.allowed {
			for _, rd := range res.decisions {
				if rd.Allowed {
					cnt.partial++
				} else {
					cnt.deniedBy[rd.Rule.kind]++
				}
			}
		}
		if charge && res.allowed {
			for r, en := range model {
				if en.x <= now {
					delete(model, r)
				}
			}
			for i, r := range rules {
				model[r] = recEntry{st: res.states[i], x: now + res.ttlsMs[i]}
			}
			holdRecord(t, e, id)
		}
		stored := snapRule(t, e.raw, e.prefix, id)
		require.Len(t, stored.entries, len(model), "%s: entries of %q", where, stored.val)
		for r, en := range model {
			require.Equal(t, en, stored.entries[r.member()], "%s: stored entry of %v", where, r)
		}
	}
}

// TestHitTokenBucketBound checks through HitN that a token bucket with
// burst B refilling R per P allows at most B + R*t/P units over any span of
// t, on random calls: sum*P <= B*P + R*t, in integers. The sum of what was
// allowed is the model's, exactly.
func TestHitTokenBucketBound(t *testing.T) {
	rules := []Rule{TokenBucket(7, time.Second, 10), TokenBucket(3, 100*time.Millisecond, 4), TokenBucket(1, 90*time.Second, 3)}
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		steps := 200
		if isRealCluster(e) {
			steps = 80
		}
		clk := newClock(modelBase)
		l := New(e.backend(t, nil), WithClock(clk.now))
		rng := rand.New(rand.NewPCG(21, 22))
		for _, r := range rules {
			var (
				st           ruleState
				now          = modelBase
				times, costs []int64
				denied       int
				id           = "tb:" + r.String()
			)
			p := r.Window().Milliseconds()
			for i := 0; i < steps; i++ {
				now += rng.Int64N(p/3 + 1)
				if rng.IntN(8) == 0 {
					now += p // sometimes a long quiet
				}
				clk.set(now)
				cost := 1 + rng.Int64N(r.Limit())
				res := evalRules([]ruleState{st}, []Rule{r}, now, cost, true)
				d, err := l.HitN(ctx, id, cost, r)
				require.NoError(t, err)
				require.Equal(t, res.allowed, d.Allowed, "%v at %d cost %d", r, now, cost)
				st = res.states[0]
				if !d.Allowed {
					denied++
					continue
				}
				holdRecord(t, e, id)
				times, costs = append(times, now), append(costs, cost)
			}
			for i := range times {
				var sum int64
				for j := i; j < len(times); j++ {
					sum += costs[j]
					span := times[j] - times[i]
					require.LessOrEqual(t, sum*p, r.Limit()*p+r.rate*span, "%v: %d allowed in [%d, %d]", r, sum, times[i], times[j])
				}
			}
			assert.Positive(t, denied, "%v: the bucket ran dry", r)
			assert.Positive(t, len(times), "%v", r)
		}
	})
}

// TestHitWindowEdge shows what a sliding window is for: with limit calls in
// the last ms of a window and limit in the first ms of the next, a fixed
// window allows 2*limit within 1 ms, a sliding window only limit. On random
// calls, a sliding window never allows 2*limit within one window's length.
func TestHitWindowEdge(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const w, limit = 1000, 10
		clk := newClock(hourBase)
		l := New(e.backend(t, nil), WithClock(clk.now))
		edge := func(r Rule) (allowed int) {
			t.Helper()
			for i := 0; i < 2*limit; i++ {
				clk.set(hourBase + w - 1 + int64(i/limit)) // limit at w-1, limit at w
				d, err := l.Hit(ctx, "edge:"+r.String(), r)
				require.NoError(t, err)
				if d.Allowed {
					allowed++
				}
			}
			return allowed
		}
		assert.Equal(t, 2*limit, edge(FixedWindow(w*time.Millisecond, limit)), "fixed window: 2*limit across the edge, within 1 ms")
		assert.Equal(t, limit, edge(SlidingWindow(w*time.Millisecond, limit)), "sliding window: limit across the edge")

		r := SlidingWindow(300*time.Millisecond, 7)
		rng := rand.New(rand.NewPCG(23, 24))
		var (
			st           ruleState
			now          = hourBase
			times, costs []int64
			denied       int
		)
		steps := 300
		if isRealCluster(e) {
			steps = 100
		}
		for i := 0; i < steps; i++ {
			now += rng.Int64N(60)
			clk.set(now)
			cost := 1 + rng.Int64N(3)
			res := evalRules([]ruleState{st}, []Rule{r}, now, cost, true)
			d, err := l.HitN(ctx, "edge:random", cost, r)
			require.NoError(t, err)
			require.Equal(t, res.allowed, d.Allowed, "at %d cost %d", now, cost)
			st = res.states[0]
			if !d.Allowed {
				denied++
				continue
			}
			holdRecord(t, e, "edge:random")
			times, costs = append(times, now), append(costs, cost)
		}
		most := maxCostInSpan(times, costs, r.Window().Milliseconds())
		assert.Less(t, most, 2*r.Limit(), "sliding window: the most within one window's length")
		assert.Positive(t, denied, "the window was full at times")
		t.Logf("sliding window %v: at most %d within one window's length, %d denied", r, most, denied)
	})
}

// hitTestRules are four rules of every kind with TTLs of minutes, which
// real time does not reach while a test runs.
var hitTestRules = []Rule{
	FixedWindow(time.Minute, 5),
	SlidingWindow(time.Minute, 100),
	TokenBucket(7, time.Minute, 10),
	LeakyBucket(1, 90*time.Second, 3),
}

// requireUnchanged checks that nothing under the keys of a snapshot changed:
// the values, byte for byte (DUMP), the index, and the TTLs (which fall on a
// real server).
func requireUnchanged(t *testing.T, e *env, before, after ruleSnap, what string) {
	t.Helper()
	assert.Equal(t, before.dump, after.dump, "%s: a state was written", what)
	assert.Equal(t, before.val, after.val, "%s: a state was written", what)
	assert.Equal(t, before.index, after.index, "%s: the index was written", what)
	if isRealCluster(e) && before.pttl >= 0 {
		assert.LessOrEqual(t, after.pttl, before.pttl, "%s: TTL of the record", what)
		assert.Positive(t, after.pttl, "%s: TTL of the record", what)
	} else {
		assert.Equal(t, before.pttl, after.pttl, "%s: TTL of the record", what)
	}
}

// TestHitDeniedChangesNothing checks that a denied Hit or HitN writes
// nothing, though some of its rules allow: Peek says the same before and
// after, and every key is as it was (DUMP, GET, the index, the TTLs).
func TestHitDeniedChangesNothing(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clk := newClock(hourBase + 250)
		l := New(e.backend(t, nil), WithClock(clk.now))
		const id = "denied"
		for i := 0; i < 3; i++ { // the leaky bucket is full after 3
			d, err := l.Hit(ctx, id, hitTestRules...)
			require.NoError(t, err)
			require.True(t, d.Allowed)
		}
		for _, at := range []int64{0, 1, 30_000, 89_999} {
			clk.set(hourBase + 250 + at)
			peek, err := l.Peek(ctx, id, hitTestRules...)
			require.NoError(t, err)
			require.False(t, peek.Allowed, "at +%d", at)
			require.Equal(t, []bool{true, true, true, false}, ruleAllowed(peek), "only the leaky bucket denies")
			before := snapRule(t, e.raw, e.prefix, id)
			for _, cost := range []int64{1, 2, 3} {
				d, err := l.HitN(ctx, id, cost, hitTestRules...)
				require.NoError(t, err)
				require.False(t, d.Allowed, "at +%d cost %d", at, cost)
			}
			after := snapRule(t, e.raw, e.prefix, id)
			requireUnchanged(t, e, before, after, fmt.Sprintf("denied hits at +%d", at))
			again, err := l.Peek(ctx, id, hitTestRules...)
			require.NoError(t, err)
			require.Equal(t, peek, again, "at +%d: Peek after the denied hits", at)
		}
		// At RetryAfter the leaky bucket has room for one again.
		clk.set(hourBase + 250 + 90_000)
		d, err := l.Hit(ctx, id, hitTestRules...)
		require.NoError(t, err)
		assert.True(t, d.Allowed)
	})
}

// ruleAllowed returns each rule's Allowed of a Decision with several rules.
func ruleAllowed(d Decision) []bool {
	var out []bool
	for _, rd := range d.Rules {
		out = append(out, rd.Allowed)
	}
	return out
}

// hitStep is one instant of a table: a Peek, then a Hit at the same
// instant, which must decide the same; want is what both decide.
type hitStep struct {
	at               int64 // ms after the table's base
	allowed          bool
	limit, remaining int64
	reset, retry     int64  // ResetAfter and RetryAfter, ms
	rulesAllowed     []bool // each rule's Allowed; nil for one rule
}

// runHitTable runs steps on id over rules: at each instant a Peek, which
// must write nothing, then a Hit, which must decide what the Peek said.
func runHitTable(t *testing.T, e *env, l *Limiter, clk *clock, base int64, id string, rules []Rule, steps []hitStep) {
	t.Helper()
	ctx := context.Background()
	for i, s := range steps {
		clk.set(base + s.at)
		before := snapRule(t, e.raw, e.prefix, id)
		peek, err := l.Peek(ctx, id, rules...)
		require.NoError(t, err)
		requireUnchanged(t, e, before, snapRule(t, e.raw, e.prefix, id), fmt.Sprintf("step %d: peek", i))
		hit, err := l.Hit(ctx, id, rules...)
		require.NoError(t, err)
		require.Equal(t, peek, hit, "step %d (at %d): Peek says what Hit then does", i, s.at)
		want := Decision{
			Allowed: s.allowed, Limit: s.limit, Remaining: s.remaining,
			ResetAfter: time.Duration(s.reset) * time.Millisecond,
			RetryAfter: time.Duration(s.retry) * time.Millisecond,
			Rules:      hit.Rules,
		}
		require.Equal(t, want, hit, "step %d (at %d)", i, s.at)
		require.Equal(t, s.rulesAllowed, ruleAllowed(hit), "step %d (at %d)", i, s.at)
	}
}

// TestHitPeek checks, on tables over instants, that Peek writes nothing and
// returns what a Hit at the same instant then returns, allowed or denied,
// with one rule and with several.
func TestHitPeek(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		clk := newClock(hourBase)
		l := New(e.backend(t, nil), WithClock(clk.now))
		t.Run("leaky bucket", func(t *testing.T) {
			// One unit leaks every 90 s; the bucket holds 3.
			runHitTable(t, e, l, clk, hourBase, "peek:leaky", []Rule{LeakyBucket(1, 90*time.Second, 3)}, []hitStep{
				{at: 0, allowed: true, limit: 3, remaining: 2, reset: 90_000},
				{at: 0, allowed: true, limit: 3, remaining: 1, reset: 180_000},
				{at: 0, allowed: true, limit: 3, remaining: 0, reset: 270_000},
				{at: 0, limit: 3, remaining: 0, reset: 270_000, retry: 90_000},
				{at: 45_000, limit: 3, remaining: 0, reset: 225_000, retry: 45_000},
				{at: 89_999, limit: 3, remaining: 0, reset: 180_001, retry: 1},
				{at: 90_000, allowed: true, limit: 3, remaining: 0, reset: 270_000},
				{at: 400_000, allowed: true, limit: 3, remaining: 2, reset: 90_000},
			})
		})
		t.Run("fixed window and token bucket", func(t *testing.T) {
			// 5 a second, and a bucket of 3 refilled 7 a second: one
			// token every 142.857 ms.
			rules := []Rule{FixedWindow(time.Second, 5), TokenBucket(7, time.Second, 3)}
			both, bucketDenies, windowDenies := []bool{true, true}, []bool{true, false}, []bool{false, true}
			runHitTable(t, e, l, clk, hourBase, "peek:two", rules, []hitStep{
				{at: 0, allowed: true, limit: 3, remaining: 2, reset: 143, rulesAllowed: both},
				{at: 0, allowed: true, limit: 3, remaining: 1, reset: 286, rulesAllowed: both},
				{at: 0, allowed: true, limit: 3, remaining: 0, reset: 429, rulesAllowed: both},
				{at: 0, limit: 3, remaining: 0, reset: 429, retry: 143, rulesAllowed: bucketDenies},
				{at: 142, limit: 3, remaining: 0, reset: 287, retry: 1, rulesAllowed: bucketDenies},
				{at: 143, allowed: true, limit: 3, remaining: 0, reset: 429, rulesAllowed: both},
				// A new window, and a bucket full again.
				{at: 1000, allowed: true, limit: 3, remaining: 2, reset: 143, rulesAllowed: both},
				{at: 1000, allowed: true, limit: 3, remaining: 1, reset: 286, rulesAllowed: both},
				// A tie binds the first rule.
				{at: 1500, allowed: true, limit: 5, remaining: 2, reset: 500, rulesAllowed: both},
				{at: 1500, allowed: true, limit: 5, remaining: 1, reset: 500, rulesAllowed: both},
				{at: 1900, allowed: true, limit: 5, remaining: 0, reset: 100, rulesAllowed: both},
				{at: 1900, limit: 5, remaining: 0, reset: 100, retry: 100, rulesAllowed: windowDenies},
				{at: 1999, limit: 5, remaining: 0, reset: 1, retry: 1, rulesAllowed: windowDenies},
				{at: 2000, allowed: true, limit: 3, remaining: 1, reset: 186, rulesAllowed: both},
			})
		})
	})
}

// TestHitConcurrent hits one id from 64 goroutines, 20 hits each, at one
// instant: exactly as many are allowed as the tightest rule holds, each of
// them saw a Remaining of its own, and Peek and the stored states say
// exactly that.
func TestHitConcurrent(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const workers, hits = 64, 20
		rules := []Rule{FixedWindow(time.Hour, 500), TokenBucket(1, time.Hour, 700)}
		now := hourBase + 1000
		l := New(e.backend(t, nil), WithClock(newClock(now).now))
		const id = "shared"
		var (
			mu        sync.Mutex
			remaining []int64
			denied    atomic.Int64
			wg        sync.WaitGroup
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < hits; i++ {
					d, err := l.Hit(ctx, id, rules...)
					if !assert.NoError(t, err) {
						return
					}
					if !d.Allowed {
						denied.Add(1)
						continue
					}
					mu.Lock()
					remaining = append(remaining, d.Remaining)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Len(t, remaining, 500, "allowed")
		require.Equal(t, int64(workers*hits-500), denied.Load())
		slices.Sort(remaining)
		for i, r := range remaining { // each allowed hit saw its own count
			require.Equal(t, int64(i), r)
		}

		// The model, fed the same calls one after another.
		states := make([]ruleState, len(rules))
		allowed := 0
		for i := 0; i < workers*hits; i++ {
			res := evalRules(states, rules, now, 1, true)
			if res.allowed {
				allowed++
			}
			states = res.states
		}
		require.Equal(t, 500, allowed)
		peek, err := l.Peek(ctx, id, rules...)
		require.NoError(t, err)
		assert.Equal(t, wantDecision(evalRules(states, rules, now, 1, false).decisions), peek)
		assert.Equal(t, []int64{0, 200}, []int64{peek.Rules[0].Remaining, peek.Rules[1].Remaining})
		stored := snapRule(t, e.raw, e.prefix, id)
		require.Len(t, stored.entries, 2, stored.val)
		assert.Equal(t, []ruleState{states[0], states[1]}, []ruleState{stored.entries[rules[0].member()].st, stored.entries[rules[1].member()].st})
	})
}

// TestHitInvalidArguments checks that bad arguments to Hit, HitN and Peek
// are refused with ErrInvalidArgument before any Redis command, on a
// backend over a live miniredis whose every command is counted.
func TestHitInvalidArguments(t *testing.T) {
	m := miniredis.RunT(t)
	hook := &countingHook{}
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	client.AddHook(hook)
	t.Cleanup(func() { client.Close() })
	standalone, err := NewClusterBackend(Options{ExpiryMs: 60_000, Client: client})
	require.NoError(t, err)
	cluster, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: []string{m.Addr()}, MaxIDBytes: 8})
	require.NoError(t, err)
	t.Cleanup(func() { cluster.Close() })
	ctx := context.Background()
	long := strings.Repeat("x", DefaultMaxIDBytes+1)
	ok := FixedWindow(time.Second, 5)

	cases := []struct {
		name  string
		id    string
		cost  int64
		rules []Rule
	}{
		{"empty id", "", 1, []Rule{ok}},
		{"oversized id", long, 1, []Rule{ok}},
		{"no rules", "a", 1, nil},
		{"zero cost", "a", 0, []Rule{ok}},
		{"negative cost", "a", -1, []Rule{ok}},
		{"cost over 2^53", "a", MaxValue + 1, []Rule{ok}},
		{"cost over the limit", "a", 6, []Rule{ok}},
		{"cost over the burst", "a", 4, []Rule{TokenBucket(1, time.Second, 3)}},
		{"cost over the capacity", "a", 4, []Rule{LeakyBucket(1, time.Second, 3)}},
		{"cost over one rule of several", "a", 6, []Rule{FixedWindow(time.Second, 10), SlidingWindow(time.Second, 5)}},
		{"two equal rules", "a", 1, []Rule{ok, FixedWindow(time.Second, 5)}},
		{"two equal rules apart", "a", 1, []Rule{TokenBucket(7, time.Second, 10), ok, TokenBucket(7, time.Second, 10)}},
		{"zero Rule", "a", 1, []Rule{{}}},
		{"zero window", "a", 1, []Rule{FixedWindow(0, 5)}},
		{"negative window", "a", 1, []Rule{SlidingWindow(-time.Second, 5)}},
		{"sub-ms window", "a", 1, []Rule{FixedWindow(999*time.Microsecond, 5)}},
		{"window not whole ms", "a", 1, []Rule{SlidingWindow(1500*time.Microsecond, 5)}},
		{"zero limit", "a", 1, []Rule{FixedWindow(time.Second, 0)}},
		{"negative limit", "a", 1, []Rule{SlidingWindow(time.Second, -1)}},
		{"limit over 2^53", "a", 1, []Rule{FixedWindow(time.Second, MaxValue+1)}},
		{"limit*window over 2^53", "a", 1, []Rule{SlidingWindow(time.Second, MaxValue)}},
		{"zero rate", "a", 1, []Rule{TokenBucket(0, time.Second, 5)}},
		{"negative rate", "a", 1, []Rule{LeakyBucket(-1, time.Second, 5)}},
		{"rate over 2^53", "a", 1, []Rule{TokenBucket(MaxValue+1, time.Second, 5)}},
		{"zero per", "a", 1, []Rule{TokenBucket(1, 0, 5)}},
		{"negative per", "a", 1, []Rule{LeakyBucket(1, -time.Second, 5)}},
		{"per not whole ms", "a", 1, []Rule{TokenBucket(7, 1001*time.Microsecond, 5)}},
		{"zero burst", "a", 1, []Rule{TokenBucket(1, time.Second, 0)}},
		{"negative burst", "a", 1, []Rule{TokenBucket(1, time.Second, -3)}},
		{"zero capacity", "a", 1, []Rule{LeakyBucket(1, time.Second, 0)}},
		{"negative capacity", "a", 1, []Rule{LeakyBucket(1, time.Second, -3)}},
		{"burst*per over 2^53", "a", 1, []Rule{TokenBucket(1, 2*time.Millisecond, MaxValue/2+1)}},
		{"one bad rule of several", "a", 1, []Rule{ok, TokenBucket(1, time.Second, 0)}},
	}
	for _, be := range []struct {
		name string
		b    *ClusterBackend
	}{{"standalone", standalone}, {"cluster", cluster}} {
		l := New(be.b, WithFailurePolicy(FailOpen))
		for _, c := range cases {
			t.Run(be.name+"/"+c.name, func(t *testing.T) {
				calls := map[string]func() (Decision, error){
					"HitN": func() (Decision, error) { return l.HitN(ctx, c.id, c.cost, c.rules...) },
				}
				if c.cost == 1 {
					calls["Hit"] = func() (Decision, error) { return l.Hit(ctx, c.id, c.rules...) }
					calls["Peek"] = func() (Decision, error) { return l.Peek(ctx, c.id, c.rules...) }
				}
				for name, call := range calls {
					d, err := call()
					require.ErrorIs(t, err, ErrInvalidArgument, name)
					assert.Equal(t, Decision{}, d, "%s: a refusal is not a decision, not even with FailOpen", name)
					// The backend refuses them too, when called directly.
					_, _, err = be.b.ChargeRules(ctx, c.id, c.rules, hourBase, c.cost, name != "Peek")
					require.ErrorIs(t, err, ErrInvalidArgument, name)
				}
			})
		}
	}
	// The cluster backend's MaxIDBytes (8) bounds the Limiter's ids.
	_, err = New(cluster).Hit(ctx, "123456789", ok)
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Zero(t, hook.n.Load(), "no command reached the standalone client")
	assert.Zero(t, m.CommandCount(), "no command reached Redis")

	// The counting sees a valid call.
	d, err := New(standalone).Hit(ctx, "a", ok)
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	assert.Positive(t, hook.n.Load())
	assert.Positive(t, m.CommandCount())
}

// TestHitNoRuleBackend checks that Hit, HitN and Peek over a Backend that
// keeps no rules return an error wrapping ErrNoRuleBackend, and never call
// the backend, whatever the failure policy.
func TestHitNoRuleBackend(t *testing.T) {
	ctx := context.Background()
	never := errors.New("the backend was called")
	rec := &recorder{}
	l := New(failingBackend{never}, WithFailurePolicy(FailOpen), WithOnError(rec.onError), WithObserver(rec))
	rules := []Rule{FixedWindow(time.Second, 5), TokenBucket(1, time.Second, 5)}
	for name, call := range map[string]func() (Decision, error){
		"Hit":  func() (Decision, error) { return l.Hit(ctx, "a", rules...) },
		"HitN": func() (Decision, error) { return l.HitN(ctx, "a", 3, rules...) },
		"Peek": func() (Decision, error) { return l.Peek(ctx, "a", rules...) },
	} {
		d, err := call()
		require.ErrorIs(t, err, ErrNoRuleBackend, name)
		assert.NotErrorIs(t, err, never, name)
		assert.NotErrorIs(t, err, ErrInvalidArgument, name)
		assert.Contains(t, err.Error(), "failingBackend", "%s: the error names the backend's type", name)
		assert.Equal(t, Decision{}, d, name)
	}
	assert.Empty(t, rec.errs)
	// Bad arguments are still refused as such.
	_, err := l.Hit(ctx, "", rules...)
	require.ErrorIs(t, err, ErrInvalidArgument)
}

// TestHitKeysAndTTLs checks the keys that Hits with several rules write on
// one id: all in the id's slot; one rule record, with an entry per rule
// (rules that differ in any parameter have entries of their own), each
// with its x, the instant it is back to full with the margin to spare; the
// record with the TTL of its latest entry (exactly it where time stands
// still); no index for the rules. And that DeleteBuckets removes the
// record and the id's CheckRate buckets, counting the rule states and the
// live buckets, and leaves no key of the id and every key of another id.
func TestHitKeysAndTTLs(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clk := newClock(hourBase + 250)
		l := New(e.backend(t, nil), WithClock(clk.now))
		// Rules that differ from the first set in one parameter each.
		others := []Rule{FixedWindow(time.Minute, 6), TokenBucket(7, time.Minute, 11), TokenBucket(8, time.Minute, 10), LeakyBucket(1, 91*time.Second, 3)}
		all := append(slices.Clone(hitTestRules), others...)
		xs := map[Rule]int64{} // each rule's x by its latest charge, of the id last written
		var buckets []string   // the CheckRate buckets of the id last written
		var last int64         // the now of the latest charge

		write := func(id string) {
			t.Helper()
			for i := 0; i < 2; i++ {
				for _, rules := range [][]Rule{hitTestRules, others} {
					clk.advance(10)
					d, err := l.HitN(ctx, id, 1+int64(i), rules...)
					require.NoError(t, err)
					require.True(t, d.Allowed)
					last = clk.now().UnixMilli()
					for _, rd := range d.Rules {
						xs[rd.Rule] = ruleExpiry(last, rd.ResetAfter.Milliseconds())
					}
				}
			}
			buckets = nil
			for _, scale := range []time.Duration{time.Second, 30 * time.Second} {
				_, err := l.CheckRate(ctx, id, scale, 10)
				require.NoError(t, err)
				bk, _ := hitKeys(e.prefix, BucketKey{Bucket: clk.now().UnixMilli() / scale.Milliseconds(), ID: id})
				buckets = append(buckets, bk)
			}
		}
		keysOf := func(id string) []string {
			t.Helper()
			base := keyBase(e.prefix, id)
			var out []string
			for _, k := range e.keys(t) {
				if strings.HasPrefix(k, base) {
					out = append(out, k)
				}
			}
			return out
		}

		const id = "a}b{c"
		for _, other := range []string{"keys", "other", id} {
			write(other)
		}
		keys := keysOf(id)
		record, _ := ruleKeySet(e.prefix, id, nil)
		want := append([]string{record, keyBase(e.prefix, id) + indexSuffix}, buckets...)
		slices.Sort(want)
		require.Equal(t, want, keys, "a rule record, an index of the buckets, a key per window")

		tag := testcluster.HashTag(keys[0])
		require.NotEqual(t, keys[0], tag)
		for _, k := range keys {
			assert.Equal(t, tag, testcluster.HashTag(k), "key %q", k)
			assert.Equal(t, testcluster.Slot(keys[0]), testcluster.Slot(k), "key %q", k)
		}
		snap := snapRule(t, e.raw, e.prefix, id)
		require.Len(t, snap.entries, len(all), "an entry per rule: %q", snap.val)
		var ttl int64
		for _, r := range all {
			assert.Equal(t, xs[r], snap.entries[r.member()].x, "%v", r)
			ttl = max(ttl, xs[r]-last)
		}
		assert.Positive(t, snap.pttl)
		assert.LessOrEqual(t, snap.pttl, ttl)
		if !isRealCluster(e) {
			assert.Equal(t, ttl, snap.pttl, "the TTL of the latest entry, exactly")
		}
		now := clk.now().UnixMilli()

		otherKeys := keysOf("other")
		n, err := l.DeleteBuckets(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(len(all)+2), n, "every rule's state and every window")
		assert.Empty(t, keysOf(id), "no key of the id is left")
		assert.Equal(t, otherKeys, keysOf("other"), "another id keeps its keys")
		d, err := l.Peek(ctx, id, hitTestRules...)
		require.NoError(t, err)
		assert.Equal(t, wantDecision(evalRules(make([]ruleState, len(hitTestRules)), hitTestRules, now, 1, false).decisions), d, "the rules are fresh")

		// A bucket that expired (here: removed) is not counted.
		write(id)
		require.NoError(t, e.raw.Del(ctx, buckets[0]).Err())
		n, err = l.DeleteBuckets(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(len(all)+1), n)
		assert.Empty(t, keysOf(id))
	})
}

// hitCounter counts the commands a client sends to Redis, and the round
// trips that carry them (a command alone or a pipeline), except the
// CLUSTER commands with which a cluster client reads the slot map, which
// may run in the background.
type hitCounter struct{ n, trips atomic.Int64 }

func (h *hitCounter) add(cmds ...redis.Cmder) {
	counted := false
	for _, c := range cmds {
		if c.Name() != "cluster" {
			h.n.Add(1)
			counted = true
		}
	}
	if counted {
		h.trips.Add(1)
	}
}

func (h *hitCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *hitCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.add(cmd); return next(ctx, cmd) }
}
func (h *hitCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.add(cmds...); return next(ctx, cmds) }
}

// countCommands makes h count the commands of b's client. On a cluster
// client it hooks every node client, where every command ends up, direct
// or coalesced; b must not have sent anything yet.
func countCommands(t *testing.T, b *ClusterBackend) *hitCounter {
	t.Helper()
	h := &hitCounter{}
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		c.OnNewNode(func(n *redis.Client) { n.AddHook(h) })
	case *redis.Client:
		c.AddHook(h)
	default:
		t.Fatalf("client of type %T", c)
	}
	return h
}

// TestHitDenyCache checks Hit with WithDenyCache: once Redis denies a Hit,
// the same Hit is answered in-process (Cached, no Redis command) until its
// RetryAfter has passed, with the Allowed, RetryAfter and ResetAfter that
// Redis would answer (a limiter without the cache peeks at it) and the
// Remaining Redis last gave; at now+RetryAfter it reaches Redis again and
// is allowed; another cost or rule set is not answered by the cache; and
// DeleteBuckets clears it.
func TestHitDenyCache(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		fill  int     // allowed Hits before the denial
		waits []int64 // instants after the denial, before RetryAfter, ms
	}{
		{"token bucket", []Rule{TokenBucket(1, time.Second, 2)}, 2, []int64{0, 1, 500, 999}},
		{"sliding window and token bucket", []Rule{SlidingWindow(time.Second, 3), TokenBucket(7, time.Second, 10)}, 3, []int64{0, 1, 500, 749, 750, 1083}},
		{"leaky bucket and fixed window", []Rule{FixedWindow(time.Minute, 100), LeakyBucket(1, 90*time.Second, 3)}, 3, []int64{1, 60_000, 89_999}},
	}
	forEachTarget(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		b := e.backend(t, nil)
		cmds := countCommands(t, b)
		clk := newClock(hourBase + 250)
		rec := &recorder{}
		l := New(b, WithClock(clk.now), WithDenyCache(100), WithObserver(rec))
		ref := New(e.backend(t, nil), WithClock(clk.now)) // no cache: what Redis says
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := "abuser:" + c.name
				start := hourBase + 250
				clk.set(start)
				hit := func() Decision {
					t.Helper()
					d, err := l.Hit(ctx, id, c.rules...)
					require.NoError(t, err)
					return d
				}
				for i := 0; i < c.fill; i++ {
					require.True(t, hit().Allowed)
				}
				sent := cmds.n.Load()
				denied := hit()
				require.False(t, denied.Allowed)
				require.False(t, denied.Cached, "Redis denied it")
				require.Greater(t, cmds.n.Load(), sent, "the counting sees a call to Redis")
				retry := denied.RetryAfter.Milliseconds()
				require.Greater(t, retry, c.waits[len(c.waits)-1])

				for _, at := range c.waits {
					clk.set(start + at)
					sent := cmds.n.Load()
					d := hit()
					assert.Equal(t, sent, cmds.n.Load(), "at +%d: no Redis command", at)
					assert.True(t, d.Cached, "at +%d", at)
					redisSays, err := ref.Peek(ctx, id, c.rules...)
					require.NoError(t, err)
					assert.False(t, redisSays.Allowed, "at +%d", at)
					assert.Equal(t, Decision{
						Limit: redisSays.Limit, Remaining: denied.Remaining,
						ResetAfter: redisSays.ResetAfter, RetryAfter: redisSays.RetryAfter, Cached: true,
					}, d, "at +%d", at)
				}
				n := len(rec.events)
				require.True(t, rec.events[n-1].Cached, "the Observer sees a cached denial")

				// Another cost, or another set of rules, asks Redis.
				sent = cmds.n.Load()
				d, err := l.HitN(ctx, id, 2, c.rules...)
				require.NoError(t, err)
				assert.False(t, d.Cached)
				assert.Greater(t, cmds.n.Load(), sent)
				sent = cmds.n.Load()
				d, err = l.Hit(ctx, id, c.rules[len(c.rules)-1], FixedWindow(time.Hour, 1000))
				require.NoError(t, err)
				assert.False(t, d.Cached)
				assert.Greater(t, cmds.n.Load(), sent)

				// At RetryAfter the Hit reaches Redis, which allows it.
				clk.set(start + retry)
				sent = cmds.n.Load()
				d = hit()
				assert.True(t, d.Allowed, "allowed at now+RetryAfter")
				assert.False(t, d.Cached)
				assert.Greater(t, cmds.n.Load(), sent)

				// Denied again, then cached, then DeleteBuckets clears it.
				for hit().Allowed {
				}
				clk.advance(1)
				require.True(t, hit().Cached)
				_, err = l.DeleteBuckets(ctx, id)
				require.NoError(t, err)
				sent = cmds.n.Load()
				d = hit()
				assert.False(t, d.Cached)
				assert.True(t, d.Allowed, "fresh after DeleteBuckets")
				assert.Greater(t, cmds.n.Load(), sent)
			})
		}
	})
}

// hitRuleBackend is a RuleBackend whose every ChargeRules fails with err.
type hitRuleBackend struct {
	failingBackend
	calls atomic.Int64
}

func (b *hitRuleBackend) ChargeRules(ctx context.Context, id string, rules []Rule, now, cost int64, charge bool) (bool, []RuleDecision, error) {
	b.calls.Add(1)
	return false, nil, b.err
}

// TestHitFailurePolicy checks Hit, HitN and Peek under both policies: with
// FailOpen an unavailable backend allows, with FailedOpen set and a nil
// error (the error still reaches OnError and the Observer); other errors are
// returned. With a backend that points nowhere, in both modes, and with a
// fake backend for the classes of errors.
func TestHitFailurePolicy(t *testing.T) {
	ctx := context.Background()
	rules := []Rule{TokenBucket(7, time.Second, 10), FixedWindow(time.Minute, 100)}
	calls := func(l *Limiter) map[string]func() (Decision, error) {
		return map[string]func() (Decision, error){
			"Hit":  func() (Decision, error) { return l.Hit(ctx, "x", rules...) },
			"HitN": func() (Decision, error) { return l.HitN(ctx, "x", 4, rules...) },
			"Peek": func() (Decision, error) { return l.Peek(ctx, "x", rules...) },
		}
	}
	open := Decision{Allowed: true, Limit: 10, Remaining: 10, FailedOpen: true}

	for _, m := range modes {
		t.Run("nowhere/"+m.name, func(t *testing.T) {
			b, err := NewClusterBackend(Options{
				ExpiryMs: 1000, InitServers: []string{"127.0.0.1:1"}, Coalesce: m.mode,
				RedisOptions: &redis.ClusterOptions{DialTimeout: 100 * time.Millisecond, MaxRetries: -1},
			})
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			rec := &recorder{}
			l := New(b, WithFailurePolicy(FailOpen), WithOnError(rec.onError), WithObserver(rec))
			for name, call := range calls(l) {
				d, err := call()
				require.NoError(t, err, "%s: FailOpen returns no error", name)
				assert.Equal(t, open, d, name)
			}
			assert.Equal(t, []Outcome{OutcomeFailedOpen, OutcomeFailedOpen, OutcomeFailedOpen}, rec.outcomes())
			require.Len(t, rec.errs, 3)
			for _, s := range rec.errs {
				assert.Contains(t, s, "backend unavailable", "OnError sees the error")
			}

			closed := New(b)
			for name, call := range calls(closed) {
				d, err := call()
				require.ErrorIs(t, err, ErrUnavailable, name)
				assert.NotErrorIs(t, err, ErrMaybeCounted, "%s: refused dials ran nothing", name)
				assert.Equal(t, Decision{}, d, name)
			}
		})
	}

	t.Run("error classes", func(t *testing.T) {
		cases := []struct {
			name string
			err  error
			open bool
		}{
			{"unavailable", fmt.Errorf("hammer default: hit \"x\": %w: connection refused", ErrUnavailable), true},
			{"unavailable, maybe counted", fmt.Errorf("hammer default: hit \"x\": %w: %w: i/o timeout", ErrUnavailable, ErrMaybeCounted), true},
			{"misconfigured", fmt.Errorf("hammer default: hit \"x\": %w: NOPERM", ErrMisconfigured), false},
			{"other", errors.New("WRONGTYPE"), false},
			{"cancelled", context.Canceled, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				b := &hitRuleBackend{failingBackend: failingBackend{c.err}}
				rec := &recorder{}
				l := New(b, WithFailurePolicy(FailOpen), WithOnError(rec.onError), WithObserver(rec))
				for name, call := range calls(l) {
					d, err := call()
					if c.open {
						require.NoError(t, err, name)
						assert.Equal(t, open, d, name)
					} else {
						require.ErrorIs(t, err, c.err, name)
						assert.Equal(t, Decision{}, d, name)
					}
				}
				assert.Equal(t, int64(3), b.calls.Load())
				assert.Len(t, rec.errs, 3)
			})
		}
	})
}
