package hammer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, tc := range batchScriptCases {
		b.Run(tc.name, func(b *testing.B) {
			send := batchSender(b, node, tc.name, tc.rules, false)
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

// BenchmarkBatchScriptInstructions counts what the batches of
// BenchmarkBatchScript cost the node in machine instructions, which do not
// depend on what else the machine runs, as time does: the node runs under
// valgrind's callgrind, and the benchmark reports its instructions per
// call in the batch (the batch read, run and answered, and whatever the
// node did meanwhile), counted from the second batch on. The alone/ cases
// send the same calls one script call each, as a lone caller does (hits
// with hitSource, rule calls with ruleSource): a script call's fixed cost
// is then paid by one call. The fcall/ cases send the same calls with
// FCALL, to the functions of the library (see function.go). It skips where valgrind is missing. Each
// batch takes tens of milliseconds under valgrind: give it a count.
//
//	go test -run '^$' -bench BatchScriptInstructions -benchtime 20x .
func BenchmarkBatchScriptInstructions(b *testing.B) {
	if err := testcluster.Available(); err != nil {
		b.Skipf("no redis-server: %v", err)
	}
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("no %s: %v", tool, err)
		}
	}
	out := filepath.Join(b.TempDir(), "callgrind.%p")
	c := testcluster.Start(b, testcluster.Config{
		Masters: 1, ReplicasPerMaster: testcluster.NoReplicas, Timeout: 5 * time.Minute,
		Wrapper: []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + out},
	})
	n := c.Nodes()[0]
	node := c.Client(n)
	ctx := context.Background()
	for _, sc := range []*luaScript{batchScript, hitScript, ruleScript} {
		if err := node.ScriptLoad(ctx, sc.src).Err(); err != nil {
			b.Fatal(err)
		}
	}
	callgrind := func(command string) {
		b.Helper()
		if msg, err := exec.Command("callgrind_control", command, strconv.Itoa(n.Pid())).CombinedOutput(); err != nil {
			b.Fatalf("callgrind_control %s: %v: %s", command, err, msg)
		}
	}
	measure := func(b *testing.B, send func()) {
		send() // the keys exist from here on
		callgrind("--zero")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			send()
		}
		b.StopTimer()
		callgrind("--dump")
		b.ReportMetric(float64(latestCallgrindTotal(b, strings.ReplaceAll(out, "%p", strconv.Itoa(n.Pid()))))/float64(b.N*batchUnits), "instructions/call")
	}
	if err := loadLibraryOn(ctx, node); err != nil {
		b.Fatal(err)
	}
	for _, fc := range []bool{false, true} {
		form := ""
		if fc {
			form = "fcall/"
		}
		for _, tc := range batchScriptCases {
			b.Run(form+tc.name, func(b *testing.B) {
				measure(b, batchSender(b, node, form+tc.name, tc.rules, fc))
			})
		}
		for _, tc := range batchScriptCases {
			b.Run(form+"alone/"+tc.name, func(b *testing.B) {
				measure(b, loneSender(b, node, form+"alone-"+tc.name, tc.rules, fc))
			})
		}
	}
}

// latestCallgrindTotal returns the instructions counted in the latest
// dump of callgrind whose files are named prefix.<n>.
func latestCallgrindTotal(b *testing.B, prefix string) int64 {
	b.Helper()
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		b.Fatalf("no callgrind dump %s.*: %v", prefix, err)
	}
	latest, num := "", -1
	for _, f := range files {
		if k, err := strconv.Atoi(strings.TrimPrefix(f, prefix+".")); err == nil && k > num {
			latest, num = f, k
		}
	}
	data, err := os.ReadFile(latest)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "totals: "); ok {
			total, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return total
		}
	}
	b.Fatalf("no totals in %s", latest)
	return 0
}

// batchScriptCases are the batches of the batch-script benchmarks: 64
// CheckRate hits, or 64 Hits of one or three rules, each of another id.
var batchScriptCases = []struct {
	name  string
	rules []Rule // nil: CheckRate hits
}{
	{"hits", nil},
	{"rules=1", []Rule{TokenBucket(1<<37, time.Minute, 1<<37)}},
	{"rules=3", []Rule{SlidingWindow(time.Hour, 1<<37), TokenBucket(1<<37, time.Minute, 1<<37), FixedWindow(24*time.Hour, 1<<37)}},
}

// batchSender returns a func that sends node one batch of batchUnits
// calls of the case name (rules nil: CheckRate hits), each of its own id,
// all at the time of the call to batchSender: with EVALSHA, or with FCALL
// when fc is set.
func batchSender(b *testing.B, node *redis.Client, name string, rules []Rule, fc bool) func() {
	calls := benchScriptCalls(name, rules)
	units := make([]unit, len(calls))
	for i, cl := range calls {
		units[i] = unit{calls: []*call{cl}}
	}
	cmd := (&call{script: batchScript, cmd: batchCmd(units)}).cmdArgs(fc)
	return func() {
		if err := node.Do(context.Background(), cmd...).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// loneSender returns a func that sends node the calls of batchSender one
// by one, each its own script call.
func loneSender(b *testing.B, node *redis.Client, name string, rules []Rule, fc bool) func() {
	calls := benchScriptCalls(name, rules)
	cmds := make([][]any, len(calls))
	for i, cl := range calls {
		cmds[i] = cl.cmdArgs(fc)
	}
	return func() {
		for _, cmd := range cmds {
			if err := node.Do(context.Background(), cmd...).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchScriptCalls returns batchUnits calls of the case name (rules nil:
// CheckRate hits), each of its own id, all at the time of the call.
func benchScriptCalls(name string, rules []Rule) []*call {
	now := time.Now().UnixMilli()
	calls := make([]*call, batchUnits)
	for i := range calls {
		id := fmt.Sprintf("bench:%s:%d", name, i)
		if rules == nil {
			bucket, index := hitKeys(defaultKeyPrefix, BucketKey{Bucket: 1, ID: id})
			calls[i] = newHitCall(bucket, index, now, 1, int64(time.Hour/time.Millisecond))
		} else {
			calls[i] = newRuleCall(defaultKeyPrefix, id, rules, now, 1, true)
		}
	}
	return calls
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

// commandStat is a command's line of INFO commandstats.
type commandStat struct {
	calls int64
	usec  float64
}

// commandStats returns node's INFO commandstats, by command name
// ("evalsha", "fcall", "config|resetstat", ...).
func commandStats(tb testing.TB, node *redis.Client) map[string]commandStat {
	tb.Helper()
	info, err := node.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	stats := map[string]commandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st commandStat
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "calls":
				st.calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, err = strconv.ParseFloat(v, 64)
			}
			if err != nil {
				tb.Fatalf("%s: %v", line, err)
			}
		}
		stats[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return stats
}

// scriptUsec returns, from INFO commandstats, the µs spent in EVALSHA,
// and in the commands that scripts called (every command but the ones
// this benchmark sends itself).
func scriptUsec(b testing.TB, node *redis.Client) (evalsha, commands float64) {
	b.Helper()
	for name, st := range commandStats(b, node) {
		switch name {
		case "evalsha":
			evalsha = st.usec
		case "info", "config|resetstat", "ping", "hello", "client|setinfo", "cluster|slots", "cluster|shards", "cluster|nodes":
		default:
			commands += st.usec
		}
	}
	return evalsha, commands
}

// BenchmarkLibraryMemory reports what loading the function library costs
// a node's memory: used_memory (bytes/library) and
// used_memory_vm_functions, the functions' Lua memory (lua-bytes/library),
// after FUNCTION LOAD less before it. Each op loads the library on a node
// of its own, just started, as a node first gets it (loads after a
// FUNCTION FLUSH reuse some of the first one's room, and cost less).
//
//	go test -run '^$' -bench LibraryMemory -benchtime 3x .
func BenchmarkLibraryMemory(b *testing.B) {
	if err := testcluster.Available(); err != nil {
		b.Skipf("no redis-server: %v", err)
	}
	ctx := context.Background()
	memory := func(node *redis.Client) (used, lua int64) {
		info, err := node.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_memory" || k == "used_memory_vm_functions" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				if k == "used_memory" {
					used = n
				} else {
					lua = n
				}
			}
		}
		return used, lua
	}
	var used, lua int64
	for i := 0; i < b.N; i++ {
		c := testcluster.Start(b, testcluster.Config{Masters: 1, ReplicasPerMaster: testcluster.NoReplicas})
		node := c.Client(c.Nodes()[0])
		u0, l0 := memory(node)
		if err := loadLibraryOn(ctx, node); err != nil {
			b.Fatal(err)
		}
		u1, l1 := memory(node)
		used, lua = used+u1-u0, lua+l1-l0
		c.Close()
	}
	b.ReportMetric(float64(used)/float64(b.N), "bytes/library")
	b.ReportMetric(float64(lua)/float64(b.N), "lua-bytes/library")
}
