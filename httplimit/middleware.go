package httplimit

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
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

// Rule says what New and Middleware limit: either a fixed window (Scale
// and Limit), counted by Limiter.CheckRate, or one or more hammer.Rule
// values (Rules), charged all or nothing by Limiter.Hit. Exactly one of
// the two must be set.
type Rule struct {
	// Scale is the length of a window: a whole number of milliseconds, at
	// least 1ms, and not longer than the backend's expiry (the Limiter
	// refuses longer ones). It is required unless Rules is set, and must
	// be 0 when it is.
	Scale time.Duration

	// Limit is how many requests of one key a window allows, from 1 to
	// hammer.MaxValue. It is required unless Rules is set, and must be 0
	// when it is.
	Limit int64

	// Rules are charged one unit per request, all or nothing, by
	// Limiter.Hit: a request is allowed only when every rule allows it,
	// and a denied request charges nothing (unlike Scale and Limit, whose
	// denied requests count). Each must be valid (hammer.Rule.Validate),
	// and none given twice. The Limiter's backend must keep rules
	// (hammer.RuleBackend, as ClusterBackend does). The default value is
	// nil: Scale and Limit are used.
	Rules []hammer.Rule

	// Names are the names of the items of the RateLimit-Policy and
	// RateLimit fields: Names[i] names Rules[i], or the window of Scale
	// and Limit when Rules is not set. A name is sent as a Structured
	// Field String, so it holds printable ASCII only, and names are
	// unique. A missing or "" name is rlheader.DefaultName of the rule
	// (hammer.FixedWindow(Scale, Limit) for Scale and Limit), such as
	// "fixed_window(1m0s,10)". The default value is nil: every item has
	// its default name.
	Names []string

	// IDPrefix is put in front of the key to make the Limiter's id. Give
	// each Rule on one Limiter its own prefix: the buckets of Scale and
	// Limit do not hold the scale, and two Rules with the same hammer.Rule
	// share its state for an id, so two Rules with one prefix would share
	// their counts. It must
	// be shorter than the longest id accepted (see WithMaxKeyBytes). The
	// default value is "".
	IDPrefix string

	// Key names the client of a request. The default value is ByIP(),
	// which trusts no proxy.
	Key KeyFunc
}

// policies returns the policies of r's RateLimit fields: one per rule,
// named by Names.
func (r Rule) policies() []rlheader.Policy {
	rules := r.Rules
	if len(rules) == 0 {
		rules = []hammer.Rule{hammer.FixedWindow(r.Scale, r.Limit)}
	}
	ps := make([]rlheader.Policy, len(rules))
	for i, rule := range rules {
		ps[i].Rule = rule
		if i < len(r.Names) {
			ps[i].Name = r.Names[i]
		}
	}
	return ps
}

// validate checks r against l, and returns the longest id accepted,
// maxKeyBytes capped by l.MaxIDBytes(), and the policies of r. It makes
// no backend call.
func (r Rule) validate(l *hammer.Limiter, maxKeyBytes int) (int, []rlheader.Policy, error) {
	if l == nil {
		return 0, nil, fmt.Errorf("%w: nil Limiter", ErrInvalidRule)
	}
	if len(r.Rules) > 0 {
		if r.Scale != 0 || r.Limit != 0 {
			return 0, nil, fmt.Errorf("%w: both Rules and Scale or Limit are set", ErrInvalidRule)
		}
		if len(r.Names) > len(r.Rules) {
			return 0, nil, fmt.Errorf("%w: %d Names for %d Rules", ErrInvalidRule, len(r.Names), len(r.Rules))
		}
	} else {
		switch {
		case r.Scale < time.Millisecond || r.Scale%time.Millisecond != 0:
			return 0, nil, fmt.Errorf("%w: Scale %v is not a whole number of milliseconds >= 1ms", ErrInvalidRule, r.Scale)
		case r.Limit < 1 || r.Limit > hammer.MaxValue:
			return 0, nil, fmt.Errorf("%w: Limit %d outside [1, 2^53]", ErrInvalidRule, r.Limit)
		case len(r.Names) > 1:
			return 0, nil, fmt.Errorf("%w: %d Names for the one window of Scale and Limit", ErrInvalidRule, len(r.Names))
		}
		if m := l.MaxScale(); m > 0 && r.Scale > m {
			return 0, nil, fmt.Errorf("%w: Scale %v: %w: scale %v is longer than the backend's expiry %v", ErrInvalidRule, r.Scale, hammer.ErrInvalidArgument, r.Scale, m)
		}
	}
	ps := r.policies()
	if err := rlheader.Validate(ps); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrInvalidRule, err)
	}
	maxID := l.MaxIDBytes()
	if maxKeyBytes >= 1 {
		maxID = min(maxKeyBytes, maxID)
	}
	if len(r.IDPrefix) >= maxID {
		return 0, nil, fmt.Errorf("%w: IDPrefix of %d bytes leaves no room for a key in %d", ErrInvalidRule, len(r.IDPrefix), maxID)
	}
	return maxID, ps, nil
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
	draft06     bool
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
// X-RateLimit-Reset to limited responses: the Limit and Remaining of the
// Decision (for several Rules, those of the rule with the least left),
// and the reset in delay-seconds, as RateLimit-Reset of WithDraft06Headers
// gives it. They come in addition to the RateLimit fields, current or
// draft-06. The default is off.
func WithLegacyHeaders() Option {
	return func(c *config) { c.legacy = true }
}

// WithDraft06Headers sends the fields of draft-ietf-httpapi-ratelimit-
// headers-06 instead of the current RateLimit-Policy and RateLimit:
// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset and a
// RateLimit-Policy of the form "10;w=60". The two RateLimit-Policy forms
// cannot be sent in one response, so RateLimit is not sent either. The
// default is off: the current fields.
func WithDraft06Headers() Option {
	return func(c *config) { c.draft06 = true }
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
// (longer than the backend's expiry, Limiter.MaxScale), when both or
// neither of Scale/Limit and Rules are set, when a rule of Rules is
// invalid or given twice, when there are more Names than rules or a name
// is not printable ASCII or not unique, or when the IDPrefix alone is as
// long as the longest id accepted. The errors about Rules and Names wrap
// rlheader.ErrInvalidPolicy too, and the error of an invalid
// hammer.Rule wraps hammer.ErrInvalidArgument.
func New(l *hammer.Limiter, rule Rule, opts ...Option) (func(http.Handler) http.Handler, error) {
	c := config{denied: DefaultDeniedHandler, onError: DefaultErrorHandler}
	for _, opt := range opts {
		opt(&c)
	}
	maxID, policies, err := rule.validate(l, c.maxKeyBytes)
	if err != nil {
		return nil, err
	}
	hv, err := newHeaderValues(rule, policies, c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRule, err)
	}
	key := rule.Key
	if key == nil {
		key = ByIP()
	}
	rules := append([]hammer.Rule(nil), rule.Rules...)

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
			var d hammer.Decision
			if len(rules) > 0 {
				d, err = l.Hit(r.Context(), id, rules...)
			} else {
				d, err = l.CheckRate(r.Context(), id, rule.Scale, rule.Limit)
			}
			if err != nil {
				c.onError(w, r, err)
				return
			}
			if d.FailedOpen {
				// The backend is unavailable: no count, no RateLimit headers.
				next.ServeHTTP(w, r)
				return
			}
			// A Decision with Shadow set is a denial let through: it gets
			// the headers of the denial but Retry-After, and goes on.
			hv.set(w.Header(), d)
			if !d.Allowed {
				w.Header()[hRetryAfter] = []string{strconv.FormatInt(rlheader.RetryAfterSeconds(d), 10)}
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
// for ErrKeyTooLong; 500 for ErrKey, ErrInvalidRule,
// hammer.ErrInvalidArgument and hammer.ErrNoRuleBackend (Rules on a
// Limiter whose backend keeps no rules); 503 for anything else (backend
// errors). The
// middleware itself never gives ErrInvalidRule to the error handler: New
// returns it.
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, ErrKeyTooLong):
		return http.StatusBadRequest
	case errors.Is(err, ErrKey), errors.Is(err, ErrInvalidRule), errors.Is(err, hammer.ErrInvalidArgument),
		errors.Is(err, hammer.ErrNoRuleBackend):
		return http.StatusInternalServerError
	default:
		return http.StatusServiceUnavailable
	}
}
