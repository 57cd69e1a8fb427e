package hammer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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

// The rule script against the model: random sequences of clock steps (back
// too), costs, hits and peeks over 1 to 3 rules of mixed kinds, on
// miniredis (gopher-lua) and on the shared real cluster (Redis's Lua). Every
// reply must equal the model's decisions, every stored state the model's
// state, and a denied call or a peek must leave every key as it was.

// ruleTarget is a Redis that the script tests run on.
type ruleTarget struct {
	rdb redis.UniversalClient
	// realTime is set where time passes (a real server): a key may then
	// expire between two steps, and PTTLs fall.
	realTime bool
}

// forEachRuleTarget runs f on miniredis and on the shared cluster.
func forEachRuleTarget(t *testing.T, f func(t *testing.T, tg ruleTarget)) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		f(t, ruleTarget{rdb: rdb})
	})
	t.Run("cluster", func(t *testing.T) {
		c := testcluster.Shared(t)
		rdb := redis.NewClusterClient(c.ClusterOptions())
		t.Cleanup(func() { rdb.Close() })
		f(t, ruleTarget{rdb: rdb, realTime: true})
	})
}

// runRuleScript runs the rule script with EVALSHA, and with EVAL on
// NOSCRIPT.
func runRuleScript(ctx context.Context, rdb redis.Scripter, keys []string, args []any) (any, error) {
	v, err := rdb.EvalSha(ctx, ruleScript.sha, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		v, err = rdb.Eval(ctx, ruleSource, keys, args...).Result()
	}
	return v, err
}

// encodeRuleState returns the stored form of a state: "t:v", or "t:v:p"
// for a sliding window.
func encodeRuleState(r Rule, st ruleState) string {
	s := strconv.FormatInt(st.t, 10) + ":" + strconv.FormatInt(st.v, 10)
	if r.kind == kindSliding {
		s += ":" + strconv.FormatInt(st.p, 10)
	}
	return s
}

// decodeRuleState reads a stored state.
func decodeRuleState(r Rule, s string) (ruleState, error) {
	f := strings.Split(s, ":")
	want := 2
	if r.kind == kindSliding {
		want = 3
	}
	if len(f) != want {
		return ruleState{}, fmt.Errorf("state %q of %v: %d fields", s, r, len(f))
	}
	st := ruleState{set: true}
	for i, dst := range []*int64{&st.t, &st.v, &st.p}[:want] {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return ruleState{}, fmt.Errorf("state %q of %v: %w", s, r, err)
		}
		*dst = n
	}
	return st, nil
}

// ruleSnap is what Redis holds under the keys of one call.
type ruleSnap struct {
	dumps []string // DUMP per state key (dumps[0] unused); "" when missing
	vals  []string // GET per state key (vals[0] unused); "" when missing
	pttls []int64  // PTTL per key, in ms (go-redis's PTTL Duration overflows past 292 years)
	index []redis.Z
}

// snapRule reads keys (the index first, then the state keys) in one
// pipeline: all of them share a slot. (miniredis can DUMP strings only;
// the index is read with its scores instead.)
func snapRule(t *testing.T, rdb redis.UniversalClient, keys []string) ruleSnap {
	t.Helper()
	ctx := context.Background()
	var (
		dumps, gets []*redis.StringCmd
		pttls       []*redis.Cmd
		index       *redis.ZSliceCmd
	)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			pttls = append(pttls, p.Do(ctx, "PTTL", k))
			if i > 0 {
				dumps = append(dumps, p.Dump(ctx, k))
				gets = append(gets, p.Get(ctx, k))
			}
		}
		index = p.ZRangeWithScores(ctx, keys[0], 0, -1)
		return nil
	})
	if err != redis.Nil {
		require.NoError(t, err)
	}
	s := ruleSnap{dumps: []string{""}, vals: []string{""}}
	for i := range keys {
		ms, err := pttls[i].Int64()
		require.NoError(t, err)
		s.pttls = append(s.pttls, ms)
		if i > 0 {
			for _, c := range []struct {
				cmd *redis.StringCmd
				dst *[]string
			}{{dumps[i-1], &s.dumps}, {gets[i-1], &s.vals}} {
				v, err := c.cmd.Result()
				if err != redis.Nil {
					require.NoError(t, err)
				}
				*c.dst = append(*c.dst, v)
			}
		}
	}
	s.index = index.Val()
	return s
}

// members returns the index's members, sorted.
func (s ruleSnap) members() []string {
	var m []string
	for _, z := range s.index {
		m = append(m, z.Member.(string))
	}
	slices.Sort(m)
	return m
}

// ruleSeq is one random sequence of calls on one id.
type ruleSeq struct {
	rules []Rule
	now   int64 // the clock at the start
	big   bool  // rules with scaled levels near 2^53
	steps int
}

func randRuleSeq(rng *rand.Rand, i int) ruleSeq {
	s := ruleSeq{big: i%4 == 3, steps: 30}
	s.rules = randRules(rng, s.big)
	s.now = modelBase + rng.Int64N(10_000_000)
	switch i % 10 {
	case 5:
		s.now = -modelBase + rng.Int64N(10_000_000) // before the epoch
	case 7:
		s.now = 1<<51 - 1_000_000_000 - rng.Int64N(10_000_000) // near the clock's bound
	}
	return s
}

// ruleCounts counts what the random sequences did, to show that they go
// down every path.
type ruleCounts struct {
	hits, denied, peeks, expired int
	deniedBy                     map[ruleKind]int
}

// runRuleSeq runs one sequence against the script and the model.
func runRuleSeq(t *testing.T, tg ruleTarget, rng *rand.Rand, seq ruleSeq, cnt *ruleCounts) {
	t.Helper()
	ctx := context.Background()
	prefix := namespace()
	id := oddIDs[rng.IntN(len(oddIDs))]
	keys := ruleKeys(prefix, id, seq.rules)
	n := len(seq.rules)
	model := make([]ruleState, n) // what the model says is stored
	written := map[string]bool{}  // suffixes written so far
	now := seq.now
	for step := 0; step < seq.steps; step++ {
		now += randClockStep(rng)
		cost := randRuleCost(rng, seq.rules)
		charge := rng.IntN(5) > 0
		where := fmt.Sprintf("step %d: %v now=%d cost=%d charge=%v", step, seq.rules, now, cost, charge)

		before := snapRule(t, tg.rdb, keys)
		states := make([]ruleState, n)
		for i, r := range seq.rules {
			if before.vals[1+i] == "" {
				if model[i].set {
					require.True(t, tg.realTime, "%s: state of %v gone", where, r)
					cnt.expired++ // its TTL ran out in real time
				}
				continue
			}
			st, err := decodeRuleState(r, before.vals[1+i])
			require.NoError(t, err, where)
			require.Equal(t, model[i], st, "%s: stored state of %v", where, r)
			states[i] = st
		}
		res := evalRules(states, seq.rules, now, cost, charge)

		v, err := runRuleScript(ctx, tg.rdb, keys, ruleArgs(now, cost, charge, seq.rules))
		require.NoError(t, err, where)
		allowed, ds, err := parseRuleReply(v, seq.rules)
		require.NoError(t, err, where)
		require.Equal(t, res.allowed, allowed, where)
		require.Equal(t, res.decisions, ds, where)

		switch {
		case !charge:
			cnt.peeks++
		case !allowed:
			cnt.denied++
		default:
			cnt.hits++
		}
		for _, d := range ds {
			if !d.Allowed {
				cnt.deniedBy[d.Rule.kind]++
			}
		}

		after := snapRule(t, tg.rdb, keys)
		if !allowed || !charge {
			// A denied call or a peek writes nothing. (On a real server a
			// key may expire meanwhile, and TTLs fall.)
			for i := range keys {
				if tg.realTime && before.pttls[i] >= 0 && after.pttls[i] == -2 {
					cnt.expired++
					continue
				}
				if i > 0 {
					require.Equal(t, before.dumps[i], after.dumps[i], "%s: %s written", where, keys[i])
				} else {
					require.Equal(t, before.index, after.index, "%s: index written", where)
				}
				if before.pttls[i] < 0 || !tg.realTime {
					require.Equal(t, before.pttls[i], after.pttls[i], "%s: TTL of %s", where, keys[i])
				} else {
					require.LessOrEqual(t, after.pttls[i], before.pttls[i], "%s: TTL of %s", where, keys[i])
				}
			}
			continue
		}
		for i, r := range seq.rules {
			require.Equal(t, encodeRuleState(r, res.states[i]), after.vals[1+i], "%s: state of %v", where, r)
			ttl := res.ttlsMs[i]
			if tg.realTime {
				require.Positive(t, after.pttls[1+i], "%s: TTL of %v", where, r)
				require.LessOrEqual(t, after.pttls[1+i], ttl, "%s: TTL of %v", where, r)
			} else {
				require.Equal(t, ttl, after.pttls[1+i], "%s: TTL of %v", where, r)
			}
			require.GreaterOrEqual(t, after.pttls[0], after.pttls[1+i], "%s: the index outlives %v", where, r)
			written[r.suffix()] = true
		}
		// The index lists the rules written, by suffix; on a real server an
		// expired key's entry may have been dropped when another was created.
		members := after.members()
		for _, m := range members {
			require.True(t, written[m], "%s: index member %q", where, m)
		}
		for i, r := range seq.rules {
			if after.vals[1+i] != "" {
				require.Contains(t, members, r.suffix(), where)
			}
		}
		if !tg.realTime {
			require.Len(t, members, len(written), where)
		}
		model = res.states
	}
}

// TestRuleScriptDifferential runs random sequences on the script and the
// model, which must agree on every reply, stored state and TTL.
func TestRuleScriptDifferential(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		rng := rand.New(rand.NewPCG(11, 12))
		cnt := ruleCounts{deniedBy: map[ruleKind]int{}}
		for i := 0; i < 120; i++ {
			runRuleSeq(t, tg, rng, randRuleSeq(rng, i), &cnt)
		}
		t.Logf("%+v", cnt)
		assert.Greater(t, cnt.hits, 500)
		assert.Greater(t, cnt.denied, 500)
		assert.Greater(t, cnt.peeks, 300)
		for _, k := range []ruleKind{kindFixed, kindSliding, kindToken, kindLeaky} {
			assert.Greater(t, cnt.deniedBy[k], 100, "denials by kind %s", k.code())
		}
	})
}

// TestRuleScriptSource checks what ties the script to the Go code: its SHA
// and its TTL margin.
func TestRuleScriptSource(t *testing.T) {
	sum := sha1.Sum([]byte(ruleSource))
	assert.Equal(t, hex.EncodeToString(sum[:]), ruleScript.sha)
	assert.True(t, strings.HasPrefix(ruleSource, preludeLua+indexLua))
	assert.Contains(t, ruleSource, fmt.Sprintf("local MARGIN = %d -- ruleTTLMarginMs\n", ruleTTLMarginMs))
	assert.Contains(t, ruleSource, fmt.Sprintf("local MAXTTL = %d -- ruleMaxTTLMs\n", ruleMaxTTLMs))
}

// TestRuleScriptConcurrent hits one id from many goroutines at one instant:
// the script is atomic, so exactly as many hits are allowed as the tightest
// rule holds, and the stored states count exactly those.
func TestRuleScriptConcurrent(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		ctx := context.Background()
		rules := []Rule{FixedWindow(time.Hour, 50), LeakyBucket(1, time.Hour, 80), TokenBucket(7, time.Second, 100)}
		keys := ruleKeys(namespace(), "user:1", rules)
		const now, workers, each = modelBase, 16, 10
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					v, err := runRuleScript(ctx, tg.rdb, keys, ruleArgs(now, 1, true, rules))
					if !assert.NoError(t, err) {
						return
					}
					ok, _, err := parseRuleReply(v, rules)
					assert.NoError(t, err)
					if ok {
						allowed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int64(50), allowed.Load())
		s := snapRule(t, tg.rdb, keys)
		assert.Equal(t, []string{"", fmt.Sprintf("%d:50", now), fmt.Sprintf("%d:%d", now, 50*3_600_000), fmt.Sprintf("%d:%d", now, 50*1000)}, s.vals)
		assert.Equal(t, []string{rules[0].suffix(), rules[1].suffix(), rules[2].suffix()}, s.members())
	})
}

// TestRuleScriptPeekReadOnly checks that a peek calls no write command, so
// that it may be sent with EVALSHA_RO (to a replica, say), while a hit may
// not.
func TestRuleScriptPeekReadOnly(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		ctx := context.Background()
		rules := []Rule{SlidingWindow(time.Second, 5), TokenBucket(1, time.Second, 5)}
		keys := ruleKeys(namespace(), "u", rules)
		_, err := runRuleScript(ctx, tg.rdb, keys, ruleArgs(modelBase, 2, true, rules))
		require.NoError(t, err)
		want, err := runRuleScript(ctx, tg.rdb, keys, ruleArgs(modelBase+10, 3, false, rules))
		require.NoError(t, err)
		got, err := tg.rdb.EvalRO(ctx, ruleSource, keys, ruleArgs(modelBase+10, 3, false, rules)...).Result()
		require.NoError(t, err)
		assert.Equal(t, want, got)
		_, err = tg.rdb.EvalRO(ctx, ruleSource, keys, ruleArgs(modelBase+10, 3, true, rules)...).Result()
		assert.Error(t, err, "a hit writes")
	})
}

// TestRuleScriptErrors checks that malformed calls and foreign states are
// refused with an error, and write nothing.
func TestRuleScriptErrors(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		ctx := context.Background()
		rules := []Rule{FixedWindow(time.Second, 10)}
		keys := ruleKeys(namespace(), "u", rules)
		args := ruleArgs(modelBase, 1, true, rules)
		cases := []struct {
			name string
			keys []string
			args []any
		}{
			{"no rules", keys[:1], args[:3]},
			{"missing argument", keys, args[:6]},
			{"extra argument", keys, append(slices.Clone(args), "x")},
			{"unknown kind", keys, append(slices.Clone(args[:3]), "x", 1000, 10, 0)},
		}
		for _, c := range cases {
			_, err := runRuleScript(ctx, tg.rdb, c.keys, c.args)
			assert.Error(t, err, c.name)
		}
		require.NoError(t, tg.rdb.Set(ctx, keys[1], "not a state", 0).Err())
		_, err := runRuleScript(ctx, tg.rdb, keys, args)
		assert.ErrorContains(t, err, "bad rule state")
		assert.Equal(t, "not a state", tg.rdb.Get(ctx, keys[1]).Val())
		assert.Equal(t, int64(0), tg.rdb.Exists(ctx, keys[0]).Val(), "no index written")
	})
}
