package hammer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingBackend answers every call with err.
type failingBackend struct{ err error }

func (f failingBackend) CountHit(ctx context.Context, key BucketKey, now int64) (int64, error) {
	return 0, f.err
}
func (f failingBackend) CountHitInc(ctx context.Context, key BucketKey, now int64, inc int64) (int64, error) {
	return 0, f.err
}
func (f failingBackend) GetBucket(ctx context.Context, key BucketKey) (*BucketInfo, error) {
	return nil, f.err
}
func (f failingBackend) DeleteBuckets(ctx context.Context, id string) (int64, error) {
	return 0, f.err
}

// recorder is an Observer and an OnError function that keep what they see.
type recorder struct {
	mu     sync.Mutex
	events []CheckEvent
	errs   []string
}

func (r *recorder) ObserveCheck(ctx context.Context, ev CheckEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) onError(ctx context.Context, id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, id+": "+err.Error())
}

func (r *recorder) outcomes() []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Outcome
	for _, ev := range r.events {
		out = append(out, ev.Outcome)
	}
	return out
}

func TestFailurePolicy(t *testing.T) {
	down := fmt.Errorf("hammer default: count hit \"x\": %w: connection refused", ErrUnavailable)
	misconf := fmt.Errorf("hammer default: count hit \"x\": %w: WRONGPASS", ErrMisconfigured)
	other := errors.New("WRONGTYPE")
	clk := newClock(1_700_000_000_400)

	cases := []struct {
		name    string
		policy  FailurePolicy
		err     error
		want    Decision
		outcome Outcome
	}{
		{"closed, unavailable", FailClosed, down, Decision{}, OutcomeError},
		{"open, unavailable", FailOpen, down, Decision{Allowed: true, Limit: 5, Remaining: 5, ResetAfter: 600 * time.Millisecond, FailedOpen: true}, OutcomeFailedOpen},
		{"open, misconfigured", FailOpen, misconf, Decision{}, OutcomeError},
		{"open, other error", FailOpen, other, Decision{}, OutcomeError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			l := New(failingBackend{c.err}, WithClock(clk.now), WithFailurePolicy(c.policy), WithOnError(rec.onError), WithObserver(rec))
			d, err := l.CheckRate(context.Background(), "x", time.Second, 5)
			if c.outcome == OutcomeFailedOpen {
				require.NoError(t, err, "an open policy allows, with no error")
			} else {
				require.ErrorIs(t, err, c.err)
			}
			assert.Equal(t, c.want, d)
			assert.Equal(t, []Outcome{c.outcome}, rec.outcomes())
			assert.Equal(t, []string{"x: " + c.err.Error()}, rec.errs)
		})
	}

	// Argument errors never reach OnError, the Observer or the policy.
	rec := &recorder{}
	l := New(failingBackend{down}, WithFailurePolicy(FailOpen), WithOnError(rec.onError), WithObserver(rec))
	d, err := l.CheckRate(context.Background(), "", time.Second, 5)
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.False(t, d.Allowed)
	assert.Empty(t, rec.events)
	assert.Empty(t, rec.errs)

	// OnError sees the errors of InspectBucket and DeleteBuckets too.
	_, err = l.InspectBucket(context.Background(), "i", time.Second, 5)
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = l.DeleteBuckets(context.Background(), "d")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Len(t, rec.errs, 2)
}

func TestObserverOutcomes(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		clk := newClock(1_700_000_000_000)
		l := New(e.backend(t, nil), WithClock(clk.now), WithObserver(rec))
		for i := 0; i < 3; i++ {
			_, err := l.CheckRate(context.Background(), "o", time.Minute, 2)
			require.NoError(t, err)
		}
		assert.Equal(t, []Outcome{OutcomeAllowed, OutcomeAllowed, OutcomeDenied}, rec.outcomes())
	})
}

func TestOutcomeString(t *testing.T) {
	assert.Equal(t, "allowed", OutcomeAllowed.String())
	assert.Equal(t, "denied", OutcomeDenied.String())
	assert.Equal(t, "error", OutcomeError.String())
	assert.Equal(t, "failed_open", OutcomeFailedOpen.String())
	assert.Equal(t, "unknown", Outcome(99).String())
}
