package hammer

import (
	"math"
	"time"
)

// The model: the arithmetic of the four rule kinds as small pure functions,
// time passed in, no Redis. The script (rule_script.go) does the same
// arithmetic in Lua, step for step, and the tests hold the two equal on
// random sequences.
//
// Everything is in integer milliseconds, and fractional rates are exact:
// the levels of buckets are kept scaled by perMs (a token bucket holds
// tokens*perMs, which grows by rate per ms), and a sliding window compares
// counts weighted by milliseconds. Rule.Validate bounds every scaled level
// and product by 2^53 and the clock is assumed within 2^51 ms of the epoch,
// so that each value below is exact in a double as well as in an int64.
//
// Time never goes backwards for a key: a state keeps the time of its last
// update, t, and a call is evaluated at e = max(now, t), so a clock that
// goes back neither refills, leaks nor moves a window back. The durations
// returned are still measured on the caller's clock, from now: a wait of
// RetryAfter after now is a wait until e plus the wait from e.

// ruleTTLMarginMs is added to the time after which a written state is
// back to full (or empty), to give its TTL: how long the rule record keeps
// it at least, and the time after which a later write may drop its entry
// (see ruleLua). An expired or dropped state means the same as a missing
// one, and the margin keeps it a little longer than needed, for callers
// whose clocks run behind the server's or the writer's.
const ruleTTLMarginMs = 1000

// ruleMaxTTLMs caps the TTL of a state, at about 139 years: only rules
// with absurd parameters (TokenBucket(1, time.Millisecond, 1<<50)) take
// longer to be back to full, and their states are dropped after that. It
// fits a time.Duration, which is what miniredis keeps TTLs in.
const ruleMaxTTLMs = 1 << 42

// ruleXStepMs rounds up x, the unix ms after which a written state may be
// dropped (see ruleLua): hits in one window, and bucket hits whose refill
// time is well under a step, often write the same x, and the rule record
// then keeps its TTL (SET KEEPTTL), which costs less than setting it anew.
const ruleXStepMs = 1000

// ruleExpiry returns x for a state written at now whose reset is
// resetAfterMs away: now plus resetAfterMs plus ruleTTLMarginMs, rounded up
// to a whole multiple of ruleXStepMs, and at most now plus ruleMaxTTLMs
// (as the script's expiry does). So the state is kept from ruleTTLMarginMs
// to ruleTTLMarginMs+ruleXStepMs-1 ms longer than it needs to be, and x is
// always after now.
func ruleExpiry(now, resetAfterMs int64) int64 {
	x := now + resetAfterMs + ruleTTLMarginMs
	if r := x % ruleXStepMs; r > 0 {
		x += ruleXStepMs - r
	} else if r < 0 {
		x -= r
	}
	return min(x, now+ruleMaxTTLMs)
}

// ruleState is the stored state of one rule of one id. The zero value is
// the state of a key that does not exist.
type ruleState struct {
	set bool  // the key exists
	t   int64 // unix ms of the last update
	// v is, for a fixed window, the count of the window that holds t; for a
	// sliding window, the count of the window that holds t (cur); for a
	// token bucket, tokens*perMs; for a leaky bucket, level*perMs.
	v int64
	p int64 // sliding window: the count of the window before t's (prev); else 0
}

// ruleEval is one rule evaluated for one call, before the call as a whole
// is decided. Durations are in ms from now, the caller's clock.
type ruleEval struct {
	allowed bool // the rule alone allows the cost

	// The rule as its state stands: what a denied call reports.
	remaining, resetMs int64
	retryMs            int64 // when !allowed: the least wait after which the cost is allowed

	// The rule after the charge, when allowed: what an allowed call reports
	// and stores.
	remainingAfter, resetAfterMs int64
	next                         ruleState
}

// evalRule evaluates rule r, in state st, for a call of cost at now. The
// rule must be valid and cost in [1, r.Limit()].
func evalRule(st ruleState, r Rule, now, cost int64) ruleEval {
	e := now
	if st.set && st.t > now {
		e = st.t
	}
	switch r.kind {
	case kindFixed:
		return evalFixed(st, r, now, e, cost)
	case kindSliding:
		return evalSliding(st, r, now, e, cost)
	case kindToken:
		return evalToken(st, r, now, e, cost)
	default:
		return evalLeaky(st, r, now, e, cost)
	}
}

// evalFixed is FixedWindow(w, L) at e = max(now, t): the window
// b = floor(e/w) holds count used (0 when the state is of an earlier
// window), and the call is allowed when used+cost <= L.
func evalFixed(st ruleState, r Rule, now, e, cost int64) ruleEval {
	w, l, d := r.period.Milliseconds(), r.limit, e-now
	b := divFloor(e, w)
	var used int64
	if st.set && divFloor(st.t, w) == b {
		used = st.v
	}
	toEnd := relMs(d, (b+1)*w-e)
	ev := ruleEval{allowed: cost <= l-used, remaining: max(0, l-used)}
	if used > 0 {
		ev.resetMs = toEnd
	}
	if !ev.allowed {
		ev.retryMs = toEnd // cost <= L, so the next window allows it
		return ev
	}
	ev.remainingAfter = l - used - cost
	ev.resetAfterMs = toEnd
	ev.next = ruleState{set: true, t: e, v: used + cost}
	return ev
}

// evalSliding is SlidingWindow(w, L) at e = max(now, t): in the window
// b = floor(e/w), el = e - b*w ms in, with cur counted in b and prev in
// b-1, the call is allowed when prev*(w-el) + (cur+cost)*w <= L*w. room is
// L*w minus the weighted usage, so Remaining is floor(room/w).
func evalSliding(st ruleState, r Rule, now, e, cost int64) ruleEval {
	w, l, d := r.period.Milliseconds(), r.limit, e-now
	b := divFloor(e, w)
	el := e - b*w
	var cur, prev int64
	if st.set {
		switch divFloor(st.t, w) {
		case b:
			cur, prev = st.v, st.p
		case b - 1:
			prev = st.v
		}
	}
	room := l*w - prev*(w-el) - cur*w
	ev := ruleEval{allowed: cost*w <= room, remaining: max(0, divFloor(room, w))}
	switch {
	case cur > 0: // cur weighs until the end of window b+1
		ev.resetMs = relMs(d, (b+2)*w-e)
	case prev > 0:
		ev.resetMs = relMs(d, (b+1)*w-e)
	}
	if !ev.allowed {
		// With no other hits, usage only falls, so the least wait y is a
		// threshold. If cur+cost <= L, it is inside window b or at its end:
		// the least y with prev*(w-el-y) <= (L-cur-cost)*w (prev > 0 here).
		// Otherwise it is in window b+1, where prev is cur and cur is 0: the
		// least el' with cur*(w-el') <= (L-cost)*w (cur > 0 here).
		var y int64
		if cost <= l-cur {
			y = w - el - divFloor((l-cur-cost)*w, prev)
		} else {
			y = (w - el) + w - divFloor((l-cost)*w, cur)
		}
		ev.retryMs = relMs(d, y)
		return ev
	}
	ev.remainingAfter = max(0, divFloor(room-cost*w, w))
	ev.resetAfterMs = relMs(d, (b+2)*w-e)
	ev.next = ruleState{set: true, t: e, v: cur + cost, p: prev}
	return ev
}

// evalToken is TokenBucket(rate, per, burst), with levels scaled by perMs:
// the bucket holds s = tokens*perMs, full at burst*perMs (a missing state
// is full), gains rate per ms, and allows the call when s >= cost*perMs.
// The time since t is compared with the time to fill before it is
// multiplied, so rate*elapsed stays below burst*perMs.
func evalToken(st ruleState, r Rule, now, e, cost int64) ruleEval {
	p, rate, d := r.period.Milliseconds(), r.rate, e-now
	full := r.limit * p
	s := full
	if st.set {
		s = st.v
		if el := e - st.t; el >= divCeil(full-s, rate) {
			s = full
		} else {
			s += rate * el
		}
	}
	need := cost * p
	ev := ruleEval{allowed: need <= s, remaining: divFloor(s, p)}
	if s < full {
		ev.resetMs = relMs(d, divCeil(full-s, rate))
	}
	if !ev.allowed {
		ev.retryMs = relMs(d, divCeil(need-s, rate))
		return ev
	}
	s -= need
	ev.remainingAfter = divFloor(s, p)
	ev.resetAfterMs = relMs(d, divCeil(full-s, rate))
	ev.next = ruleState{set: true, t: e, v: s}
	return ev
}

// evalLeaky is LeakyBucket(rate, per, capacity), with levels scaled by
// perMs: the bucket holds lv = level*perMs (a missing state is empty),
// loses rate per ms, and allows the call when lv + cost*perMs <=
// capacity*perMs, so it never overshoots its capacity.
func evalLeaky(st ruleState, r Rule, now, e, cost int64) ruleEval {
	p, rate, d := r.period.Milliseconds(), r.rate, e-now
	capS := r.limit * p
	var lv int64
	if st.set {
		lv = st.v
		if el := e - st.t; el >= divCeil(lv, rate) {
			lv = 0
		} else {
			lv -= rate * el
		}
	}
	need := cost * p
	ev := ruleEval{allowed: need <= capS-lv, remaining: divFloor(capS-lv, p)}
	if lv > 0 {
		ev.resetMs = relMs(d, divCeil(lv, rate))
	}
	if !ev.allowed {
		ev.retryMs = relMs(d, divCeil(need-(capS-lv), rate))
		return ev
	}
	lv += need
	ev.remainingAfter = divFloor(capS-lv, p)
	ev.resetAfterMs = relMs(d, divCeil(lv, rate))
	ev.next = ruleState{set: true, t: e, v: lv}
	return ev
}

// decision is the RuleDecision of ev in a call that is allowed as a whole
// (callAllowed) or not.
func (ev ruleEval) decision(r Rule, callAllowed bool) RuleDecision {
	d := RuleDecision{Rule: r, Allowed: ev.allowed, Limit: r.limit}
	if callAllowed {
		d.Remaining, d.ResetAfter = ev.remainingAfter, msDuration(ev.resetAfterMs)
		return d
	}
	d.Remaining, d.ResetAfter = ev.remaining, msDuration(ev.resetMs)
	if !ev.allowed {
		d.RetryAfter = msDuration(ev.retryMs)
	}
	return d
}

// evalResult is the outcome of one call over several rules.
type evalResult struct {
	allowed   bool           // every rule allows the cost
	decisions []RuleDecision // per rule
	states    []ruleState    // per rule, the states after the call
	ttlsMs    []int64        // per rule, x - now for the written state (see ruleExpiry); nil when nothing is written
}

// evalRules charges cost against every rule at now, all or nothing: the
// call is allowed only when every rule allows it, and then, when charge is
// set, every rule's state is charged; otherwise the states are returned
// unchanged. A peek (charge unset) returns the decisions that a hit would
// return. The rules must pass checkRules with cost, and states[i] is the
// state of rules[i].
func evalRules(states []ruleState, rules []Rule, now, cost int64, charge bool) evalResult {
	evs := make([]ruleEval, len(rules))
	res := evalResult{allowed: true, decisions: make([]RuleDecision, len(rules))}
	for i, r := range rules {
		evs[i] = evalRule(states[i], r, now, cost)
		res.allowed = res.allowed && evs[i].allowed
	}
	res.states = append([]ruleState(nil), states...)
	if res.allowed && charge {
		res.ttlsMs = make([]int64, len(rules))
	}
	for i, r := range rules {
		res.decisions[i] = evs[i].decision(r, res.allowed)
		if res.ttlsMs != nil {
			res.states[i] = evs[i].next
			res.ttlsMs[i] = ruleExpiry(now, evs[i].resetAfterMs) - now
		}
	}
	return res
}

// combine sums up the decisions of one call: allowed when every rule
// allows; binding, the index of the rule with the least Remaining (the
// first on ties; -1 when ds is empty), whose figures suit headers; and
// retryAfter, the largest RetryAfter of the denying rules, after which all
// of them allow the cost (0 when allowed).
func combine(ds []RuleDecision) (allowed bool, binding int, retryAfter time.Duration) {
	allowed, binding = true, -1
	for i, d := range ds {
		if !d.Allowed {
			allowed = false
			retryAfter = max(retryAfter, d.RetryAfter)
		}
		if binding < 0 || d.Remaining < ds[binding].Remaining {
			binding = i
		}
	}
	return allowed, binding, retryAfter
}

// divFloor returns floor(a/b) for b > 0.
func divFloor(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// divCeil returns ceil(a/b) for b > 0.
func divCeil(a, b int64) int64 {
	q := a / b
	if a%b > 0 {
		q++
	}
	return q
}

// relMs returns d + x, capped at 2^53: the wait from now of an instant x ms
// after e = now + d. The cap only meets waits of over 280,000 years, and
// keeps the script's double arithmetic equal to this.
func relMs(d, x int64) int64 {
	return min(d+x, MaxValue)
}

// msDuration converts ms to a Duration, saturating at the largest one.
func msDuration(ms int64) time.Duration {
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}
