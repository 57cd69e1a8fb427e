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
		fmt.Printf("%d limit=%s remaining=%s reset=%s policy=%s retry-after=%q body=%q\n", w.Code,
			h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"),
			h.Get("RateLimit-Policy"), h.Get("Retry-After"), w.Body.String())
	}
	// Output:
	// 200 limit=2 remaining=1 reset=40 policy=2;w=60 retry-after="" body="hello\n"
	// 200 limit=2 remaining=0 reset=40 policy=2;w=60 retry-after="" body="hello\n"
	// 429 limit=2 remaining=0 reset=40 policy=2;w=60 retry-after="40" body="rate limit exceeded, retry in 40 s\n"
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
