package hammer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
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

// ruleKeysArgs returns the keys and arguments of ruleSource for a call of
// id over rules, as ChargeRules sends them.
func ruleKeysArgs(prefix, id string, rules []Rule, now, cost int64, charge bool) ([]string, []any) {
	cl := newRuleCall(prefix, id, rules, now, cost, charge)
	return cl.keys, cl.args
}

// recEntry is an entry of a rule record: a rule's state, and x, the
// caller's unix ms after which it may be dropped.
type recEntry struct {
	st ruleState
	x  int64
}

// parseRecord reads a rule record: its entries, by member.
func parseRecord(s string) (map[string]recEntry, error) {
	out := map[string]recEntry{}
	for s != "" {
		entry, rest, ok := strings.Cut(s, ";")
		if !ok {
			return nil, fmt.Errorf("record entry %q: no ';'", s)
		}
		m, fields, ok := strings.Cut(entry, "=")
		f := strings.Split(fields, ":")
		if !ok || len(f) != 4 {
			return nil, fmt.Errorf("record entry %q: want member=t:v:p:x", entry)
		}
		var n [4]int64
		for i := range n {
			var err error
			if n[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("record entry %q: %w", entry, err)
			}
		}
		if _, dup := out[m]; dup {
			return nil, fmt.Errorf("record entry %q: member given twice", entry)
		}
		out[m] = recEntry{st: ruleState{set: true, t: n[0], v: n[1], p: n[2]}, x: n[3]}
		s = rest
	}
	return out, nil
}

// ruleSnap is what Redis holds for the rules of one id.
type ruleSnap struct {
	dump    string              // DUMP of the rule record; "" when missing
	val     string              // the record; "" when missing
	entries map[string]recEntry // the record's entries
	pttl    int64               // the record's PTTL, in ms (go-redis's PTTL Duration overflows past 292 years)
	index   int64               // whether the id's index exists: rules never write it
}

// snapRule reads the rule record of id under prefix, in one pipeline.
// (miniredis can DUMP strings only: the record is one.)
func snapRule(t *testing.T, rdb redis.UniversalClient, prefix, id string) ruleSnap {
	t.Helper()
	ctx := context.Background()
	key, _ := ruleKeySet(prefix, id, nil)
	var (
		dump, get *redis.StringCmd
		pttl      *redis.Cmd
		index     *redis.IntCmd
	)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		pttl = p.Do(ctx, "PTTL", key)
		dump = p.Dump(ctx, key)
		get = p.Get(ctx, key)
		index = p.Exists(ctx, keyBase(prefix, id)+indexSuffix)
		return nil
	})
	if err != redis.Nil {
		require.NoError(t, err)
	}
	var s ruleSnap
	s.pttl, err = pttl.Int64()
	require.NoError(t, err)
	for _, c := range []struct {
		cmd *redis.StringCmd
		dst *string
	}{{dump, &s.dump}, {get, &s.val}} {
		v, err := c.cmd.Result()
		if err != redis.Nil {
			require.NoError(t, err)
		}
		*c.dst = v
	}
	s.entries, err = parseRecord(s.val)
	require.NoError(t, err)
	s.index = index.Val()
	return s
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
	n := len(seq.rules)
	model := make([]ruleState, n) // what the model says is stored
	now := seq.now
	for step := 0; step < seq.steps; step++ {
		now += randClockStep(rng)
		cost := randRuleCost(rng, seq.rules)
		charge := rng.IntN(5) > 0
		where := fmt.Sprintf("step %d: %v now=%d cost=%d charge=%v", step, seq.rules, now, cost, charge)

		before := snapRule(t, tg.rdb, prefix, id)
		states := make([]ruleState, n)
		for i, r := range seq.rules {
			en, ok := before.entries[r.member()]
			if !ok {
				if model[i].set {
					require.True(t, tg.realTime, "%s: state of %v gone", where, r)
					cnt.expired++ // the record's TTL ran out in real time
				}
				continue
			}
			require.Equal(t, model[i], en.st, "%s: stored state of %v", where, r)
			states[i] = en.st
		}
		res := evalRules(states, seq.rules, now, cost, charge)

		keys, args := ruleKeysArgs(prefix, id, seq.rules, now, cost, charge)
		v, err := runRuleScript(ctx, tg.rdb, keys, args)
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

		after := snapRule(t, tg.rdb, prefix, id)
		require.Zero(t, after.index, "%s: rules wrote an index", where)
		if !allowed || !charge {
			// A denied call or a peek writes nothing. (On a real server the
			// record may expire meanwhile, and its TTL falls.)
			switch {
			case tg.realTime && before.pttl >= 0 && after.pttl == -2:
				cnt.expired++
			case before.pttl < 0 || !tg.realTime:
				require.Equal(t, before.dump, after.dump, "%s: record written", where)
				require.Equal(t, before.pttl, after.pttl, "%s: TTL of the record", where)
			default:
				require.Equal(t, before.dump, after.dump, "%s: record written", where)
				require.LessOrEqual(t, after.pttl, before.pttl, "%s: TTL of the record", where)
			}
			continue
		}
		// Every rule's entry is written, with x = now + its TTL, and the
		// record lasts until the latest x.
		require.Len(t, after.entries, n, "%s: entries of %q", where, after.val)
		for i, r := range seq.rules {
			want := recEntry{st: res.states[i], x: now + res.ttlsMs[i]}
			require.Equal(t, want, after.entries[r.member()], "%s: entry of %v", where, r)
		}
		requireRecordTTL(t, tg.realTime, before, after, seq.rules, now, where)
		model = res.states
	}
}

// requireRecordTTL checks the TTL of a rule record written at now by a
// call over rules: the record kept its TTL (KEEPTTL) when it held an entry
// for each of the rules and their x are the same after the call; else it
// got a TTL that runs to the latest x of its entries (at most
// ruleMaxTTLMs). On miniredis, whose TTLs stand still, the figures are
// exact; on a real server they fall while the test runs.
func requireRecordTTL(t *testing.T, realTime bool, before, after ruleSnap, rules []Rule, now int64, where string) {
	t.Helper()
	keep := before.pttl != -2
	for _, r := range rules {
		old, ok := before.entries[r.member()]
		keep = keep && ok && old.x == after.entries[r.member()].x
	}
	xnew := int64(math.MinInt64)
	for _, en := range after.entries {
		xnew = max(xnew, en.x)
	}
	want := min(xnew-now, ruleMaxTTLMs)
	if keep {
		want = before.pttl
	}
	if realTime {
		require.Positive(t, after.pttl, "%s: TTL of the record", where)
		require.LessOrEqual(t, after.pttl, want, "%s: TTL of the record", where)
	} else {
		require.Equal(t, want, after.pttl, "%s: TTL of the record", where)
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
	assert.True(t, strings.HasPrefix(ruleSource, preludeLua+ruleLua))
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
		prefix := namespace()
		const now, workers, each = modelBase, 16, 10
		keys, args := ruleKeysArgs(prefix, "user:1", rules, now, 1, true)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					v, err := runRuleScript(ctx, tg.rdb, keys, args)
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
		s := snapRule(t, tg.rdb, prefix, "user:1")
		require.Len(t, s.entries, 3, s.val)
		for i, v := range []int64{50, 50 * 3_600_000, 50 * 1000} {
			assert.Equal(t, ruleState{set: true, t: now, v: v}, s.entries[rules[i].member()].st, "%v", rules[i])
		}
		assert.Zero(t, s.index)
	})
}

// TestRuleScriptPeekReadOnly checks that a peek calls no write command, so
// that it may be sent with EVALSHA_RO (to a replica, say), while a hit may
// not.
func TestRuleScriptPeekReadOnly(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		ctx := context.Background()
		rules := []Rule{SlidingWindow(time.Second, 5), TokenBucket(1, time.Second, 5)}
		prefix := namespace()
		keys, hit := ruleKeysArgs(prefix, "u", rules, modelBase, 2, true)
		_, err := runRuleScript(ctx, tg.rdb, keys, hit)
		require.NoError(t, err)
		_, peek := ruleKeysArgs(prefix, "u", rules, modelBase+10, 3, false)
		want, err := runRuleScript(ctx, tg.rdb, keys, peek)
		require.NoError(t, err)
		got, err := tg.rdb.EvalRO(ctx, ruleSource, keys, peek...).Result()
		require.NoError(t, err)
		assert.Equal(t, want, got)
		_, hit = ruleKeysArgs(prefix, "u", rules, modelBase+10, 3, true)
		_, err = tg.rdb.EvalRO(ctx, ruleSource, keys, hit...).Result()
		assert.Error(t, err, "a hit writes")
	})
}

// TestRuleScriptErrors checks that malformed calls and foreign states are
// refused with an error, and write nothing.
func TestRuleScriptErrors(t *testing.T) {
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		ctx := context.Background()
		rules := []Rule{FixedWindow(time.Second, 10)}
		prefix := namespace()
		keys, args := ruleKeysArgs(prefix, "u", rules, modelBase, 1, true)
		cases := []struct {
			name string
			keys []string
			args []any
		}{
			{"no rules", keys, args[:2]},
			{"extra argument", keys, append(slices.Clone(args), "x")},
			{"two keys", []string{keys[0], keys[0]}, args},
		}
		for _, tok := range []string{"x:1000:10=", "f:1000:10", "f:1000:10:5=", "s:1000=", "t:7:1000=", "l:1:2:3:4=", "t:-7:1000:3=", "f:1000:10=junk"} {
			cases = append(cases, struct {
				name string
				keys []string
				args []any
			}{"token " + tok, keys, append(slices.Clone(args[:2]), tok)})
		}
		for _, c := range cases {
			_, err := runRuleScript(ctx, tg.rdb, c.keys, c.args)
			assert.Error(t, err, c.name)
			assert.Zero(t, tg.rdb.Exists(ctx, keys[0]).Val(), "%s: record written", c.name)
		}
		for _, bad := range []string{"not a state", "f:1000:10=1:2:3;x", "f:1000:10=1:2:3;", "f:1000:10=1:2:0:4;f:1000:10=1:2:0:4;junk"} {
			require.NoError(t, tg.rdb.Set(ctx, keys[0], bad, 0).Err())
			_, err := runRuleScript(ctx, tg.rdb, keys, args)
			assert.ErrorContains(t, err, "bad rule record", bad)
			assert.Equal(t, bad, tg.rdb.Get(ctx, keys[0]).Val())
		}
		assert.Zero(t, tg.rdb.Exists(ctx, keyBase(prefix, "u")+indexSuffix).Val(), "no index written")
	})
}

// TestLuaWholeDivision checks the scripts' mod, dfloor and dceil against
// Go's integer arithmetic, on miniredis and on the shared cluster, for
// whole a and b > 0 below 2^53: where |a| + b < 2^53 (Lua's '%') and
// where it is not (math.fmod).
func TestLuaWholeDivision(t *testing.T) {
	const max = 1 << 53
	cases := [][2]int64{
		{7, 3}, {-7, 3}, {6, 3}, {-6, 3}, {0, 5}, {1, 1}, {-1, 1}, {5, 1000},
		{max - 1, 1}, {max - 1, 2}, {max - 1, 1 << 52}, {-(max - 1), 7}, {max - 2, 3},
		{max - 1000, 999}, {-(max - 1000), 1001}, {1 << 52, (1 << 52) + 1},
		{max - 4, 3}, {-(max - 4), 3}, {max - 1, max - 1}, {-(max - 1), max - 1},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		b := rng.Int64N(1<<(rng.IntN(52)+1)) + 1
		a := rng.Int64N(max)
		if rng.IntN(2) == 0 {
			a = -a
		}
		cases = append(cases, [2]int64{a, b})
	}
	src := preludeLua + ruleLua + "begin()\n" + `
for i = 1, #ARGV, 2 do
  local a, b = ARGV[i] + 0, ARGV[i + 1] + 0
  put(mod(a, b))
  put(dfloor(a, b))
  put(dceil(a, b))
end
return reply()
`
	args := make([]any, 0, 2*len(cases))
	for _, c := range cases {
		args = append(args, c[0], c[1])
	}
	forEachRuleTarget(t, func(t *testing.T, tg ruleTarget) {
		v, err := tg.rdb.Eval(context.Background(), src, nil, args...).Result()
		require.NoError(t, err)
		got, ok := v.([]any)
		require.True(t, ok, "reply %T", v)
		require.Len(t, got, 3*len(cases))
		for i, c := range cases {
			a, b := c[0], c[1]
			m := (a%b + b) % b
			fl := (a - m) / b
			ce := fl
			if m > 0 {
				ce++
			}
			assert.Equal(t, []any{m, fl, ce}, got[3*i:3*i+3], "a=%d b=%d", a, b)
		}
	})
}
