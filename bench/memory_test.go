package bench

// TestMemory measures the Redis memory that each rule kind keeps per id;
// see README.md.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/internal/testcluster"
)

// memIDs is the default number of ids of TestMemory.
const memIDs = 20000

// memCase is one case of TestMemory: call is made once for each id.
type memCase struct {
	name      string
	params    string
	rules     int   // rules, or buckets, per id
	keysPerID int64 // the keys one id leaves
	call      func(ctx context.Context, id string) error
}

func TestMemory(t *testing.T) {
	if os.Getenv("HAMMER_PEER_BENCH") != "1" {
		t.Skip("set HAMMER_PEER_BENCH=1 to measure Redis memory per id on a real cluster (see README.md)")
	}
	n := memIDs
	if v := os.Getenv("HAMMER_PEER_MEM_IDS"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 {
			t.Fatalf("HAMMER_PEER_MEM_IDS=%q: want a positive integer", v)
		}
		n = x
	}
	// No replicas: a master with a replica keeps a replication backlog that
	// grows with the writes, up to 1 MB, and would be counted.
	c, client := startCluster(t, testcluster.NoReplicas)
	masters := c.Masters(t)
	l := newLimiter(t, client, hammer.CoalesceOn)
	rr := redis_rate.NewLimiter(client)

	// Limits that every hit keeps far from, and state that lives for hours:
	// a TTL that ended during the test would take keys away.
	const limit = 1000
	fixed := hammer.FixedWindow(24*time.Hour, limit)
	sliding := hammer.SlidingWindow(time.Hour, limit)
	token := hammer.TokenBucket(1, time.Hour, limit)
	leaky := hammer.LeakyBucket(1, time.Hour, limit)
	rrLimit := redis_rate.Limit{Rate: 1, Period: time.Hour, Burst: limit}
	hit := func(rules ...hammer.Rule) func(ctx context.Context, id string) error {
		return func(ctx context.Context, id string) error {
			d, err := l.Hit(ctx, id, rules...)
			if err == nil && !d.Allowed {
				err = fmt.Errorf("Hit of %q denied", id)
			}
			return err
		}
	}
	cases := []memCase{
		{"FixedWindow", fixed.String(), 1, 1, hit(fixed)},
		{"SlidingWindow", sliding.String(), 1, 1, hit(sliding)},
		{"TokenBucket", token.String(), 1, 1, hit(token)},
		{"LeakyBucket", leaky.String(), 1, 1, hit(leaky)},
		{"all four in one Hit", "the four above", 4, 1, hit(fixed, sliding, token, leaky)},
		{"CheckRate", "1m, limit 1000", 1, 2, func(ctx context.Context, id string) error {
			_, err := l.CheckRate(ctx, id, time.Minute, limit)
			return err
		}},
		{"redis_rate Allow", rrLimit.String(), 1, 1, func(ctx context.Context, id string) error {
			_, err := rr.Allow(ctx, id, rrLimit)
			return err
		}},
	}

	type result struct {
		bytes, keys int64
		usage       []string // MEMORY USAGE of one id's keys
	}
	// Loads the scripts and dials every connection the cases use before
	// any baseline, so that client structures are not counted.
	for _, mc := range cases {
		hitAll(t, "warm-up:", min(n, 1000), mc.call)
	}
	results := make([]result, len(cases))
	for k, mc := range cases {
		flushAll(t, c, masters)
		before, keys0 := memoryOf(t, c, masters)
		if keys0 != 0 {
			t.Fatalf("%s: %d keys left after FLUSHALL", mc.name, keys0)
		}
		hitAll(t, "user:", n, mc.call)
		after, keys := memoryOf(t, c, masters)
		if want := int64(n) * mc.keysPerID; keys != want {
			t.Errorf("%s: %d keys, want %d: some expired during the test", mc.name, keys, want)
		}
		results[k] = result{bytes: after - before, keys: keys, usage: memoryUsage(t, client, "user:0")}
		t.Logf("%-20s %10d bytes for %d ids, %d keys", mc.name, after-before, n, keys)
	}

	var w strings.Builder
	fmt.Fprintf(&w, "Redis memory per id, %d ids (used_memory less client buffers, summed over 3 masters, after - before)\n\n", n)
	tw := tabwriter.NewWriter(&w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "case\tparameters\tkeys per id\tbytes per id\tbytes per id per rule\t\n")
	for k, mc := range cases {
		r := results[k]
		perID := float64(r.bytes) / float64(n)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t\n", mc.name, mc.params, mc.keysPerID, perID, perID/float64(mc.rules))
	}
	_ = tw.Flush()
	fmt.Fprintf(&w, "\nMEMORY USAGE of the keys of id user:0, bytes\n\n")
	for k, mc := range cases {
		fmt.Fprintf(&w, "  %-20s %s\n", mc.name, strings.Join(results[k].usage, ", "))
	}
	fmt.Println(w.String())
}

// hitAll calls call once for each of n ids, prefix+"0" to
// prefix+"<n-1>", from 64 goroutines, and fails t on the first error.
func hitAll(t *testing.T, prefix string, n int, call func(ctx context.Context, id string) error) {
	t.Helper()
	err := callEach(64, n, func(ctx context.Context, i int) error {
		return call(ctx, prefix+strconv.Itoa(i))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// memoryUsage returns "key bytes" of MEMORY USAGE (every element
// counted) for every key of id: hammer's, "hammer:{<id>}:...", shown less
// that base, and redis_rate's, "rate:<id>".
func memoryUsage(t *testing.T, client *redis.ClusterClient, id string) []string {
	t.Helper()
	base := "hammer:{" + id + "}:"
	var mu sync.Mutex
	var out []string
	err := client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		for _, pattern := range []string{base + "*", "rate:" + id} {
			keys, err := m.Keys(ctx, pattern).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				n, err := m.MemoryUsage(ctx, k, 0).Result()
				if err != nil {
					return err
				}
				mu.Lock()
				out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(k, base), n))
				mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("MEMORY USAGE of the keys of %q: %v", id, err)
	}
	slices.Sort(out)
	return out
}
