package httplimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/stretchr/testify/assert"
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

func TestPolicyWindow(t *testing.T) {
	cases := []struct {
		scale time.Duration
		want  string
	}{
		{time.Millisecond, "1"},
		{500 * time.Millisecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{time.Minute, "60"},
		{time.Hour, "3600"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, policyWindow(c.scale), "%v", c.scale)
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
	hv := newHeaderValues(Rule{Scale: time.Minute, Limit: 7})
	h := http.Header{}
	hv.set(h, hammer.Decision{Limit: 7, Remaining: 3, ResetAfter: 1500 * time.Millisecond}, true)
	h[hLimit][0] = "changed"
	h.Add(hRemaining, "x")

	h2 := http.Header{}
	hv.set(h2, hammer.Decision{Limit: 7, Remaining: 2, ResetAfter: time.Second}, true)
	assert.Equal(t, http.Header{
		"Ratelimit-Limit": {"7"}, "Ratelimit-Remaining": {"2"}, "Ratelimit-Reset": {"1"}, "Ratelimit-Policy": {"7;w=60"},
		"X-Ratelimit-Limit": {"7"}, "X-Ratelimit-Remaining": {"2"}, "X-Ratelimit-Reset": {"1"},
	}, h2)
	assert.Equal(t, []string{"7"}, h[hLegacyLimit])
	assert.Equal(t, []string{"3"}, h[hLegacyRemain])
	assert.Equal(t, []string{"2"}, h[hReset])
}
