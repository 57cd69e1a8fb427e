package hammer

import (
	"fmt"
	"strconv"
	"time"
)

// ruleKind names the algorithm of a Rule. The zero kind is the zero Rule,
// which is invalid.
type ruleKind uint8

const (
	kindNone ruleKind = iota
	kindFixed
	kindSliding
	kindToken
	kindLeaky
)

// code is the kind's letter in record entries and script arguments.
func (k ruleKind) code() string {
	switch k {
	case kindFixed:
		return "f"
	case kindSliding:
		return "s"
	case kindToken:
		return "t"
	case kindLeaky:
		return "l"
	}
	return "?"
}

// Rule is one limit that a call is charged against: a fixed window, a
// sliding window, a token bucket or a leaky bucket. Rules are made by
// FixedWindow, SlidingWindow, TokenBucket and LeakyBucket; they are small
// comparable values, usable as map keys. The constructors never panic: an
// invalid rule (see Validate) is reported when it is used. The zero Rule is
// invalid.
//
// Every rule keeps its own state for each id, as an entry of the id's rule
// record: rules that differ in any parameter never share state.
type Rule struct {
	kind   ruleKind
	period time.Duration // window, or per for buckets
	limit  int64         // limit, burst or capacity
	rate   int64         // tokens refilled or leaked per period; 0 for windows
}

// FixedWindow allows at most limit per window, where windows are aligned to
// the Unix epoch: [k*window, (k+1)*window). Like Hammer, it can allow up to
// 2*limit within one window's length across a window edge.
func FixedWindow(window time.Duration, limit int64) Rule {
	return Rule{kind: kindFixed, period: window, limit: limit}
}

// SlidingWindow allows a call when the weighted two-window estimate
// prev*(1-elapsed/window) + cur, with the call's cost added to cur, is at
// most limit. prev and cur are the counts of the previous and the current
// epoch-aligned window, elapsed is the time since the current window began.
// Unlike FixedWindow, it never allows 2*limit within one window's length.
func SlidingWindow(window time.Duration, limit int64) Rule {
	return Rule{kind: kindSliding, period: window, limit: limit}
}

// TokenBucket allows a call when the bucket holds at least the call's cost
// in tokens, and takes them. The bucket starts full, holds at most burst
// tokens, and refills continuously at rate tokens per per: TokenBucket(7,
// time.Second, 10) gains one token every 1/7 s, exactly.
func TokenBucket(rate int64, per time.Duration, burst int64) Rule {
	return Rule{kind: kindToken, period: per, limit: burst, rate: rate}
}

// LeakyBucket allows a call when adding its cost to the bucket's level keeps
// the level at most capacity, and adds it. The bucket starts empty and
// leaks continuously at rate per per. It never overshoots its capacity.
func LeakyBucket(rate int64, per time.Duration, capacity int64) Rule {
	return Rule{kind: kindLeaky, period: per, limit: capacity, rate: rate}
}

// Limit returns the rule's limit, burst or capacity: the most that a single
// call may cost, and what Remaining counts down from.
func (r Rule) Limit() int64 { return r.limit }

// Window returns the rule's window, or per for a bucket.
func (r Rule) Window() time.Duration { return r.period }

// Algorithm returns the rule's algorithm: "fixed_window", "sliding_window",
// "token_bucket" or "leaky_bucket"; "" for the zero Rule.
func (r Rule) Algorithm() string {
	switch r.kind {
	case kindFixed:
		return "fixed_window"
	case kindSliding:
		return "sliding_window"
	case kindToken:
		return "token_bucket"
	case kindLeaky:
		return "leaky_bucket"
	}
	return ""
}

// Rate returns a bucket's rate: units refilled (token bucket) or leaked
// (leaky bucket) per Window(). It is 0 for a window rule.
func (r Rule) Rate() int64 { return r.rate }

// String returns a readable and stable name of the rule:
// "fixed_window(1s,10)", "sliding_window(1m0s,100)", "token_bucket(7/1s,10)",
// "leaky_bucket(1/1m30s,5)". The zero Rule is "invalid_rule".
func (r Rule) String() string {
	switch r.kind {
	case kindFixed:
		return fmt.Sprintf("fixed_window(%v,%d)", r.period, r.limit)
	case kindSliding:
		return fmt.Sprintf("sliding_window(%v,%d)", r.period, r.limit)
	case kindToken:
		return fmt.Sprintf("token_bucket(%d/%v,%d)", r.rate, r.period, r.limit)
	case kindLeaky:
		return fmt.Sprintf("leaky_bucket(%d/%v,%d)", r.rate, r.period, r.limit)
	}
	return "invalid_rule"
}

// Validate reports whether r can be used, with an error wrapping
// ErrInvalidArgument when it cannot. A rule is valid when
//
//   - it was made by one of the constructors (the zero Rule is not);
//   - its window or per is at least 1 ms and a whole number of
//     milliseconds;
//   - its limit, burst or capacity, and a bucket's rate, are in [1, 2^53];
//   - for a sliding window, limit*windowMs <= 2^53; for a token bucket,
//     burst*perMs <= 2^53; for a leaky bucket, capacity*perMs <= 2^53.
//
// The products bound the scaled levels the script keeps (counts weighted by
// milliseconds, tokens times perMs), so that all of its arithmetic, done in
// Lua doubles, stays exact. The script also needs the clock within 2^51 ms
// (about 71,000 years) of the epoch, which any real clock is.
func (r Rule) Validate() error {
	if r.kind == kindNone {
		return fmt.Errorf("%w: zero Rule; make rules with FixedWindow, SlidingWindow, TokenBucket or LeakyBucket", ErrInvalidArgument)
	}
	name := r.periodName()
	if r.period < time.Millisecond || r.period%time.Millisecond != 0 {
		return fmt.Errorf("%w: %v: %s %v is not a whole number of milliseconds >= 1ms", ErrInvalidArgument, r, name, r.period)
	}
	what := r.limitName()
	if r.limit < 1 || r.limit > MaxValue {
		return fmt.Errorf("%w: %v: %s %d outside [1, 2^53]", ErrInvalidArgument, r, what, r.limit)
	}
	if r.kind == kindFixed {
		return nil
	}
	if r.isBucket() && (r.rate < 1 || r.rate > MaxValue) {
		return fmt.Errorf("%w: %v: rate %d outside [1, 2^53]", ErrInvalidArgument, r, r.rate)
	}
	if ms := r.period.Milliseconds(); r.limit > MaxValue/ms {
		return fmt.Errorf("%w: %v: %s*%sMs = %d*%d is over 2^53", ErrInvalidArgument, r, what, name, r.limit, ms)
	}
	return nil
}

// isBucket reports whether r is a token or a leaky bucket.
func (r Rule) isBucket() bool { return r.kind == kindToken || r.kind == kindLeaky }

// periodName is what errors call r.period: "window" or "per".
func (r Rule) periodName() string {
	if r.isBucket() {
		return "per"
	}
	return "window"
}

// limitName is what errors call r.limit: "limit", "burst" or "capacity".
func (r Rule) limitName() string {
	switch r.kind {
	case kindToken:
		return "burst"
	case kindLeaky:
		return "capacity"
	}
	return "limit"
}

// checkRules checks the rules and the cost of one call, with an error
// wrapping ErrInvalidArgument: no rules, an invalid rule, a rule given
// twice, a cost outside [1, 2^53], or a cost above some rule's Limit, which
// that rule could never allow.
func checkRules(rules []Rule, cost int64) error {
	if len(rules) == 0 {
		return fmt.Errorf("%w: no rules", ErrInvalidArgument)
	}
	if cost < 1 || cost > MaxValue {
		return fmt.Errorf("%w: cost %d outside [1, 2^53]", ErrInvalidArgument, cost)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
		for _, q := range rules[:i] {
			if q == r {
				return fmt.Errorf("%w: rule %v given twice", ErrInvalidArgument, r)
			}
		}
		if cost > r.limit {
			return fmt.Errorf("%w: cost %d is over the limit of %v, which could never allow it", ErrInvalidArgument, cost, r)
		}
	}
	return nil
}

// member returns the name of the rule's entry in an id's rule record (see
// ruleLua):
//
//	f:<windowMs>:<limit>              fixed window
//	s:<windowMs>:<limit>              sliding window
//	t:<rate>:<perMs>:<burst>          token bucket
//	l:<rate>:<perMs>:<capacity>       leaky bucket
//
// The kind's letter and the decimal parameters make it injective over
// valid rules; it holds neither ";" nor "=", which delimit entries.
func (r Rule) member() string {
	var buf [80]byte
	return string(r.appendMember(buf[:0]))
}

// appendMember appends r.member() to b.
func (r Rule) appendMember(b []byte) []byte {
	b = append(b, r.kind.code()...)
	b = append(b, ':')
	if r.isBucket() {
		b = strconv.AppendInt(b, r.rate, 10)
		b = append(b, ':')
	}
	b = strconv.AppendInt(b, r.period.Milliseconds(), 10)
	b = append(b, ':')
	return strconv.AppendInt(b, r.limit, 10)
}

// RuleDecision is what one rule decided in a call charged against several
// rules, all or nothing: callers build per-rule headers from it.
type RuleDecision struct {
	Rule    Rule
	Allowed bool  // this rule alone allows the call's cost
	Limit   int64 // the rule's limit, burst or capacity

	// Remaining is what the rule has left: after this call's charge when
	// the whole call is allowed (a peek reports what the hit would leave);
	// otherwise as it stands. For a sliding window it is
	// floor(limit - estimate); for a bucket, whole tokens or whole free
	// capacity.
	Remaining int64

	// ResetAfter is the wait until the rule's state is back to full
	// (nothing used) if nothing else hits it; 0 when it is full now.
	ResetAfter time.Duration

	// RetryAfter, when this rule denies, is the least wait after which
	// the same cost would be allowed by it, exact to the millisecond, if
	// nothing else hits it; 0 when it allows.
	RetryAfter time.Duration
}
