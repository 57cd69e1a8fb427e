// Package hammer is rate limiting for Go services in the style of Elixir's
// Hammer, with a Redis Cluster backend built on go-redis v9.
//
// A check counts one hit of an id (a user, an IP address, an API key) in
// the current window of a given length, and says whether the id is still
// within its limit:
//
//	d, err := limiter.CheckRate(ctx, "login:"+user, time.Minute, 5)
//	if err != nil {
//		return err // the backend failed, and the policy is to fail closed
//	}
//	if !d.Allowed {
//		// over the limit: retry after d.ResetAfter
//	}
//
// Windows are fixed and aligned to the epoch: the window of an instant is
// unix ms / scale ms, as in Hammer v6. Every hit counts, the denied ones
// too. Every call is one round trip to the master that owns the id, or
// less: concurrent hits bound for one master share a round trip and run
// in one script call (hits of one hot id merged into one update), and an
// optional deny cache answers an id already over its limit in-process.
//
// # The smallest complete program
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"time"
//
//		"github.com/go-hammer/hammer"
//	)
//
//	func main() {
//		backend, err := hammer.NewClusterBackend(hammer.Options{
//			ExpiryMs:    2 * 60 * 60 * 1000, // buckets live 2 h after their latest hit
//			InitServers: []string{"127.0.0.1:7000"},
//		})
//		if err != nil {
//			panic(err)
//		}
//		defer backend.Close()
//		limiter := hammer.New(backend)
//		for i := 0; i < 3; i++ {
//			d, err := limiter.CheckRate(context.Background(), "user:42", time.Minute, 2)
//			fmt.Println(d.Allowed, d.Count, err) // true 1, true 2, false 3
//		}
//	}
//
// # Concepts
//
//   - [Limiter] is the Hammer front: [Limiter.CheckRate],
//     [Limiter.CheckRateInc], [Limiter.InspectBucket],
//     [Limiter.DeleteBuckets] and [Limiter.MakeRateChecker]. It returns a
//     [Decision]. Its options set the clock ([WithClock]), the failure
//     policy ([WithFailurePolicy], [WithOnError]), metrics ([WithObserver])
//     and the deny cache ([WithDenyCache]).
//   - Rules go further than Hammer v6: [Limiter.Hit], [Limiter.HitN] and
//     [Limiter.Peek] check a [FixedWindow], [SlidingWindow], [TokenBucket]
//     or [LeakyBucket], several at once, all or nothing, in one round trip;
//     a denied call changes nothing, and [Decision.RetryAfter] says how
//     long to wait. A backend that keeps rules implements [RuleBackend].
//   - [Backend] stores buckets: a [BucketKey] names one window of one id,
//     and a bucket holds its count, creation and latest hit ([BucketInfo]).
//   - [ClusterBackend] is the Backend over Redis Cluster, configured by
//     [Options]. Its file, eredis_cluster.go, is named after the Elixir
//     backend it carries over, hammer_backend_eredis_cluster. Every key of an
//     id shares one hash tag, so all of them live in one slot; a hit is one
//     Lua script.
//   - Errors: invalid arguments wrap [ErrInvalidArgument] and are returned
//     before any Redis call; backend errors wrap [ErrUnavailable] or
//     [ErrMisconfigured]; a hit whose reply was lost wraps [ErrMaybeCounted]
//     and is never sent twice.
//
// The subpackage httplimit is HTTP middleware; the nested module
// hammerotel reports checks as OpenTelemetry metrics.
package hammer
