package hammer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-hammer/hammer/internal/testcluster"
)

// BenchmarkBatchScript measures what the batch script costs one master,
// apart from the network and the client: one node that serves every slot
// (no replicas), one caller, each op one EVALSHA of a batch of 64 units of
// 64 ids, sent again and again. It reports, per call in the batch, the
// node's time inside EVALSHA (script-µs/call), the part of it spent in
// the commands the script called (commands-µs/call, INFO commandstats),
// and the node's whole CPU (redis-cpu-µs/call: used_cpu_sys +
// used_cpu_user, with reading and answering the command). The rest of
// script-µs/call is Lua and the calls from Lua into Redis.
//
//	go test -run '^$' -bench BatchScript .
func BenchmarkBatchScript(b *testing.B) {
	if err := testcluster.Available(); err != nil {
		b.Skipf("no redis-server: %v", err)
	}
	c := testcluster.Start(b, testcluster.Config{Masters: 1, ReplicasPerMaster: testcluster.NoReplicas})
	node := c.Client(c.Nodes()[0])
	ctx := context.Background()
	if err := node.ScriptLoad(ctx, batchScript.src).Err(); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	const big = 1 << 37
	cases := []struct {
		name  string
		rules []Rule // nil: CheckRate hits
	}{
		{"hits", nil},
		{"rules=1", []Rule{TokenBucket(big, time.Minute, big)}},
		{"rules=3", []Rule{SlidingWindow(time.Hour, big), TokenBucket(big, time.Minute, big), FixedWindow(24*time.Hour, big)}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			units := make([]unit, batchUnits)
			for i := range units {
				id := fmt.Sprintf("bench:%s:%d", tc.name, i)
				var cl *call
				if tc.rules == nil {
					bucket, index := hitKeys(defaultKeyPrefix, BucketKey{Bucket: 1, ID: id})
					cl = newHitCall(bucket, index, now, 1, int64(time.Hour/time.Millisecond))
				} else {
					cl = newRuleCall(defaultKeyPrefix, id, tc.rules, now, 1, true)
				}
				units[i] = unit{calls: []*call{cl}}
			}
			cmd := batchCmd(units)
			send := func() {
				if err := node.Do(ctx, cmd...).Err(); err != nil {
					b.Fatal(err)
				}
			}
			send() // the keys exist from here on
			if err := node.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			cpu0 := nodeCPUSeconds(b, node)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				send()
			}
			b.StopTimer()
			calls := float64(b.N * batchUnits)
			cpu := nodeCPUSeconds(b, node) - cpu0
			evalsha, commands := scriptUsec(b, node)
			b.ReportMetric(evalsha/calls, "script-µs/call")
			b.ReportMetric(commands/calls, "commands-µs/call")
			b.ReportMetric(cpu*1e6/calls, "redis-cpu-µs/call")
		})
	}
}

// nodeCPUSeconds returns used_cpu_sys + used_cpu_user of the node.
func nodeCPUSeconds(b testing.TB, node *redis.Client) float64 {
	b.Helper()
	info, err := node.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += f
		}
	}
	return sum
}

// scriptUsec returns, from INFO commandstats, the µs spent in EVALSHA,
// and in the commands that scripts called (every command but the ones
// this benchmark sends itself).
func scriptUsec(b testing.TB, node *redis.Client) (evalsha, commands float64) {
	b.Helper()
	info, err := node.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var usec float64
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				usec, _ = strconv.ParseFloat(v, 64)
			}
		}
		switch strings.TrimPrefix(name, "cmdstat_") {
		case "evalsha":
			evalsha = usec
		case "info", "config|resetstat", "ping", "hello", "client|setinfo", "cluster|slots", "cluster|shards", "cluster|nodes":
		default:
			commands += usec
		}
	}
	return evalsha, commands
}
