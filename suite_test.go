package hammer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// One suite, several targets: every behaviour test runs, unchanged, against
// each target that envs lists.

// env is one target of the suite, with a fresh key namespace for the test.
type env struct {
	name   string
	seeds  []string              // InitServers; nil when client is set
	client redis.UniversalClient // Options.Client; nil when seeds are set
	raw    redis.UniversalClient // for inspecting keys, never the backend's own client
	prefix string                // KeyPrefix of this test: a namespace of its own
	mode   CoalesceMode          // Options.Coalesce

	// flushScripts runs SCRIPT FLUSH on every node, and FUNCTION FLUSH
	// where functions are kept.
	flushScripts func(t *testing.T)
}

// target makes an env for one test.
type target struct {
	name string
	make func(t *testing.T) *env
}

var nsCounter atomic.Int64

// namespace returns a key prefix that no other test of this run uses.
func namespace() string {
	return fmt.Sprintf("t%d-%d:", time.Now().UnixNano()%1e9, nsCounter.Add(1))
}

// targets lists the suite's targets. Real-cluster targets are added by
// clusterTargets when a cluster can be had.
func targets() []target {
	miniCluster := func(name string, mode CoalesceMode) target {
		return target{name, func(t *testing.T) *env {
			m := miniredis.RunT(t)
			raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { raw.Close() })
			return &env{
				name: name, seeds: []string{m.Addr()}, raw: raw, prefix: namespace(), mode: mode,
				flushScripts: func(t *testing.T) { require.NoError(t, raw.ScriptFlush(context.Background()).Err()) },
			}
		}}
	}
	ts := []target{
		miniCluster("miniredis-cluster-coalesced", CoalesceOn),
		miniCluster("miniredis-cluster-direct", CoalesceOff),
		{"miniredis-standalone", func(t *testing.T) *env {
			m := miniredis.RunT(t)
			raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
			client := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { raw.Close(); client.Close() })
			return &env{
				name: "miniredis-standalone", client: client, raw: raw, prefix: namespace(),
				flushScripts: func(t *testing.T) { require.NoError(t, raw.ScriptFlush(context.Background()).Err()) },
			}
		}},
	}
	return append(ts, clusterTargets()...)
}

// forEachTarget runs f as a subtest on every target.
func forEachTarget(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) { f(t, tg.make(t)) })
	}
}

// options returns the Options of a backend on e, with 60 s expiry.
func (e *env) options() Options {
	return Options{ExpiryMs: 60_000, InitServers: e.seeds, Client: e.client, KeyPrefix: e.prefix, Coalesce: e.mode}
}

// backend returns a backend on e, after letting edit change its options.
func (e *env) backend(t *testing.T, edit func(*Options)) *ClusterBackend {
	t.Helper()
	opts := e.options()
	if edit != nil {
		edit(&opts)
	}
	b, err := NewClusterBackend(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// keys returns every key of the test's namespace, sorted.
func (e *env) keys(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	if cc, ok := e.raw.(*redis.ClusterClient); ok {
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) }))
	} else {
		require.NoError(t, scan(ctx, e.raw))
	}
	sort.Strings(keys)
	return keys
}

// clock is a settable clock for WithClock.
type clock struct{ ms atomic.Int64 }

func newClock(ms int64) *clock { c := &clock{}; c.ms.Store(ms); return c }

func (c *clock) now() time.Time   { return time.UnixMilli(c.ms.Load()) }
func (c *clock) set(ms int64)     { c.ms.Store(ms) }
func (c *clock) advance(ms int64) { c.ms.Add(ms) }
