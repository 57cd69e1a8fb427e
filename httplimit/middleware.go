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
	// to the error handler when the KeyFunc fails or panics.
	ErrKey = errors.New("httplimit: key function failed")

	// ErrKeyTooLong is given to the error handler when IDPrefix+key is
	// longer than the middleware accepts (see WithMaxKeyBytes).
	ErrKeyTooLong = errors.New("httplimit: key too long")

	// ErrInvalidRule is wrapped by the error New returns, and Middleware
	// panics with, for an invalid Rule or a nil Limiter.
	ErrInvalidRule = errors.New("httplimit: invalid rule")
)

// Rule says what New and Middleware limit.
type Rule struct {
	// Scale is the length of a window: a whole number of milliseconds, at
	// least 1ms, and not longer than the backend's expiry (the Limiter
	// refuses longer ones). It is required.
	Scale time.Duration

	// Limit is how many requests of one key a window allows, from 1 to
	// hammer.MaxValue. It is required.
	Limit int64

	// IDPrefix is put in front of the key to make the Limiter's id. Give
	// each Rule on one Limiter its own prefix: buckets do not hold the
	// scale, so two rules with one prefix would share their counts. It must
	// be shorter than the longest id accepted (see WithMaxKeyBytes). The
	// default value is "".
	IDPrefix string

	// Key names the client of a request. The default value is ByIP(),
	// which trusts no proxy.
	Key KeyFunc
}

// validate checks r against l, and returns the longest id accepted,
// maxKeyBytes capped by l.MaxIDBytes(). It makes no backend call.
func (r Rule) validate(l *hammer.Limiter, maxKeyBytes int) (int, error) {
	switch {
	case l == nil:
		return 0, fmt.Errorf("%w: nil Limiter", ErrInvalidRule)
	case r.Scale < time.Millisecond || r.Scale%time.Millisecond != 0:
		return 0, fmt.Errorf("%w: Scale %v is not a whole number of milliseconds >= 1ms", ErrInvalidRule, r.Scale)
	case r.Limit < 1 || r.Limit > hammer.MaxValue:
		return 0, fmt.Errorf("%w: Limit %d outside [1, 2^53]", ErrInvalidRule, r.Limit)
	}
	if m := l.MaxScale(); m > 0 && r.Scale > m {
		return 0, fmt.Errorf("%w: Scale %v: %w: scale %v is longer than the backend's expiry %v", ErrInvalidRule, r.Scale, hammer.ErrInvalidArgument, r.Scale, m)
	}
	maxID := l.MaxIDBytes()
	if maxKeyBytes >= 1 {
		maxID = min(maxKeyBytes, maxID)
	}
	if len(r.IDPrefix) >= maxID {
		return 0, fmt.Errorf("%w: IDPrefix of %d bytes leaves no room for a key in %d", ErrInvalidRule, len(r.IDPrefix), maxID)
	}
	return maxID, nil
}

// DeniedHandler answers a denied request. The RateLimit headers and
// Retry-After are already set on w when it is called; it writes the status
// (429 is expected) and the body.
type DeniedHandler func(w http.ResponseWriter, r *http.Request, d hammer.Decision)

// ErrorHandler answers a request that could not be checked, with the
// reason. See the package doc for the errors it gets.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// Option configures New and Middleware.
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
// longer one gets 400 (ErrKeyTooLong) without reaching the Limiter. An n
// above the Limiter's MaxIDBytes is lowered to it, so that no key the
// client chose reaches the Limiter too long. The default value is the
// Limiter's MaxIDBytes (hammer.DefaultMaxIDBytes, 1024, unless the backend
// says otherwise); n < 1 keeps it.
func WithMaxKeyBytes(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.maxKeyBytes = n
		}
	}
}

// New returns a middleware that limits requests by rule on l. See the
// package doc for the headers it sets and how it answers denials and
// errors.
//
// It returns an error wrapping ErrInvalidRule when l is nil, when the
// Rule's Scale or Limit is invalid (see Rule), when l refuses the Scale
// (longer than the backend's expiry, Limiter.MaxScale), or when
// the IDPrefix alone is as long as the longest id accepted.
func New(l *hammer.Limiter, rule Rule, opts ...Option) (func(http.Handler) http.Handler, error) {
	c := config{denied: DefaultDeniedHandler, onError: DefaultErrorHandler}
	for _, opt := range opts {
		opt(&c)
	}
	maxID, err := rule.validate(l, c.maxKeyBytes)
	if err != nil {
		return nil, err
	}
	key := rule.Key
	if key == nil {
		key = ByIP()
	}
	hv := newHeaderValues(rule)

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k, err := callKey(key, r)
			if err != nil {
				c.onError(w, r, err)
				return
			}
			if k == "" {
				next.ServeHTTP(w, r)
				return
			}
			id := rule.IDPrefix + k
			if len(id) > maxID {
				c.onError(w, r, fmt.Errorf("%w: %d bytes, more than %d", ErrKeyTooLong, len(id), maxID))
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
				dw := &deniedWriter{ResponseWriter: w}
				c.denied(dw, r, d)
				if !dw.wroteHeader {
					dw.WriteHeader(http.StatusTooManyRequests)
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// Middleware is New for a rule known to be valid, as in a package-level
// variable or in main. It panics, when it is called and not at a request,
// with New's error (wrapping ErrInvalidRule), like regexp.MustCompile. Use
// New when the rule comes from flags or configuration.
func Middleware(l *hammer.Limiter, rule Rule, opts ...Option) func(http.Handler) http.Handler {
	mw, err := New(l, rule, opts...)
	if err != nil {
		panic(err)
	}
	return mw
}

// callKey calls key, and turns its error or its panic into an error
// wrapping ErrKey. A panic with http.ErrAbortHandler goes on: it asks the
// server to abort the request.
func callKey(key KeyFunc, r *http.Request) (k string, err error) {
	defer func() {
		v := recover()
		switch e, isErr := v.(error); {
		case v == nil:
		case e == http.ErrAbortHandler:
			panic(v)
		case isErr:
			k, err = "", fmt.Errorf("%w: key function panicked: %w", ErrKey, e)
		default:
			k, err = "", fmt.Errorf("%w: key function panicked: %v", ErrKey, v)
		}
	}()
	k, err = key(r)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKey, err)
	}
	return k, nil
}

// ErrorStatus returns the status DefaultErrorHandler answers err with: 400
// for ErrKeyTooLong; 500 for ErrKey, ErrInvalidRule and
// hammer.ErrInvalidArgument; 503 for anything else (backend errors). The
// middleware itself never gives ErrInvalidRule to the error handler: New
// returns it.
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
