package sfvtest

import (
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// printable is every printable ASCII character, the whole range of an SF
// String.
func printable() string {
	var b strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

// marshal serializes items of a name and integer parameters with httpsfv.
func marshal(t *testing.T, items [][]any) string {
	t.Helper()
	var l httpsfv.List
	for _, it := range items {
		item := httpsfv.NewItem(it[0])
		for i := 1; i+1 < len(it); i += 2 {
			item.Params.Add(it[i].(string), it[i+1])
		}
		l = append(l, item)
	}
	s, err := httpsfv.Marshal(l)
	require.NoError(t, err)
	return s
}

// parse parses a List with httpsfv, and returns each Item's String value
// and parameters.
func parse(t *testing.T, field string) (names []string, params []map[string]any) {
	t.Helper()
	l, err := httpsfv.UnmarshalList([]string{field})
	require.NoError(t, err, field)
	for _, m := range l {
		item, ok := m.(httpsfv.Item)
		require.True(t, ok, "a member of %s is not an Item", field)
		name, ok := item.Value.(string)
		require.True(t, ok, "the item %v of %s is not a String", item.Value, field)
		names = append(names, name)
		p := map[string]any{}
		for _, k := range item.Params.Names() {
			p[k], _ = item.Params.Get(k)
		}
		params = append(params, p)
	}
	return names, params
}

// TestPolicyParses: RateLimit-Policy is a List of Strings with Integer q
// and w, the same bytes as httpsfv writes, whatever the names hold.
func TestPolicyParses(t *testing.T) {
	policies := []rlheader.Policy{
		{Rule: hammer.FixedWindow(time.Minute, 10)},
		{Rule: hammer.SlidingWindow(time.Hour, hammer.MaxValue/3600000), Name: `say "hi" \ bye`},
		{Rule: hammer.TokenBucket(7, time.Second, 10), Name: printable()},
		{Rule: hammer.LeakyBucket(1, 90*time.Second, 5), Name: ""},
		{Rule: hammer.FixedWindow(time.Millisecond, hammer.MaxValue), Name: " "},
	}
	e, err := rlheader.NewEncoder(policies)
	require.NoError(t, err)
	names, params := parse(t, e.Policy())
	assert.Equal(t, []string{
		"fixed_window(1m0s,10)", `say "hi" \ bye`, printable(), "leaky_bucket(1/1m30s,5)", " ",
	}, names)
	want := [][]any{
		{names[0], "q", int64(10), "w", int64(60)},
		{names[1], "q", int64(hammer.MaxValue / 3600000), "w", int64(3600)},
		{names[2], "q", int64(10), "w", int64(2)},
		{names[3], "q", int64(5), "w", int64(450)},
		{names[4], "q", int64(999_999_999_999_999), "w", int64(1)}, // 2^53 is over 15 digits
	}
	for i, p := range params {
		assert.Equal(t, map[string]any{"q": want[i][2], "w": want[i][4]}, p, names[i])
	}
	assert.Equal(t, marshal(t, want), e.Policy())
}

// TestRateLimitParses: RateLimit is a List of the same names with Integer
// r and t.
func TestRateLimitParses(t *testing.T) {
	a, b := hammer.FixedWindow(time.Minute, hammer.MaxValue), hammer.TokenBucket(1, time.Second, 5)
	policies := []rlheader.Policy{{Rule: a, Name: `a "quoted" \ name`}, {Rule: b}}
	d := hammer.Decision{Allowed: false, Limit: 5, RetryAfter: 1500 * time.Millisecond, Rules: []hammer.RuleDecision{
		{Rule: a, Allowed: true, Limit: hammer.MaxValue, Remaining: hammer.MaxValue - 1, ResetAfter: 30 * time.Second},
		{Rule: b, Allowed: false, Limit: 5, Remaining: 0, ResetAfter: 5 * time.Second, RetryAfter: 1500 * time.Millisecond},
	}}
	policy, rateLimit := rlheader.Fields(policies, d)
	names, _ := parse(t, policy)
	got, params := parse(t, rateLimit)
	assert.Equal(t, names, got)
	assert.Equal(t, []map[string]any{
		{"r": int64(999_999_999_999_999), "t": int64(2)}, // capped at Retry-After
		{"r": int64(0), "t": int64(2)},
	}, params)
	assert.Equal(t, int64(2), rlheader.RetryAfterSeconds(d))
	assert.Equal(t, marshal(t, [][]any{
		{names[0], "r", int64(999_999_999_999_999), "t", int64(2)},
		{names[1], "r", int64(0), "t", int64(2)},
	}), rateLimit)
}

// FuzzName: a name passes Validate exactly when httpsfv can write it as a
// String, and then it reads back the same from both fields.
func FuzzName(f *testing.F) {
	for _, s := range []string{"", "daily", `"`, `\`, printable(), "a\nb", "caf\u00e9", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		policies := []rlheader.Policy{{Rule: hammer.FixedWindow(time.Minute, 10), Name: name}}
		err := rlheader.Validate(policies)
		_, sfErr := httpsfv.Marshal(httpsfv.NewItem(name))
		require.Equal(t, sfErr == nil, err == nil, "%q: rlheader %v, httpsfv %v", name, err, sfErr)
		if err != nil {
			require.ErrorIs(t, err, rlheader.ErrInvalidPolicy)
			return
		}
		if name == "" {
			name = rlheader.DefaultName(policies[0].Rule)
		}
		policy, rateLimit := rlheader.Fields(policies, hammer.Decision{Allowed: true, Limit: 10, Remaining: 9, ResetAfter: time.Second})
		for _, field := range []string{policy, rateLimit} {
			names, _ := parse(t, field)
			require.Equal(t, []string{name}, names)
		}
	})
}
