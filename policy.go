package hammer

import (
	"context"
	"time"
)

// FailurePolicy says what a Limiter answers when its backend is unavailable.
type FailurePolicy int

const (
	// FailClosed returns the error and a zero, denying Decision: Hammer's
	// behaviour. It is the default.
	FailClosed FailurePolicy = iota

	// FailOpen returns an allowing Decision with FailedOpen set, together
	// with the error, when the error wraps ErrUnavailable. Argument and
	// configuration errors (ErrInvalidArgument, ErrMisconfigured) never
	// fail open.
	FailOpen
)

// WithFailurePolicy sets what checks answer when the backend is
// unavailable. The default value is FailClosed.
func WithFailurePolicy(p FailurePolicy) Option {
	return func(l *Limiter) { l.policy = p }
}

// WithOnError sets a function that receives every error of the backend
// (not argument errors), with the id of the call, before the policy
// applies. It must be safe for concurrent use. The default value is nil.
func WithOnError(f func(ctx context.Context, id string, err error)) Option {
	return func(l *Limiter) { l.onError = f }
}

// Outcome is how a check ended.
type Outcome int

const (
	OutcomeAllowed    Outcome = iota // counted and allowed
	OutcomeDenied                    // counted and denied
	OutcomeError                     // the error was returned (fail closed, or not an availability error)
	OutcomeFailedOpen                // the backend was unavailable and the check allowed by FailOpen
)

var outcomeNames = [...]string{"allowed", "denied", "error", "failed_open"}

// String returns "allowed", "denied", "error" or "failed_open".
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// CheckEvent describes one finished check, for an Observer.
type CheckEvent struct {
	Outcome Outcome
	Latency time.Duration // time spent in the backend; 0 when Cached
	Cached  bool          // denied by the deny cache, without a Redis command
}

// Observer receives an event for every check that reached the backend:
// metrics without any dependency in this package (see the hammerotel
// module for OpenTelemetry). Checks refused for their arguments are not
// observed. Implementations must be safe for concurrent use and fast.
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
