// Command quickstart shows Hammer-style rate limiting in a few calls: a
// fixed window with CheckRate, then a sliding window and a token bucket
// checked together with Hit.
//
// With REDIS_CLUSTER_ADDRS unset it runs on an embedded miniredis, so it
// needs no setup:
//
//	go run ./examples/quickstart
//
// With REDIS_CLUSTER_ADDRS set to comma-separated seed nodes it uses that
// Redis Cluster:
//
//	REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001 go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
)

func main() {
	log.SetFlags(0)
	seeds, where := seedNodes()
	fmt.Println("backend:", where)

	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    10 * 60 * 1000, // a bucket lives 10 minutes after its latest hit
		InitServers: seeds,
		KeyPrefix:   "quickstart:",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	limiter := hammer.New(backend)
	ctx := context.Background()

	// A fresh id for each run, so the counts start at 1 on a shared cluster.
	id := fmt.Sprintf("upload:user-%d", time.Now().UnixNano())
	fmt.Printf("\nCheckRate(%q, 1m, limit 3), five times:\n", id)
	for i := 0; i < 5; i++ {
		d, err := limiter.CheckRate(ctx, id, time.Minute, 3)
		if err != nil {
			log.Fatal(err)
		}
		verdict := "allow"
		if !d.Allowed {
			verdict = "deny"
		}
		fmt.Printf("  %-5s count=%d remaining=%d reset in %v\n", verdict, d.Count, d.Remaining, d.ResetAfter.Round(time.Millisecond))
	}

	st, err := limiter.InspectBucket(ctx, id, time.Minute, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nInspectBucket: count=%d remaining=%d reset in %v created=%s updated=%s\n",
		st.Count, st.CountRemaining, st.ResetAfter.Round(time.Millisecond),
		time.UnixMilli(st.CreatedAt).Format(time.StampMilli), time.UnixMilli(st.UpdatedAt).Format(time.StampMilli))

	n, err := limiter.DeleteBuckets(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nDeleteBuckets: %d bucket(s) deleted\n", n)
	d, err := limiter.CheckRate(ctx, id, time.Minute, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("CheckRate after the reset: allowed=%v count=%d\n", d.Allowed, d.Count)

	// Rules: a sliding window of 3 per second and a token bucket of 5
	// refilled at 1 per second, checked together, all or nothing. A denied
	// Hit changes nothing and says how long to wait.
	api := fmt.Sprintf("api:user-%d", time.Now().UnixNano())
	rules := []hammer.Rule{hammer.SlidingWindow(time.Second, 3), hammer.TokenBucket(1, time.Second, 5)}
	fmt.Printf("\nHit(%q, %v, %v), five times:\n", api, rules[0], rules[1])
	for i := 0; i < 5; i++ {
		d, err := limiter.Hit(ctx, api, rules...)
		if err != nil {
			log.Fatal(err)
		}
		verdict := "allow"
		if !d.Allowed {
			verdict = "deny"
		}
		fmt.Printf("  %-5s sliding window left=%d, token bucket left=%d, retry after %v\n",
			verdict, d.Rules[0].Remaining, d.Rules[1].Remaining, d.RetryAfter)
	}
}

// seedNodes returns the cluster's seed nodes from REDIS_CLUSTER_ADDRS, or
// starts an embedded miniredis when it is unset.
func seedNodes() ([]string, string) {
	if env := os.Getenv("REDIS_CLUSTER_ADDRS"); env != "" {
		var seeds []string
		for _, a := range strings.Split(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				seeds = append(seeds, a)
			}
		}
		return seeds, "Redis Cluster at " + strings.Join(seeds, ",")
	}
	m, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	return []string{m.Addr()}, "embedded miniredis at " + m.Addr() + " (set REDIS_CLUSTER_ADDRS to use a real cluster)"
}
