package hammer

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Limiter is the Hammer-style front: fixed windows of scale, counted in a
// Backend. It is safe for concurrent use.
type Limiter struct {
	backend    Backend
	now        func() time.Time
	maxScaleMs int64 // 0: no bound known
	maxIDBytes int
	policy     FailurePolicy
	onError    func(ctx context.Context, id string, err error)
	observer   Observer
	denies     *denyCache // nil: off
	shadow     bool
}

// WithShadow puts the Limiter in shadow mode, to roll out a limit by
// counting first and blocking later: every check is computed and charged
// as usual (a denied CheckRate hit counts; a denied Hit charges nothing),
// but a check that would be denied is allowed, with Decision.Shadow set,
// and observed as OutcomeShadowDenied. Shadow mode is per Limiter: to
// shadow one rule while enforcing others, check it through a second
// Limiter over the same backend. The default is off.
func WithShadow() Option {
	return func(l *Limiter) { l.shadow = true }
}

// WithDenyCache turns on a local cache of denials, holding at most
// maxEntries windows, exactly. Once a check sees a window of an id over its
// limit, later checks of that id, scale and limit in the same window are
// denied in-process, with no Redis command, until the window ends. When the
// cache is full, windows that have ended make room first, then those that end
// soonest.
//
// This differs from Hammer: denied hits answered by the cache are not
// counted in Redis. It suits a hot abuser, who can then no longer load one
// master. Once DeleteBuckets(id) returns, this Limiter's cache holds no
// denial of id from a check that started before then, even one still in
// flight during the delete: later checks of id ask Redis until it denies one
// again. Other processes keep their own caches, and may deny id from them
// until the windows they hold end.
// The default is no cache. maxEntries < 1 leaves it off.
func WithDenyCache(maxEntries int) Option {
	return func(l *Limiter) {
		l.denies = nil
		if maxEntries > 0 {
			l.denies = newDenyCache(maxEntries)
		}
	}
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock the Limiter reads to place hits in windows. The
// default value is time.Now. Tests use it to move through windows without
// sleeping.
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) {
		if now != nil {
			l.now = now
		}
	}
}

// New returns a Limiter over backend.
//
// When the backend has an Expiry() time.Duration method, as ClusterBackend
// does, the Limiter refuses scales longer than it. When it has a
// MaxIDBytes() int method, the Limiter refuses longer ids; otherwise ids are
// limited to DefaultMaxIDBytes.
func New(backend Backend, opts ...Option) *Limiter {
	l := &Limiter{backend: backend, now: time.Now, maxIDBytes: DefaultMaxIDBytes}
	if e, ok := backend.(interface{ Expiry() time.Duration }); ok {
		l.maxScaleMs = e.Expiry().Milliseconds()
	}
	if m, ok := backend.(interface{ MaxIDBytes() int }); ok {
		l.maxIDBytes = m.MaxIDBytes()
	}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// MaxIDBytes returns the longest id the Limiter accepts: its backend's
// MaxIDBytes when the backend has that method, else DefaultMaxIDBytes.
// Middleware uses it to refuse an over-long client key as a client error.
func (l *Limiter) MaxIDBytes() int { return l.maxIDBytes }

// MaxScale returns the longest scale CheckRate accepts: its backend's
// Expiry when the backend has that method, as ClusterBackend does; 0 when
// no bound is known.
func (l *Limiter) MaxScale() time.Duration { return time.Duration(l.maxScaleMs) * time.Millisecond }

// Decision is the outcome of a check.
//
// For CheckRate and CheckRateInc it describes the fixed window of the
// check. For Hit, HitN and Peek, Limit, Remaining and ResetAfter are the
// binding rule's: the one with the least Remaining (the first of them on a
// tie); Count is not used.
type Decision struct {
	Allowed    bool          // CheckRate: Count <= Limit; Hit: every rule allows
	Count      int64         // CheckRate: bucket count after this hit
	Limit      int64         // the limit checked against (a bucket's burst or capacity)
	Remaining  int64         // CheckRate: max(Limit-Count, 0); Hit: what the binding rule has left
	ResetAfter time.Duration // CheckRate: until the current window ends; Hit: until the binding rule is back to full

	// RetryAfter is set when a Hit, HitN or Peek is denied: the least wait
	// after which the same call could be allowed, if nothing else hits the
	// id. It is never shorter than the real wait, and never longer by more
	// than 1 ms. It is 0 when the call is allowed, and for CheckRate, whose
	// denied hits count (wait ResetAfter).
	RetryAfter time.Duration

	// Rules holds each rule's decision, in the order given, when a Hit,
	// HitN or Peek had several rules and Redis answered: for headers with
	// one item per rule. It is nil for a call with one rule, whose decision
	// is the Decision's own fields, and for a denial answered by the deny
	// cache (Cached).
	Rules []RuleDecision

	// Cached is set when the deny cache (WithDenyCache) answered: the call
	// was denied without a Redis command, and changed nothing. For
	// CheckRate, Count is the count last seen in Redis for this window;
	// for Hit, Remaining is the binding rule's as last seen in Redis, and
	// RetryAfter runs to the end of the wait Redis gave.
	Cached bool

	// FailedOpen is set when the backend was unavailable and the FailOpen
	// policy allowed the check; the error is nil then (it reached
	// WithOnError and the Observer). The hit was not counted, or may have
	// been (ErrMaybeCounted). Count is 0, and Remaining is Limit.
	FailedOpen bool

	// Shadow is set when the Limiter is in shadow mode (WithShadow) and
	// the check would have been denied: Allowed is true, and every other
	// field is the denial's.
	Shadow bool
}

// BucketStatus is what InspectBucket sees of the current window.
type BucketStatus struct {
	Count, CountRemaining int64
	ResetAfter            time.Duration // until the current window ends
	CreatedAt, UpdatedAt  int64         // unix ms; 0 when the bucket does not exist
}

// CheckRate counts one hit of id in the current window of scale, and allows
// it when the window's count is at most limit. Denied hits are counted too.
// It is Hammer's check_rate.
func (l *Limiter) CheckRate(ctx context.Context, id string, scale time.Duration, limit int64) (Decision, error) {
	return l.CheckRateInc(ctx, id, scale, limit, 1)
}

// CheckRateInc is CheckRate for a hit that costs increment. It is Hammer's
// check_rate_inc.
func (l *Limiter) CheckRateInc(ctx context.Context, id string, scale time.Duration, limit, increment int64) (Decision, error) {
	scaleMs, err := l.check(id, scale, limit)
	if err != nil {
		return Decision{}, err
	}
	if err := checkIncrement(increment); err != nil {
		return Decision{}, err
	}
	now := l.now().UnixMilli()
	bucket := bucketOf(now, scaleMs)
	resetAfter := time.Duration(msToNextBucket(now, scaleMs)) * time.Millisecond
	sig := denySig{scaleMs: scaleMs, limit: limit, bucket: bucket}
	var ticket uint64 // taken before the hit, so that a DeleteBuckets after it wins
	if l.denies != nil {
		if v, ok := l.denies.denied(id, sig, now); ok {
			return l.decided(ctx, Decision{Count: v.count, Limit: limit, ResetAfter: resetAfter, Cached: true}, 0), nil
		}
		ticket = l.denies.ticket(id)
	}
	var start time.Time
	if l.observer != nil {
		start = time.Now()
	}
	count, err := l.backend.CountHitInc(ctx, BucketKey{Bucket: bucket, ID: id}, now, increment)
	var latency time.Duration
	if l.observer != nil {
		latency = time.Since(start)
	}
	if err != nil {
		return l.failed(ctx, id, err, Decision{Limit: limit, ResetAfter: resetAfter}, latency)
	}
	d := Decision{
		Allowed:    count <= limit,
		Count:      count,
		Limit:      limit,
		Remaining:  remaining(limit, count),
		ResetAfter: resetAfter,
	}
	if !d.Allowed && l.denies != nil {
		l.denies.deny(id, sig, denyValue{count: count}, (bucket+1)*scaleMs, now, ticket)
	}
	return l.decided(ctx, d, latency), nil
}

// Hit charges one unit against every rule of id, all or nothing: the call
// is allowed only when every rule allows, and then every rule is charged,
// atomically, in one round trip. A denied Hit changes nothing in Redis
// (unlike CheckRate, whose denied hits count, as in Hammer). Every rule's
// state lives in the id's slot, apart from its fixed-window buckets and
// from other rules: two rules with different parameters never share
// state. The backend must implement RuleBackend (ClusterBackend does).
func (l *Limiter) Hit(ctx context.Context, id string, rules ...Rule) (Decision, error) {
	return l.charge(ctx, id, 1, true, rules)
}

// HitN is Hit for a call that costs cost units. A cost that some rule
// could never allow (above its limit, burst or capacity) is an error
// wrapping ErrInvalidArgument.
func (l *Limiter) HitN(ctx context.Context, id string, cost int64, rules ...Rule) (Decision, error) {
	return l.charge(ctx, id, cost, true, rules)
}

// Peek reports what Hit would decide now, and changes nothing.
func (l *Limiter) Peek(ctx context.Context, id string, rules ...Rule) (Decision, error) {
	return l.charge(ctx, id, 1, false, rules)
}

// charge is Hit, HitN (charge set) and Peek.
func (l *Limiter) charge(ctx context.Context, id string, cost int64, charge bool, rules []Rule) (Decision, error) {
	if err := checkID(id, l.maxIDBytes); err != nil {
		return Decision{}, err
	}
	if err := checkRules(rules, cost); err != nil {
		return Decision{}, err
	}
	rb, ok := l.backend.(RuleBackend)
	if !ok {
		return Decision{}, fmt.Errorf("%w: %T", ErrNoRuleBackend, l.backend)
	}
	now := l.now().UnixMilli()
	var sig denySig
	var ticket uint64
	if l.denies != nil && charge {
		sig = denySig{rules: rulesSig(rules, cost)}
		if v, ok := l.denies.denied(id, sig, now); ok {
			return l.decided(ctx, cachedHit(rules, v, now), 0), nil
		}
		ticket = l.denies.ticket(id)
	}
	var start time.Time
	if l.observer != nil {
		start = time.Now()
	}
	allowed, ds, err := rb.ChargeRules(ctx, id, rules, now, cost, charge)
	var latency time.Duration
	if l.observer != nil {
		latency = time.Since(start)
	}
	if err != nil {
		return l.failed(ctx, id, err, Decision{Limit: rules[0].Limit()}, latency)
	}
	_, binding, retry := combine(ds)
	b := ds[binding]
	d := Decision{Allowed: allowed, Limit: b.Limit, Remaining: b.Remaining, ResetAfter: b.ResetAfter, RetryAfter: retry}
	if len(rules) > 1 {
		d.Rules = ds
	}
	if !allowed && l.denies != nil && charge {
		v := denyValue{count: b.Remaining, binding: binding, resetAt: now + b.ResetAfter.Milliseconds()}
		l.denies.deny(id, sig, v, now+retry.Milliseconds(), now, ticket)
	}
	return l.decided(ctx, d, latency), nil
}

// decided observes the Decision d of a check that Redis or the deny cache
// (d.Cached) answered, and returns it, turned into an allowing one with
// Shadow set when the Limiter is in shadow mode and d denies.
func (l *Limiter) decided(ctx context.Context, d Decision, latency time.Duration) Decision {
	ev := CheckEvent{Outcome: OutcomeAllowed, Latency: latency, Cached: d.Cached}
	switch {
	case !d.Allowed && l.shadow:
		d.Allowed, d.Shadow = true, true
		ev.Outcome = OutcomeShadowDenied
	case !d.Allowed:
		ev.Outcome = OutcomeDenied
	default:
		ev.NearLimit = nearLimit(d)
	}
	l.observe(ctx, ev)
	return d
}

// nearLimit reports whether the allowed Decision d left at most a tenth of
// the quota of one of its rules.
func nearLimit(d Decision) bool {
	if d.Rules == nil {
		return d.Remaining*10 <= d.Limit
	}
	for _, r := range d.Rules {
		if r.Remaining*10 <= r.Limit {
			return true
		}
	}
	return false
}

// rulesSig is the deny cache's name of a Hit of cost over rules.
func rulesSig(rules []Rule, cost int64) string {
	var b []byte
	for _, r := range rules {
		b = append(r.appendMember(b), '|')
	}
	return string(strconv.AppendInt(b, cost, 10))
}

// cachedHit is the Decision of a Hit that the deny cache denies at now.
func cachedHit(rules []Rule, v denyValue, now int64) Decision {
	return Decision{
		Limit:      rules[v.binding].Limit(),
		Remaining:  v.count,
		ResetAfter: time.Duration(max(0, v.resetAt-now)) * time.Millisecond,
		RetryAfter: time.Duration(v.until-now) * time.Millisecond,
		Cached:     true,
	}
}

// InspectBucket reports the current window of id without counting a hit.
// It is Hammer's inspect_bucket.
func (l *Limiter) InspectBucket(ctx context.Context, id string, scale time.Duration, limit int64) (BucketStatus, error) {
	scaleMs, err := l.check(id, scale, limit)
	if err != nil {
		return BucketStatus{}, err
	}
	now := l.now().UnixMilli()
	info, err := l.backend.GetBucket(ctx, BucketKey{Bucket: bucketOf(now, scaleMs), ID: id})
	if err != nil {
		if l.onError != nil {
			l.onError(ctx, id, err)
		}
		return BucketStatus{}, err
	}
	st := BucketStatus{
		CountRemaining: limit,
		ResetAfter:     time.Duration(msToNextBucket(now, scaleMs)) * time.Millisecond,
	}
	if info != nil {
		st.Count = info.Count
		st.CountRemaining = remaining(limit, info.Count)
		st.CreatedAt = info.Created
		st.UpdatedAt = info.Updated
	}
	return st, nil
}

// DeleteBuckets deletes every bucket of id, in every window, and the states
// of its rules (on a RuleBackend), and returns how many it deleted. It is
// Hammer's delete_buckets, used for example to reset a login limit after a
// successful login.
func (l *Limiter) DeleteBuckets(ctx context.Context, id string) (int64, error) {
	if err := checkID(id, l.maxIDBytes); err != nil {
		return 0, err
	}
	if l.denies != nil {
		l.denies.forget(id)
	}
	n, err := l.backend.DeleteBuckets(ctx, id)
	if l.denies != nil {
		// Again, even on error: drops a denial stored during the delete.
		l.denies.forget(id)
	}
	if err != nil && l.onError != nil {
		l.onError(ctx, id, err)
	}
	return n, err
}

// MakeRateChecker returns a function that checks idPrefix+id against scale
// and limit: checker(ctx, id) is CheckRate(ctx, idPrefix+id, scale, limit).
// It is Hammer's make_rate_checker.
func (l *Limiter) MakeRateChecker(idPrefix string, scale time.Duration, limit int64) func(ctx context.Context, id string) (Decision, error) {
	return func(ctx context.Context, id string) (Decision, error) {
		return l.CheckRate(ctx, idPrefix+id, scale, limit)
	}
}

// check validates the arguments shared by every check and returns the scale
// in milliseconds.
func (l *Limiter) check(id string, scale time.Duration, limit int64) (int64, error) {
	if err := checkID(id, l.maxIDBytes); err != nil {
		return 0, err
	}
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	return checkScale(scale, l.maxScaleMs)
}
