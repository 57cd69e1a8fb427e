package hammer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The suite's real-cluster targets: one 3-master, 3-replica Redis Cluster
// shared by the package's tests, each test in a key namespace of its own.
// Without redis-server these subtests skip, saying how to install it; with
// HAMMER_REQUIRE_CLUSTER=1 (as make test sets) they fail instead.

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the fault tests make thousands.
	redis.SetLogger(quietLogger{})
	testcluster.Main(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func clusterTargets() []target {
	mk := func(name string, mode CoalesceMode) target {
		return target{name, func(t *testing.T) *env {
			c := testcluster.Shared(t)
			raw := redis.NewClusterClient(c.ClusterOptions())
			t.Cleanup(func() { raw.Close() })
			return &env{
				name: name, seeds: c.Addrs(), raw: raw, prefix: namespace(), mode: mode,
				flushScripts: func(t *testing.T) { c.FlushScripts(t); c.FlushFunctions(t) },
			}
		}}
	}
	return []target{mk("cluster-coalesced", CoalesceOn), mk("cluster-direct", CoalesceOff)}
}

// sharedCluster returns the shared cluster, a backend on it in a fresh
// namespace, and a raw client.
func sharedCluster(t *testing.T, mode CoalesceMode) (*testcluster.Cluster, *ClusterBackend, *redis.ClusterClient, string) {
	t.Helper()
	c := testcluster.Shared(t)
	prefix := namespace()
	b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: c.Addrs(), KeyPrefix: prefix, Coalesce: mode})
	require.NoError(t, err)
	raw := redis.NewClusterClient(c.ClusterOptions())
	t.Cleanup(func() { b.Close(); raw.Close() })
	return c, b, raw, prefix
}

func TestClusterSpread(t *testing.T) {
	_, b, raw, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	masters := map[string]int{}
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("user:%d", i)
		_, err := b.CountHit(ctx, BucketKey{Bucket: 1, ID: id}, 1)
		require.NoError(t, err)
		bk, _ := hitKeys(prefix, BucketKey{Bucket: 1, ID: id})
		m, err := raw.MasterForKey(ctx, bk)
		require.NoError(t, err)
		masters[m.Options().Addr]++
	}
	assert.Len(t, masters, 3, "ids land on every master: %v", masters)
	for addr, n := range masters {
		assert.Greater(t, n, 50, "master %s", addr)
	}
}

func TestClusterSlots(t *testing.T) {
	c, b, raw, prefix := sharedCluster(t, CoalesceOff)
	ctx := context.Background()
	node := c.Client(c.Nodes()[0])
	slotOf := func(key string) int64 {
		s, err := node.ClusterKeySlot(ctx, key).Result()
		require.NoError(t, err)
		return s
	}
	ids := []string{"}x", "{}", "{", "x{y}z", "a\x00b", "\x00", strings.Repeat("k", DefaultMaxIDBytes), "a}b{c}", "%7D"}
	for _, id := range ids {
		for bucket := int64(0); bucket < 3; bucket++ {
			_, err := b.CountHit(ctx, BucketKey{Bucket: bucket * 1000, ID: id}, 1)
			require.NoError(t, err)
		}
		_, idx := hitKeys(prefix, BucketKey{ID: id})
		want := slotOf(idx)
		for bucket := int64(0); bucket < 3; bucket++ {
			bk, _ := hitKeys(prefix, BucketKey{Bucket: bucket * 1000, ID: id})
			assert.Equal(t, want, slotOf(bk), "id %q bucket %d", id, bucket)
			assert.Equal(t, int64(1), raw.Exists(ctx, bk).Val(), "key %q was written", bk)
		}
		n, err := b.DeleteBuckets(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(3), n, "id %q", id)
	}
}

func TestClusterTTLsOnEveryKey(t *testing.T) {
	if testing.Short() {
		t.Skip("hits 100k ids")
	}
	c, b, _, _ := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	// Hits on 100k ids, from 64 goroutines: every key written must carry
	// a TTL, so on every master the keys with an expiry are all the keys.
	const ids, workers = 100_000, 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < ids; i += workers {
				if _, err := b.CountHit(ctx, BucketKey{Bucket: 5, ID: "ttl:" + strconv.Itoa(i)}, 1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	masters := 0
	total := int64(0)
	require.NoError(t, c.ForEachNode(func(n *testcluster.Node, cl *redis.Client) error {
		if !n.IsMaster() {
			return nil
		}
		masters++
		keys, expires := keyspace(t, cl)
		assert.Equal(t, keys, expires, "node %s: keys without a TTL", n.Addr)
		total += keys
		return nil
	}))
	assert.Equal(t, 3, masters)
	assert.GreaterOrEqual(t, total, int64(2*ids), "a bucket and an index per id")
}

// keyspace reads db0's keys and expires from INFO keyspace.
func keyspace(t *testing.T, cl *redis.Client) (keys, expires int64) {
	t.Helper()
	info, err := cl.Info(context.Background(), "keyspace").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "db0:") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimPrefix(line, "db0:"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "keys":
				keys = n
			case "expires":
				expires = n
			}
		}
	}
	return keys, expires
}
