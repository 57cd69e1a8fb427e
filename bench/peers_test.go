package bench

// TestPeers compares hammer with its peers on one real Redis Cluster, in
// one run: raw go-redis HINCRBY (the floor), hammer's CheckRate and its Hit
// with one TokenBucket rule, each direct and coalesced, go-redis/redis_rate
// v10 and ulule/limiter v3 with its Redis store. It is skipped unless
// HAMMER_PEER_BENCH=1; see README.md.

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
	// peerRate is the rate per second, and the burst, of the GCRA-like
	// pair: redis_rate and hammer's TokenBucket. Far above what one id
	// gets here (a few calls a second), so every call is allowed, and yet
	// low enough for redis_rate's arithmetic, in seconds as Lua doubles:
	// with a rate like peerLimit its 1/rate increment is below the
	// resolution of the time, and it never writes at all.
	peerRate = 10000
)

// peerBucket is the TokenBucket that races redis_rate's peerRRate: the
// same rate, period and burst. Either keeps an id's state about a second
// after its last call (a key with a TTL of 1 s, and 1.001 s).
var (
	peerBucket = hammer.TokenBucket(peerRate, time.Second, peerRate)
	peerRRate  = redis_rate.Limit{Rate: peerRate, Period: time.Second, Burst: peerRate}
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

// peerIDList returns the ids the callers pick from, and the raw baseline's
// key of each (with a hash tag, like hammer's keys).
func peerIDList() (ids, rawKeys []string) {
	ids = make([]string, peerIDs)
	rawKeys = make([]string, peerIDs)
	for i := range ids {
		ids[i] = "user:" + strconv.Itoa(i)
		rawKeys[i] = "raw:{" + ids[i] + "}"
	}
	return ids, rawKeys
}

// newLimiter returns a hammer Limiter over client, coalescing or not.
func newLimiter(t *testing.T, client *redis.ClusterClient, mode hammer.CoalesceMode) *hammer.Limiter {
	t.Helper()
	be, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs: time.Hour.Milliseconds(),
		Client:   client,
		Coalesce: mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	return hammer.New(be)
}

// checkRateCall is Limiter.CheckRate of ids[i], scale peerScale, limit
// peerLimit; a denial is an error.
func checkRateCall(l *hammer.Limiter, ids []string) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		d, err := l.CheckRate(ctx, ids[i], peerScale, peerLimit)
		if err == nil && !d.Allowed {
			err = fmt.Errorf("hammer denied %q", ids[i])
		}
		return err
	}
}

// hitCall is Limiter.Hit of ids[i] over rules; a denial is an error.
func hitCall(l *hammer.Limiter, ids []string, rules ...hammer.Rule) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		d, err := l.Hit(ctx, ids[i], rules...)
		if err == nil && !d.Allowed {
			err = fmt.Errorf("hammer Hit denied %q: %+v", ids[i], d)
		}
		return err
	}
}

// redisRateCall is redis_rate's Allow of ids[i] with limit; a denial is
// an error.
func redisRateCall(rr *redis_rate.Limiter, ids []string, limit redis_rate.Limit) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		res, err := rr.Allow(ctx, ids[i], limit)
		if err == nil && res.Allowed == 0 {
			err = fmt.Errorf("redis_rate denied %q", ids[i])
		}
		return err
	}
}

// contenders returns every contender over client.
func contenders(t *testing.T, client *redis.ClusterClient) []contender {
	t.Helper()
	ids, rawKeys := peerIDList()
	direct := newLimiter(t, client, hammer.CoalesceOff)
	coalesced := newLimiter(t, client, hammer.CoalesceOn)

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
		{"hammer-direct", checkRateCall(direct, ids)},
		{"hammer-coalesced", checkRateCall(coalesced, ids)},
		{"hammer-hit-tb-direct", hitCall(direct, ids, peerBucket)},
		{"hammer-hit-tb-coalesced", hitCall(coalesced, ids, peerBucket)},
		{"redis_rate", redisRateCall(redis_rate.NewLimiter(client), ids, peerRRate)},
		{"ulule", func(ctx context.Context, i int) error {
			c, err := ul.Get(ctx, ids[i])
			if err == nil && c.Reached {
				err = fmt.Errorf("ulule denied %q", ids[i])
			}
			return err
		}},
	}
}

// startCluster starts a cluster of 3 masters with replicas each (or
// testcluster.NoReplicas) and returns it with a cluster client, closed when
// t ends. The client has the timeouts a ClusterBackend gives a client it
// creates; every contender shares it, and so its pool.
func startCluster(t *testing.T, replicas int) (*testcluster.Cluster, *redis.ClusterClient) {
	t.Helper()
	c := testcluster.Start(t, testcluster.Config{ReplicasPerMaster: replicas})
	opts := c.ClusterOptions()
	opts.DialTimeout = hammer.DefaultDialTimeout
	opts.ReadTimeout = hammer.DefaultReadTimeout
	opts.WriteTimeout = hammer.DefaultWriteTimeout
	opts.DialerRetries = hammer.DefaultDialerRetries
	opts.ContextTimeoutEnabled = true
	client := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return c, client
}

// warmUp, not recorded, dials the pools, loads the scripts, and creates
// every contender's keys (one call per id), then runs each from callers
// for d, so that measured rounds count into existing keys.
func warmUp(t *testing.T, cs []contender, callers int, d time.Duration) {
	t.Helper()
	for _, ct := range cs {
		for i := range peerIDs {
			if err := ct.call(context.Background(), i); err != nil {
				t.Fatalf("%s warm-up: %v", ct.name, err)
			}
		}
		if s := measure(ct, callers, d); s.errors > 0 {
			t.Fatalf("%s warm-up: %d errors of %d calls; first: %v", ct.name, s.errors, s.checks, s.firstErr)
		}
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
	_, client := startCluster(t, cfg.replicas)
	cs := contenders(t, client)

	t.Logf("GOMAXPROCS %d, %d ids, callers %v, %d rounds of %v per contender and caller count, go-redis pool %d per node (its default)",
		runtime.GOMAXPROCS(0), peerIDs, cfg.callers, cfg.rounds, cfg.duration, 5*runtime.GOMAXPROCS(0))

	warmUp(t, cs, slices.Max(cfg.callers), cfg.duration/4)

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
				t.Logf("round %d  %-23s %4d callers  %9.0f checks/s  p50 %v  p99 %v  errors %d",
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
		{"hammer-hit-tb-direct", "redis_rate"},
		{"hammer-hit-tb-coalesced", "redis_rate"},
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

	// The goals of Hit with one TokenBucket against redis_rate, both
	// GCRA-like, with the same rate, period and burst.
	// The median of the rounds' own ratios is the steadier figure on a
	// shared machine (both contenders of a round ran one after the other),
	// and the one that says whether a goal is met.
	fmt.Fprintf(w, "\nGoals, Hit with one TokenBucket / redis_rate: ratio of the best rounds, and median of the %d rounds' ratios\n\n", cfg.rounds)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "callers\tgoal\tcoalesced best\tmedian\tdirect best\tmedian\tmet\t\n")
	for _, g := range hitGoals {
		if !slices.Contains(cfg.callers, g.callers) {
			continue
		}
		rr := best["redis_rate"][g.callers].perSecond()
		if rr == 0 {
			continue
		}
		co := best["hammer-hit-tb-coalesced"][g.callers].perSecond() / rr
		di := best["hammer-hit-tb-direct"][g.callers].perSecond() / rr
		com := medianRatio(all["hammer-hit-tb-coalesced"][g.callers], all["redis_rate"][g.callers])
		dim := medianRatio(all["hammer-hit-tb-direct"][g.callers], all["redis_rate"][g.callers])
		met := "no"
		if max(com, dim) >= g.ratio {
			met = "yes"
		}
		fmt.Fprintf(tw, "%d\t>= %.1fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%s\t\n", g.callers, g.ratio, co, com, di, dim, met)
	}
	_ = tw.Flush()
}

// medianRatio returns the median of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

// median returns the median of xs, 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// hitGoals are the throughput goals of Hit with one TokenBucket, as
// ratios to redis_rate in the same run.
var hitGoals = []struct {
	callers int
	ratio   float64
}{{64, 1.5}, {256, 2.5}}
