package hammer

import (
	"context"
	"errors"
	"time"
)

// What a Limiter does when its backend fails, and what it reports of every
// check: the failure policy, the OnError hook and the Observer. Which
// errors count as "unavailable" is decided in errors.go.

// FailurePolicy says what a Limiter answers when its backend is unavailable.
type FailurePolicy int

const (
	// FailClosed returns the error and a zero, denying Decision: Hammer's
	// behaviour. It is the default.
	FailClosed FailurePolicy = iota

	// FailOpen returns an allowing Decision with FailedOpen set, and a nil
	// error, when the backend's error wraps ErrUnavailable: the idiomatic
	// `if err != nil { return err }` then lets the request through. The
	// error still reaches WithOnError and the Observer. Other errors
	// (ErrInvalidArgument, ErrMisconfigured, a cancelled context) are
	// returned as with FailClosed.
	FailOpen
)

// WithFailurePolicy sets what checks answer when the backend is
// unavailable. The default value is FailClosed.
func WithFailurePolicy(p FailurePolicy) Option {
	return func(l *Limiter) { l.policy = p }
}

// WithOnError sets a function that receives every error of the backend
// (not argument errors), with the id of the call, before the policy
// applies: also the errors that FailOpen hides from the caller. It must be
// safe for concurrent use. The default value is nil.
func WithOnError(f func(ctx context.Context, id string, err error)) Option {
	return func(l *Limiter) { l.onError = f }
}

// Outcome is how a check ended.
type Outcome int

const (
	OutcomeAllowed      Outcome = iota // allowed: counted (CheckRate) or charged (Hit)
	OutcomeDenied                      // denied: counted (CheckRate) or nothing charged (Hit)
	OutcomeError                       // the error was returned (fail closed, or not an availability error)
	OutcomeFailedOpen                  // the backend was unavailable and the check allowed by FailOpen
	OutcomeShadowDenied                // denied, and allowed by shadow mode (WithShadow)
)

var outcomeNames = [...]string{"allowed", "denied", "error", "failed_open", "shadow_denied"}

// String returns "allowed", "denied", "error", "failed_open" or
// "shadow_denied".
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// CheckEvent describes one finished check, for an Observer.
type CheckEvent struct {
	Outcome Outcome
	// Latency is the time spent in the backend call, not counting the
	// OnError function; 0 when Cached.
	Latency time.Duration
	Cached  bool // denied by the deny cache, without a Redis command

	// NearLimit is set on an allowed check that left at most a tenth of
	// the quota of one of its rules (Remaining*10 <= Limit): a client
	// about to be limited.
	NearLimit bool
}

// Observer receives an event for every check that passed its argument
// checks: those answered by the backend, and those answered by the deny
// cache (Cached set). It is the way to metrics without any dependency in
// this package (see the hammerotel module for OpenTelemetry). Checks
// refused for their arguments are not observed. Implementations must be
// safe for concurrent use and fast.
type Observer interface {
	ObserveCheck(ctx context.Context, ev CheckEvent)
}

// BatchObserver receives the size of every pipeline that a coalescing
// ClusterBackend sends (see Options.BatchObserver). Implementations must be
// safe for concurrent use and fast.
type BatchObserver interface {
	ObserveBatch(ctx context.Context, size int)
}

// WithObserver sets the Observer of the Limiter's checks. The default value
// is nil: nothing is observed, and no time is read for it.
func WithObserver(o Observer) Option {
	return func(l *Limiter) { l.observer = o }
}

// failed applies the failure policy to a backend error of a check of id.
// open is the Decision to return when the policy opens (its Limit and
// ResetAfter set); latency is the backend call's, for the Observer.
func (l *Limiter) failed(ctx context.Context, id string, err error, open Decision, latency time.Duration) (Decision, error) {
	if l.onError != nil {
		l.onError(ctx, id, err)
	}
	if l.policy == FailOpen && errors.Is(err, ErrUnavailable) {
		open.Allowed, open.Remaining, open.FailedOpen = true, open.Limit, true
		l.observe(ctx, CheckEvent{Outcome: OutcomeFailedOpen, Latency: latency})
		return open, nil
	}
	l.observe(ctx, CheckEvent{Outcome: OutcomeError, Latency: latency})
	return Decision{}, err
}

// observe hands ev to the Observer, if there is one.
func (l *Limiter) observe(ctx context.Context, ev CheckEvent) {
	if l.observer != nil {
		l.observer.ObserveCheck(ctx, ev)
	}
}
