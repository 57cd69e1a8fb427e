package rlheader

import (
	"time"

	"github.com/go-hammer/hammer"
)

// Encoder formats the fields of one list of policies. The value of
// RateLimit-Policy and the serialized names are made once, by NewEncoder;
// RateLimit is made for each Decision. An Encoder is safe for concurrent
// use.
type Encoder struct {
	rules  []hammer.Rule
	shapes []shape
	names  []string // each name serialized as an SF String, quotes included
	policy string
}

// NewEncoder returns the Encoder of policies, or an error wrapping
// ErrInvalidPolicy when they do not pass Validate. It keeps no reference
// to policies.
func NewEncoder(policies []Policy) (*Encoder, error) {
	ns, err := names(policies)
	if err != nil {
		return nil, err
	}
	n := len(policies)
	e := &Encoder{rules: make([]hammer.Rule, n), shapes: make([]shape, n), names: make([]string, n)}
	ends := make([][2]int, n) // where each serialized name is in the policy
	var b []byte
	for i, p := range policies {
		e.rules[i] = p.Rule
		e.shapes[i] = shapeOf(p.Rule)
		b = appendListSep(b, i)
		ends[i][0] = len(b)
		b = appendString(b, ns[i])
		ends[i][1] = len(b)
		q, w := e.shapes[i].quota()
		b = appendIntegerParam(b, "q", q)
		b = appendIntegerParam(b, "w", w)
	}
	e.policy = string(b)
	for i, se := range ends {
		e.names[i] = e.policy[se[0]:se[1]]
	}
	return e, nil
}

// Policy returns the value of RateLimit-Policy: one item per policy, in
// order, such as `"fixed_window(1m0s,10)";q=10;w=60`.
func (e *Encoder) Policy() string { return e.policy }

// RateLimit returns the value of RateLimit for d: one item per rule of d,
// such as `"fixed_window(1m0s,10)";r=3;t=42`. See Fields.
func (e *Encoder) RateLimit(d hammer.Decision) string {
	var buf [128]byte
	return string(e.AppendRateLimit(buf[:0], d))
}

// AppendRateLimit appends the value of RateLimit for d to b, and returns
// the extended buffer.
func (e *Encoder) AppendRateLimit(b []byte, d hammer.Decision) []byte {
	var retry int64 // the Retry-After of a denial, which caps every t
	if !d.Allowed || d.Shadow {
		retry = RetryAfterSeconds(d)
	}
	if len(e.rules) > 1 && d.Rules != nil {
		n := 0
		for i, rd := range d.Rules {
			j := e.index(rd.Rule, i)
			if j < 0 {
				continue
			}
			b = appendListSep(b, n)
			n++
			b = e.appendItem(b, j, rd.Allowed, rd.Remaining, rd.ResetAfter, rd.RetryAfter, retry)
		}
		return b
	}
	j := e.single(d)
	if j < 0 {
		return b
	}
	return e.appendItem(b, j, retry == 0, d.Remaining, d.ResetAfter, d.RetryAfter, retry)
}

// index returns the index of the policy of r, looked for at i first; -1
// when there is none.
func (e *Encoder) index(r hammer.Rule, i int) int {
	if i < len(e.rules) && e.rules[i] == r {
		return i
	}
	for j, q := range e.rules {
		if q == r {
			return j
		}
	}
	return -1
}

// single returns the index of the policy that a Decision without Rules
// speaks of: the only one, or else the first whose Limit is d.Limit (a
// Hit over several rules answered by the deny cache gives the figures of
// its binding rule only); -1 when there is none.
func (e *Encoder) single(d hammer.Decision) int {
	if len(e.rules) == 1 {
		return 0
	}
	for j, r := range e.rules {
		if r.Limit() == d.Limit {
			return j
		}
	}
	return -1
}

// appendItem appends the RateLimit item of policy j, with r the remaining
// quota and t the seconds until more quota is available (see the package
// doc). retry is the Retry-After of a denied Decision, 0 for an allowed
// one: no t is later than it.
func (e *Encoder) appendItem(b []byte, j int, allowed bool, remaining int64, resetAfter, retryAfter time.Duration, retry int64) []byte {
	b = append(b, e.names[j]...)
	b = appendIntegerParam(b, "r", clampInteger(remaining))
	var t int64
	switch {
	case !allowed:
		wait := retryAfter
		if wait <= 0 {
			wait = resetAfter
		}
		t = max(secondsUp(wait), 1)
	case resetAfter <= 0:
		return b // the whole quota is available: nothing more to come
	default:
		t = secondsUp(e.shapes[j].nextAfter(remaining, resetAfter))
	}
	if retry > 0 {
		t = min(t, retry)
	}
	return appendIntegerParam(b, "t", clampInteger(t))
}

// Quota returns the q and w of a valid rule's policy item: q, in requests,
// is the rule's Limit (its limit, burst or capacity), and w, in whole
// seconds rounded up and at least 1, is the time in which the rule gives
// back all of q: a window's length, and the time a bucket takes to refill
// or drain all of it (burst*per/rate, capacity*per/rate). q is capped at
// the largest SF Integer, 999,999,999,999,999.
func Quota(r hammer.Rule) (q, w int64) { return shapeOf(r).quota() }

// clampInteger returns n within [0, maxInteger].
func clampInteger(n int64) int64 { return min(max(n, 0), maxInteger) }
