package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoServer builds the demo, runs it on a free port on an embedded
// miniredis, and drives it over HTTP until / answers 429.
func TestDemoServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary; skipped with -short")
	}
	// Bounds, not expectations: they only keep a stuck build or server from
	// hanging the run.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := buildDemo(ctx, t)

	const limit = 3
	// Windows and refills of an hour: no count changes on the way, but
	// for a window that ends, which the checks allow for.
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-limit", strconv.Itoa(limit), "-window", "1h",
		"-rules-limit", "10", "-rules-window", "1h", "-burst", "2", "-refill", "1h")
	cmd.Env = append(os.Environ(), "REDIS_CLUSTER_ADDRS=") // always the embedded miniredis
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	// The first line says the URL, with the port the kernel chose.
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "no line from the server: %v", lines.Err())
	m := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(lines.Text())
	require.NotEmpty(t, m, "no URL in %q", lines.Text())
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// Until 429: limit allowed requests, or more if an hour window ended
	// on the way.
	const name = `"fixed_window(1h0m0s,3)"`
	var denied *http.Response
	for i := 0; i < 3*limit && denied == nil; i++ {
		resp := get("/")
		switch resp.StatusCode {
		case http.StatusOK:
			assert.Equal(t, name+";q=3;w=3600", resp.Header.Get("RateLimit-Policy"))
			assert.Regexp(t, `^`+regexp.QuoteMeta(name)+`;r=[0-2];t=\d+$`, resp.Header.Get("RateLimit"))
		case http.StatusTooManyRequests:
			denied = resp
		default:
			t.Fatalf("GET /: %s", resp.Status)
		}
	}
	require.NotNil(t, denied, "no 429 after %d requests", 3*limit)
	h := denied.Header
	assert.Equal(t, name+";q=3;w=3600", h.Get("RateLimit-Policy"))
	retryAfter := seconds(t, h.Get("Retry-After"))
	assert.Equal(t, name+";r=0;t="+strconv.Itoa(retryAfter), h.Get("RateLimit"))

	assert.Equal(t, http.StatusUnauthorized, get("/api").StatusCode)
	resp := get("/api", "X-API-Key", "demo")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `"fixed_window(1h0m0s,100)";q=100;w=3600`, resp.Header.Get("RateLimit-Policy"))

	// /rules: a sliding window of 10 an hour and a bucket of 2 that gains
	// one an hour. The bucket denies the third request; the window keeps
	// what the two allowed ones took.
	const rulesPolicy = `"window";q=10;w=3600, "burst";q=2;w=7200`
	rulesItems := regexp.MustCompile(`^"window";r=(\d+);t=(\d+), "burst";r=(\d+);t=(\d+)$`)
	for i := 0; i < 2; i++ {
		resp := get("/rules")
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET /rules %d", i+1)
		assert.Equal(t, rulesPolicy, resp.Header.Get("RateLimit-Policy"))
		items := rulesItems.FindStringSubmatch(resp.Header.Get("RateLimit"))
		require.Len(t, items, 5, "RateLimit: %q", resp.Header.Get("RateLimit"))
		assert.Equal(t, strconv.Itoa(9-i), items[1], "window r")
		// A sliding window's hit weighs until the end of the next window.
		secondsUpTo(t, items[2], 7200)
		assert.Equal(t, strconv.Itoa(1-i), items[3], "burst r")
		if i == 0 {
			// A token taken from the full bucket is back in exactly -refill.
			assert.Equal(t, "3600", items[4])
		} else {
			seconds(t, items[4])
		}
		assert.Empty(t, resp.Header.Get("Retry-After"))
	}
	resp = get("/rules")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, rulesPolicy, resp.Header.Get("RateLimit-Policy"))
	retryAfter = seconds(t, resp.Header.Get("Retry-After"))
	items := regexp.MustCompile(`^"window";r=8;t=(\d+), "burst";r=0;t=(\d+)$`).FindStringSubmatch(resp.Header.Get("RateLimit"))
	require.Len(t, items, 3, "RateLimit: %q", resp.Header.Get("RateLimit"))
	assert.LessOrEqual(t, seconds(t, items[1]), retryAfter, "no t after Retry-After")
	assert.Equal(t, retryAfter, seconds(t, items[2]), "the bucket denies: its t is Retry-After")

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m+"stats", nil)
	require.NoError(t, err)
	resp, err = client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Checks   int64            `json:"checks"`
		Outcomes map[string]int64 `json:"outcomes"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	assert.GreaterOrEqual(t, st.Outcomes["allowed"], int64(limit+1+2))
	assert.Equal(t, int64(2), st.Outcomes["denied"], "one on / and one on /rules")
	assert.Equal(t, st.Checks, st.Outcomes["allowed"]+st.Outcomes["denied"])

	// Stop it the way a user would, and see it exit.
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	assert.NoError(t, cmd.Wait())
}

// seconds parses a delay-seconds value in [1, 3600]: a wait within one
// window or refill of an hour.
func seconds(t *testing.T, v string) int {
	t.Helper()
	return secondsUpTo(t, v, 3600)
}

// secondsUpTo parses a delay-seconds value in [1, most].
func secondsUpTo(t *testing.T, v string, most int) int {
	t.Helper()
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%q", v)
	assert.True(t, n >= 1 && n <= most, "%d not in [1, %d]", n, most)
	return n
}

// buildDemo builds the demo into a temporary directory and returns the
// binary's path.
func buildDemo(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "httpserver")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// TestDemoServerRefusesBadFlags: flags that make an invalid rule stop the
// demo before it listens, with a message naming the flag and a non-zero
// exit status.
func TestDemoServerRefusesBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary; skipped with -short")
	}
	// A bound, not an expectation: it only keeps a stuck build or server
	// from hanging the run.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildDemo(ctx, t)

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-window", "0"}, "-window 0s"},
		{[]string{"-window", "1500us"}, "-window 1.5ms"},
		{[]string{"-window", "-1m"}, "-window -1m0s"},
		{[]string{"-limit", "0"}, "-limit 0"},
		{[]string{"-api-limit", "-1"}, "-api-limit -1"},
		{[]string{"-rules-limit", "0"}, "-rules-limit 0"},
		{[]string{"-rules-window", "0"}, "-rules-window 0s"},
		{[]string{"-rules-window", "1500us"}, "-rules-window 1.5ms"},
		{[]string{"-burst", "-2"}, "-burst -2"},
		{[]string{"-refill", "1us"}, "-refill 1µs"},
		// 2^53 requests in an hour is more than the Limiter counts exactly.
		{[]string{"-rules-limit", "9007199254740992", "-rules-window", "1h"}, "-rules-limit 9007199254740992"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, append([]string{"-addr", "127.0.0.1:0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "REDIS_CLUSTER_ADDRS=") // always the embedded miniredis
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			lines := bufio.NewScanner(stdout)
			for lines.Scan() {
				if strings.Contains(lines.Text(), "listening") {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("the demo started: %q", lines.Text())
				}
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "exit: %v", err)
			assert.NotEqual(t, 0, exit.ExitCode())
			assert.Contains(t, stderr.String(), tc.want)
			assert.Contains(t, stderr.String(), "invalid rule")
		})
	}
}
