package hammer_test

// Benchmarks of the hit path, on miniredis and on a real Redis Cluster
// (internal/testcluster, skipped when redis-server is not installed).
//
// Every target also runs a raw go-redis HINCRBY on the same client, in the
// same run: compare the library against that baseline, never against
// absolute numbers (the machines these run on are small and shared).
//
//	go test -run '^$' -bench 'CheckRate|Hit|DenyCache|Latency' -benchtime 3s .
//	go test -run '^$' -bench DenyCache -cpu 1 .
//
// The shared cluster is stopped when the test binary exits (its processes
// get a parent-death signal on Linux), or by testcluster.Main when the
// package's TestMain calls it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/testcluster"
)

const (
	benchIDs    = 10000
	benchScale  = time.Minute
	benchLimit  = int64(1) << 40 // every check is allowed
	benchExpiry = time.Hour
	benchPrefix = "bench:"
)

// benchCallers are the concurrent callers of the parallel benchmarks.
var benchCallers = []int{64, 256}

// benchTarget is a Redis to benchmark against, with a client of its own.
type benchTarget struct {
	name   string
	client redis.UniversalClient
	mr     *miniredis.Miniredis // nil on the real cluster
}

// benchTargets returns miniredis and, when redis-server is installed, the
// shared real cluster. Clients are closed when b ends.
func benchTargets(b *testing.B, hook redis.Hook) []benchTarget {
	b.Helper()
	mr := miniredis.RunT(b)
	mc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	if hook != nil {
		mc.AddHook(hook)
	}
	b.Cleanup(func() { _ = mc.Close() })
	targets := []benchTarget{{name: "miniredis", client: mc, mr: mr}}
	if testcluster.Available() != nil {
		b.Logf("no real cluster: %v", testcluster.Available())
		return targets
	}
	c := testcluster.Shared(b)
	opts := c.ClusterOptions()
	// The backend's own defaults for a client it creates (see
	// Options.RedisOptions), so raw and library calls share one client.
	opts.DialTimeout = hammer.DefaultDialTimeout
	opts.ReadTimeout = hammer.DefaultReadTimeout
	opts.WriteTimeout = hammer.DefaultWriteTimeout
	opts.DialerRetries = hammer.DefaultDialerRetries
	opts.ContextTimeoutEnabled = true
	cc := redis.NewClusterClient(opts)
	if hook != nil {
		// Node clients run every command, also those of pipelines sent to a
		// node directly (the coalescer does), so count there.
		cc.OnNewNode(func(rdb *redis.Client) { rdb.AddHook(hook) })
	}
	b.Cleanup(func() { _ = cc.Close() })
	return append(targets, benchTarget{name: "cluster", client: cc})
}

// benchBackend returns a backend over client, coalescing or not, with
// batch scripts turned off when noBatch is set.
func benchBackend(b *testing.B, client redis.UniversalClient, mode hammer.CoalesceMode, noBatch bool) *hammer.ClusterBackend {
	b.Helper()
	be, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:      benchExpiry.Milliseconds(),
		Client:        client,
		KeyPrefix:     benchPrefix,
		Coalesce:      mode,
		NoBatchScript: noBatch,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	return be
}

// benchIDList returns n ids, and the raw baseline's key of each, which
// carries a hash tag like the library's keys.
func benchIDList(n int) (ids, rawKeys []string) {
	ids = make([]string, n)
	rawKeys = make([]string, n)
	for i := range ids {
		ids[i] = "user:" + strconv.Itoa(i)
		rawKeys[i] = benchPrefix + "raw:{" + ids[i] + "}"
	}
	return ids, rawKeys
}

// warm sends one hit per id, so that the timed loops count into existing
// buckets (the common case) and every connection is dialed.
func warm(b *testing.B, do func(i int) error, n int) {
	b.Helper()
	for i := range n {
		if err := do(i); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
}

// runParallel runs op from callers goroutines, each picking random ids.
// It fails b on the first error.
func runParallel(b *testing.B, callers, n int, op func(i int) error) {
	b.Helper()
	p := max(1, callers/runtime.GOMAXPROCS(0))
	b.SetParallelism(p)
	b.ReportAllocs()
	var failed atomic.Pointer[error]
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(rand.IntN(n)); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		}
	})
	b.StopTimer()
	if errp := failed.Load(); errp != nil {
		b.Fatal(*errp)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}

// callersName names a sub-benchmark by its real number of goroutines:
// RunParallel starts parallelism × GOMAXPROCS of them.
func callersName(callers int) string {
	procs := runtime.GOMAXPROCS(0)
	return fmt.Sprintf("callers=%d", max(1, callers/procs)*procs)
}

// benchOp is one contender: op calls it on the id of index i.
type benchOp struct {
	name string
	op   func(i int) error
}

// benchOps returns the contenders of a target: the raw HINCRBY baseline,
// and the library's call through a direct backend, a coalescing one, and a
// coalescing one without batch scripts (a pipeline of single script calls
// per flush). call makes the library call, given the backend and a Limiter
// over it.
func benchOps(b *testing.B, t benchTarget, call func(be hammer.Backend, l *hammer.Limiter, id string) error) []benchOp {
	ids, rawKeys := benchIDList(benchIDs)
	ctx := context.Background()
	direct := benchBackend(b, t.client, hammer.CoalesceOff, false)
	coalesced := benchBackend(b, t.client, hammer.CoalesceOn, false)
	pipelined := benchBackend(b, t.client, hammer.CoalesceOn, true)
	directL, coalescedL, pipelinedL := hammer.New(direct), hammer.New(coalesced), hammer.New(pipelined)
	return []benchOp{
		{"raw-hincrby", func(i int) error { return t.client.HIncrBy(ctx, rawKeys[i], "count", 1).Err() }},
		{"direct", func(i int) error { return call(direct, directL, ids[i]) }},
		{"coalesced", func(i int) error { return call(coalesced, coalescedL, ids[i]) }},
		{"coalesced-pipeline", func(i int) error { return call(pipelined, pipelinedL, ids[i]) }},
	}
}

func benchHits(b *testing.B, call func(be hammer.Backend, l *hammer.Limiter, id string) error) {
	for _, t := range benchTargets(b, nil) {
		b.Run(t.name, func(b *testing.B) {
			for _, c := range benchOps(b, t, call) {
				b.Run(c.name, func(b *testing.B) {
					warm(b, c.op, benchIDs)
					for _, callers := range benchCallers {
						b.Run(callersName(callers), func(b *testing.B) {
							runParallel(b, callers, benchIDs, c.op)
						})
					}
				})
			}
		})
	}
}

// BenchmarkCheckRate is Limiter.CheckRate, allowed, from 64 and 256
// callers over 10k ids, next to a raw HINCRBY on the same client.
func BenchmarkCheckRate(b *testing.B) {
	ctx := context.Background()
	benchHits(b, func(_ hammer.Backend, l *hammer.Limiter, id string) error {
		d, err := l.CheckRate(ctx, id, benchScale, benchLimit)
		if err == nil && !d.Allowed {
			err = fmt.Errorf("check of %q denied: %+v", id, d)
		}
		return err
	})
}

// benchRate is the rate per second, and the burst, of the TokenBucket of
// BenchmarkHit: far above what one id gets here, so every hit is allowed.
const benchRate = 10000

// BenchmarkHit is Limiter.Hit, allowed, from 64 and 256 callers over 10k
// ids, next to a raw HINCRBY on the same client: rules=1 is one
// TokenBucket, rules=3 a SlidingWindow, that TokenBucket and a
// FixedWindow, charged all or nothing in one script call.
func BenchmarkHit(b *testing.B) {
	ctx := context.Background()
	bucket := hammer.TokenBucket(benchRate, time.Second, benchRate)
	for _, rs := range []struct {
		name  string
		rules []hammer.Rule
	}{
		{"rules=1", []hammer.Rule{bucket}},
		{"rules=3", []hammer.Rule{
			hammer.SlidingWindow(time.Second, benchLimit),
			bucket,
			hammer.FixedWindow(time.Hour, benchLimit),
		}},
	} {
		b.Run(rs.name, func(b *testing.B) {
			benchHits(b, func(_ hammer.Backend, l *hammer.Limiter, id string) error {
				d, err := l.Hit(ctx, id, rs.rules...)
				if err == nil && !d.Allowed {
					err = fmt.Errorf("hit of %q denied: %+v", id, d)
				}
				return err
			})
		})
	}
}

// BenchmarkCountHit is the backend's CountHit, without the Limiter.
func BenchmarkCountHit(b *testing.B) {
	ctx := context.Background()
	benchHits(b, func(be hammer.Backend, _ *hammer.Limiter, id string) error {
		now := time.Now().UnixMilli()
		_, err := be.CountHit(ctx, hammer.BucketKey{Bucket: now / benchScale.Milliseconds(), ID: id}, now)
		return err
	})
}

// BenchmarkLatency is one caller's CheckRate, one call at a time: it
// reports the median and 99th percentile of single calls, direct and
// coalesced, next to a raw HINCRBY.
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	for _, t := range benchTargets(b, nil) {
		b.Run(t.name, func(b *testing.B) {
			ops := benchOps(b, t, func(_ hammer.Backend, l *hammer.Limiter, id string) error {
				_, err := l.CheckRate(ctx, id, benchScale, benchLimit)
				return err
			})
			for _, c := range ops {
				b.Run(c.name, func(b *testing.B) {
					warm(b, c.op, 1000)
					lat := make([]time.Duration, 0, min(b.N, 1<<20))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						start := time.Now()
						if err := c.op(i % benchIDs); err != nil {
							b.Fatal(err)
						}
						if len(lat) < cap(lat) {
							lat = append(lat, time.Since(start))
						}
					}
					b.StopTimer()
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
					b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
				})
			}
		})
	}
}

// countingHook counts the commands a client sends, one by one or in
// pipelines.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

var _ redis.Hook = (*countingHook)(nil)

// BenchmarkDenyCache is CheckRate of an id already denied, with
// WithDenyCache: answered in-process. It fails if any Redis command was
// sent during the timed loop. Run it with -cpu 1 for the one-core figure.
func BenchmarkDenyCache(b *testing.B) {
	ctx := context.Background()
	hook := &countingHook{}
	// Long windows, so that the timed loop rarely crosses a window's end
	// (a new window is a cache miss, which is correct but sends a command).
	const scale = 24 * time.Hour
	for _, t := range benchTargets(b, hook) {
		b.Run(t.name, func(b *testing.B) {
			be, err := hammer.NewClusterBackend(hammer.Options{
				ExpiryMs:  (2 * scale).Milliseconds(),
				Client:    t.client,
				KeyPrefix: benchPrefix,
				Coalesce:  hammer.CoalesceOff,
			})
			if err != nil {
				b.Fatal(err)
			}
			l := hammer.New(be, hammer.WithDenyCache(1024))
			id := fmt.Sprintf("denied:%d", time.Now().UnixNano())
			setup := hook.n.Load()
			for range 2 { // limit 1: the second check is denied and cached
				if _, err := l.CheckRate(ctx, id, scale, 1); err != nil {
					b.Fatal(err)
				}
			}
			window := time.Now().UnixMilli() / scale.Milliseconds()
			sent := hook.n.Load()
			if sent == setup {
				b.Fatal("the command counter saw none of the set-up checks: it would miss commands")
			}
			served := 0
			if t.mr != nil {
				served = t.mr.CommandCount()
			}
			var notCached atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, err := l.CheckRate(ctx, id, scale, 1)
					if err != nil || !d.Cached || d.Allowed {
						notCached.Add(1)
					}
				}
			})
			b.StopTimer()
			sentDuring := hook.n.Load() - sent
			if t.mr != nil {
				// The server's own count, in case a command bypassed the hook.
				sentDuring = max(sentDuring, int64(t.mr.CommandCount()-served))
			}
			if sentDuring != 0 || notCached.Load() != 0 {
				if time.Now().UnixMilli()/scale.Milliseconds() != window {
					b.Skipf("the window ended during the loop; %d commands sent", sentDuring)
				}
				b.Fatalf("deny cache: %d Redis commands sent and %d checks not answered by the cache during the timed loop", sentDuring, notCached.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}
