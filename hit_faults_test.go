package hammer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rules on the fault paths: a load of Limiter.Hit on private clusters (the
// shared one for SCRIPT FLUSH), in both modes, while scripts are flushed,
// slots move or a master fails over. The clock is fixed and the rules are
// huge, so every Hit is allowed and takes exactly one unit of each rule:
// after the load, what the rules hold is exactly what the callers were told
// (see checkExact), as load_test.go checks for CheckRate.

// hitFaultRules are a fixed window and a token bucket that no load fills.
// At a fixed instant neither refills, so each holds limit - hits. The
// bucket's state is a second key of the id, so that each Hit writes
// several keys (and a slot in migration answers TRYAGAIN).
var hitFaultRules = []Rule{FixedWindow(time.Hour, 1<<40), TokenBucket(1, time.Hour, 1<<31)}

// hitFaultNow is the fixed instant of the load: a second into an hour, so
// that the states live about an hour.
const hitFaultNow = hourBase + 1000

// hitLoad is a load of Hits (see load) over ids, each call with its own
// deadline, keeping what each id was told.
type hitLoad struct {
	*load
	l        *Limiter
	raw      *redis.ClusterClient
	prefix   string
	byMaster map[*testcluster.Node][]string

	timeouts atomic.Int64          // errors of calls that ran out of time
	failed   atomic.Int64          // other errors: none, whatever the fault
	lastFail atomic.Pointer[error] // the latest of them
}

// hitDeadline bounds each Hit of the load. It is longer than the fault
// tests' faultDeadline, which is about latency: here what counts is the
// accounting, and a call that runs out of time on a loaded machine (under
// -race, say) is only a Hit that may or may not have been counted.
const hitDeadline = time.Second

// startHitLoad makes a fault backend on c (closed when t ends), picks
// perMaster ids on every master, and runs faultWorkers goroutines of Hits
// over them, each with hitDeadline, until every id has been allowed once.
func startHitLoad(t *testing.T, c *testcluster.Cluster, mode CoalesceMode, perMaster int) *hitLoad {
	t.Helper()
	b, prefix := faultBackend(t, c, mode)
	raw := redis.NewClusterClient(c.ClusterOptions())
	t.Cleanup(func() { b.Close(); raw.Close() })
	hl := &hitLoad{
		l:        New(b, WithClock(newClock(hitFaultNow).now)),
		raw:      raw,
		prefix:   prefix,
		byMaster: idsByMaster(t, c, prefix, perMaster),
	}
	var ids []string
	for _, m := range hl.byMaster {
		ids = append(ids, m...)
	}
	hl.load = startLoad(t, b, ids, faultWorkers, hitDeadline, hl.hit)
	waitFor(t, 10*time.Second, "the load warms up", func() bool { return hl.okSince(hl.ids, time.Time{}) })
	return hl
}

// hit sends one Hit of id, and keeps apart the errors that are not for
// lack of time.
func (hl *hitLoad) hit(ctx context.Context, id string) (bool, error) {
	d, err := hl.l.Hit(ctx, id, hitFaultRules...)
	switch {
	case err == nil:
	case isTimeout(err):
		hl.timeouts.Add(1)
	default:
		hl.failed.Add(1)
		hl.lastFail.Store(&err)
	}
	return d.Allowed, err
}

// isTimeout tells whether err is that of a call that ran out of time: its
// reply did not come in time (ErrMaybeCounted), or its deadline passed
// before it was sent.
func isTimeout(err error) bool {
	return errors.Is(err, ErrMaybeCounted) || errors.Is(err, context.DeadlineExceeded)
}

// checkExact compares, for every id, what each rule holds with the Hits
// its callers were told were allowed: each allowed Hit took exactly one
// unit of every rule, and each Hit whose error wraps ErrMaybeCounted took
// one or none, of every rule alike. Peek reports what a Hit would leave,
// so a rule that took k units has limit - k - 1 Remaining; the stored
// states say k too.
func (hl *hitLoad) checkExact(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, id := range hl.ids {
		st := hl.stats[id]
		acked, maybe := st.acked.Load(), st.maybe.Load()
		d, err := hl.l.Peek(ctx, id, hitFaultRules...)
		require.NoError(t, err, "id %q", id)
		require.True(t, d.Allowed, "id %q", id)
		require.Len(t, d.Rules, len(hitFaultRules))
		took := hitFaultRules[0].Limit() - d.Rules[0].Remaining - 1
		for i, r := range hitFaultRules {
			assert.Equal(t, took, r.Limit()-d.Rules[i].Remaining-1, "id %q: %v took what %v took", id, r, hitFaultRules[0])
		}
		if maybe == 0 {
			require.Equal(t, acked, took, "id %q: units taken vs Hits allowed", id)
		} else {
			require.GreaterOrEqual(t, took, acked, "id %q: an allowed Hit was lost", id)
			require.LessOrEqual(t, took, acked+maybe, "id %q: a Hit was counted twice (%d allowed, %d maybe counted)", id, acked, maybe)
		}
		stored := snapRule(t, hl.raw, hl.prefix, id)
		require.Len(t, stored.entries, 2, "id %q: %q", id, stored.val)
		want := []ruleState{
			{set: true, t: hitFaultNow, v: took},
			{set: true, t: hitFaultNow, v: (hitFaultRules[1].Limit() - took) * time.Hour.Milliseconds()},
		}
		require.Equal(t, want, []ruleState{stored.entries[hitFaultRules[0].member()].st, stored.entries[hitFaultRules[1].member()].st}, "id %q: stored states", id)
	}
}

// finish lets the load go on until every id is allowed once more, stops
// it, checks that no call failed, unless it ran out of time, and that the
// rules hold exactly what was allowed (give or take the Hits that may have
// been counted). The fault itself (a missing script, a redirect, a slot
// half moved, a failover) fails no call: the backend sends again what did
// not run.
func (hl *hitLoad) finish(t *testing.T, during string) {
	t.Helper()
	mark := time.Now()
	waitFor(t, 10*time.Second, "the load goes on", func() bool { return hl.okSince(hl.ids, mark) })
	hl.halt()
	n, sample := hl.errorsOn(hl.ids)
	var maybe int64
	for _, st := range hl.stats {
		maybe += st.maybe.Load()
	}
	t.Logf("%d calls, %d errors (%d timeouts, %d maybe counted) %s: %s", hl.calls.Load(), n, hl.timeouts.Load(), maybe, during, sample)
	assert.Zero(t, hl.denied.Load(), "denied Hits")
	if err := hl.lastFail.Load(); err != nil {
		t.Errorf("%d calls failed %s, not for lack of time; the latest: %v", hl.failed.Load(), during, *err)
	}
	hl.checkExact(t)
	hl.checkBatches(t)
}

func TestHitFaultScriptFlush(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Shared(t)
			hl := startHitLoad(t, c, m.mode, 4)
			for i := 0; i < 5; i++ {
				mark := time.Now()
				waitFor(t, 10*time.Second, "the load goes on", func() bool { return hl.okSince(hl.ids, mark) })
				c.FlushScripts(t)
				c.FlushFunctions(t)
			}
			hl.finish(t, "after SCRIPT FLUSH and FUNCTION FLUSH")
		})
	}
}

func TestHitFaultMoveSlots(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Config{MigrateBatchSize: 1, MigrateBatchDelay: 20 * time.Millisecond})
			hl := startHitLoad(t, c, m.mode, 6)
			masters := c.Masters(t)
			from, to := masters[0], masters[1]
			// Move the slots of from's ids, key by key, while the load
			// runs: Hits meet ASK redirects, and TRYAGAIN while an id's
			// keys are split between two masters.
			var slots []int
			for _, id := range hl.byMaster[from] {
				slots = append(slots, testcluster.Slot(mustBucketKey(hl.prefix, id)))
			}
			c.MoveSlots(t, slots, to)
			for _, id := range hl.byMaster[from] {
				require.Equal(t, to.Addr, c.MasterForKey(t, mustBucketKey(hl.prefix, id)).Addr)
			}
			hl.finish(t, "while slots move")

			// DeleteBuckets finds the moved states: one per rule.
			for _, id := range hl.byMaster[from] {
				n, err := hl.l.DeleteBuckets(context.Background(), id)
				require.NoError(t, err)
				assert.Equal(t, int64(len(hitFaultRules)), n, "id %q", id)
				base := keyBase(hl.prefix, id)
				left, err := hl.raw.Exists(context.Background(), base+ruleSuffix, base+indexSuffix).Result()
				require.NoError(t, err)
				assert.Zero(t, left, "id %q: no state and no index left", id)
			}
		})
	}
}

func TestHitFaultManualFailover(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Config{})
			hl := startHitLoad(t, c, m.mode, 4)
			victim := c.MasterForKey(t, mustBucketKey(hl.prefix, hl.ids[0]))
			c.Failover(t, c.ReplicaOf(t, victim))
			hl.finish(t, "during a manual failover")
		})
	}
}
