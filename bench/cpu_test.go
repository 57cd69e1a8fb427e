package bench

// TestRedisCPU measures what one check costs the Redis nodes in CPU, Hit
// with one rule against Hit with three; see README.md.

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/go-hammer/hammer"
)

// cpuCallers is the default number of concurrent callers of TestRedisCPU.
const cpuCallers = 64

// cpuRatioGoal is the goal for the Redis CPU of a Hit with three rules, as
// a ratio to that of a Hit with one.
const cpuRatioGoal = 1.5

// cpuBig is a limit that every rule of TestRedisCPU keeps far from: every
// call is allowed.
const cpuBig = 1 << 37

// The rules of TestRedisCPU. oneRule and threeRules refill or roll over
// within about a second, so that an id's rule record expires a second or
// two after its last hit and comes back with the next one, like
// peerBucket's: a share of the hits create the record again. keptOne and
// keptThree keep every id's state for hours, so that every hit after the
// warm-up updates a record that exists: the steady cost of a rule.
var (
	oneRule    = []hammer.Rule{hammer.TokenBucket(cpuBig, time.Minute, cpuBig)}
	threeRules = []hammer.Rule{
		hammer.SlidingWindow(time.Second, cpuBig),
		hammer.TokenBucket(cpuBig, time.Minute, cpuBig),
		hammer.FixedWindow(time.Hour, cpuBig),
	}
	keptOne   = []hammer.Rule{hammer.TokenBucket(1, time.Hour, 1<<31)}
	keptThree = []hammer.Rule{
		hammer.SlidingWindow(time.Hour, 1<<31),
		hammer.TokenBucket(1, time.Hour, 1<<31),
		hammer.FixedWindow(24*time.Hour, 1<<31),
	}
)

// cpuSample is one round of one case of TestRedisCPU.
type cpuSample struct {
	sample
	redis  clusterCPU    // used by the nodes, less their idle use
	client time.Duration // used by this process; 0 when unknown
	stats  map[string]cmdStat
}

// perCheck returns d divided by the checks of s.
func (s cpuSample) perCheck(d time.Duration) time.Duration {
	if s.checks == 0 {
		return 0
	}
	return d / time.Duration(s.checks)
}

// scriptStat sums the masters' script calls: EVALSHA, and FCALL of the
// function library (hammer's default on Redis 7; redis_rate sends
// EVALSHA).
func (s cpuSample) scriptStat() cmdStat {
	e, f := s.stats["evalsha"], s.stats["fcall"]
	return cmdStat{calls: e.calls + f.calls, usec: e.usec + f.usec}
}

// scriptCallUsec is the masters' mean µs per script call.
func (s cpuSample) scriptCallUsec() float64 {
	st := s.scriptStat()
	if st.calls == 0 {
		return 0
	}
	return float64(st.usec) / float64(st.calls)
}

// checksPerScript is the checks of s per script call the masters ran:
// the mean size of a batch, where hits went in batch script calls.
func (s cpuSample) checksPerScript() float64 {
	return float64(s.checks) / float64(max(s.scriptStat().calls, 1))
}

// scriptUsec is the masters' time in script calls, in µs per check: what
// a check cost inside scripts (the rest of the masters' CPU is reading,
// parsing and answering commands, and the kernel's share of the network).
func (s cpuSample) scriptUsec() float64 {
	return float64(s.scriptStat().usec) / float64(max(s.checks, 1))
}

// scriptCommand reports whether name is a command that a script of a case
// calls: any but the script calls and the test's and cluster's upkeep.
func scriptCommand(name string) bool {
	switch name {
	case "evalsha", "eval", "fcall", "script|load", "function|load", "config|resetstat", "info", "replconf", "ping", "hello",
		"client|setinfo", "cluster|slots", "cluster|shards", "cluster|nodes", "dbsize":
		return false
	}
	return true
}

// commandUsec is the time of the commands the scripts called, summed, in
// µs per check: what the scripts spent in Redis commands rather than Lua.
func (s cpuSample) commandUsec() float64 {
	var usec int64
	for name, st := range s.stats {
		if scriptCommand(name) {
			usec += st.usec
		}
	}
	return float64(usec) / float64(max(s.checks, 1))
}

// innerCommands lists the commands the scripts called, per check, by
// name, with their µs per check.
func (s cpuSample) innerCommands() string {
	var parts []string
	for name, st := range s.stats {
		if !scriptCommand(name) || st.calls == 0 || s.checks == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f (%.1fµs)", name, float64(st.calls)/float64(s.checks), float64(st.usec)/float64(s.checks)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func TestRedisCPU(t *testing.T) {
	if os.Getenv("HAMMER_PEER_BENCH") != "1" {
		t.Skip("set HAMMER_PEER_BENCH=1 to measure the Redis CPU of a check on a real cluster (see README.md)")
	}
	cfg := peerConfigFromEnv(t)
	callers := cpuCallers
	if v := os.Getenv("HAMMER_PEER_CPU_CALLERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAMMER_PEER_CPU_CALLERS=%q: want a positive integer", v)
		}
		callers = n
	}
	c, client := startCluster(t, cfg.replicas)
	ids, _ := peerIDList(peerIDs)
	direct := newLimiter(t, client, hammer.CoalesceOff)
	coalesced := newLimiter(t, client, hammer.CoalesceOn)
	cases := []contender{
		{"hit-1-rule-direct", hitCall(direct, ids, oneRule...)},
		{"hit-3-rules-direct", hitCall(direct, ids, threeRules...)},
		{"hit-1-rule-coalesced", hitCall(coalesced, ids, oneRule...)},
		{"hit-3-rules-coalesced", hitCall(coalesced, ids, threeRules...)},
		{"hit-1-kept-coalesced", hitCall(coalesced, ids, keptOne...)},
		{"hit-3-kept-coalesced", hitCall(coalesced, ids, keptThree...)},
		{"checkrate-coalesced", checkRateCall(coalesced, ids)},
		{"redis_rate", redisRateCall(redis_rate.NewLimiter(client), ids, peerRRate)},
	}
	masters := c.Masters(t)
	t.Logf("GOMAXPROCS %d, %d masters, %d replicas, %d ids, %d callers, %d rounds of %v per case",
		runtime.GOMAXPROCS(0), len(masters), len(c.Replicas(t)), peerIDs, callers, cfg.rounds, cfg.duration)
	warmUp(t, cases, []workload{uniform}, callers, cfg.duration/4)

	// The nodes' own use while idle (cron, cluster bus), taken off every
	// case's.
	meter := newCPUMeter(t, c, min(cfg.duration, 2*time.Second))
	t.Logf("idle: masters %v, replicas %v of CPU in %v", meter.idle.masters, meter.idle.replicas, meter.idleSpan.Round(time.Millisecond))

	best := map[string]cpuSample{}
	all := map[string][]float64{}
	for round := range cfg.rounds {
		for k := range cases {
			ct := cases[(k+round)%len(cases)]
			resetStats(t, c, masters)
			s := meter.measure(t, func() sample { return measure(ct, uniform, callers, cfg.duration) })
			s.stats = commandStats(t, c, masters)
			if s.errors > 0 {
				t.Errorf("round %d, %s: %d errors of %d calls; first: %v", round+1, ct.name, s.errors, s.checks, s.firstErr)
			}
			per := s.perCheck(s.redis.total())
			all[ct.name] = append(all[ct.name], float64(per))
			if b, ok := best[ct.name]; !ok || per < b.perCheck(b.redis.total()) {
				best[ct.name] = s
			}
			t.Logf("round %d  %-22s %8.0f checks/s  Redis %6.2fµs/check (replicas %5.2f)  client %6.2fµs/check  script %5.2fµs/call",
				round+1, ct.name, s.perSecond(), us(per), us(s.perCheck(s.redis.replicas)), us(s.perCheck(s.client)), s.scriptCallUsec())
		}
	}

	var w strings.Builder
	fmt.Fprintf(&w, "Redis CPU per check (used_cpu_sys+used_cpu_user, every node, less its idle use), %d callers;\n", callers)
	fmt.Fprintf(&w, "the round of least Redis CPU per check of %d rounds of %v; spread = (max-min)/max over the rounds\n\n", cfg.rounds, cfg.duration)
	tw := tabwriter.NewWriter(&w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "case\tchecks/s\tRedis µs/check\tspread\tof which replicas\tclient µs/check\tscript µs/call\tchecks per script call\tscript µs/check\tof which commands\t\n")
	for _, ct := range cases {
		s := best[ct.name]
		rs := all[ct.name]
		spread := (slices.Max(rs) - slices.Min(rs)) / max(slices.Max(rs), 1)
		client := "-"
		if s.client > 0 {
			client = fmt.Sprintf("%.2f", us(s.perCheck(s.client)))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f%%\t%.2f\t%s\t%.2f\t%.1f\t%.2f\t%.2f\t\n", ct.name, s.perSecond(),
			us(s.perCheck(s.redis.total())), 100*spread, us(s.perCheck(s.redis.replicas)), client, s.scriptCallUsec(),
			s.checksPerScript(), s.scriptUsec(), s.commandUsec())
	}
	_ = tw.Flush()

	fmt.Fprintf(&w, "\nCommands the scripts ran on the masters, per check, and their µs per check (INFO commandstats)\n\n")
	for _, ct := range cases {
		fmt.Fprintf(&w, "  %-22s %s\n", ct.name, best[ct.name].innerCommands())
	}

	fmt.Fprintf(&w, "\nHit with 3 rules / Hit with 1 rule (goal: Redis CPU <= %.1fx): of the rounds above, and median of the %d rounds' ratios\n\n", cpuRatioGoal, cfg.rounds)
	tw = tabwriter.NewWriter(&w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "mode\tRedis CPU per check\tmedian\tscript µs/call\tchecks/s\tmet\t\n")
	for _, mode := range []string{"direct", "coalesced", "kept-coalesced"} {
		oneName, threeName := "hit-1-rule-"+mode, "hit-3-rules-"+mode
		if mode == "kept-coalesced" {
			oneName, threeName = "hit-1-"+mode, "hit-3-"+mode
		}
		one, three := best[oneName], best[threeName]
		r := float64(three.perCheck(three.redis.total())) / float64(max(one.perCheck(one.redis.total()), 1))
		rm := medianRatio(all[threeName], all[oneName])
		met := "no"
		if rm <= cpuRatioGoal { // the median, as in TestPeers
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%s\t\n", mode, r, rm,
			three.scriptCallUsec()/max(one.scriptCallUsec(), 1e-9), three.perSecond()/max(one.perSecond(), 1e-9), met)
	}
	_ = tw.Flush()
	fmt.Println(w.String())
}

// us returns d in microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
