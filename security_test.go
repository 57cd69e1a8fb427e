package hammer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// aclCommands are the commands the backend needs, as an ACL rule: the
// README gives this line.
const aclCommands = "+fcall +function|load +evalsha +eval +script|load +hmget +zrange +exists +cluster|slots " +
	"+get +hget +hset +set +pexpire +pttl +time +zadd +zrem +del" // run by the scripts

func TestACLUser(t *testing.T) {
	c := testcluster.Shared(t)
	prefix := namespace()
	user := "u" + strings.TrimSuffix(prefix, ":")
	args := append([]string{user, "reset", "on", ">s3cret", "~" + prefix + "*"}, strings.Fields(aclCommands)...)
	c.SetupACL(t, args...)
	// A user without FCALL and FUNCTION LOAD: the scripts go with EVALSHA.
	noFn := "n" + user
	args = append([]string{noFn, "reset", "on", ">s3cret", "~" + prefix + "*"},
		strings.Fields(strings.NewReplacer("+fcall ", "", "+function|load ", "").Replace(aclCommands))...)
	c.SetupACL(t, args...)

	for _, tc := range []struct {
		user string
		fn   int32 // what the backend finds out about functions
	}{{user, fnOn}, {noFn, fnOff}} {
		testACLUser(t, c, prefix, tc.user, tc.fn)
	}
}

func testACLUser(t *testing.T, c *testcluster.Cluster, prefix, user string, fn int32) {
	ctx := context.Background()
	for _, m := range modes {
		t.Run(user+"/"+m.name, func(t *testing.T) {
			b, err := NewClusterBackend(Options{
				ExpiryMs: 60_000, InitServers: c.Addrs(), KeyPrefix: prefix, Coalesce: m.mode,
				RedisOptions: &redis.ClusterOptions{Username: user, Password: "s3cret"},
			})
			require.NoError(t, err)
			defer b.Close()
			l := New(b, WithClock(newClock(1_700_000_000_000).now)) // still: no refill between the hits
			id := "acl:" + m.name
			for want := int64(1); want <= 3; want++ {
				d, err := l.CheckRate(ctx, id, time.Minute, 2)
				require.NoError(t, err)
				assert.Equal(t, want, d.Count)
			}
			st, err := l.InspectBucket(ctx, id, time.Minute, 2)
			require.NoError(t, err)
			assert.Equal(t, int64(3), st.Count)
			rules := []Rule{SlidingWindow(time.Second, 5), TokenBucket(1, time.Second, 5)}
			for want := int64(4); want >= 3; want-- {
				d, err := l.Hit(ctx, id, rules...)
				require.NoError(t, err)
				assert.Equal(t, want, d.Remaining)
			}
			d, err := l.Peek(ctx, id, rules...)
			require.NoError(t, err)
			assert.Equal(t, int64(2), d.Remaining)
			n, err := l.DeleteBuckets(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, int64(3), n, "the bucket and both rules' states")
			awaitFunctions(t, b, fn)
		})
	}
}

// refusals sums the counts of ACL LOG entries (failed logins, refused
// commands and keys) over every node.
func refusals(t *testing.T, c *testcluster.Cluster) int64 {
	t.Helper()
	var total int64
	require.NoError(t, c.ForEachNode(func(n *testcluster.Node, cl *redis.Client) error {
		entries, err := cl.ACLLog(context.Background(), 1000).Result()
		for _, e := range entries {
			total += e.Count
		}
		return err
	}))
	return total
}

func TestACLRefusals(t *testing.T) {
	c := testcluster.Shared(t)
	ctx := context.Background()
	prefix := namespace()
	user := "r" + strings.TrimSuffix(prefix, ":")
	// A user that may not run the commands inside the scripts, and sees
	// only keys under "other:".
	c.SetupACL(t, user, "reset", "on", ">pw", "~other:*", "+evalsha", "+eval", "+hmget", "+zrange", "+cluster|slots")

	cases := []struct {
		name string
		opts *redis.ClusterOptions
	}{
		{"wrong password", &redis.ClusterOptions{Username: user, Password: "wrong"}},
		{"no such user", &redis.ClusterOptions{Username: "nobody-" + user, Password: "pw"}},
		{"missing permissions", &redis.ClusterOptions{Username: user, Password: "pw"}},
	}
	for _, tc := range cases {
		for _, m := range modes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: c.Addrs(), KeyPrefix: prefix, Coalesce: m.mode, RedisOptions: tc.opts})
				require.NoError(t, err)
				defer b.Close()
				before := refusals(t, c)
				_, err = b.CountHit(ctx, BucketKey{Bucket: 1, ID: "x"}, 1)
				require.ErrorIs(t, err, ErrMisconfigured, "at the first call")
				assert.NotErrorIs(t, err, ErrUnavailable)
				_, err = b.GetBucket(ctx, BucketKey{Bucket: 1, ID: "x"})
				require.ErrorIs(t, err, ErrMisconfigured)
				_, err = b.DeleteBuckets(ctx, "x")
				require.ErrorIs(t, err, ErrMisconfigured)
				// Each call made a bounded number of attempts, and nothing
				// retries behind the caller's back: with no calls, no more
				// refusals reach the servers.
				after := refusals(t, c)
				assert.Positive(t, after-before)
				// At most two logins per node per call: go-redis tries each
				// seed node (HELLO with AUTH, then AUTH) to load the slot map.
				assert.LessOrEqual(t, after-before, int64(3*2*len(c.Nodes())), "refusals for 3 calls")
				time.Sleep(1500 * time.Millisecond)
				assert.Equal(t, after, refusals(t, c), "retried in the background")
				t.Logf("%d refusals for 3 calls on %d nodes: %v", after-before, len(c.Nodes()), err)
			})
		}
	}
}

func TestTLSCluster(t *testing.T) {
	c := testcluster.Start(t, testcluster.Config{TLS: true})
	ctx := context.Background()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: c.Addrs(), Coalesce: m.mode,
				RedisOptions: &redis.ClusterOptions{TLSConfig: c.TLSConfig()}})
			require.NoError(t, err)
			defer b.Close()
			l := New(b)
			for want := int64(1); want <= 3; want++ {
				d, err := l.CheckRate(ctx, "tls:"+m.name, time.Minute, 2)
				require.NoError(t, err)
				assert.Equal(t, want, d.Count)
			}
			n, err := l.DeleteBuckets(ctx, "tls:"+m.name)
			require.NoError(t, err)
			assert.Equal(t, int64(1), n)
		})
	}
	t.Run("wrong CA", func(t *testing.T) {
		b, err := NewClusterBackend(Options{ExpiryMs: 60_000, InitServers: c.Addrs(),
			RedisOptions: &redis.ClusterOptions{TLSConfig: testcluster.WrongCATLSConfig()}})
		require.NoError(t, err)
		defer b.Close()
		_, err = b.CountHit(ctx, BucketKey{Bucket: 1, ID: "x"}, 1)
		require.ErrorIs(t, err, ErrMisconfigured)
		t.Log(err)
	})
}
