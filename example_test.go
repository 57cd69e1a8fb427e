package hammer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
)

// newExampleLimiter returns a Limiter over an embedded miniredis, with a
// clock fixed at 12:00:00.250 UTC, and a function that stops it all.
func newExampleLimiter() (*hammer.Limiter, func()) {
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    2 * 60 * 60 * 1000, // buckets live two hours after their latest hit
		InitServers: []string{m.Addr()},
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 250e6, time.UTC)
	l := hammer.New(backend, hammer.WithClock(func() time.Time { return now }))
	return l, func() { backend.Close(); m.Close() }
}

func ExampleLimiter_CheckRate() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		d, err := l.CheckRate(ctx, "file_upload:42", time.Second, 3)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("allowed=%v count=%d remaining=%d reset=%v\n", d.Allowed, d.Count, d.Remaining, d.ResetAfter)
	}
	// Output:
	// allowed=true count=1 remaining=2 reset=750ms
	// allowed=true count=2 remaining=1 reset=750ms
	// allowed=true count=3 remaining=0 reset=750ms
	// allowed=false count=4 remaining=0 reset=750ms
}

func ExampleLimiter_CheckRateInc() {
	l, stop := newExampleLimiter()
	defer stop()
	// A request that costs 40 units of a 100-units-a-minute budget.
	d, err := l.CheckRateInc(context.Background(), "api:tenant-7", time.Minute, 100, 40)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(d.Allowed, d.Count, d.Remaining)
	// Output: true 40 60
}

func ExampleLimiter_InspectBucket() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := l.CheckRate(ctx, "search:alice", time.Minute, 10); err != nil {
			fmt.Println("error:", err)
			return
		}
	}
	st, err := l.InspectBucket(ctx, "search:alice", time.Minute, 10)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("count=%d remaining=%d reset=%v created=%d\n", st.Count, st.CountRemaining, st.ResetAfter, st.CreatedAt)
	// Output: count=2 remaining=8 reset=59.75s created=1767268800250
}

func ExampleLimiter_DeleteBuckets() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// Failed logins count against the user; a successful login resets them.
	for i := 0; i < 3; i++ {
		l.CheckRate(ctx, "login:bob", time.Minute, 5)
		l.CheckRate(ctx, "login:bob", time.Hour, 20) // another window size, another bucket
	}
	n, err := l.DeleteBuckets(ctx, "login:bob")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("deleted", n)
	d, _ := l.CheckRate(ctx, "login:bob", time.Minute, 5)
	fmt.Println("count after reset", d.Count)
	// Output:
	// deleted 2
	// count after reset 1
}

func ExampleLimiter_MakeRateChecker() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	checkUpload := l.MakeRateChecker("upload:", time.Minute, 2)
	for _, user := range []string{"ann", "ann", "ann", "ben"} {
		d, err := checkUpload(ctx, user)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(user, d.Allowed)
	}
	// Output:
	// ann true
	// ann true
	// ann false
	// ben true
}

func ExampleNewClusterBackend() {
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{"127.0.0.1:7000", "127.0.0.1:7001"},
		KeyPrefix:   "myapp:rl:",
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer backend.Close()
	limiter := hammer.New(backend)
	_ = limiter // limiter.CheckRate(ctx, id, time.Minute, 100)

	_, err = hammer.NewClusterBackend(hammer.Options{InitServers: []string{"127.0.0.1:7000"}})
	fmt.Println(errors.Is(err, hammer.ErrInvalidOptions))
	// Output: true
}

func ExampleFixedWindow() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// At most 2 a second, in windows aligned to the second: the clock
	// reads 12:00:00.250, so this window ends in 750 ms.
	perSecond := hammer.FixedWindow(time.Second, 2)
	for i := 0; i < 3; i++ {
		d, err := l.Hit(ctx, "upload:42", perSecond)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("allowed=%v remaining=%d reset=%v retry=%v\n", d.Allowed, d.Remaining, d.ResetAfter, d.RetryAfter)
	}
	// Output:
	// allowed=true remaining=1 reset=750ms retry=0s
	// allowed=true remaining=0 reset=750ms retry=0s
	// allowed=false remaining=0 reset=750ms retry=750ms
}

func ExampleSlidingWindow() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// 3 a minute, both ways. Once 3 calls are spent, the fixed window
	// allows again when its minute ends; the sliding window waits until
	// the calls of the ending minute weigh less, as the next minute goes
	// on: 20 s into it, they count 2/3 of 3, which leaves room for one.
	for _, r := range []hammer.Rule{hammer.FixedWindow(time.Minute, 3), hammer.SlidingWindow(time.Minute, 3)} {
		var d hammer.Decision
		for i := 0; i < 4; i++ {
			var err error
			if d, err = l.Hit(ctx, "search:ann", r); err != nil {
				fmt.Println("error:", err)
				return
			}
		}
		fmt.Printf("%v: allowed=%v retry=%v\n", r, d.Allowed, d.RetryAfter)
	}
	// Output:
	// fixed_window(1m0s,3): allowed=false retry=59.75s
	// sliding_window(1m0s,3): allowed=false retry=1m19.75s
}

func ExampleTokenBucket() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// Bursts of up to 10, refilled at 7 a second: a token every 1/7 s.
	bucket := hammer.TokenBucket(7, time.Second, 10)
	d, err := l.HitN(ctx, "export:bob", 10, bucket)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("allowed=%v remaining=%d full again in %v\n", d.Allowed, d.Remaining, d.ResetAfter)
	d, err = l.Hit(ctx, "export:bob", bucket)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("allowed=%v retry=%v\n", d.Allowed, d.RetryAfter)
	// Output:
	// allowed=true remaining=0 full again in 1.429s
	// allowed=false retry=143ms
}

func ExampleLeakyBucket() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// Room for 3, leaking one every 90 seconds.
	bucket := hammer.LeakyBucket(1, 90*time.Second, 3)
	for i := 0; i < 4; i++ {
		d, err := l.Hit(ctx, "sms:+15550100", bucket)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("allowed=%v remaining=%d empty in %v retry=%v\n", d.Allowed, d.Remaining, d.ResetAfter, d.RetryAfter)
	}
	// Output:
	// allowed=true remaining=2 empty in 1m30s retry=0s
	// allowed=true remaining=1 empty in 3m0s retry=0s
	// allowed=true remaining=0 empty in 4m30s retry=0s
	// allowed=false remaining=0 empty in 4m30s retry=1m30s
}

func ExampleLimiter_Hit() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// 10 a second and 1000 an hour, checked together: a call is allowed
	// only when both allow it, and only then are both charged.
	perSecond := hammer.FixedWindow(time.Second, 10)
	perHour := hammer.FixedWindow(time.Hour, 1000)
	for i := 1; i <= 11; i++ {
		d, err := l.Hit(ctx, "api:tenant-7", perSecond, perHour)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		if i != 1 && i != 11 {
			continue
		}
		fmt.Printf("hit %d: allowed=%v remaining=%d retry=%v\n", i, d.Allowed, d.Remaining, d.RetryAfter)
		for _, rd := range d.Rules {
			fmt.Printf("  %v: allowed=%v remaining=%d reset=%v\n", rd.Rule, rd.Allowed, rd.Remaining, rd.ResetAfter)
		}
	}
	// Output:
	// hit 1: allowed=true remaining=9 retry=0s
	//   fixed_window(1s,10): allowed=true remaining=9 reset=750ms
	//   fixed_window(1h0m0s,1000): allowed=true remaining=999 reset=59m59.75s
	// hit 11: allowed=false remaining=0 retry=750ms
	//   fixed_window(1s,10): allowed=false remaining=0 reset=750ms
	//   fixed_window(1h0m0s,1000): allowed=true remaining=990 reset=59m59.75s
}

func ExampleLimiter_HitN() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	// Requests that cost 40 units of a bucket of 100, refilled at 10 a
	// second.
	bucket := hammer.TokenBucket(10, time.Second, 100)
	for i := 0; i < 3; i++ {
		d, err := l.HitN(ctx, "api:tenant-9", 40, bucket)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("allowed=%v remaining=%d retry=%v\n", d.Allowed, d.Remaining, d.RetryAfter)
	}
	// A cost that the bucket could never allow is refused, before any
	// Redis command.
	_, err := l.HitN(ctx, "api:tenant-9", 101, bucket)
	fmt.Println(errors.Is(err, hammer.ErrInvalidArgument))
	// Output:
	// allowed=true remaining=60 retry=0s
	// allowed=true remaining=20 retry=0s
	// allowed=false remaining=20 retry=2s
	// true
}

func ExampleLimiter_Peek() {
	l, stop := newExampleLimiter()
	defer stop()
	ctx := context.Background()
	perMinute := hammer.FixedWindow(time.Minute, 2)
	show := func(what string, d hammer.Decision, err error) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%s: allowed=%v remaining=%d retry=%v\n", what, d.Allowed, d.Remaining, d.RetryAfter)
	}
	// Peek tells what a Hit would decide, and what it would leave,
	// without charging anything.
	d, err := l.Peek(ctx, "report:carol", perMinute)
	show("peek", d, err)
	for i := 0; i < 2; i++ {
		d, err = l.Hit(ctx, "report:carol", perMinute)
		show("hit", d, err)
	}
	d, err = l.Peek(ctx, "report:carol", perMinute)
	show("peek", d, err)
	d, err = l.Hit(ctx, "report:carol", perMinute)
	show("hit", d, err)
	// Output:
	// peek: allowed=true remaining=1 retry=0s
	// hit: allowed=true remaining=1 retry=0s
	// hit: allowed=true remaining=0 retry=0s
	// peek: allowed=false remaining=0 retry=59.75s
	// hit: allowed=false remaining=0 retry=59.75s
}
