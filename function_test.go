package hammer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-hammer/hammer/internal/testcluster"
)

// masterCalls returns, summed over c's masters, the calls of each command
// in INFO commandstats ("fcall", "evalsha", "function|load", ...).
func masterCalls(t *testing.T, c *testcluster.Cluster) map[string]int64 {
	t.Helper()
	sum := map[string]int64{}
	for _, m := range c.Masters(t) {
		for name, st := range commandStats(t, c.Client(m)) {
			sum[name] += st.calls
		}
	}
	return sum
}

// hasLibrary tells whether node lists the library, with its three
// functions.
func hasLibrary(t *testing.T, node *redis.Client) bool {
	t.Helper()
	libs, err := node.FunctionList(context.Background(), redis.FunctionListQuery{LibraryNamePattern: scriptLibrary.name}).Result()
	require.NoError(t, err)
	return len(libs) == 1 && len(libs[0].Functions) == 3
}

// awaitFunctions waits until b has found out whether the nodes take
// functions, which it does after its first reply, and checks that it
// found want.
func awaitFunctions(t *testing.T, b *ClusterBackend, want int32) {
	t.Helper()
	waitFor(t, 10*time.Second, "functions found on or off", func() bool { return b.s.fn.Load() != fnUnknown })
	require.Equal(t, want, b.s.fn.Load(), "functions")
}

func TestLibrarySource(t *testing.T) {
	assert.True(t, strings.HasPrefix(scriptLibrary.src, "#!lua name="+scriptLibrary.name+"\n"))
	assert.Regexp(t, `^hammer_[0-9a-f]{16}$`, scriptLibrary.name)
	for _, sc := range []*luaScript{hitScript, ruleScript, batchScript} {
		assert.True(t, strings.HasPrefix(sc.fn, scriptLibrary.name+"_"), sc.fn)
		assert.Equal(t, sc.fn, sc.fnArg)
		assert.Contains(t, scriptLibrary.src, "function_name = '"+sc.fn+"'")
	}
	assert.Empty(t, deleteScript.fn, "DeleteBuckets is no function")
	// Each function runs its script's body, after the same definitions.
	assert.True(t, strings.HasSuffix(hitSource, "begin()\n"+hitEntry))
	assert.True(t, strings.HasSuffix(ruleSource, "begin()\n"+ruleEntry))
	assert.True(t, strings.HasSuffix(batchSource, "begin()\n"+batchEntry))
	assert.Contains(t, scriptLibrary.src, "function_name = '"+batchScript.fn+"', flags = {'allow-cross-slot-keys'}")
}

// TestFunctionsUsed checks that on the cluster every hit and rule call goes
// as FCALL of the library, loaded on every master, in both modes, and
// that counts are exact.
func TestFunctionsUsed(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c, b, _, _ := sharedCluster(t, m.mode)
			ctx := context.Background()
			l := New(b, WithClock(newClock(1_700_000_000_000).now))
			// After the first reply the library is loaded; calls go
			// meanwhile with EVALSHA.
			_, err := l.CheckRate(ctx, "fn-used-first", time.Minute, 1)
			require.NoError(t, err)
			awaitFunctions(t, b, fnOn)
			before := masterCalls(t, c)
			const callers, each = 16, 8
			var wg sync.WaitGroup
			counts := make([][]int64, callers)
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						d, err := l.CheckRate(ctx, "fn-used", time.Minute, 1<<40)
						if !assert.NoError(t, err) {
							return
						}
						counts[g] = append(counts[g], d.Count)
						_, err = l.Hit(ctx, fmt.Sprintf("fn-used-%d", g), TokenBucket(1000, time.Second, 1000))
						assert.NoError(t, err)
					}
				}()
			}
			wg.Wait()
			seen := map[int64]bool{}
			for _, cs := range counts {
				for _, n := range cs {
					assert.False(t, seen[n], "count %d told twice", n)
					seen[n] = true
				}
			}
			assert.Len(t, seen, callers*each)
			for n := int64(1); n <= callers*each; n++ {
				assert.True(t, seen[n], "count %d told", n)
			}
			after := masterCalls(t, c)
			assert.Positive(t, after["fcall"]-before["fcall"], "FCALL")
			assert.Zero(t, after["evalsha"]-before["evalsha"], "EVALSHA")
			assert.Zero(t, after["eval"]-before["eval"], "EVAL")
			for _, node := range c.Masters(t) {
				assert.True(t, hasLibrary(t, c.Client(node)), "library on %s", node.Addr)
			}
		})
	}
}

// TestFunctionsReload flushes every library: calls go on, each counted
// once, the library is loaded again on the id's master, and calls go as
// FCALL again.
func TestFunctionsReload(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c, b, _, _ := sharedCluster(t, m.mode)
			ctx := context.Background()
			l := New(b, WithClock(newClock(1_700_000_000_000).now))
			want := int64(0)
			hit := func() {
				t.Helper()
				want++
				d, err := l.CheckRate(ctx, "fn-reload", time.Minute, 1<<40)
				require.NoError(t, err)
				require.Equal(t, want, d.Count)
				_, err = l.Hit(ctx, "fn-reload", TokenBucket(1000, time.Second, 1000))
				require.NoError(t, err)
			}
			hit()
			awaitFunctions(t, b, fnOn)
			c.FlushFunctions(t)
			master := c.Client(c.MasterForKey(t, keyBase(b.cfg.prefix, "fn-reload")))
			before := masterCalls(t, c)
			waitFor(t, 10*time.Second, "the library is back on the id's master", func() bool {
				hit()
				return hasLibrary(t, master)
			})
			assert.Positive(t, masterCalls(t, c)["function|load"]-before["function|load"], "FUNCTION LOAD")
			before = masterCalls(t, c)
			hit()
			after := masterCalls(t, c)
			assert.Equal(t, int64(2), after["fcall"]-before["fcall"], "FCALL")
			assert.Zero(t, after["evalsha"]+after["eval"]-before["evalsha"]-before["eval"], "EVALSHA and EVAL")
			assert.Equal(t, fnOn, b.s.fn.Load(), "functions")
		})
	}
}

// TestFunctionsOff checks where functions are not used: miniredis, which
// lacks them (found once), and Options.NoFunctions.
func TestFunctionsOff(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		b, _ := miniBackend(t)
		l := New(b)
		for want := int64(1); want <= 3; want++ {
			d, err := l.CheckRate(context.Background(), "fn-off", time.Minute, 10)
			require.NoError(t, err)
			assert.Equal(t, want, d.Count)
		}
		awaitFunctions(t, b, fnOff)
	})
	for _, m := range modes {
		t.Run("NoFunctions/"+m.name, func(t *testing.T) {
			c := testcluster.Shared(t)
			b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: c.Addrs(), KeyPrefix: namespace(), Coalesce: m.mode, NoFunctions: true})
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			before := masterCalls(t, c)
			l := New(b)
			for want := int64(1); want <= 3; want++ {
				d, err := l.CheckRate(context.Background(), "fn-off", time.Minute, 10)
				require.NoError(t, err)
				assert.Equal(t, want, d.Count)
			}
			after := masterCalls(t, c)
			assert.Zero(t, after["fcall"]-before["fcall"], "FCALL")
			assert.Zero(t, after["function|load"]-before["function|load"], "FUNCTION LOAD")
			assert.Positive(t, after["evalsha"]-before["evalsha"], "EVALSHA")
		})
	}
}

// TestFunctionsManyRules sends calls of more distinct rules than the
// library keeps parsed (64), twice over: every decision stays right.
func TestFunctionsManyRules(t *testing.T) {
	_, b, _, _ := sharedCluster(t, CoalesceOff)
	ctx := context.Background()
	l := New(b, WithClock(newClock(1_700_000_000_000).now)) // still: no refill
	_, err := l.Hit(ctx, "fn-many", TokenBucket(1, time.Second, 1000))
	require.NoError(t, err)
	awaitFunctions(t, b, fnOn)
	const rules = 150
	for pass := int64(1); pass <= 2; pass++ {
		for i := range int64(rules) {
			d, err := l.Hit(ctx, "fn-many", TokenBucket(1, time.Second, 10+i))
			require.NoError(t, err)
			require.True(t, d.Allowed)
			require.Equal(t, 10+i-pass, d.Remaining, "rule %d, pass %d", i, pass)
		}
	}
}
