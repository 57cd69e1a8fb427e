package hammer

import (
	"encoding"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRuleValidate(t *testing.T) {
	const maxDur = time.Duration(math.MaxInt64) / time.Millisecond * time.Millisecond // the longest whole-ms Duration
	cases := []struct {
		name  string
		rule  Rule
		valid bool
	}{
		{"zero Rule", Rule{}, false},

		{"fixed", FixedWindow(time.Second, 10), true},
		{"fixed 1ms", FixedWindow(time.Millisecond, 1), true},
		{"fixed max limit", FixedWindow(time.Second, MaxValue), true},
		{"fixed longest window", FixedWindow(maxDur, MaxValue), true},
		{"fixed zero window", FixedWindow(0, 10), false},
		{"fixed negative window", FixedWindow(-time.Second, 10), false},
		{"fixed sub-ms window", FixedWindow(time.Microsecond, 10), false},
		{"fixed fractional ms window", FixedWindow(1500*time.Microsecond, 10), false},
		{"fixed zero limit", FixedWindow(time.Second, 0), false},
		{"fixed negative limit", FixedWindow(time.Second, -1), false},
		{"fixed limit over 2^53", FixedWindow(time.Second, MaxValue+1), false},

		{"sliding", SlidingWindow(time.Minute, 100), true},
		{"sliding limit*ms = 2^53", SlidingWindow(1024*time.Millisecond, MaxValue/1024), true},
		{"sliding limit*ms just over 2^53", SlidingWindow(1024*time.Millisecond, MaxValue/1024+1), false},
		{"sliding limit*ms under 2^53", SlidingWindow(time.Second, MaxValue/1000), true},
		{"sliding limit*ms over 2^53", SlidingWindow(time.Second, MaxValue/1000+1), false},
		{"sliding huge product", SlidingWindow(maxDur, math.MaxInt64), false},
		{"sliding zero window", SlidingWindow(0, 10), false},
		{"sliding sub-ms window", SlidingWindow(time.Nanosecond, 10), false},
		{"sliding zero limit", SlidingWindow(time.Second, 0), false},
		{"sliding negative limit", SlidingWindow(time.Second, -5), false},

		{"token", TokenBucket(7, time.Second, 10), true},
		{"token 1/90s", TokenBucket(1, 90*time.Second, 1), true},
		{"token max rate", TokenBucket(MaxValue, time.Millisecond, MaxValue), true},
		{"token burst*ms = 2^53", TokenBucket(1, 1024*time.Millisecond, MaxValue/1024), true},
		{"token burst*ms over 2^53", TokenBucket(1, 1024*time.Millisecond, MaxValue/1024+1), false},
		{"token rate over 2^53", TokenBucket(MaxValue+1, time.Second, 10), false},
		{"token zero rate", TokenBucket(0, time.Second, 10), false},
		{"token negative rate", TokenBucket(-1, time.Second, 10), false},
		{"token zero per", TokenBucket(1, 0, 10), false},
		{"token negative per", TokenBucket(1, -time.Second, 10), false},
		{"token sub-ms per", TokenBucket(1, 999*time.Microsecond, 10), false},
		{"token zero burst", TokenBucket(1, time.Second, 0), false},
		{"token negative burst", TokenBucket(1, time.Second, -1), false},

		{"leaky", LeakyBucket(7, time.Second, 10), true},
		{"leaky capacity*ms = 2^53", LeakyBucket(3, 2*time.Millisecond, MaxValue/2), true},
		{"leaky capacity*ms over 2^53", LeakyBucket(3, 2*time.Millisecond, MaxValue/2+1), false},
		{"leaky capacity over 2^53", LeakyBucket(3, time.Millisecond, MaxValue+1), false},
		{"leaky rate over 2^53", LeakyBucket(math.MaxInt64, time.Millisecond, 1), false},
		{"leaky zero rate", LeakyBucket(0, time.Second, 10), false},
		{"leaky zero per", LeakyBucket(1, 0, 10), false},
		{"leaky sub-ms per", LeakyBucket(1, 2500*time.Microsecond, 10), false},
		{"leaky zero capacity", LeakyBucket(1, time.Second, 0), false},
		{"leaky negative capacity", LeakyBucket(1, time.Second, -3), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.rule.Validate()
			if c.valid {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			// An invalid rule is refused where it is used.
			assert.ErrorIs(t, checkRules([]Rule{c.rule}, 1), ErrInvalidArgument)
		})
	}
}

func TestRuleCheckRules(t *testing.T) {
	fw := FixedWindow(time.Second, 10)
	tb := TokenBucket(1, time.Second, 3)
	cases := []struct {
		name  string
		rules []Rule
		cost  int64
		valid bool
	}{
		{"one rule", []Rule{fw}, 1, true},
		{"cost = limit", []Rule{fw}, 10, true},
		{"several kinds", []Rule{fw, tb, SlidingWindow(time.Second, 5), LeakyBucket(1, time.Second, 4)}, 3, true},
		{"same kind, other parameters", []Rule{fw, FixedWindow(time.Second, 11), FixedWindow(2*time.Second, 10)}, 1, true},
		{"max cost", []Rule{FixedWindow(time.Second, MaxValue)}, MaxValue, true},
		{"nil rules", nil, 1, false},
		{"no rules", []Rule{}, 1, false},
		{"invalid rule", []Rule{fw, FixedWindow(0, 10)}, 1, false},
		{"zero Rule", []Rule{Rule{}}, 1, false},
		{"equal rules", []Rule{fw, tb, FixedWindow(1000*time.Millisecond, 10)}, 1, false},
		{"zero cost", []Rule{fw}, 0, false},
		{"negative cost", []Rule{fw}, -1, false},
		{"cost over 2^53", []Rule{FixedWindow(time.Second, MaxValue)}, MaxValue + 1, false},
		{"cost over a limit", []Rule{fw}, 11, false},
		{"cost over a burst", []Rule{fw, tb}, 4, false},
		{"cost over a capacity", []Rule{LeakyBucket(1, time.Second, 2), fw}, 3, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkRules(c.rules, c.cost)
			if c.valid {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalidArgument)
			}
		})
	}
}

func TestRuleAccessors(t *testing.T) {
	cases := []struct {
		rule      Rule
		name      string
		algorithm string
		limit     int64
		window    time.Duration
		rate      int64
		member    string
	}{
		{FixedWindow(time.Second, 10), "fixed_window(1s,10)", "fixed_window", 10, time.Second, 0, "f:1000:10"},
		{SlidingWindow(time.Minute, 100), "sliding_window(1m0s,100)", "sliding_window", 100, time.Minute, 0, "s:60000:100"},
		{TokenBucket(7, time.Second, 10), "token_bucket(7/1s,10)", "token_bucket", 10, time.Second, 7, "t:7:1000:10"},
		{LeakyBucket(1, 90*time.Second, 5), "leaky_bucket(1/1m30s,5)", "leaky_bucket", 5, 90 * time.Second, 1, "l:1:90000:5"},
		{FixedWindow(1500*time.Millisecond, MaxValue), "fixed_window(1.5s,9007199254740992)", "fixed_window", MaxValue, 1500 * time.Millisecond, 0, "f:1500:9007199254740992"},
		{Rule{}, "invalid_rule", "", 0, 0, 0, ""},
	}
	for _, c := range cases {
		assert.Equal(t, c.name, c.rule.String())
		assert.Equal(t, c.algorithm, c.rule.Algorithm(), "%v", c.rule)
		assert.Equal(t, c.limit, c.rule.Limit(), "%v", c.rule)
		assert.Equal(t, c.window, c.rule.Window(), "%v", c.rule)
		assert.Equal(t, c.rate, c.rule.Rate(), "%v", c.rule)
		if c.member != "" {
			assert.Equal(t, c.member, c.rule.member(), "%v", c.rule)
		}
	}
	// Rules are comparable values: usable as map keys, equal when made equal.
	m := map[Rule]int{TokenBucket(7, time.Second, 10): 1}
	assert.Equal(t, 1, m[TokenBucket(7, 1000*time.Millisecond, 10)])
	assert.NotEqual(t, TokenBucket(7, time.Second, 10), LeakyBucket(7, time.Second, 10))
}

// TestRuleMember checks that members are injective over valid rules (rules
// that differ in any parameter never share state) and hold neither of the
// record's delimiters.
func TestRuleMember(t *testing.T) {
	var rules []Rule
	periods := []time.Duration{time.Millisecond, 10 * time.Millisecond, 11 * time.Millisecond, 101 * time.Millisecond, 110 * time.Millisecond, time.Second, 90 * time.Second}
	values := []int64{1, 2, 10, 11, 12, 110, 111, 1000, MaxValue / 90_000, MaxValue}
	for _, p := range periods {
		for _, a := range values {
			rules = append(rules, FixedWindow(p, a), SlidingWindow(p, a))
			for _, b := range values {
				rules = append(rules, TokenBucket(a, p, b), LeakyBucket(a, p, b))
			}
		}
	}
	seen := map[string]Rule{}
	valid := 0
	for _, r := range rules {
		if r.Validate() != nil {
			continue
		}
		valid++
		s := r.member()
		if prev, dup := seen[s]; dup {
			t.Fatalf("%v and %v share the member %q", prev, r, s)
		}
		seen[s] = r
		assert.False(t, strings.ContainsAny(s, ";="), "member %q", s)
		assert.Equal(t, s, string(r.appendMember([]byte{})))
	}
	assert.Greater(t, valid, 1000)
}

// TestRuleKeys checks the key of the rule script, the id's rule record,
// and the name of a call's key set and rules, for ids of odd bytes.
func TestRuleKeys(t *testing.T) {
	rules := []Rule{FixedWindow(time.Second, 10), TokenBucket(7, time.Second, 10), SlidingWindow(time.Minute, MaxValue/60_000)}
	for _, id := range oddIDs {
		key, set := ruleKeySet("pre:", id, rules)
		assert.Equal(t, keyBase("pre:", id)+ruleSuffix, key)
		assert.Equal(t, key+"f:1000:10=t:7:1000:10=s:60000:150119987579=", set)
		assert.Equal(t, testcluster.Slot(indexKey("pre:", id)), testcluster.Slot(key), "one slot")
	}
	key, set := ruleKeySet("", "a", []Rule{LeakyBucket(1, time.Millisecond, 1)})
	assert.Equal(t, "{a}:r", key)
	assert.Equal(t, "{a}:rl:1:1:1=", set)
	allocs := testing.AllocsPerRun(100, func() { ruleKeySet("pre:", "user:1", rules) })
	assert.LessOrEqual(t, allocs, 1.0, "one string for the key and the name")
}

func TestRuleArgs(t *testing.T) {
	rules := []Rule{FixedWindow(time.Second, 10), SlidingWindow(time.Minute, 5), TokenBucket(7, time.Second, 3), LeakyBucket(1, 90*time.Second, 4)}
	cl := newRuleCall("p:", "id", rules, 1234, 2, true)
	assert.Equal(t, []string{"p:{id}:r"}, cl.keys)
	assert.Equal(t, "p:{id}:rf:1000:10=s:60000:5=t:7:1000:3=l:1:90000:4=", cl.group)
	assert.Equal(t, []string{"1234", "2", "f:1000:10=", "s:60000:5=", "t:7:1000:3=", "l:1:90000:4="}, argStrings(t, cl.args))
	assert.Equal(t, 4, ruleCallRules(cl))
	cl = newRuleCall("p:", "id", rules[:1], -5, 3, false)
	assert.Equal(t, []string{"-5", "-3", "f:1000:10="}, argStrings(t, cl.args), "a peek: minus the cost")
	assert.Equal(t, 1, ruleCallRules(cl))
	allocs := testing.AllocsPerRun(100, func() { newRuleCall("p:", "id", rules[:1], 1234, 2, true) })
	assert.Equal(t, 2.0, allocs, "one rule: the call, and its key and name; now and the token go by pointer")
}

// newRuleCall returns the script call of a call of id over rules at now of
// cost, as ChargeRules makes it: a hit when charge is set, else a peek.
func newRuleCall(prefix, id string, rules []Rule, now, cost int64, charge bool) *call {
	cl := new(call)
	initRuleCall(cl, prefix, id, rules, now, cost, charge)
	return cl
}

// parseRuleReply is parseRuleReplyInto with no room for the decisions.
func parseRuleReply(v any, rules []Rule) (allowed bool, ds []RuleDecision, err error) {
	return parseRuleReplyInto(v, rules, nil)
}

// argStrings returns command arguments as go-redis writes them: through
// MarshalBinary where an argument has it, else as fmt prints them.
func argStrings(t *testing.T, args []any) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		if m, ok := a.(encoding.BinaryMarshaler); ok {
			b, err := m.MarshalBinary()
			require.NoError(t, err)
			out[i] = string(b)
		} else {
			out[i] = fmt.Sprint(a)
		}
	}
	return out
}

func TestRuleParseReply(t *testing.T) {
	rules := []Rule{FixedWindow(time.Second, 10), TokenBucket(7, time.Second, 3)}
	allowed, ds, err := parseRuleReply([]any{int64(0), int64(1), int64(4), int64(500), int64(0), int64(0), int64(0), int64(1429), int64(143)}, rules)
	require.NoError(t, err)
	assert.False(t, allowed)
	assert.Equal(t, []RuleDecision{
		{Rule: rules[0], Allowed: true, Limit: 10, Remaining: 4, ResetAfter: 500 * time.Millisecond},
		{Rule: rules[1], Allowed: false, Limit: 3, Remaining: 0, ResetAfter: 1429 * time.Millisecond, RetryAfter: 143 * time.Millisecond},
	}, ds)

	allowed, ds, err = parseRuleReply([]any{int64(1), int64(1), int64(0), int64(MaxValue), int64(0)}, rules[1:])
	require.NoError(t, err)
	assert.True(t, allowed)
	assert.Equal(t, time.Duration(math.MaxInt64), ds[0].ResetAfter, "saturates")

	// Within a batch reply, a pointer to the values; the decisions go in
	// dst when it has room.
	vals := []any{int64(1), int64(1), int64(5), int64(9), int64(0)}
	var one [1]RuleDecision
	allowed, ds, err = parseRuleReplyInto(&vals, rules[1:], one[:])
	require.NoError(t, err)
	assert.True(t, allowed)
	assert.Same(t, &one[0], &ds[0], "the decision in dst")
	assert.Equal(t, RuleDecision{Rule: rules[1], Allowed: true, Limit: 3, Remaining: 5, ResetAfter: 9 * time.Millisecond}, one[0])
	allocs := testing.AllocsPerRun(100, func() { _, _, _ = parseRuleReplyInto(&vals, rules[1:], one[:]) })
	assert.Zero(t, allocs)
	_, ds, err = parseRuleReplyInto(&vals, rules[1:], one[:0:0])
	require.NoError(t, err)
	assert.NotSame(t, &one[0], &ds[0], "dst of no room: a new slice")

	bad := []struct {
		name  string
		reply any
	}{
		{"nil", nil},
		{"an integer", int64(1)},
		{"a string", "OK"},
		{"empty", []any{}},
		{"short", []any{int64(1), int64(1), int64(0), int64(0)}},
		{"long", []any{int64(1), int64(1), int64(0), int64(0), int64(0), int64(0)}},
		{"a string value", []any{int64(1), int64(1), "0", int64(0), int64(0)}},
		{"a nil value", []any{int64(1), int64(1), nil, int64(0), int64(0)}},
		{"a negative value", []any{int64(1), int64(1), int64(0), int64(-1), int64(0)}},
		{"a value over 2^53", []any{int64(1), int64(1), int64(0), int64(0), int64(MaxValue + 1)}},
		{"call flag 2", []any{int64(2), int64(1), int64(0), int64(0), int64(0)}},
		{"rule flag 2", []any{int64(1), int64(2), int64(0), int64(0), int64(0)}},
		{"allowed but a rule denies", []any{int64(1), int64(0), int64(0), int64(0), int64(5)}},
		{"denied but every rule allows", []any{int64(0), int64(1), int64(0), int64(0), int64(0)}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseRuleReply(c.reply, rules[1:])
			assert.ErrorIs(t, err, errBadReply)
		})
	}
}
