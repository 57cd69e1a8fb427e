package httplimit

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-hammer/hammer"
)

var (
	// ErrKey is wrapped, with the KeyFunc's own error, by the error given
	// to the error handler when the KeyFunc fails.
	ErrKey = errors.New("httplimit: key function failed")

	// ErrKeyTooLong is given to the error handler when IDPrefix+key is
	// longer than WithMaxKeyBytes allows.
	ErrKeyTooLong = errors.New("httplimit: key too long")

	// ErrInvalidRule is wrapped by the error given to the error handler,
	// on every request, when Middleware got an invalid Rule or a nil
	// Limiter.
	ErrInvalidRule = errors.New("httplimit: invalid rule")
)

// Rule says what Middleware limits.
type Rule struct {
	// Scale is the length of a window: a whole number of milliseconds, at
	// least 1ms, and not longer than the backend's expiry. It is required.
	Scale time.Duration

	// Limit is how many requests of one key a window allows, from 1 to
	// hammer.MaxValue. It is required.
	Limit int64

	// IDPrefix is put in front of the key to make the Limiter's id. Give
	// each Rule on one Limiter its own prefix: buckets do not hold the
	// scale, so two rules with one prefix would share their counts. The
	// default value is "".
	IDPrefix string

	// Key names the client of a request. The default value is ByIP(),
	// which trusts no proxy.
	Key KeyFunc
}

// validate checks what can be checked without the backend.
func (r Rule) validate(l *hammer.Limiter) error {
	switch {
	case l == nil:
		return fmt.Errorf("%w: nil Limiter", ErrInvalidRule)
	case r.Scale < time.Millisecond || r.Scale%time.Millisecond != 0:
		return fmt.Errorf("%w: Scale %v is not a whole number of milliseconds >= 1ms", ErrInvalidRule, r.Scale)
	case r.Limit < 1 || r.Limit > hammer.MaxValue:
		return fmt.Errorf("%w: Limit %d outside [1, 2^53]", ErrInvalidRule, r.Limit)
	}
	return nil
}

// DeniedHandler answers a denied request. The RateLimit headers and
// Retry-After are already set on w when it is called; it writes the status
// (429 is expected) and the body.
type DeniedHandler func(w http.ResponseWriter, r *http.Request, d hammer.Decision)

// ErrorHandler answers a request that could not be checked, with the
// reason. See the package doc for the errors it gets.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// Option configures Middleware.
type Option func(*config)

type config struct {
	denied      DeniedHandler
	onError     ErrorHandler
	legacy      bool
	maxKeyBytes int
}

// WithDeniedHandler sets the handler of denied requests. The default value
// is DefaultDeniedHandler. A nil handler keeps the default.
func WithDeniedHandler(h DeniedHandler) Option {
	return func(c *config) {
		if h != nil {
			c.denied = h
		}
	}
}

// WithErrorHandler sets the handler of requests that could not be checked.
// The default value is DefaultErrorHandler. A nil handler keeps the
// default.
func WithErrorHandler(h ErrorHandler) Option {
	return func(c *config) {
		if h != nil {
			c.onError = h
		}
	}
}

// WithLegacyHeaders adds X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset to limited responses, with the values of their
// RateLimit twins (the reset in delay-seconds). The default is off.
func WithLegacyHeaders() Option {
	return func(c *config) { c.legacy = true }
}

// WithMaxKeyBytes sets the longest IDPrefix+key accepted, in bytes; a
// longer one gets 400 without reaching the Limiter. Set it to the backend's
// Options.MaxIDBytes when that is smaller. The default value is
// hammer.DefaultMaxIDBytes (1024); n < 1 keeps it.
func WithMaxKeyBytes(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.maxKeyBytes = n
		}
	}
}

// Middleware returns a middleware that limits requests by rule on l. See
// the package doc for the headers it sets and how it answers denials and
// errors.
//
// An invalid rule or a nil l does not panic: every request then goes to the
// error handler with an error wrapping ErrInvalidRule.
func Middleware(l *hammer.Limiter, rule Rule, opts ...Option) func(http.Handler) http.Handler {
	c := config{denied: DefaultDeniedHandler, onError: DefaultErrorHandler, maxKeyBytes: hammer.DefaultMaxIDBytes}
	for _, opt := range opts {
		opt(&c)
	}
	key := rule.Key
	if key == nil {
		key = ByIP()
	}
	ruleErr := rule.validate(l)
	hv := newHeaderValues(rule)

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ruleErr != nil {
				c.onError(w, r, ruleErr)
				return
			}
			k, err := key(r)
			if err != nil {
				c.onError(w, r, fmt.Errorf("%w: %w", ErrKey, err))
				return
			}
			if k == "" {
				next.ServeHTTP(w, r)
				return
			}
			id := rule.IDPrefix + k
			if len(id) > c.maxKeyBytes {
				c.onError(w, r, fmt.Errorf("%w: %d bytes, more than %d", ErrKeyTooLong, len(id), c.maxKeyBytes))
				return
			}
			d, err := l.CheckRate(r.Context(), id, rule.Scale, rule.Limit)
			if err != nil {
				c.onError(w, r, err)
				return
			}
			if d.FailedOpen {
				// The backend is unavailable: no count, no RateLimit headers.
				next.ServeHTTP(w, r)
				return
			}
			hv.set(w.Header(), d, c.legacy)
			if !d.Allowed {
				w.Header().Set("Retry-After", ceilSeconds(d.ResetAfter))
				c.denied(w, r, d)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// ErrorStatus returns the status DefaultErrorHandler answers err with: 400
// for ErrKeyTooLong; 500 for ErrKey, ErrInvalidRule and
// hammer.ErrInvalidArgument; 503 for anything else (backend errors).
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, ErrKeyTooLong):
		return http.StatusBadRequest
	case errors.Is(err, ErrKey), errors.Is(err, ErrInvalidRule), errors.Is(err, hammer.ErrInvalidArgument):
		return http.StatusInternalServerError
	default:
		return http.StatusServiceUnavailable
	}
}
