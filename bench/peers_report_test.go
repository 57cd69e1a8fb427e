package bench

// The report of TestPeers: per workload, throughput and CPU per check
// next to each other and to redis_rate's, then the goals.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// metric is what a ratio compares: throughput or CPU per check.
type metric int

const (
	checksPerSecond metric = iota
	redisCPU               // µs of Redis CPU per check, every node
	clientCPU              // µs of this process's CPU per check
)

func (m metric) String() string {
	switch m {
	case redisCPU:
		return "Redis CPU per check"
	case clientCPU:
		return "client CPU per check"
	}
	return "checks/s"
}

// of returns m of s; ok is false when s has no checks, or m is the client
// CPU and it could not be read.
func (m metric) of(s cpuSample) (v float64, ok bool) {
	if s.checks == 0 {
		return 0, false
	}
	switch m {
	case redisCPU:
		return us(s.perCheck(s.redis.total())), true
	case clientCPU:
		return us(s.perCheck(s.client)), s.client > 0
	}
	return s.perSecond(), true
}

// peerResults keeps every round of one workload, by contender and caller
// count, in the order of the rounds.
type peerResults map[string]map[int][]cpuSample

func (r peerResults) add(name string, callers int, s cpuSample) {
	if r[name] == nil {
		r[name] = map[int][]cpuSample{}
	}
	r[name][callers] = append(r[name][callers], s)
}

// best returns the round of most checks/s of name at callers: the round
// whose figures the tables report, throughput and CPU alike.
func (r peerResults) best(name string, callers int) cpuSample {
	var b cpuSample
	for _, s := range r[name][callers] {
		if b.checks == 0 || s.perSecond() > b.perSecond() {
			b = s
		}
	}
	return b
}

// spread returns (max-min)/max of the checks/s of the rounds of name at
// callers.
func (r peerResults) spread(name string, callers int) float64 {
	var xs []float64
	for _, s := range r[name][callers] {
		xs = append(xs, s.perSecond())
	}
	if len(xs) == 0 || slices.Max(xs) == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / slices.Max(xs)
}

// ratio is a ÷ b of one metric at one caller count.
type ratio struct {
	best          float64 // of the rounds the tables report
	median        float64 // of the rounds' own ratios
	least, most   float64 // of the rounds' own ratios
	measured, all bool    // best is known; so are the others
}

// ratio returns a ÷ b of m at callers. The rounds' own ratios pair the
// rounds of the same number: the two contenders ran one after the other,
// on the same machine load, which makes them steadier than the ratio of
// the best rounds.
func (r peerResults) ratio(m metric, a, b string, callers int) ratio {
	var out ratio
	x, okx := m.of(r.best(a, callers))
	y, oky := m.of(r.best(b, callers))
	if !okx || !oky || y == 0 {
		return out
	}
	out.best, out.measured = x/y, true
	as, bs := r[a][callers], r[b][callers]
	var rs []float64
	for i := range min(len(as), len(bs)) {
		x, okx := m.of(as[i])
		y, oky := m.of(bs[i])
		if okx && oky && y > 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) > 0 {
		out.median, out.least, out.most, out.all = median(rs), slices.Min(rs), slices.Max(rs), true
	}
	return out
}

// times formats a ratio of the best rounds, "-" when unknown.
func (q ratio) times() string {
	if !q.measured {
		return "-"
	}
	return fmt.Sprintf("%.2f", q.best)
}

// medianTimes formats the median of the rounds' ratios, "-" when unknown.
func (q ratio) medianTimes() string {
	if !q.all {
		return "-"
	}
	return fmt.Sprintf("%.2f", q.median)
}

// report writes, for each workload, the table of throughput and CPU per
// check, the ratios, the split of Redis CPU between masters and replicas
// and the one-caller latencies; then the goals.
func report(w *strings.Builder, cs []contender, cfg peerConfig, results map[string]peerResults) {
	for _, wl := range cfg.workloads {
		reportWorkload(w, cs, cfg, wl, results[wl.name])
	}
	if r, ok := results[uniform.name]; ok {
		reportHitGoals(w, cfg, r)
	}
	reportGoals(w, cfg, results)
}

// reportWorkload writes the tables of one workload.
func reportWorkload(w *strings.Builder, cs []contender, cfg peerConfig, wl workload, r peerResults) {
	fmt.Fprintf(w, "Workload %s: %s.\n", wl.name, wl.about)
	fmt.Fprintf(w, "Of %d rounds of %v, each contender's round of most checks/s, with its p50 latency and the CPU per check of that same round:\n", cfg.rounds, cfg.duration)
	fmt.Fprintf(w, "Redis = used_cpu_sys+used_cpu_user of every node, masters and replicas, less their idle use; client = getrusage of this process.\n")
	fmt.Fprintf(w, "÷ rr = over redis_rate's figure in its round of most checks/s at the same callers; spread = (max-min)/max of checks/s over the rounds.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "callers\tcontender\tchecks/s\tp50\tspread\tRedis µs/check\tclient µs/check\tchecks/s ÷ rr\tRedis CPU ÷ rr\tclient CPU ÷ rr\t\n")
	for k, n := range cfg.callers {
		if k > 0 {
			fmt.Fprint(tw, "\t\t\t\t\t\t\t\t\t\t\n")
		}
		for _, ct := range cs {
			s := r.best(ct.name, n)
			client := "-"
			if v, ok := clientCPU.of(s); ok {
				client = fmt.Sprintf("%.2f", v)
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%v\t%.0f%%\t%.2f\t%s\t%s\t%s\t%s\t\n", n, ct.name,
				s.perSecond(), s.p50.Round(time.Microsecond), 100*r.spread(ct.name, n),
				us(s.perCheck(s.redis.total())), client,
				r.ratio(checksPerSecond, ct.name, "redis_rate", n).times(),
				r.ratio(redisCPU, ct.name, "redis_rate", n).times(),
				r.ratio(clientCPU, ct.name, "redis_rate", n).times())
		}
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nRatios of checks/s, %s, of the rounds above\n\n", wl.name)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "ratio\t")
	for _, n := range cfg.callers {
		fmt.Fprintf(tw, "%d callers\t", n)
	}
	fmt.Fprintln(tw)
	pairs := [][2]string{
		{"hammer-coalesced", "hammer-direct"},
		{"hammer-hit-tb-coalesced", "hammer-hit-tb-direct"},
		{"hammer-direct", "ulule"},
		{"hammer-coalesced", "ulule"},
	}
	for _, ct := range cs[1:] {
		pairs = append(pairs, [2]string{ct.name, "raw-hincrby"})
	}
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s / %s\t", p[0], p[1])
		for _, n := range cfg.callers {
			fmt.Fprintf(tw, "%s\t", r.ratio(checksPerSecond, p[0], p[1], n).times())
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()

	top := slices.Max(cfg.callers)
	fmt.Fprintf(w, "\nRedis CPU per check at %d callers, %s, between masters and replicas, of the rounds above\n\n", top, wl.name)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "contender\tRedis µs/check\tmasters\treplicas\ton replicas\t\n")
	for _, ct := range cs {
		s := r.best(ct.name, top)
		m, rep := us(s.perCheck(s.redis.masters)), us(s.perCheck(s.redis.replicas))
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.0f%%\t\n", ct.name, m+rep, m, rep, 100*rep/max(m+rep, 1e-9))
	}
	_ = tw.Flush()

	if slices.Contains(cfg.callers, 1) {
		d, co := r.best("hammer-direct", 1), r.best("hammer-coalesced", 1)
		fmt.Fprintf(w, "\nOne caller, %s, p50 latency of the rounds above: hammer-direct %v, hammer-coalesced %v (%.2fx), raw HINCRBY %v\n",
			wl.name, d.p50.Round(time.Microsecond), co.p50.Round(time.Microsecond),
			float64(co.p50)/float64(max(d.p50, 1)), r.best("raw-hincrby", 1).p50.Round(time.Microsecond))
	}
	fmt.Fprintln(w)
}

// reportHitGoals writes the goals of Hit with one TokenBucket against
// redis_rate, both GCRA-like, with the same rate, period and burst, under
// the uniform workload (issue 9). The median of the rounds' own ratios is
// the steadier figure on a shared machine (both contenders of a round ran
// one after the other), and the one that says whether a goal is met.
func reportHitGoals(w *strings.Builder, cfg peerConfig, r peerResults) {
	fmt.Fprintf(w, "Goals, Hit with one TokenBucket / redis_rate, uniform: ratio of the best rounds, and median of the %d rounds' ratios\n\n", cfg.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "callers\tgoal\tcoalesced best\tmedian\tdirect best\tmedian\tmet\t\n")
	for _, g := range hitGoals {
		if !slices.Contains(cfg.callers, g.callers) {
			continue
		}
		co := r.ratio(checksPerSecond, "hammer-hit-tb-coalesced", "redis_rate", g.callers)
		di := r.ratio(checksPerSecond, "hammer-hit-tb-direct", "redis_rate", g.callers)
		if !co.all && !di.all {
			continue // neither was run with redis_rate
		}
		met := "no"
		if co.all && co.median >= g.ratio || di.all && di.median >= g.ratio {
			met = "yes"
		}
		x := func(s string) string { // "1.52x", or "-"
			if s == "-" {
				return s
			}
			return s + "x"
		}
		fmt.Fprintf(tw, "%d\t>= %.1fx\t%s\t%s\t%s\t%s\t%s\t\n", g.callers, g.ratio, x(co.times()), x(co.medianTimes()), x(di.times()), x(di.medianTimes()), met)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// hitGoals are the throughput goals of Hit with one TokenBucket, as
// ratios to redis_rate in the same run.
var hitGoals = []struct {
	callers int
	ratio   float64
}{{64, 1.5}, {256, 2.5}}

// peerGoal is a goal on a ÷ b of m, at callers, under a workload: at
// least target, or at most when atMost.
type peerGoal struct {
	workload string
	callers  int
	m        metric
	a, b     string
	target   float64
	atMost   bool
}

// peerGoals are the goals of the coalesced paths on this project's
// reference machine (2 cores, 3 masters and 3 replicas): for CheckRate,
// and the same for Hit with one TokenBucket.
func peerGoals() []peerGoal {
	var gs []peerGoal
	for _, p := range [][2]string{{"hammer-coalesced", "hammer-direct"}, {"hammer-hit-tb-coalesced", "hammer-hit-tb-direct"}} {
		co, di := p[0], p[1]
		gs = append(gs,
			peerGoal{uniform.name, 64, checksPerSecond, co, "redis_rate", 2.0, false},
			peerGoal{uniform.name, 256, checksPerSecond, co, "redis_rate", 4.0, false},
			peerGoal{uniform.name, 1, checksPerSecond, co, di, 1.0, false},
			peerGoal{uniform.name, 256, redisCPU, co, "redis_rate", 0.25, true},
			peerGoal{uniform.name, 256, clientCPU, co, "redis_rate", 0.25, true},
			peerGoal{zipf.name, 256, checksPerSecond, co, "redis_rate", 5.0, false},
		)
	}
	return gs
}

// reportGoals writes every peerGoal with what was measured. The median of
// the rounds' own ratios says whether a goal is met, as in the Hit goals.
func reportGoals(w *strings.Builder, cfg peerConfig, results map[string]peerResults) {
	fmt.Fprintf(w, "Goals of the coalesced paths: a ÷ b of the rounds the tables report (best), the median of the %d rounds' own ratios, which says met or not, and their range\n\n", cfg.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "goal\tworkload\tcallers\ttarget\tbest\tmedian\trounds\tmet\t\n")
	for _, g := range peerGoals() {
		target := fmt.Sprintf(">= %.2fx", g.target)
		if g.atMost {
			target = fmt.Sprintf("<= %.2fx", g.target)
		}
		fmt.Fprintf(tw, "%s ÷ %s, %s\t%s\t%d\t%s\t", g.a, g.b, g.m, g.workload, g.callers, target)
		r, ok := results[g.workload]
		if !ok || !slices.Contains(cfg.callers, g.callers) {
			fmt.Fprint(tw, "-\t-\t-\tnot run\t\n")
			continue
		}
		q := r.ratio(g.m, g.a, g.b, g.callers)
		if !q.all {
			fmt.Fprint(tw, "-\t-\t-\tnot measured\t\n")
			continue
		}
		met := "no"
		if (g.atMost && q.median <= g.target) || (!g.atMost && q.median >= g.target) {
			met = "yes"
		}
		// Three decimals, so that a ratio just under its target does not
		// print as the target.
		fmt.Fprintf(tw, "%.3fx\t%.3fx\t%.3f-%.3fx\t%s\t\n", q.best, q.median, q.least, q.most, met)
	}
	_ = tw.Flush()
}

// medianRatio returns the median of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return median(rs)
}

// median returns the median of xs, 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// TestPeerRatio checks the ratios and the goals of the report on made-up
// rounds; it needs no server.
func TestPeerRatio(t *testing.T) {
	round := func(checks int64, redis time.Duration) cpuSample {
		return cpuSample{
			sample: sample{checks: checks, elapsed: time.Second},
			redis:  clusterCPU{masters: redis * 3 / 4, replicas: redis / 4},
			client: redis / 2,
		}
	}
	r := peerResults{}
	// Three rounds at 256 callers: a's checks/s over b's are 2, 5 and 4;
	// a's best round is the second, b's the third.
	for _, p := range [][2]int64{{200, 100}, {500, 100}, {480, 120}} {
		r.add("a", 256, round(p[0], time.Duration(p[0])*10*time.Microsecond))
		r.add("b", 256, round(p[1], time.Duration(p[1])*40*time.Microsecond))
	}
	q := r.ratio(checksPerSecond, "a", "b", 256)
	if !q.all || q.best != 500.0/120 || q.median != 4 || q.least != 2 || q.most != 5 {
		t.Errorf("checks/s ratio = %+v, want best %v, median 4, range 2-5", q, 500.0/120)
	}
	for _, m := range []metric{redisCPU, clientCPU} {
		if q := r.ratio(m, "a", "b", 256); !q.all || q.median != 0.25 || q.best != 0.25 {
			t.Errorf("%v ratio = %+v, want 0.25", m, q)
		}
	}
	if q := r.ratio(checksPerSecond, "a", "b", 64); q.measured || q.all {
		t.Errorf("ratio at a caller count never run = %+v, want unknown", q)
	}
	if s := r.best("a", 256); s.checks != 500 {
		t.Errorf("best round of a has %d checks, want 500", s.checks)
	}
	if got, want := r.spread("a", 256), 0.6; got != want {
		t.Errorf("spread = %v, want %v", got, want)
	}
	var unknown cpuSample
	unknown.checks, unknown.elapsed = 1, time.Second
	if _, ok := clientCPU.of(unknown); ok {
		t.Error("client CPU of a round without getrusage is known")
	}

	var w strings.Builder
	cfg := peerConfig{rounds: 3, duration: time.Second, callers: []int{256}, workloads: []workload{uniform}}
	reportGoals(&w, cfg, map[string]peerResults{uniform.name: {}})
	out := w.String()
	for _, want := range []string{"not run", "not measured"} {
		if !strings.Contains(out, want) {
			t.Errorf("goals report has no %q:\n%s", want, out)
		}
	}

	// The goals of Hit with one TokenBucket, with only the coalesced
	// contender run: its row is given, the direct one's figures are "-".
	hr := peerResults{}
	for _, p := range [][2]int64{{300, 100}, {240, 100}, {260, 100}} {
		hr.add("hammer-hit-tb-coalesced", 256, round(p[0], time.Duration(p[0])*10*time.Microsecond))
		hr.add("redis_rate", 256, round(p[1], time.Duration(p[1])*40*time.Microsecond))
	}
	w.Reset()
	reportHitGoals(&w, cfg, hr)
	out = w.String()
	want := "256 >= 2.5x 3.00x 2.60x - - yes"
	if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return strings.Join(strings.Fields(l), " ") == want }) {
		t.Errorf("Hit goals report, coalesced only: want the 256-caller row, met:\n%s", out)
	}
}
