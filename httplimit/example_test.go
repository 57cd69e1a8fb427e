package httplimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/httplimit"
)

func ExampleMiddleware() {
	m, err := miniredis.Run() // a real service gives its cluster's seed nodes
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{m.Addr()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	// A fixed clock, 20s into a minute, for a stable output.
	now := time.Date(2026, 1, 1, 12, 0, 20, 0, time.UTC)
	limiter := hammer.New(backend, hammer.WithClock(func() time.Time { return now }))

	// Two requests a minute per client IP; the client is read from
	// X-Forwarded-For when the peer is the load balancer at 10.0.0.0/8.
	limit := httplimit.Middleware(limiter, httplimit.Rule{
		Scale:    time.Minute,
		Limit:    2,
		IDPrefix: "page:",
		Key:      httplimit.ByIP(netip.MustParsePrefix("10.0.0.0/8")),
	})
	handler := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))

	for i := 0; i < 3; i++ {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.2:41000"
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		h := w.Header()
		fmt.Printf("%d RateLimit: %s; Retry-After: %q; body: %q\n", w.Code,
			h.Get("RateLimit"), h.Get("Retry-After"), w.Body.String())
	}
	fmt.Println("RateLimit-Policy:", handlerPolicy(handler))
	// Output:
	// 200 RateLimit: "fixed_window(1m0s,2)";r=1;t=40; Retry-After: ""; body: "hello\n"
	// 200 RateLimit: "fixed_window(1m0s,2)";r=0;t=40; Retry-After: ""; body: "hello\n"
	// 429 RateLimit: "fixed_window(1m0s,2)";r=0;t=40; Retry-After: "40"; body: "rate limit exceeded, retry in 40 s\n"
	// RateLimit-Policy: "fixed_window(1m0s,2)";q=2;w=60
}

// handlerPolicy returns the RateLimit-Policy that h sends.
func handlerPolicy(h http.Handler) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.1:41000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Header().Get("RateLimit-Policy")
}

// Rules of hammer, several on one route: a request is allowed only when
// every rule allows it, and the RateLimit field has one item per rule.
func ExampleRule_rules() {
	m, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{m.Addr()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	now := time.Date(2026, 1, 1, 12, 0, 20, 0, time.UTC)
	limiter := hammer.New(backend, hammer.WithClock(func() time.Time { return now }))

	// At most 100 requests a minute, in bursts of at most 3 that refill at
	// one request a second.
	limit, err := httplimit.New(limiter, httplimit.Rule{
		Rules:    []hammer.Rule{hammer.SlidingWindow(time.Minute, 100), hammer.TokenBucket(1, time.Second, 3)},
		Names:    []string{"minute", "burst"},
		IDPrefix: "search:",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	handler := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "results")
	}))

	for i := 0; i < 4; i++ {
		r := httptest.NewRequest(http.MethodGet, "/search", nil)
		r.RemoteAddr = "198.51.100.1:41000"
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		fmt.Printf("%d RateLimit: %s; Retry-After: %q\n", w.Code, w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
	}
	fmt.Println("RateLimit-Policy:", handlerPolicy(handler))
	// Output:
	// 200 RateLimit: "minute";r=99;t=100, "burst";r=2;t=1; Retry-After: ""
	// 200 RateLimit: "minute";r=98;t=100, "burst";r=1;t=1; Retry-After: ""
	// 200 RateLimit: "minute";r=97;t=100, "burst";r=0;t=1; Retry-After: ""
	// 429 RateLimit: "minute";r=97;t=1, "burst";r=0;t=1; Retry-After: "1"
	// RateLimit-Policy: "minute";q=100;w=60, "burst";q=3;w=3
}

func ExampleNew() {
	m, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{m.Addr()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	limiter := hammer.New(backend)

	// Windows read from configuration: New refuses a bad one when the
	// server starts, not at each request.
	for _, window := range []time.Duration{time.Minute, 1500 * time.Microsecond, 2 * time.Hour} {
		_, err := httplimit.New(limiter, httplimit.Rule{Scale: window, Limit: 10})
		fmt.Printf("%v: %v\n", window, err)
	}
	// Output:
	// 1m0s: <nil>
	// 1.5ms: httplimit: invalid rule: Scale 1.5ms is not a whole number of milliseconds >= 1ms
	// 2h0m0s: httplimit: invalid rule: Scale 2h0m0s: hammer: invalid argument: scale 2h0m0s is longer than the backend's expiry 1h0m0s
}
