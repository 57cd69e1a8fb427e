// Command httpserver is a small HTTP service limited by hammer's httplimit
// middleware: the demo to run first.
//
//	go run ./examples/httpserver
//
// It listens on -addr (127.0.0.1:8080) and prints its URL. With
// REDIS_CLUSTER_ADDRS unset it counts in an embedded miniredis; set it to
// comma-separated seed nodes to use a Redis Cluster:
//
//	REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001 go run ./examples/httpserver
//
// Routes:
//
//	GET /       limited per client IP: -limit requests per -window (10 a minute)
//	GET /api    needs an X-API-Key header (401 without: any non-empty value
//	            is accepted, this is a demo) and is limited per key:
//	            -api-limit requests per -window (100 a minute)
//	GET /rules  limited per client IP by two rules at once, all or nothing:
//	            a sliding window of -rules-limit requests per -rules-window
//	            (20 a minute) and a token bucket of -burst requests that
//	            gains one every -refill (5, one a second)
//	GET /stats  the limiter's checks so far, per outcome, as JSON; not limited
//
// Limited responses carry the RateLimit-Policy and RateLimit fields of the
// IETF draft, one item per rule (named "window" and "burst" on /rules);
// a denial is 429 with Retry-After.
//
// -trusted-proxies takes comma-separated CIDRs of proxies whose
// X-Forwarded-For is believed (none by default). -fail-open lets requests
// through, without RateLimit headers, while Redis is unreachable; by default
// they get 503.
//
// Flags that make an invalid rule (-window, -rules-window or -refill not a
// whole number of milliseconds >= 1ms, -limit, -api-limit, -rules-limit
// or -burst outside [1, 2^53], or a -rules-limit*-rules-window or
// -burst*-refill over what the Limiter computes exactly) stop it before it
// listens, with a message on stderr and exit status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/httplimit"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on; port 0 picks a free port")
	limit := flag.Int64("limit", 10, "requests per window and client IP on /")
	apiLimit := flag.Int64("api-limit", 100, "requests per window and API key on /api")
	window := flag.Duration("window", time.Minute, "length of a rate limit window, whole milliseconds")
	failOpen := flag.Bool("fail-open", false, "let requests through while Redis is unreachable (default: answer 503)")
	trusted := flag.String("trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	rulesLimit := flag.Int64("rules-limit", 20, "requests per -rules-window and client IP on /rules (sliding window)")
	rulesWindow := flag.Duration("rules-window", time.Minute, "length of the sliding window of /rules, whole milliseconds")
	burst := flag.Int64("burst", 5, "burst of the token bucket of /rules: requests at once per client IP")
	refill := flag.Duration("refill", time.Second, "the token bucket of /rules gains one request every -refill, whole milliseconds")
	flag.Parse()
	log.SetFlags(log.LstdFlags)

	proxies, err := parsePrefixes(*trusted)
	if err != nil {
		log.Fatal(err)
	}
	seeds, where, stop, err := seedNodes()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    max(window.Milliseconds(), 1),
		InitServers: seeds,
		KeyPrefix:   "httpserver:",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	policy := hammer.FailClosed
	if *failOpen {
		policy = hammer.FailOpen
	}
	stats := newStats()
	limiter := hammer.New(backend,
		hammer.WithFailurePolicy(policy),
		hammer.WithObserver(stats),
		hammer.WithOnError(func(_ context.Context, id string, err error) { log.Printf("limiter: %s: %v", id, err) }),
	)

	// The rules come from flags: New refuses a bad one here, before the
	// server listens, rather than at every request.
	byIP, err := httplimit.New(limiter, httplimit.Rule{
		Scale: *window, Limit: *limit, IDPrefix: "ip:", Key: httplimit.ByIP(proxies...),
	})
	if err != nil {
		log.Fatalf("-limit %d -window %v: %v", *limit, *window, err)
	}
	byKey, err := httplimit.New(limiter, httplimit.Rule{
		Scale: *window, Limit: *apiLimit, IDPrefix: "key:", Key: httplimit.ByHeader("X-API-Key"),
	})
	if err != nil {
		log.Fatalf("-api-limit %d -window %v: %v", *apiLimit, *window, err)
	}
	byRules, err := httplimit.New(limiter, httplimit.Rule{
		Rules: []hammer.Rule{
			hammer.SlidingWindow(*rulesWindow, *rulesLimit),
			hammer.TokenBucket(1, *refill, *burst),
		},
		Names:    []string{"window", "burst"},
		IDPrefix: "rules:",
		Key:      httplimit.ByIP(proxies...),
	})
	if err != nil {
		log.Fatalf("-rules-limit %d -rules-window %v -burst %d -refill %v: %v", *rulesLimit, *rulesWindow, *burst, *refill, err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", byIP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the hammer demo")
	})))
	mux.Handle("GET /api", requireAPIKey(byKey(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"ok":true}`)
	}))))
	mux.Handle("GET /rules", byRules(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "within both rules")
	})))
	mux.Handle("GET /stats", stats)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// One line on stdout with the real address (port 0 is resolved): the
	// test reads it.
	fmt.Printf("hammer demo listening on http://%s/ (backend: %s; / allows %d per %v per IP)\n", ln.Addr(), where, *limit, *window)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
	}
}

// requireAPIKey answers 401 to requests without an X-API-Key header. It
// does not check the key: a real service would.
func requireAPIKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") == "" {
			w.Header().Set("WWW-Authenticate", `APIKey header="X-API-Key"`)
			http.Error(w, "missing X-API-Key header", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// seedNodes returns the seed nodes from REDIS_CLUSTER_ADDRS, or starts an
// embedded miniredis when it is unset; stop stops the miniredis.
func seedNodes() (seeds []string, where string, stop func(), err error) {
	if env := os.Getenv("REDIS_CLUSTER_ADDRS"); env != "" {
		for _, a := range strings.Split(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				seeds = append(seeds, a)
			}
		}
		return seeds, "Redis Cluster at " + strings.Join(seeds, ","), func() {}, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, err
	}
	return []string{m.Addr()}, "embedded miniredis", m.Close, nil
}

// parsePrefixes parses comma-separated CIDRs; a bare address is taken as a
// single-address prefix.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("-trusted-proxies: %w", err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}
