package bench

// Helpers that read INFO from the nodes of a test cluster.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-hammer/hammer/internal/testcluster"
)

// infoTimeout bounds one INFO, CONFIG or FLUSHALL of a node.
const infoTimeout = 10 * time.Second

// infoFields returns the "name:value" fields of INFO section of n.
func infoFields(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, section string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
	defer cancel()
	s, err := c.Client(n).Info(ctx, section).Result()
	if err != nil {
		t.Fatalf("INFO %s of %s: %v", section, n, err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			fields[k] = v
		}
	}
	return fields
}

// infoFloat returns the number in field name, failing t when it is
// missing or malformed.
func infoFloat(t *testing.T, n *testcluster.Node, fields map[string]string, name string) float64 {
	t.Helper()
	v, ok := fields[name]
	if !ok {
		t.Fatalf("INFO of %s has no %s", n, name)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("INFO of %s: %s=%q: %v", n, name, v, err)
	}
	return f
}

// nodeCPU returns used_cpu_sys + used_cpu_user of n: the CPU its process
// has used, all of its threads together.
func nodeCPU(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) time.Duration {
	t.Helper()
	f := infoFields(t, c, n, "cpu")
	sec := infoFloat(t, n, f, "used_cpu_sys") + infoFloat(t, n, f, "used_cpu_user")
	return time.Duration(sec * float64(time.Second))
}

// clusterCPU is the CPU used by the masters and by the replicas of a
// cluster, each summed over its nodes.
type clusterCPU struct{ masters, replicas time.Duration }

func (a clusterCPU) sub(b clusterCPU) clusterCPU {
	return clusterCPU{a.masters - b.masters, a.replicas - b.replicas}
}

func (a clusterCPU) total() time.Duration { return a.masters + a.replicas }

// readClusterCPU reads nodeCPU of every node, masters and replicas apart.
func readClusterCPU(t *testing.T, c *testcluster.Cluster, masters, replicas []*testcluster.Node) clusterCPU {
	t.Helper()
	var u clusterCPU
	for _, n := range masters {
		u.masters += nodeCPU(t, c, n)
	}
	for _, n := range replicas {
		u.replicas += nodeCPU(t, c, n)
	}
	return u
}

// resetStats runs CONFIG RESETSTAT on nodes: it zeroes their command
// statistics (not their CPU times).
func resetStats(t *testing.T, c *testcluster.Cluster, nodes []*testcluster.Node) {
	t.Helper()
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		err := c.Client(n).ConfigResetStat(ctx).Err()
		cancel()
		if err != nil {
			t.Fatalf("CONFIG RESETSTAT of %s: %v", n, err)
		}
	}
}

// cmdStat is one command's line of INFO commandstats, summed over nodes.
// In Redis 7 the commands a script calls are counted under their own
// names as well, and their time is also part of the script's.
type cmdStat struct{ calls, usec int64 }

// commandStats returns INFO commandstats of nodes, summed, by command name
// ("evalsha", "get", ...).
func commandStats(t *testing.T, c *testcluster.Cluster, nodes []*testcluster.Node) map[string]cmdStat {
	t.Helper()
	out := map[string]cmdStat{}
	for _, n := range nodes {
		for k, v := range infoFields(t, c, n, "commandstats") {
			name, ok := strings.CutPrefix(k, "cmdstat_")
			if !ok {
				continue
			}
			st := out[name]
			for _, kv := range strings.Split(v, ",") {
				key, val, _ := strings.Cut(kv, "=")
				x, _ := strconv.ParseInt(val, 10, 64)
				switch key {
				case "calls":
					st.calls += x
				case "usec":
					st.usec += x
				}
			}
			out[name] = st
		}
	}
	return out
}

// flushAll empties every master, synchronously (replicas follow).
func flushAll(t *testing.T, c *testcluster.Cluster, masters []*testcluster.Node) {
	t.Helper()
	for _, n := range masters {
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		err := c.Client(n).Do(ctx, "FLUSHALL", "SYNC").Err()
		cancel()
		if err != nil {
			t.Fatalf("FLUSHALL SYNC of %s: %v", n, err)
		}
	}
}

// memoryOf returns, summed over nodes, used_memory less the buffers of
// normal clients (mem_clients_normal), and the number of keys (DBSIZE).
func memoryOf(t *testing.T, c *testcluster.Cluster, nodes []*testcluster.Node) (bytes, keys int64) {
	t.Helper()
	for _, n := range nodes {
		f := infoFields(t, c, n, "memory")
		bytes += int64(infoFloat(t, n, f, "used_memory") - infoFloat(t, n, f, "mem_clients_normal"))
		ctx, cancel := context.WithTimeout(context.Background(), infoTimeout)
		k, err := c.Client(n).DBSize(ctx).Result()
		cancel()
		if err != nil {
			t.Fatalf("DBSIZE of %s: %v", n, err)
		}
		keys += k
	}
	return bytes, keys
}

// cpuMeter reads the CPU that the nodes of a cluster, and this process,
// use during a round.
type cpuMeter struct {
	c                 *testcluster.Cluster
	masters, replicas []*testcluster.Node
	idle              clusterCPU    // the nodes' own use while idle (cron, cluster bus)...
	idleSpan          time.Duration // ...in this time
}

// newCPUMeter returns a meter of every node of c, after it measured their
// idle use for d.
func newCPUMeter(t *testing.T, c *testcluster.Cluster, d time.Duration) *cpuMeter {
	t.Helper()
	m := &cpuMeter{c: c, masters: c.Masters(t), replicas: c.Replicas(t)}
	before := m.read(t)
	start := time.Now()
	time.Sleep(d)
	m.idle = m.read(t).sub(before)
	m.idleSpan = time.Since(start)
	return m
}

// read returns the CPU used so far by the masters and by the replicas.
func (m *cpuMeter) read(t *testing.T) clusterCPU {
	t.Helper()
	return readClusterCPU(t, m.c, m.masters, m.replicas)
}

// idleShare returns the nodes' idle use over elapsed.
func (m *cpuMeter) idleShare(elapsed time.Duration) clusterCPU {
	share := func(u time.Duration) time.Duration {
		return time.Duration(float64(u) * float64(elapsed) / float64(max(m.idleSpan, 1)))
	}
	return clusterCPU{share(m.idle.masters), share(m.idle.replicas)}
}

// measure calls run and returns its sample with the CPU used meanwhile:
// by the nodes (read before and after), less their idle use over the
// same time, and by this process (getrusage; 0 where it cannot be read).
func (m *cpuMeter) measure(t *testing.T, run func() sample) cpuSample {
	t.Helper()
	u0 := m.read(t)
	p0, pok := processCPU()
	s := cpuSample{sample: run()}
	p1, _ := processCPU()
	u := m.read(t).sub(u0)
	idle := m.idleShare(s.elapsed)
	s.redis = clusterCPU{
		masters:  max(0, u.masters-idle.masters),
		replicas: max(0, u.replicas-idle.replicas),
	}
	if pok {
		s.client = p1 - p0
	}
	return s
}
