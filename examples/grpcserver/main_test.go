package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRun runs the demo on a fresh miniredis, with a clock stopped 20s
// into a minute, and compares all it prints but the server's port.
func TestRun(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Date(2026, 1, 1, 12, 0, 20, 0, time.UTC)
	var out bytes.Buffer
	require.NoError(t, run(&out, []string{m.Addr()}, "test", "run-1:", func() time.Time { return now }))

	got := regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(out.String(), "127.0.0.1:PORT")
	want := `gRPC server on 127.0.0.1:PORT, backend: test

Check, four times (3 a minute, shared with Watch):
  Check #1 OK
           ratelimit-policy: "fixed_window(1m0s,3)";q=3;w=60
           ratelimit:        "fixed_window(1m0s,3)";r=2;t=40
  Check #2 OK
           ratelimit-policy: "fixed_window(1m0s,3)";q=3;w=60
           ratelimit:        "fixed_window(1m0s,3)";r=1;t=40
  Check #3 OK
           ratelimit-policy: "fixed_window(1m0s,3)";q=3;w=60
           ratelimit:        "fixed_window(1m0s,3)";r=0;t=40
  Check #4 ResourceExhausted: rate limit exceeded, retry after 40s
           ratelimit-policy: "fixed_window(1m0s,3)";q=3;w=60
           ratelimit:        "fixed_window(1m0s,3)";r=0;t=40
           retry-after:      40
           RetryInfo:        retry_delay 40s

List, three times (a token bucket of 2, refilled at 1 a second):
  List #1  OK
           ratelimit-policy: "list";q=2;w=2
           ratelimit:        "list";r=1;t=1
  List #2  OK
           ratelimit-policy: "list";q=2;w=2
           ratelimit:        "list";r=0;t=1
  List #3  ResourceExhausted: rate limit exceeded, retry after 1s
           ratelimit-policy: "list";q=2;w=2
           ratelimit:        "list";r=0;t=1
           retry-after:      1
           RetryInfo:        retry_delay 1s

Watch, a stream, checked when it starts (Check used the budget):
  Watch    ResourceExhausted: rate limit exceeded, retry after 40s
           ratelimit-policy: "fixed_window(1m0s,3)";q=3;w=60
           ratelimit:        "fixed_window(1m0s,3)";r=0;t=40
           retry-after:      40
           RetryInfo:        retry_delay 40s
`
	assert.Equal(t, want, got)

	// The ids carry the prefix given: the counts of one run are its own.
	for _, k := range m.Keys() {
		assert.True(t, strings.Contains(k, "run-1:"), "key %q", k)
	}
	assert.NotEmpty(t, m.Keys())
}

// TestRunBadBackend reports a backend that cannot be reached as calls
// answered Unavailable, and still ends.
func TestRunBadBackend(t *testing.T) {
	m := miniredis.RunT(t)
	addr := m.Addr()
	m.Close()
	var out bytes.Buffer
	require.NoError(t, run(&out, []string{addr}, "closed", "run-1:", time.Now))
	assert.Equal(t, 8, strings.Count(out.String(), "Unavailable: rate limiter unavailable"), out.String())
}
