package hammer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/stretchr/testify/require"
)

// A load for the fault tests: workers hit a set of ids in a loop, each call
// with its own deadline, and keep what every id saw.

// loadBucket is the one bucket every load hit goes to, so that counts can
// be compared with the acknowledged hits.
const loadBucket = 1

type idStats struct {
	acked    atomic.Int64 // hits that returned a count
	errs     atomic.Int64
	maybe    atomic.Int64 // errors that say the hit may have been counted
	lastOK   atomic.Int64 // unix ns of the latest success
	lastErr  atomic.Pointer[error]
	errClass sync.Map // class name -> count
}

type load struct {
	b        *ClusterBackend
	ids      []string
	stats    map[string]*idStats
	deadline time.Duration
	// call makes one call of id, and says whether it was allowed. The
	// default counts a hit of id in loadBucket, always allowed.
	call func(ctx context.Context, id string) (bool, error)

	maxOverrun atomic.Int64 // ns past a call's deadline, at worst
	calls      atomic.Int64
	denied     atomic.Int64 // calls that returned no error and were denied
	stop       chan struct{}
	wg         sync.WaitGroup
}

// startLoad runs workers goroutines hitting ids until stopped, with
// CountHit unless call is set.
func startLoad(t *testing.T, b *ClusterBackend, ids []string, workers int, deadline time.Duration, call func(ctx context.Context, id string) (bool, error)) *load {
	t.Helper()
	l := &load{b: b, ids: ids, stats: map[string]*idStats{}, deadline: deadline, call: call, stop: make(chan struct{})}
	if l.call == nil {
		l.call = func(ctx context.Context, id string) (bool, error) {
			_, err := b.CountHit(ctx, BucketKey{Bucket: loadBucket, ID: id}, 1)
			return true, err
		}
	}
	for _, id := range ids {
		l.stats[id] = &idStats{}
	}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := ids[i%len(ids)]
				l.hit(id)
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) hit(id string) {
	st := l.stats[id]
	ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
	start := time.Now()
	allowed, err := l.call(ctx, id)
	elapsed := time.Since(start)
	cancel()
	l.calls.Add(1)
	over := int64(elapsed - l.deadline)
	for cur := l.maxOverrun.Load(); over > cur && !l.maxOverrun.CompareAndSwap(cur, over); cur = l.maxOverrun.Load() {
	}
	if err != nil {
		st.errs.Add(1)
		if errors.Is(err, ErrMaybeCounted) {
			st.maybe.Add(1)
		}
		st.lastErr.Store(&err)
		class := "other"
		switch {
		case errors.Is(err, ErrUnavailable):
			class = "unavailable"
		case errors.Is(err, ErrMisconfigured):
			class = "misconfigured"
		}
		n, _ := st.errClass.LoadOrStore(class, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		return
	}
	if !allowed {
		l.denied.Add(1)
		return
	}
	st.acked.Add(1)
	st.lastOK.Store(time.Now().UnixNano())
}

// halt stops the workers and waits for them.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// errorsOn returns the errors seen on ids, and a sample of them.
func (l *load) errorsOn(ids []string) (int64, string) {
	var n int64
	var sample []string
	for _, id := range ids {
		st := l.stats[id]
		n += st.errs.Load()
		if err := st.lastErr.Load(); err != nil && len(sample) < 3 {
			sample = append(sample, (*err).Error())
		}
	}
	return n, strings.Join(sample, "; ")
}

// okSince tells whether every id had a success after t; with the zero t,
// whether every id had a success at all.
func (l *load) okSince(ids []string, t time.Time) bool {
	var since int64
	if !t.IsZero() {
		since = t.UnixNano()
	}
	for _, id := range ids {
		if l.stats[id].lastOK.Load() <= since {
			return false
		}
	}
	return true
}

// checkExactCounts compares each id's stored count with what its callers
// were told: every acknowledged hit is counted once, and of the hits whose
// error said they may have been counted, each is counted at most once.
// Every other error means not counted. With no errors, the stored count
// equals the acknowledged hits.
func (l *load) checkExactCounts(t *testing.T) {
	t.Helper()
	for _, id := range l.ids {
		info, err := l.b.GetBucket(context.Background(), BucketKey{Bucket: loadBucket, ID: id})
		require.NoError(t, err)
		st := l.stats[id]
		acked, maybe := st.acked.Load(), st.maybe.Load()
		require.NotNil(t, info, "id %q", id)
		if maybe == 0 {
			require.Equal(t, acked, info.Count, "id %q: stored count vs acknowledged hits", id)
			continue
		}
		require.GreaterOrEqual(t, info.Count, acked, "id %q: an acknowledged hit was lost", id)
		require.LessOrEqual(t, info.Count, acked+maybe, "id %q: a hit was counted twice (%d acknowledged, %d maybe counted)", id, acked, maybe)
	}
}

// idsByMaster returns n ids whose keys live on each master, by master.
func idsByMaster(t *testing.T, c *testcluster.Cluster, prefix string, n int) map[*testcluster.Node][]string {
	t.Helper()
	out := map[*testcluster.Node][]string{}
	masters := c.Masters(t)
	slotOwner := map[int]*testcluster.Node{}
	for i := 0; len(out) < len(masters) || !enough(out, n, len(masters)); i++ {
		id := fmt.Sprintf("id-%d", i)
		bk, _ := hitKeys(prefix, BucketKey{Bucket: loadBucket, ID: id})
		slot := testcluster.Slot(bk)
		m, ok := slotOwner[slot]
		if !ok {
			m = c.MasterForSlot(t, slot)
			slotOwner[slot] = m
		}
		if len(out[m]) < n {
			out[m] = append(out[m], id)
		}
	}
	return out
}

func enough(m map[*testcluster.Node][]string, n, masters int) bool {
	if len(m) < masters {
		return false
	}
	for _, ids := range m {
		if len(ids) < n {
			return false
		}
	}
	return true
}

// goroutinesSettle waits until the number of goroutines is at most max,
// and fails with their stacks if it does not get there.
func goroutinesSettle(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > max {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), max, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
