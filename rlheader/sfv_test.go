package rlheader

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParser holds the test parser to RFC 9651 on examples of the RFC and
// of the draft, and on values it must refuse.
func TestParser(t *testing.T) {
	items, err := parseList(`"burst";q=100;w=60,"daily";q=1000;w=86400`)
	require.NoError(t, err)
	require.Len(t, items, 2)
	assert.Equal(t, sfItem{val: "burst", params: []sfParam{{"q", int64(100)}, {"w", int64(60)}}}, items[0])
	assert.Equal(t, sfItem{val: "daily", params: []sfParam{{"q", int64(1000)}, {"w", int64(86400)}}}, items[1])

	items, err = parseList(`  sugar, tea;a=1 ,	rum;b;c="x\"y\\z"`)
	require.NoError(t, err)
	assert.Equal(t, []sfItem{
		{val: sfToken("sugar")},
		{val: sfToken("tea"), params: []sfParam{{"a", int64(1)}}},
		{val: sfToken("rum"), params: []sfParam{{"b", true}, {"c", `x"y\z`}}},
	}, items)

	items, err = parseList("-999999999999999;a=1;a=2")
	require.NoError(t, err)
	assert.Equal(t, []sfItem{{val: int64(-999999999999999), params: []sfParam{{"a", int64(2)}}}}, items)

	for _, bad := range []string{
		`"a`, `"a\b"`, `"a` + "\x7f" + `"`, "\"\u00e9\"", `"a",`, `"a" "b"`, `,"a"`,
		"1000000000000000", "1.5", `"a";Q=1`, `"a";=1`, `("a" "b")`, ":aGk=:", "?1",
	} {
		_, err := parseList(bad)
		assert.Error(t, err, "%s", bad)
	}
}

func TestAppendString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"daily", `"daily"`},
		{`say "hi"`, `"say \"hi\""`},
		{`a\b`, `"a\\b"`},
		{`\"`, `"\\\""`},
		{"fixed_window(1m0s,10)", `"fixed_window(1m0s,10)"`},
	}
	for _, c := range cases {
		require.NoError(t, checkString(c.in))
		got := string(appendString(nil, c.in))
		assert.Equal(t, c.want, got)
		items, err := parseList(got)
		require.NoError(t, err, got)
		assert.Equal(t, []sfItem{{val: c.in}}, items)
	}

	// Every printable ASCII character goes through.
	var all strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		all.WriteByte(c)
	}
	require.NoError(t, checkString(all.String()))
	items, err := parseList(string(appendString(nil, all.String())))
	require.NoError(t, err)
	assert.Equal(t, []sfItem{{val: all.String()}}, items)

	for _, bad := range []string{"\x00", "a\tb", "line\n", "\x1f", "\x7f", "caf\u00e9", "\xff"} {
		assert.ErrorIs(t, checkString(bad), errString, "%q", bad)
	}
}

func TestAppendIntegerParam(t *testing.T) {
	b := appendString(nil, "p")
	b = appendIntegerParam(b, "q", maxInteger)
	b = appendIntegerParam(b, "w", 0)
	assert.Equal(t, `"p";q=999999999999999;w=0`, string(b))
	items, err := parseList(string(b))
	require.NoError(t, err)
	assert.Equal(t, []sfItem{{val: "p", params: []sfParam{{"q", int64(maxInteger)}, {"w", int64(0)}}}}, items)

	assert.Equal(t, int64(maxInteger), clampInteger(1<<53))
	assert.Equal(t, int64(0), clampInteger(-1))
	assert.Equal(t, int64(42), clampInteger(42))
}
