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
