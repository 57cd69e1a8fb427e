package httplimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/hammertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// windowStart, clock and newLimiter: a Limiter over a fresh miniredis,
// on a settable clock (see hammertest).
var windowStart = hammertest.WindowStart

type clock = hammertest.Clock

func newLimiter(t testing.TB, opts ...hammer.Option) (*hammer.Limiter, *miniredis.Miniredis, *clock) {
	t.Helper()
	return hammertest.NewLimiter(t, opts...)
}

// ok is the limited handler: it answers 200 "ok".
var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("ok"))
})

// serve sends one request from remote through h.
func serve(h http.Handler, remote string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var rateLimitHeaders = []string{"RateLimit", "RateLimit-Policy", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"}

func TestHeadersAtAndPastLimit(t *testing.T) {
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(15 * time.Second))
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 3, IDPrefix: "page:"})(ok)

	const policy = `"fixed_window(1m0s,3)";q=3;w=60`
	for i, want := range []string{"2", "1", "0"} {
		w := serve(h, "203.0.113.7:1")
		require.Equal(t, http.StatusOK, w.Code, "request %d", i+1)
		assert.Equal(t, "ok", w.Body.String())
		assert.Equal(t, []string{policy}, w.Header().Values("RateLimit-Policy"))
		assert.Equal(t, []string{`"fixed_window(1m0s,3)";r=` + want + ";t=45"}, w.Header().Values("RateLimit"))
		assert.Empty(t, w.Header().Get("Retry-After"))
		for _, name := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-RateLimit-Limit"} {
			assert.Empty(t, w.Header().Values(name), "%s is off by default", name)
		}
	}
	for i := 0; i < 2; i++ {
		w := serve(h, "203.0.113.7:1")
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Equal(t, policy, w.Header().Get("RateLimit-Policy"))
		assert.Equal(t, `"fixed_window(1m0s,3)";r=0;t=45`, w.Header().Get("RateLimit"))
		assert.Equal(t, "45", w.Header().Get("Retry-After"))
		assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
		assert.Equal(t, "rate limit exceeded, retry in 45 s\n", w.Body.String())
	}

	// Another client has its own count; the next window starts afresh.
	assert.Equal(t, http.StatusOK, serve(h, "203.0.113.8:1").Code)
	c.Set(windowStart.Add(time.Minute))
	w := serve(h, "203.0.113.7:1")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, `"fixed_window(1m0s,3)";r=2;t=60`, w.Header().Get("RateLimit"))
}

func TestResetRoundingAtWindowEdges(t *testing.T) {
	const scale = 10 * time.Second
	cases := []struct {
		left time.Duration // until the window ends
		want string
	}{
		{time.Millisecond, "1"},
		{999 * time.Millisecond, "1"},
		{time.Second, "1"},
		{1001 * time.Millisecond, "2"},
		{9999 * time.Millisecond, "10"},
		{scale, "10"}, // the first millisecond of a window
	}
	l, _, c := newLimiter(t)
	for i, tc := range cases {
		t.Run(tc.left.String(), func(t *testing.T) {
			// A window of its own for each case: the Limit-1 rule denies the
			// second request.
			// Two middlewares over one count: the draft-06 fields with the
			// legacy ones, and the current fields.
			c.Set(windowStart.Add(time.Duration(i+1)*scale - tc.left))
			rule := Rule{Scale: scale, Limit: 1, IDPrefix: "edge:"}
			h06 := Middleware(l, rule, WithDraft06Headers(), WithLegacyHeaders())(ok)
			h := Middleware(l, rule)(ok)
			w := serve(h06, "203.0.113.7:1")
			require.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, tc.want, w.Header().Get("RateLimit-Reset"))
			assert.Equal(t, tc.want, w.Header().Get("X-RateLimit-Reset"))

			w = serve(h06, "203.0.113.7:1")
			require.Equal(t, http.StatusTooManyRequests, w.Code)
			assert.Equal(t, tc.want, w.Header().Get("RateLimit-Reset"))
			assert.Equal(t, tc.want, w.Header().Get("Retry-After"))
			assert.Equal(t, "1;w=10", w.Header().Get("RateLimit-Policy"))
			assert.Equal(t, "1", w.Header().Get("X-RateLimit-Limit"))
			assert.Equal(t, "0", w.Header().Get("X-RateLimit-Remaining"))
			assert.Empty(t, w.Header().Values("RateLimit"))

			w = serve(h, "203.0.113.7:1")
			require.Equal(t, http.StatusTooManyRequests, w.Code)
			assert.Equal(t, `"fixed_window(10s,1)";r=0;t=`+tc.want, w.Header().Get("RateLimit"))
			assert.Equal(t, tc.want, w.Header().Get("Retry-After"))
		})
	}
}

func TestSubSecondPolicy(t *testing.T) {
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(100 * time.Millisecond))
	h := Middleware(l, Rule{Scale: 250 * time.Millisecond, Limit: 5})(ok)
	w := serve(h, "203.0.113.7:1")
	assert.Equal(t, `"fixed_window(250ms,5)";q=5;w=1`, w.Header().Get("RateLimit-Policy"))
	assert.Equal(t, `"fixed_window(250ms,5)";r=4;t=1`, w.Header().Get("RateLimit"))

	h = Middleware(l, Rule{Scale: 250 * time.Millisecond, Limit: 5}, WithDraft06Headers())(ok)
	w = serve(h, "203.0.113.7:1")
	assert.Equal(t, "5;w=1", w.Header().Get("RateLimit-Policy"))
	assert.Equal(t, "3", w.Header().Get("RateLimit-Remaining"))
	assert.Equal(t, "1", w.Header().Get("RateLimit-Reset"))
}

func TestDeniedBody(t *testing.T) {
	cases := []struct {
		accept, contentType, body string
	}{
		{"", "text/plain; charset=utf-8", "rate limit exceeded, retry in 30 s\n"},
		{"text/html,*/*;q=0.8", "text/plain; charset=utf-8", "rate limit exceeded, retry in 30 s\n"},
		{"application/json", "application/json", `{"error":"rate limit exceeded","retry_after":30}` + "\n"},
	}
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(30 * time.Second))
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1})(ok)
	serve(h, "203.0.113.7:1")
	for _, tc := range cases {
		w := serve(h, "203.0.113.7:1", "Accept", tc.accept)
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Equal(t, tc.contentType, w.Header().Get("Content-Type"), tc.accept)
		assert.Equal(t, tc.body, w.Body.String(), tc.accept)
		assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
		assert.Equal(t, "Accept", w.Header().Get("Vary"))
		if tc.contentType == "application/json" {
			var v struct {
				Error      string `json:"error"`
				RetryAfter int    `json:"retry_after"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
			assert.Equal(t, 30, v.RetryAfter)
		}
	}
}

func TestCustomDeniedHandler(t *testing.T) {
	l, _, _ := newLimiter(t)
	var got hammer.Decision
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1}, WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d hammer.Decision) {
		got = d
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprint(w, "slow down")
	}))(ok)
	serve(h, "203.0.113.7:1")
	w := serve(h, "203.0.113.7:1")
	assert.Equal(t, http.StatusTeapot, w.Code)
	assert.Equal(t, "slow down", w.Body.String())
	assert.Equal(t, "60", w.Header().Get("Retry-After"), "headers are set before the handler runs")
	assert.Equal(t, `"fixed_window(1m0s,1)";r=0;t=60`, w.Header().Get("RateLimit"))
	assert.Equal(t, hammer.Decision{Count: 2, Limit: 1, ResetAfter: time.Minute}, got)
}

func TestEmptyKeySkips(t *testing.T) {
	l, m, _ := newLimiter(t)
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1, Key: ByHeader("X-API-Key")})(ok)
	for i := 0; i < 3; i++ {
		w := serve(h, "203.0.113.7:1")
		assert.Equal(t, http.StatusOK, w.Code)
		for _, name := range rateLimitHeaders {
			assert.Empty(t, w.Header().Values(name), name)
		}
	}
	assert.Empty(t, m.Keys(), "nothing was counted")

	assert.Equal(t, http.StatusOK, serve(h, "203.0.113.7:1", "X-API-Key", "k1").Code)
	assert.Equal(t, http.StatusTooManyRequests, serve(h, "203.0.113.7:1", "X-API-Key", "k1").Code)
	assert.Equal(t, http.StatusOK, serve(h, "203.0.113.7:1", "X-API-Key", "k2").Code)
}

func TestKeyFromTrustedProxy(t *testing.T) {
	l, _, _ := newLimiter(t)
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1, Key: ByIP(proxies...)})(ok)
	assert.Equal(t, http.StatusOK, serve(h, "10.0.0.2:80", "X-Forwarded-For", "198.51.100.1").Code)
	// The same client, with a fake entry prepended, through another proxy.
	assert.Equal(t, http.StatusTooManyRequests, serve(h, "10.0.0.3:80", "X-Forwarded-For", "1.2.3.4, 198.51.100.1").Code)
}

func TestErrors(t *testing.T) {
	l, _, _ := newLimiter(t)
	failing := KeyFunc(func(*http.Request) (string, error) { return "", errors.New("no session") })
	long := KeyFunc(func(*http.Request) (string, error) { return strings.Repeat("k", 2000), nil })
	cases := []struct {
		name   string
		l      *hammer.Limiter
		rule   Rule
		opts   []Option
		status int
		err    error
	}{
		{"key function fails", l, Rule{Scale: time.Minute, Limit: 1, Key: failing}, nil, http.StatusInternalServerError, ErrKey},
		{"key too long", l, Rule{Scale: time.Minute, Limit: 1, Key: long}, nil, http.StatusBadRequest, ErrKeyTooLong},
		{"prefix makes the key too long", l, Rule{Scale: time.Minute, Limit: 1, IDPrefix: "api:", Key: ByHeader("K")}, []Option{WithMaxKeyBytes(10)}, http.StatusBadRequest, ErrKeyTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := serve(Middleware(c.l, c.rule, c.opts...)(ok), "203.0.113.7:1", "K", "0123456789")
			assert.Equal(t, c.status, w.Code)
			assert.NotEqual(t, "ok", w.Body.String())

			var got error
			h := Middleware(c.l, c.rule, append(c.opts, WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
				got = err
				w.WriteHeader(http.StatusTeapot)
			}))...)(ok)
			w = serve(h, "203.0.113.7:1", "K", "0123456789")
			assert.Equal(t, http.StatusTeapot, w.Code)
			assert.ErrorIs(t, got, c.err)
			assert.Equal(t, c.status, ErrorStatus(got))
		})
	}
}

func TestErrorBodyJSON(t *testing.T) {
	l, _, _ := newLimiter(t)
	failing := KeyFunc(func(*http.Request) (string, error) { return "", errors.New("no session") })
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1, Key: failing})(ok)
	w := serve(h, "203.0.113.7:1", "Accept", "application/json")
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"error":"rate limit check failed"}`, w.Body.String())
}

// TestBackendDown kills the Redis under the Limiter: failing closed answers
// 503, failing open lets requests through without RateLimit headers, with
// Scale and Limit as with Rules.
func TestBackendDown(t *testing.T) {
	cases := []struct {
		name   string
		policy hammer.FailurePolicy
		status int
	}{
		{"fail closed", hammer.FailClosed, http.StatusServiceUnavailable},
		{"fail open", hammer.FailOpen, http.StatusOK},
	}
	rules := []Rule{{Scale: time.Minute, Limit: 10}, {Rules: []hammer.Rule{hammer.FixedWindow(time.Minute, 10)}}}
	for _, tc := range cases {
		for _, rule := range rules {
			t.Run(fmt.Sprintf("%s %d rules", tc.name, len(rule.Rules)), func(t *testing.T) {
				testBackendDown(t, tc.policy, tc.status, rule)
			})
		}
	}
}

// testBackendDown is one case of TestBackendDown.
func testBackendDown(t *testing.T, policy hammer.FailurePolicy, status int, rule Rule) {
	var backendErrors atomic.Int64
	l, m, _ := newLimiter(t, hammer.WithFailurePolicy(policy),
		hammer.WithOnError(func(context.Context, string, error) { backendErrors.Add(1) }))
	h := Middleware(l, rule)(ok)

	w := serve(h, "203.0.113.7:1")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, `"fixed_window(1m0s,10)";r=9;t=60`, w.Header().Get("RateLimit"))

	m.Close()
	w = serve(h, "203.0.113.7:1")
	assert.Equal(t, status, w.Code)
	for _, name := range rateLimitHeaders {
		assert.Empty(t, w.Header().Values(name), name)
	}
	if status == http.StatusOK {
		assert.Equal(t, "ok", w.Body.String())
	} else {
		assert.Equal(t, "rate limiter unavailable\n", w.Body.String())
	}
	assert.Equal(t, int64(1), backendErrors.Load())
}

// TestDeniedHandlerWritesNoStatus: a denied handler that writes no status
// still answers 429, whatever else it writes, and can flush.
func TestDeniedHandlerWritesNoStatus(t *testing.T) {
	cases := []struct {
		name    string
		handler DeniedHandler
		body    string
		flushed bool
	}{
		{"nothing", func(http.ResponseWriter, *http.Request, hammer.Decision) {}, "", false},
		{"a header only", func(w http.ResponseWriter, _ *http.Request, _ hammer.Decision) {
			w.Header().Set("X-Denied", "yes")
		}, "", false},
		{"a body only", func(w http.ResponseWriter, _ *http.Request, _ hammer.Decision) {
			fmt.Fprint(w, "slow down")
		}, "slow down", false},
		{"a flush first", func(w http.ResponseWriter, _ *http.Request, _ hammer.Decision) {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			fmt.Fprint(w, "slow down")
		}, "slow down", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := newLimiter(t)
			h := Middleware(l, Rule{Scale: time.Minute, Limit: 1}, WithDeniedHandler(tc.handler))(ok)
			serve(h, "203.0.113.7:1")
			w := serve(h, "203.0.113.7:1")
			assert.Equal(t, http.StatusTooManyRequests, w.Code)
			assert.Equal(t, tc.body, w.Body.String())
			assert.Equal(t, tc.flushed, w.Flushed)
			assert.Equal(t, "60", w.Header().Get("Retry-After"))
			assert.Equal(t, `"fixed_window(1m0s,1)";r=0;t=60`, w.Header().Get("RateLimit"))
		})
	}
}

// TestKeyFuncPanics: a panic in the KeyFunc is an ErrKey error, answered
// 500; a panic in the next handler is left to the server.
func TestKeyFuncPanics(t *testing.T) {
	l, m, _ := newLimiter(t)
	boom := errors.New("boom")
	var got error
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1, Key: func(*http.Request) (string, error) { panic(boom) }},
		WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			DefaultErrorHandler(w, r, err)
		}))(ok)
	var w *httptest.ResponseRecorder
	require.NotPanics(t, func() { w = serve(h, "203.0.113.7:1") })
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Equal(t, "rate limit check failed\n", w.Body.String())
	assert.ErrorIs(t, got, ErrKey)
	assert.ErrorIs(t, got, boom)
	assert.Contains(t, got.Error(), "panicked")
	assert.Empty(t, m.Keys(), "nothing was counted")

	// A panic that is not an error.
	h = Middleware(l, Rule{Scale: time.Minute, Limit: 1, Key: func(*http.Request) (string, error) { panic("no key") }})(ok)
	require.NotPanics(t, func() { w = serve(h, "203.0.113.7:1") })
	assert.Equal(t, http.StatusInternalServerError, w.Code)

	panicking := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(boom) })
	h = Middleware(l, Rule{Scale: time.Minute, Limit: 1})(panicking)
	assert.PanicsWithValue(t, boom, func() { serve(h, "203.0.113.7:1") })
}

// TestKeyLongerThanBackendAllows: the backend's MaxIDBytes bounds the key
// too, whatever WithMaxKeyBytes says: an over-long key is the client's
// error.
func TestKeyLongerThanBackendAllows(t *testing.T) {
	m := miniredis.RunT(t)
	b, err := hammer.NewClusterBackend(hammer.Options{ExpiryMs: 60 * 60 * 1000, InitServers: []string{m.Addr()}, MaxIDBytes: 16})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	l := hammer.New(b)
	require.Equal(t, 16, l.MaxIDBytes())

	cases := []struct {
		name   string
		opts   []Option
		key    string
		status int
	}{
		{"default max", nil, strings.Repeat("k", 17), http.StatusBadRequest},
		{"larger max", []Option{WithMaxKeyBytes(1000)}, strings.Repeat("k", 17), http.StatusBadRequest},
		{"smaller max", []Option{WithMaxKeyBytes(8)}, strings.Repeat("k", 9), http.StatusBadRequest},
		{"at the backend's max", []Option{WithMaxKeyBytes(1000)}, strings.Repeat("k", 16), http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			opts := append([]Option{WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
				got = err
				DefaultErrorHandler(w, r, err)
			})}, tc.opts...)
			h := Middleware(l, Rule{Scale: time.Minute, Limit: 10, Key: ByHeader("K")}, opts...)(ok)
			w := serve(h, "203.0.113.7:1", "K", tc.key)
			assert.Equal(t, tc.status, w.Code)
			if tc.status == http.StatusBadRequest {
				assert.ErrorIs(t, got, ErrKeyTooLong)
				assert.Equal(t, "rate limit key too long\n", w.Body.String())
			} else {
				assert.NoError(t, got)
			}
		})
	}
}

// invalidRules are refused when the middleware is built.
func invalidRules(l *hammer.Limiter) []struct {
	name string
	l    *hammer.Limiter
	rule Rule
} {
	return []struct {
		name string
		l    *hammer.Limiter
		rule Rule
	}{
		{"nil limiter", nil, Rule{Scale: time.Minute, Limit: 1}},
		{"zero rule", l, Rule{}},
		{"zero scale", l, Rule{Scale: 0, Limit: 1}},
		{"negative scale", l, Rule{Scale: -time.Second, Limit: 1}},
		{"fractional scale", l, Rule{Scale: 1500 * time.Microsecond, Limit: 1}},
		{"zero limit", l, Rule{Scale: time.Minute, Limit: 0}},
		{"limit too big", l, Rule{Scale: time.Minute, Limit: hammer.MaxValue + 1}},
		{"scale beyond the expiry", l, Rule{Scale: 2 * time.Hour, Limit: 1}},
		{"prefix fills the id", l, Rule{Scale: time.Minute, Limit: 1, IDPrefix: strings.Repeat("p", hammer.DefaultMaxIDBytes)}},
	}
}

// TestMiddlewarePanicsOnInvalidRule: Middleware refuses an invalid rule
// when it is called, before any request.
func TestMiddlewarePanicsOnInvalidRule(t *testing.T) {
	l, _, _ := newLimiter(t)
	for _, tc := range invalidRules(l) {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				assert.ErrorIs(t, err, ErrInvalidRule)
			}()
			Middleware(tc.l, tc.rule)
			t.Error("Middleware did not panic")
		})
	}
}

// TestNew: New returns the error Middleware panics with, and makes no
// backend call to find it.
func TestNew(t *testing.T) {
	l, m, _ := newLimiter(t)
	for _, tc := range invalidRules(l) {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := New(tc.l, tc.rule)
			assert.Nil(t, mw)
			require.ErrorIs(t, err, ErrInvalidRule)
			assert.PanicsWithError(t, err.Error(), func() { Middleware(tc.l, tc.rule) })
		})
	}
	var beyond error
	for _, tc := range invalidRules(l) {
		if tc.name == "scale beyond the expiry" {
			_, beyond = New(tc.l, tc.rule)
		}
	}
	assert.ErrorIs(t, beyond, hammer.ErrInvalidArgument, "the Limiter's own reason is kept")
	assert.Contains(t, beyond.Error(), "expiry")
	assert.EqualValues(t, 0, m.CommandCount(), "no Redis command")

	// The longest valid rule: the Scale at the expiry, the IDPrefix one
	// byte short of the id limit, within WithMaxKeyBytes.
	mw, err := New(l, Rule{Scale: time.Hour, Limit: hammer.MaxValue, IDPrefix: "p:"})
	require.NoError(t, err)
	assert.NotNil(t, mw)
	_, err = New(l, Rule{Scale: time.Minute, Limit: 1, IDPrefix: "0123456789"}, WithMaxKeyBytes(10))
	assert.ErrorIs(t, err, ErrInvalidRule)
	_, err = New(l, Rule{Scale: time.Minute, Limit: 1, IDPrefix: "012345678"}, WithMaxKeyBytes(10))
	assert.NoError(t, err)
	assert.EqualValues(t, 0, m.CommandCount(), "no Redis command")

	// A deny cache changes nothing: the probe is refused before it.
	l2, _, _ := newLimiter(t, hammer.WithDenyCache(10))
	_, err = New(l2, Rule{Scale: 2 * time.Hour, Limit: 1})
	assert.ErrorIs(t, err, ErrInvalidRule)
}

// TestDeniedHandlerHijacks: a denied handler that takes the connection gets
// no 429 written after it.
func TestDeniedHandlerHijacks(t *testing.T) {
	l, _, _ := newLimiter(t)
	h := Middleware(l, Rule{Scale: time.Minute, Limit: 1}, WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d hammer.Decision) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		_ = rw.Flush()
	}))(ok)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, want := range []int{http.StatusOK, http.StatusTeapot} {
		resp, err := srv.Client().Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode)
	}
}
