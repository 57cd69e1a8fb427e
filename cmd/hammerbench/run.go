package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/go-hammer/hammer"
)

// result is what one mode measured.
type result struct {
	mode    string
	checks  int64 // calls made, failed ones included
	errors  int64
	denied  int64 // checks answered Allowed == false, without error
	cached  int64 // denials answered by the deny cache
	elapsed time.Duration
	lat     hist     // of every call, failed ones included
	errs    []string // the first distinct error messages
}

func (r *result) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.checks) / r.elapsed.Seconds()
}

// outcome is what one call tells the loop.
type outcome int

const (
	allowed outcome = iota
	denied
	deniedCached
)

// op is one call of a mode, on the id of index i.
type op func(ctx context.Context, i int) (outcome, error)

// run measures every mode of cfg in turn and returns their results. It
// writes what it does and a progress line per cfg.progress to stderr. When
// ctx ends it stops the running mode, skips the others and returns what
// was measured with errInterrupted.
func run(ctx context.Context, cfg config, stderr io.Writer) ([]result, error) {
	client, target, closeAll, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	fmt.Fprintf(stderr, "hammerbench: %s; %d callers, %d ids, %v per mode, GOMAXPROCS %d\n",
		target, cfg.callers, cfg.ids, cfg.duration, runtime.GOMAXPROCS(0))
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = client.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("ping %s: %w", target, err)
	}

	ids := make([]string, cfg.ids)
	rawKeys := make([]string, cfg.ids)
	for i := range ids {
		ids[i] = "user:" + strconv.Itoa(i)
		rawKeys[i] = "hammerbench:raw:{" + ids[i] + "}"
	}
	raw := func(ctx context.Context, i int) (outcome, error) {
		return allowed, client.HIncrBy(ctx, rawKeys[i], "count", 1).Err()
	}

	// Dial the pool before the first measured mode, so it does not pay for
	// every connection.
	warm := min(cfg.duration/5, time.Second)
	measure(ctx, cfg, "warm-up", raw, warm, nil)

	var results []result
	for _, mode := range cfg.modes {
		if ctx.Err() != nil {
			return results, errInterrupted
		}
		o := raw
		if mode != modeRaw {
			if o, err = limiterOp(cfg, client, mode, ids); err != nil {
				return results, err
			}
		}
		r := measure(ctx, cfg, mode, o, cfg.duration, stderr)
		results = append(results, r)
	}
	if ctx.Err() != nil {
		return results, errInterrupted
	}
	return results, nil
}

// connect returns the client of cfg's target, a description of it, and a
// function that closes what connect started.
func connect(cfg config) (redis.UniversalClient, string, func(), error) {
	if len(cfg.addrs) == 0 {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, "", nil, fmt.Errorf("embedded miniredis: %w", err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, "no -addrs: embedded miniredis at " + mr.Addr() + " (in-process, not a real Redis)", func() {
			_ = rdb.Close()
			mr.Close()
		}, nil
	}
	// The timeouts a ClusterBackend gives a client it creates, on one client
	// shared by the baseline and the library.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 cfg.addrs,
		DialTimeout:           hammer.DefaultDialTimeout,
		ReadTimeout:           hammer.DefaultReadTimeout,
		WriteTimeout:          hammer.DefaultWriteTimeout,
		DialerRetries:         hammer.DefaultDialerRetries,
		ContextTimeoutEnabled: true,
	})
	return rdb, fmt.Sprintf("cluster %v", cfg.addrs), func() { _ = rdb.Close() }, nil
}

// limiterOp returns CheckRate through a Limiter over a backend in mode.
func limiterOp(cfg config, client redis.UniversalClient, mode string, ids []string) (op, error) {
	co := hammer.CoalesceOff
	if mode == modeCoalesced {
		co = hammer.CoalesceOn
	}
	expiry := max(cfg.scale, time.Hour)
	be, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:  expiry.Milliseconds(),
		Client:    client,
		KeyPrefix: "hammerbench:",
		Coalesce:  co,
	})
	if err != nil {
		return nil, err
	}
	var opts []hammer.Option
	if cfg.denyCache > 0 {
		opts = append(opts, hammer.WithDenyCache(cfg.denyCache))
	}
	l := hammer.New(be, opts...)
	return func(ctx context.Context, i int) (outcome, error) {
		d, err := l.CheckRate(ctx, ids[i], cfg.scale, cfg.limit)
		switch {
		case err != nil || d.Allowed:
			return allowed, err
		case d.Cached:
			return deniedCached, nil
		}
		return denied, nil
	}, nil
}

// worker is one caller's state. Its counters are read by the progress
// line while it runs; the padding keeps callers off each other's cache
// lines.
type worker struct {
	n, errs atomic.Int64
	_       [48]byte
	denied  int64
	cached  int64
	lat     hist
	errs1   []string
}

const maxErrMessages = 3

// measure runs o from cfg.callers goroutines for d, or until ctx ends.
// With stderr nil it prints nothing.
func measure(ctx context.Context, cfg config, mode string, o op, d time.Duration, stderr io.Writer) result {
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()

	// Calls run without ctx: an interrupt stops the loops, but lets the
	// calls in flight end normally instead of counting them as errors.
	callCtx := context.WithoutCancel(ctx)
	workers := make([]*worker, cfg.callers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		workers[w] = &worker{}
		wg.Add(1)
		go func(wk *worker, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(start.UnixNano())))
			for !stop.Load() {
				i := rng.IntN(cfg.ids)
				t0 := time.Now()
				out, err := o(callCtx, i)
				wk.lat.record(time.Since(t0))
				switch {
				case err != nil:
					wk.errs.Add(1)
					if len(wk.errs1) < maxErrMessages {
						wk.errs1 = append(wk.errs1, err.Error())
					}
				case out == denied:
					wk.denied++
				case out == deniedCached:
					wk.denied++
					wk.cached++
				}
				wk.n.Add(1)
			}
		}(workers[w], uint64(w))
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if stderr != nil && cfg.progress > 0 {
		progress(stderr, mode, workers, start, cfg.progress, finished)
	}
	<-finished
	r := result{mode: mode, elapsed: time.Since(start)}
	seen := map[string]bool{}
	for _, wk := range workers {
		r.checks += wk.n.Load()
		r.errors += wk.errs.Load()
		r.denied += wk.denied
		r.cached += wk.cached
		r.lat.merge(&wk.lat)
		for _, e := range wk.errs1 {
			if !seen[e] && len(r.errs) < maxErrMessages {
				seen[e] = true
				r.errs = append(r.errs, e)
			}
		}
	}
	return r
}

// progress prints a line every interval until finished is closed: the
// rate of the last interval, the mean rate so far and the errors so far.
func progress(w io.Writer, mode string, workers []*worker, start time.Time, interval time.Duration, finished <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastN int64
	last := start
	for {
		select {
		case <-finished:
			return
		case now := <-tick.C:
			var n, errs int64
			for _, wk := range workers {
				n += wk.n.Load()
				errs += wk.errs.Load()
			}
			fmt.Fprintf(w, "  %-12s %6.1fs  %10.0f checks/s now  %10.0f checks/s so far  %d errors\n",
				mode, now.Sub(start).Seconds(),
				float64(n-lastN)/now.Sub(last).Seconds(),
				float64(n)/now.Sub(start).Seconds(), errs)
			lastN, last = n, now
		}
	}
}

// printReport writes one line per mode, with its ratio to the raw
// baseline when there is one.
func printReport(w io.Writer, cfg config, results []result) {
	var base *result
	for i := range results {
		if results[i].mode == modeRaw {
			base = &results[i]
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tchecks/s\tp50\tp95\tp99\tmax\terrors\tdenied\tvs raw\t")
	for _, r := range results {
		ratio := "-"
		if base != nil && base.perSecond() > 0 {
			ratio = fmt.Sprintf("%.2fx", r.perSecond()/base.perSecond())
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%v\t%v\t%d\t%d\t%s\t\n", r.mode, r.perSecond(),
			round(r.lat.quantile(0.50)), round(r.lat.quantile(0.95)), round(r.lat.quantile(0.99)), round(r.lat.max),
			r.errors, r.denied, ratio)
	}
	_ = tw.Flush()
	for _, r := range results {
		if r.cached > 0 {
			fmt.Fprintf(w, "%s: %d of %d denials answered by the deny cache\n", r.mode, r.cached, r.denied)
		}
		for _, e := range r.errs {
			fmt.Fprintf(w, "%s error: %s\n", r.mode, e)
		}
	}
	if base != nil {
		fmt.Fprintln(w, "vs raw: throughput over that of raw HINCRBY on the same client, measured in this run")
	}
}

// round keeps three significant figures of a latency.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}
