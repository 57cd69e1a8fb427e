package bench

// TestPeers compares hammer with its peers on one real Redis Cluster, in
// one run: raw go-redis HINCRBY (the floor), hammer direct and coalesced,
// go-redis/redis_rate v10 and ulule/limiter v3 with its Redis store. It is
// skipped unless HAMMER_PEER_BENCH=1; see README.md.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	ulredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/testcluster"
)

const (
	peerIDs   = 10000
	peerScale = time.Minute
	// peerLimit is so high that every contender allows every call.
	peerLimit = 1 << 40
)

// contender is one limiter under test: call checks the id of index i and
// returns an error when it failed or was denied.
type contender struct {
	name string
	call func(ctx context.Context, i int) error
}

// peerConfig is read from the environment; the defaults suit `make bench`.
type peerConfig struct {
	rounds   int
	duration time.Duration
	callers  []int
	replicas int // per master; testcluster.NoReplicas for none
}

func peerConfigFromEnv(t *testing.T) peerConfig {
	t.Helper()
	cfg := peerConfig{rounds: 3, duration: 4 * time.Second, callers: []int{1, 64, 256}, replicas: 1}
	if v := os.Getenv("HAMMER_PEER_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("HAMMER_PEER_REPLICAS=%q: want 0 or more", v)
		}
		cfg.replicas = n
		if n == 0 {
			cfg.replicas = testcluster.NoReplicas
		}
	}
	if v := os.Getenv("HAMMER_PEER_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAMMER_PEER_ROUNDS=%q: want a positive integer", v)
		}
		cfg.rounds = n
	}
	if v := os.Getenv("HAMMER_PEER_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("HAMMER_PEER_DURATION=%q: want a positive duration", v)
		}
		cfg.duration = d
	}
	if v := os.Getenv("HAMMER_PEER_CALLERS"); v != "" {
		cfg.callers = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("HAMMER_PEER_CALLERS=%q: want positive integers, comma-separated", v)
			}
			cfg.callers = append(cfg.callers, n)
		}
	}
	return cfg
}

// contenders returns every contender over client, ids and the raw keys
// (each with a hash tag, like hammer's keys).
func contenders(t *testing.T, client *redis.ClusterClient) []contender {
	t.Helper()
	ids := make([]string, peerIDs)
	rawKeys := make([]string, peerIDs)
	for i := range ids {
		ids[i] = "user:" + strconv.Itoa(i)
		rawKeys[i] = "raw:{" + ids[i] + "}"
	}
	hammerCall := func(mode hammer.CoalesceMode) func(ctx context.Context, i int) error {
		be, err := hammer.NewClusterBackend(hammer.Options{
			ExpiryMs: time.Hour.Milliseconds(),
			Client:   client,
			Coalesce: mode,
		})
		if err != nil {
			t.Fatal(err)
		}
		l := hammer.New(be)
		return func(ctx context.Context, i int) error {
			d, err := l.CheckRate(ctx, ids[i], peerScale, peerLimit)
			if err == nil && !d.Allowed {
				err = fmt.Errorf("hammer denied %q", ids[i])
			}
			return err
		}
	}

	rr := redis_rate.NewLimiter(client)
	rrLimit := redis_rate.PerMinute(peerLimit)

	// ulule's store loads its scripts on every node (go-redis's
	// ClusterClient.ScriptLoad goes to every shard) and reloads them on
	// NOSCRIPT; its keys carry no hash tag, one key per id.
	store, err := ulredis.NewStoreWithOptions(client, limiter.StoreOptions{Prefix: "ulule"})
	if err != nil {
		t.Fatalf("ulule/limiter redis store: %v", err)
	}
	ul := limiter.New(store, limiter.Rate{Period: peerScale, Limit: peerLimit})

	return []contender{
		{"raw-hincrby", func(ctx context.Context, i int) error {
			return client.HIncrBy(ctx, rawKeys[i], "count", 1).Err()
		}},
		{"hammer-direct", hammerCall(hammer.CoalesceOff)},
		{"hammer-coalesced", hammerCall(hammer.CoalesceOn)},
		{"redis_rate", func(ctx context.Context, i int) error {
			res, err := rr.Allow(ctx, ids[i], rrLimit)
			if err == nil && res.Allowed == 0 {
				err = fmt.Errorf("redis_rate denied %q", ids[i])
			}
			return err
		}},
		{"ulule", func(ctx context.Context, i int) error {
			c, err := ul.Get(ctx, ids[i])
			if err == nil && c.Reached {
				err = fmt.Errorf("ulule denied %q", ids[i])
			}
			return err
		}},
	}
}

// sample is one measurement: a contender at a caller count for a while.
type sample struct {
	checks, errors int64
	elapsed        time.Duration
	p50, p99       time.Duration
	firstErr       error
}

func (s sample) perSecond() float64 { return float64(s.checks) / s.elapsed.Seconds() }

// latencySamples bounds the latencies kept per caller for the quantiles.
const latencySamples = 1 << 16

// measure runs c from callers goroutines, each on random ids, for d.
func measure(c contender, callers int, d time.Duration) sample {
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	ctx := context.Background()
	type state struct {
		n, errs int64
		lat     []time.Duration
		err     error
	}
	states := make([]state, callers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range states {
		wg.Add(1)
		go func(st *state, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(start.UnixNano())))
			st.lat = make([]time.Duration, 0, 1024)
			for !stop.Load() {
				i := rng.IntN(peerIDs)
				t0 := time.Now()
				err := c.call(ctx, i)
				if len(st.lat) < latencySamples {
					st.lat = append(st.lat, time.Since(t0))
				}
				st.n++
				if err != nil {
					st.errs++
					if st.err == nil {
						st.err = err
					}
				}
			}
		}(&states[w], uint64(w))
	}
	wg.Wait()
	s := sample{elapsed: time.Since(start)}
	var lat []time.Duration
	for _, st := range states {
		s.checks += st.n
		s.errors += st.errs
		lat = append(lat, st.lat...)
		if s.firstErr == nil {
			s.firstErr = st.err
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		s.p50 = lat[len(lat)/2]
		s.p99 = lat[len(lat)*99/100]
	}
	return s
}

func TestPeers(t *testing.T) {
	if os.Getenv("HAMMER_PEER_BENCH") != "1" {
		t.Skip("set HAMMER_PEER_BENCH=1 to compare hammer with its peers on a real cluster (minutes; see README.md)")
	}
	cfg := peerConfigFromEnv(t)
	c := testcluster.Start(t, testcluster.Config{ReplicasPerMaster: cfg.replicas})
	opts := c.ClusterOptions()
	// The timeouts a ClusterBackend gives a client it creates; every
	// contender shares this one client, and so its pool.
	opts.DialTimeout = hammer.DefaultDialTimeout
	opts.ReadTimeout = hammer.DefaultReadTimeout
	opts.WriteTimeout = hammer.DefaultWriteTimeout
	opts.DialerRetries = hammer.DefaultDialerRetries
	opts.ContextTimeoutEnabled = true
	client := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	cs := contenders(t, client)

	t.Logf("GOMAXPROCS %d, %d ids, callers %v, %d rounds of %v per contender and caller count, go-redis pool %d per node (its default)",
		runtime.GOMAXPROCS(0), peerIDs, cfg.callers, cfg.rounds, cfg.duration, 5*runtime.GOMAXPROCS(0))

	// Warm-up, not recorded: dials the pools, loads the scripts, and creates
	// every contender's keys so that rounds count into existing ones.
	maxCallers := slices.Max(cfg.callers)
	for _, ct := range cs {
		for i := range peerIDs {
			if err := ct.call(context.Background(), i); err != nil {
				t.Fatalf("%s warm-up: %v", ct.name, err)
			}
		}
		measure(ct, maxCallers, cfg.duration/4)
	}

	// best[contender][callers] is the best round; all keeps every round.
	best := map[string]map[int]sample{}
	all := map[string]map[int][]float64{}
	for _, ct := range cs {
		best[ct.name] = map[int]sample{}
		all[ct.name] = map[int][]float64{}
	}
	for round := range cfg.rounds {
		for _, callers := range cfg.callers {
			// Rotate the order every round, so that no contender always
			// follows the same one.
			for k := range cs {
				ct := cs[(k+round)%len(cs)]
				s := measure(ct, callers, cfg.duration)
				if s.errors > 0 {
					t.Errorf("round %d, %s, %d callers: %d errors of %d calls; first: %v", round+1, ct.name, callers, s.errors, s.checks, s.firstErr)
				}
				all[ct.name][callers] = append(all[ct.name][callers], s.perSecond())
				if b, ok := best[ct.name][callers]; !ok || s.perSecond() > b.perSecond() {
					best[ct.name][callers] = s
				}
				t.Logf("round %d  %-17s %4d callers  %9.0f checks/s  p50 %v  p99 %v  errors %d",
					round+1, ct.name, callers, s.perSecond(), s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.errors)
			}
		}
	}
	var out strings.Builder
	report(&out, cs, cfg, best, all)
	fmt.Println(out.String()) // on stdout, so that it shows without -v too
}

// report writes the best-of-rounds table and the ratios.
func report(w *strings.Builder, cs []contender, cfg peerConfig, best map[string]map[int]sample, all map[string]map[int][]float64) {
	fmt.Fprintf(w, "Best of %d rounds of %v, checks/s (p50 latency); spread = (max-min)/max over the rounds\n\n", cfg.rounds, cfg.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "contender\t")
	for _, n := range cfg.callers {
		fmt.Fprintf(tw, "%d callers\tspread\t", n)
	}
	fmt.Fprintln(tw)
	for _, ct := range cs {
		fmt.Fprintf(tw, "%s\t", ct.name)
		for _, n := range cfg.callers {
			s := best[ct.name][n]
			rs := all[ct.name][n]
			spread := (slices.Max(rs) - slices.Min(rs)) / slices.Max(rs)
			fmt.Fprintf(tw, "%.0f (%v)\t%.0f%%\t", s.perSecond(), s.p50.Round(time.Microsecond), 100*spread)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()

	ratio := func(a, b string, n int) string {
		x, y := best[a][n].perSecond(), best[b][n].perSecond()
		if y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Fprintf(w, "\nRatios of best throughput\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "ratio\t")
	for _, n := range cfg.callers {
		fmt.Fprintf(tw, "%d callers\t", n)
	}
	fmt.Fprintln(tw)
	pairs := [][2]string{
		{"hammer-direct", "redis_rate"},
		{"hammer-coalesced", "redis_rate"},
		{"hammer-direct", "ulule"},
		{"hammer-coalesced", "ulule"},
	}
	for _, ct := range cs[1:] {
		pairs = append(pairs, [2]string{ct.name, "raw-hincrby"})
	}
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s / %s\t", p[0], p[1])
		for _, n := range cfg.callers {
			fmt.Fprintf(tw, "%s\t", ratio(p[0], p[1], n))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()

	if slices.Contains(cfg.callers, 1) {
		d, co := best["hammer-direct"][1], best["hammer-coalesced"][1]
		fmt.Fprintf(w, "\nOne caller, p50 latency of the best round: hammer-direct %v, hammer-coalesced %v (%.2fx), raw HINCRBY %v\n",
			d.p50.Round(time.Microsecond), co.p50.Round(time.Microsecond),
			float64(co.p50)/float64(max(d.p50, 1)), best["raw-hincrby"][1].p50.Round(time.Microsecond))
	}
}
