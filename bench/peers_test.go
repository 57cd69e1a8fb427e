package bench

// TestPeers compares hammer with its peers on one real Redis Cluster, in
// one run: raw go-redis HINCRBY (the floor), hammer's CheckRate and its Hit
// with one TokenBucket rule, each direct and coalesced, go-redis/redis_rate
// v10 and ulule/limiter v3 with its Redis store, under each workload, with
// the Redis and client CPU of every check. It is skipped unless
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
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	ulredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/testcluster"
)

const (
	// peerIDs is the number of ids of the uniform workload, and of
	// TestRedisCPU.
	peerIDs = 10000
	// zipfIDs and zipfS are the ids and the exponent of the Zipf workload.
	zipfIDs   = 100000
	zipfS     = 1.1
	peerScale = time.Minute
	// peerLimit is so high that every contender allows every call.
	peerLimit = 1 << 40
	// peerRate is the rate per second, and the burst, of the GCRA-like
	// pair: redis_rate and hammer's TokenBucket. Far above what any id
	// gets here: under the Zipf workload the hottest id gets 13.5 % of the
	// calls, so every call is allowed up to 700,000 checks/s. And yet low
	// enough for redis_rate's arithmetic, in seconds as Lua doubles: its
	// 1/rate increment, 10 µs, is well above the resolution of the time
	// (1 µs from TIME); with a rate like peerLimit the increment would be
	// below it, and redis_rate would never write at all.
	peerRate = 100000
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

// workload is how the callers of a round pick ids: ids are the indexes 0
// to ids-1, and pick returns the picker of one caller, which draws from r,
// that caller's own source.
type workload struct {
	name  string
	ids   int
	about string
	pick  func(r *rand.Rand) func() int
}

// The workloads of TestPeers. uniform is also the one of TestRedisCPU.
var (
	uniform = workload{
		name:  "uniform",
		ids:   peerIDs,
		about: "ids drawn uniformly among 10,000",
		pick: func(r *rand.Rand) func() int {
			return func() int { return r.IntN(peerIDs) }
		},
	}
	zipf = workload{
		name:  "zipf",
		ids:   zipfIDs,
		about: "ids drawn from a Zipf distribution, s = 1.1, over 100,000 (the hottest gets 13.5 % of the calls, the 100 hottest 58 %)",
		pick: func(r *rand.Rand) func() int {
			z := rand.NewZipf(r, zipfS, 1, zipfIDs-1)
			return func() int { return int(z.Uint64()) }
		},
	}
	workloads = []workload{uniform, zipf}
)

// peerConfig is read from the environment; the defaults suit `make bench`.
type peerConfig struct {
	rounds    int
	duration  time.Duration
	callers   []int
	workloads []workload
	replicas  int // per master; testcluster.NoReplicas for none
}

func peerConfigFromEnv(t *testing.T) peerConfig {
	t.Helper()
	cfg := peerConfig{rounds: 3, duration: 4 * time.Second, callers: []int{1, 64, 256, 1024}, workloads: workloads, replicas: 1}
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
	if v := os.Getenv("HAMMER_PEER_WORKLOADS"); v != "" {
		cfg.workloads = nil
		for _, f := range strings.Split(v, ",") {
			i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == strings.TrimSpace(f) })
			if i < 0 || slices.ContainsFunc(cfg.workloads, func(w workload) bool { return w.name == workloads[i].name }) {
				t.Fatalf("HAMMER_PEER_WORKLOADS=%q: want uniform, zipf or both, comma-separated", v)
			}
			cfg.workloads = append(cfg.workloads, workloads[i])
		}
	}
	return cfg
}

// peerIDList returns the ids user:0 to user:<n-1>, and the raw baseline's
// key of each (with a hash tag, like hammer's keys).
func peerIDList(n int) (ids, rawKeys []string) {
	ids = make([]string, n)
	rawKeys = make([]string, n)
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
		ExpiryMs:         time.Hour.Milliseconds(),
		Client:           client,
		Coalesce:         mode,
		CoalesceFlushers: envInt(t, "HAMMER_PEER_FLUSHERS"),
		NoFunctions:      os.Getenv("HAMMER_PEER_NOFUNCTIONS") == "1",
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

// contenders returns every contender over client, on ids user:0 to
// user:<ids-1>.
func contenders(t *testing.T, client *redis.ClusterClient, ids int) []contender {
	t.Helper()
	names, rawKeys := peerIDList(ids)
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

	all := []contender{
		{"raw-hincrby", func(ctx context.Context, i int) error {
			return client.HIncrBy(ctx, rawKeys[i], "count", 1).Err()
		}},
		{"hammer-direct", checkRateCall(direct, names)},
		{"hammer-coalesced", checkRateCall(coalesced, names)},
		{"hammer-hit-tb-direct", hitCall(direct, names, peerBucket)},
		{"hammer-hit-tb-coalesced", hitCall(coalesced, names, peerBucket)},
		{"redis_rate", redisRateCall(redis_rate.NewLimiter(client), names, peerRRate)},
		{"ulule", func(ctx context.Context, i int) error {
			c, err := ul.Get(ctx, names[i])
			if err == nil && c.Reached {
				err = fmt.Errorf("ulule denied %q", names[i])
			}
			return err
		}},
	}
	v := os.Getenv("HAMMER_PEER_CONTENDERS")
	if v == "" {
		return all
	}
	var cs []contender
	for _, f := range strings.Split(v, ",") {
		i := slices.IndexFunc(all, func(c contender) bool { return c.name == strings.TrimSpace(f) })
		if i < 0 {
			t.Fatalf("HAMMER_PEER_CONTENDERS=%q: %q is none of the contenders", v, f)
		}
		cs = append(cs, all[i])
	}
	return cs
}

// envInt returns the integer in the environment variable name, 0 when it
// is not set.
func envInt(t *testing.T, name string) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
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

// warmUpCallers is the number of goroutines that create the keys in
// warmUp, and warmUpTries the tries of each call there.
const (
	warmUpCallers = 16
	warmUpTries   = 3
)

// warmUp, not recorded, dials the pools, loads the scripts, and creates
// every contender's keys (one call per id of the largest workload, which
// holds the ids of the others; a call that fails is tried again, up to
// warmUpTries in all, as a loaded machine can make one time out), then
// runs each contender under each workload from callers for d, so that
// measured rounds count into existing keys. Errors of these runs are
// logged: the measured rounds fail the test on theirs.
func warmUp(t *testing.T, cs []contender, wls []workload, callers int, d time.Duration) {
	t.Helper()
	ids := 0
	for _, wl := range wls {
		ids = max(ids, wl.ids)
	}
	for _, ct := range cs {
		err := callEach(warmUpCallers, ids, func(ctx context.Context, i int) (err error) {
			for range warmUpTries {
				if err = ct.call(ctx, i); err == nil {
					return nil
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s warm-up, %d tries: %v", ct.name, warmUpTries, err)
		}
		for _, wl := range wls {
			if s := measure(ct, wl, callers, d); s.errors > 0 {
				t.Logf("%s warm-up, %s: %d errors of %d calls; first: %v", ct.name, wl.name, s.errors, s.checks, s.firstErr)
			}
		}
	}
}

// callEach calls call once for each index from 0 to n-1, from callers
// goroutines, and returns the first error; after an error, the
// goroutines stop.
func callEach(callers, n int, call func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for firstErr.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := call(ctx, int(i)); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return *err
	}
	return nil
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

// measure runs c from callers goroutines, each picking ids as wl says,
// from its own source, for d.
func measure(c contender, wl workload, callers int, d time.Duration) sample {
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
			pick := wl.pick(rand.New(rand.NewPCG(seed, uint64(start.UnixNano()))))
			st.lat = make([]time.Duration, 0, 1024)
			for !stop.Load() {
				i := pick()
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
	c, client := startCluster(t, cfg.replicas)
	// The nodes' idle use is measured before any key exists, so that no
	// expiry is counted as idle.
	meter := newCPUMeter(t, c, min(cfg.duration, 2*time.Second))
	ids := 0
	for _, wl := range cfg.workloads {
		ids = max(ids, wl.ids)
	}
	cs := contenders(t, client, ids)

	t.Logf("GOMAXPROCS %d, %d masters, %d replicas, workloads %s, callers %v, %d rounds of %v per workload, contender and caller count, go-redis pool %d per node (its default)",
		runtime.GOMAXPROCS(0), len(meter.masters), len(meter.replicas), workloadNames(cfg.workloads), cfg.callers, cfg.rounds, cfg.duration, 5*runtime.GOMAXPROCS(0))
	t.Logf("idle: masters %v, replicas %v of CPU in %v", meter.idle.masters, meter.idle.replicas, meter.idleSpan.Round(time.Millisecond))

	warmUp(t, cs, cfg.workloads, slices.Max(cfg.callers), cfg.duration/4)

	results := map[string]peerResults{}
	for _, wl := range cfg.workloads {
		results[wl.name] = peerResults{}
	}
	for round := range cfg.rounds {
		for _, wl := range cfg.workloads {
			for _, callers := range cfg.callers {
				// Rotate the order every round, so that no contender always
				// follows the same one.
				for k := range cs {
					ct := cs[(k+round)%len(cs)]
					s := meter.measure(t, func() sample { return measure(ct, wl, callers, cfg.duration) })
					if s.errors > 0 {
						t.Errorf("round %d, %s, %s, %d callers: %d errors of %d calls; first: %v", round+1, wl.name, ct.name, callers, s.errors, s.checks, s.firstErr)
					}
					results[wl.name].add(ct.name, callers, s)
					t.Logf("round %d  %-7s %-23s %4d callers  %9.0f checks/s  p50 %v  p99 %v  Redis %6.2fµs/check  client %6.2fµs/check  errors %d",
						round+1, wl.name, ct.name, callers, s.perSecond(), s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond),
						us(s.perCheck(s.redis.total())), us(s.perCheck(s.client)), s.errors)
				}
			}
		}
	}
	var out strings.Builder
	report(&out, cs, cfg, results)
	fmt.Println(out.String()) // on stdout, so that it shows without -v too
}

// workloadNames returns the names of wls, comma-separated.
func workloadNames(wls []workload) string {
	var names []string
	for _, wl := range wls {
		names = append(names, wl.name)
	}
	return strings.Join(names, ",")
}
