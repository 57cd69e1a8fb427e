package hammer

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fault tests: each runs on a cluster of its own, under load from several
// goroutines, each call with a deadline of a few hundred milliseconds.
// Waits are bounded so that a broken recovery fails the test instead of
// hanging it; the times measured are logged, not asserted.

// partialCoverage lets the masters that are up serve their slots while
// another master's slots are down. With Redis's default
// (cluster-require-full-coverage yes) every master answers CLUSTERDOWN
// from the moment a master is marked failed until its replica takes over.
var partialCoverage = testcluster.Config{ExtraArgs: []string{"--cluster-require-full-coverage", "no"}}

const (
	faultDeadline = 300 * time.Millisecond
	faultWorkers  = 8
	// cleanDeadline is the deadline of the calls of the tests that expect
	// no error at all, and their backend's read timeout and coalescing
	// timeout: long enough that a 2-core machine running the race detector
	// does not time a call out. A call that times out is never sent again,
	// so on such a machine a short deadline means errors. (A manual
	// failover pauses the master's writes until its replica has caught
	// up: 780 ms once, in a CI run with the default read timeout of
	// 500 ms.)
	cleanDeadline = 3 * time.Second
)

var modes = []struct {
	name string
	mode CoalesceMode
}{{"coalesced", CoalesceOn}, {"direct", CoalesceOff}}

// faultBackend returns a backend with the library's default client options
// on c, in a fresh namespace.
func faultBackend(t *testing.T, c *testcluster.Cluster, mode CoalesceMode) (*ClusterBackend, string) {
	return faultBackendTimeout(t, c, mode, 0)
}

// faultBackendTimeout is faultBackend with a read timeout and a coalescing
// timeout of timeout, unless it is 0.
func faultBackendTimeout(t *testing.T, c *testcluster.Cluster, mode CoalesceMode, timeout time.Duration) (*ClusterBackend, string) {
	t.Helper()
	prefix := namespace()
	ro := c.ClusterOptions()
	ro.ReadTimeout = timeout
	b, err := NewClusterBackend(Options{ExpiryMs: 600_000, InitServers: c.Addrs(), RedisOptions: ro, KeyPrefix: prefix, Coalesce: mode, CoalesceTimeout: timeout})
	require.NoError(t, err)
	return b, prefix
}

// loaded is a fault backend on a cluster under a warmed-up load.
type loaded struct {
	*load
	prefix   string
	byMaster map[*testcluster.Node][]string // the load's ids, by master
}

// startLoaded makes a fault backend on c (closed when t ends), picks
// perMaster ids on every master, and runs a load over all of them, each
// call with the given deadline, until every id has succeeded once. With
// cleanDeadline, the backend's read and coalescing timeouts are that long
// too; otherwise they are the library's defaults.
func startLoaded(t *testing.T, c *testcluster.Cluster, mode CoalesceMode, perMaster int, deadline time.Duration) *loaded {
	t.Helper()
	var timeout time.Duration
	if deadline == cleanDeadline {
		timeout = cleanDeadline
	}
	b, prefix := faultBackendTimeout(t, c, mode, timeout)
	t.Cleanup(func() { b.Close() })
	byMaster := idsByMaster(t, c, prefix, perMaster)
	var all []string
	for _, ids := range byMaster {
		all = append(all, ids...)
	}
	l := startLoad(t, b, all, faultWorkers, deadline, nil)
	waitFor(t, 10*time.Second, "load warms up", func() bool { return l.okSince(all, time.Time{}) })
	return &loaded{load: l, prefix: prefix, byMaster: byMaster}
}

// finishClean lets the load go on until every id succeeds once more, stops
// it, and checks that no call failed and that the counts are exact.
func (l *loaded) finishClean(t *testing.T, during string) {
	t.Helper()
	mark := time.Now()
	waitFor(t, 10*time.Second, "load goes on", func() bool { return l.okSince(l.ids, mark) })
	l.halt()
	n, sample := l.errorsOn(l.ids)
	assert.Zero(t, n, "errors %s: %s", during, sample)
	l.checkExactCounts(t)
	l.checkBatches(t)
}

// checkBatches checks that a coalescing backend on a real cluster sent
// batch scripts, and logs how many calls of their units did not run there
// and went on the ordinary path.
func (l *load) checkBatches(t *testing.T) {
	t.Helper()
	if l.b.co == nil {
		return
	}
	t.Logf("batch scripts sent: %d; calls not run in a batch, sent again alone: %d", l.b.s.batchesSent.Load(), l.b.s.unitsResent.Load())
	assert.Positive(t, l.b.s.batchesSent.Load(), "batch scripts sent")
}

// waitFor polls cond until it holds or the bound passes, and returns how
// long it took.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestFaultKillMaster(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, partialCoverage)
			before := runtime.NumGoroutine()
			l := startLoaded(t, c, m.mode, 4, faultDeadline)
			victim := c.Masters(t)[0]
			var victimIDs, otherIDs []string
			for node, ids := range l.byMaster {
				if node == victim {
					victimIDs = append(victimIDs, ids...)
				} else {
					otherIDs = append(otherIDs, ids...)
				}
			}

			killed := time.Now()
			c.Kill(t, victim)
			// The same backend recovers, with no restart: every id of the
			// dead master succeeds again.
			took := waitFor(t, 30*time.Second, "calls on the dead master's ids recover", func() bool { return l.okSince(victimIDs, killed) })
			t.Logf("%s: ids of the killed master succeed again %v after SIGKILL", m.name, took.Round(time.Millisecond))
			time.Sleep(time.Second) // some load after recovery
			l.halt()

			n, sample := l.errorsOn(otherIDs)
			assert.Zero(t, n, "ids on other masters keep succeeding throughout: %s", sample)
			n, sample = l.errorsOn(victimIDs)
			t.Logf("%s: %d errors on the dead master's ids (%s); %d calls in all", m.name, n, sample, l.calls.Load())
			for _, id := range victimIDs {
				if err := l.stats[id].lastErr.Load(); err != nil {
					assert.ErrorIs(t, *err, ErrUnavailable, "id %q", id)
				}
			}
			require.NoError(t, l.b.Close())
			goroutinesSettle(t, before)
		})
	}
}

func TestFaultPauseMaster(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, partialCoverage)
			l := startLoaded(t, c, m.mode, 4, faultDeadline)
			all := l.ids
			victim := c.MasterForKey(t, mustBucketKey(l.prefix, all[0]))

			c.Pause(t, victim)
			time.Sleep(10 * time.Second)
			c.Resume(t, victim)
			resumed := time.Now()
			took := waitFor(t, 30*time.Second, "every id succeeds after SIGCONT", func() bool { return l.okSince(all, resumed) })
			l.halt()
			over := time.Duration(l.maxOverrun.Load())
			t.Logf("%s: worst call returned %v past its %v deadline; recovered %v after SIGCONT; %d calls",
				m.name, over.Round(time.Millisecond), faultDeadline, took.Round(time.Millisecond), l.calls.Load())
			// No call hangs on the stalled node: each returns by its
			// deadline (the margin is for a loaded 2-core machine).
			assert.Less(t, over, 250*time.Millisecond, "a call hung past its deadline")
		})
	}
}

func mustBucketKey(prefix, id string) string {
	bk, _ := hitKeys(prefix, BucketKey{Bucket: loadBucket, ID: id})
	return bk
}

func TestFaultManualFailover(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Config{})
			l := startLoaded(t, c, m.mode, 4, cleanDeadline)
			all := l.ids
			victim := c.MasterForKey(t, mustBucketKey(l.prefix, all[0]))
			c.Failover(t, c.ReplicaOf(t, victim))
			l.finishClean(t, "during a manual failover")
		})
	}
}

func TestFaultScriptFlush(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Shared(t)
			l := startLoaded(t, c, m.mode, 4, cleanDeadline)
			all := l.ids
			for i := 0; i < 5; i++ {
				mark := time.Now()
				waitFor(t, 10*time.Second, "load goes on", func() bool { return l.okSince(all, mark) })
				c.FlushScripts(t)
				c.FlushFunctions(t)
			}
			l.finishClean(t, "after SCRIPT FLUSH and FUNCTION FLUSH")
		})
	}
}

func TestFaultMoveSlots(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Config{MigrateBatchSize: 1, MigrateBatchDelay: 20 * time.Millisecond})
			l := startLoaded(t, c, m.mode, 6, cleanDeadline)
			prefix, byMaster := l.prefix, l.byMaster
			masters := c.Masters(t)
			from, to := masters[0], masters[1]
			// Move the slots of from's ids, key by key, while the load runs:
			// hits meet ASK redirects and TRYAGAIN.
			var slots []int
			for _, id := range byMaster[from] {
				slots = append(slots, testcluster.Slot(mustBucketKey(prefix, id)))
			}
			c.MoveSlots(t, slots, to)
			for _, id := range byMaster[from] {
				require.Equal(t, to.Addr, c.MasterForKey(t, mustBucketKey(prefix, id)).Addr)
			}
			l.finishClean(t, "while slots move")

			// DeleteBuckets finds the moved buckets.
			for _, id := range byMaster[from] {
				n, err := l.b.DeleteBuckets(context.Background(), id)
				require.NoError(t, err)
				assert.Equal(t, int64(1), n, "id %q", id)
			}
		})
	}
}

func TestFaultTimeoutsCountOnce(t *testing.T) {
	c := testcluster.Shared(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := startLoaded(t, c, m.mode, 3, 50*time.Millisecond)
			all := l.ids
			// Stall every master twice for longer than the deadline: calls
			// in flight time out, and may or may not have counted.
			for i := 0; i < 2; i++ {
				require.NoError(t, c.ForEachNode(func(n *testcluster.Node, cl *redis.Client) error {
					if !n.IsMaster() {
						return nil
					}
					return cl.Do(context.Background(), "DEBUG", "SLEEP", "0.3").Err()
				}))
			}
			mark := time.Now()
			waitFor(t, 10*time.Second, "load goes on", func() bool { return l.okSince(all, mark) })
			l.halt()
			n, _ := l.errorsOn(all)
			require.Positive(t, n, "the stalls forced timeouts")
			l.checkExactCounts(t)
		})
	}
}

func TestFaultOutage(t *testing.T) {
	c := testcluster.Start(t, testcluster.Config{})
	ctx := context.Background()
	b, prefix := faultBackend(t, c, CoalesceOn)
	defer b.Close()
	byMaster := idsByMaster(t, c, prefix, 1)
	victim := c.Masters(t)[0]
	replica := c.ReplicaOf(t, victim)
	var otherID string
	for node, ids := range byMaster {
		if node != victim {
			otherID = ids[0]
		}
	}
	deadID := byMaster[victim][0]
	for _, id := range []string{deadID, otherID} {
		_, err := b.CountHit(ctx, BucketKey{Bucket: loadBucket, ID: id}, 1)
		require.NoError(t, err)
	}

	t.Run("master and replica killed", func(t *testing.T) {
		c.Kill(t, replica)
		c.Kill(t, victim)
		// Calls on the dead slots fail with ErrUnavailable, well before
		// their deadline: nothing is there to wait for.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := b.CountHit(cctx, BucketKey{Bucket: loadBucket, ID: deadID}, 1)
		require.ErrorIs(t, err, ErrUnavailable)
		assert.NotErrorIs(t, err, context.DeadlineExceeded, "it failed fast, not by running out of time")
		// Once the cluster sees the slots uncovered, every master answers
		// CLUSTERDOWN: ErrUnavailable too.
		var last error
		waitFor(t, 30*time.Second, "CLUSTERDOWN from the live masters", func() bool {
			_, last = b.CountHit(ctx, BucketKey{Bucket: loadBucket, ID: otherID}, 1)
			return last != nil && errors.Is(last, ErrUnavailable) && strings.Contains(last.Error(), "CLUSTERDOWN")
		})
		t.Logf("%v", last)
	})

	t.Run("no node reachable at construction", func(t *testing.T) {
		for _, n := range c.Nodes() {
			if n.Running() {
				c.Kill(t, n)
			}
		}
		fresh, err := NewClusterBackend(Options{ExpiryMs: 600_000, InitServers: c.Addrs(), KeyPrefix: prefix})
		require.NoError(t, err, "construction needs no reachable node")
		defer fresh.Close()
		_, err = fresh.CountHit(ctx, BucketKey{Bucket: loadBucket, ID: otherID}, 1)
		require.ErrorIs(t, err, ErrUnavailable)

		for _, n := range c.Nodes() {
			c.Restart(t, n)
		}
		c.WaitHealthy(t, 0)
		// Both backends work again once the cluster is up.
		for _, be := range []*ClusterBackend{fresh, b} {
			var n int64
			took := waitFor(t, 30*time.Second, "calls succeed once the cluster is back", func() bool {
				n, err = be.CountHit(ctx, BucketKey{Bucket: loadBucket + 1, ID: otherID}, 1)
				return err == nil
			})
			t.Logf("working again %v after the cluster was healthy", took.Round(time.Millisecond))
			assert.Positive(t, n)
		}
	})
}
