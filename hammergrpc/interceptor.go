package hammergrpc

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Keys of the response header metadata that carry the rate limit fields.
const (
	// MetadataPolicy carries the RateLimit-Policy field: the policies of
	// the call's rules, as rlheader.Fields writes it.
	MetadataPolicy = "ratelimit-policy"

	// MetadataRateLimit carries the RateLimit field: what each policy has
	// left, as rlheader.Fields writes it.
	MetadataRateLimit = "ratelimit"

	// MetadataRetryAfter carries, on a denied call only, the wait in whole
	// seconds, rounded up (rlheader.RetryAfterSeconds).
	MetadataRetryAfter = "retry-after"
)

// defaultScope stands for the default rules in the Limiter's ids, where a
// method's rules have the method's full name.
const defaultScope = "*"

// Option configures New.
type Option func(*config)

type config struct {
	key     KeyFunc
	prefix  string
	onError ErrorHandler
	def     []rlheader.Policy
	defSet  bool
	methods map[string]methodConfig
	err     error // the first error of an option
}

type methodConfig struct {
	policies  []rlheader.Policy
	unlimited bool
}

// fail records the first error of the options.
func (c *config) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
}

func (c *config) setMethod(fullMethod string, mc methodConfig) {
	if !validMethod(fullMethod) {
		c.fail("method %q is not a full method name \"/package.Service/Method\"", fullMethod)
		return
	}
	if _, dup := c.methods[fullMethod]; dup {
		c.fail("method %s given twice", fullMethod)
		return
	}
	c.methods[fullMethod] = mc
}

// validMethod reports whether m is "/service/method", with a service and a
// method of printable ASCII other than ' ', '/' and ':'. Every full method
// name of a protobuf service is.
func validMethod(m string) bool {
	if len(m) < 4 || m[0] != '/' {
		return false
	}
	service, method, ok := strings.Cut(m[1:], "/")
	if !ok || service == "" || method == "" {
		return false
	}
	for _, s := range [...]string{service, method} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c > '~' || c == '/' || c == ':' {
				return false
			}
		}
	}
	return true
}

// policiesOf names rules with their default names.
func policiesOf(rules []hammer.Rule) []rlheader.Policy {
	p := make([]rlheader.Policy, len(rules))
	for i, r := range rules {
		p[i].Rule = r
	}
	return p
}

// WithKey sets how calls are keyed. The default value is ByPeer(). A nil
// KeyFunc keeps the default.
func WithKey(k KeyFunc) Option {
	return func(c *config) {
		if k != nil {
			c.key = k
		}
	}
}

// WithIDPrefix sets a prefix put in front of every id the interceptors
// give the Limiter, to keep them apart from other users of the same
// Limiter or backend. The default value is "".
func WithIDPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithErrorHandler sets the handler of calls that could not be checked.
// The default value is DefaultErrorHandler. A nil handler keeps the
// default.
func WithErrorHandler(h ErrorHandler) Option {
	return func(c *config) {
		if h != nil {
			c.onError = h
		}
	}
}

// WithDefault sets the rules of every method that WithMethod,
// WithMethodPolicies and WithUnlimited do not name. The calls of all those
// methods count together: one budget per key. The default is none: such
// methods are not limited.
func WithDefault(rules ...hammer.Rule) Option {
	return WithDefaultPolicies(policiesOf(rules)...)
}

// WithDefaultPolicies is WithDefault with a name for each rule in the
// metadata (a Policy's empty Name is rlheader.DefaultName of its Rule).
func WithDefaultPolicies(policies ...rlheader.Policy) Option {
	p := slices.Clone(policies)
	return func(c *config) {
		if c.defSet {
			c.fail("default rules given twice")
			return
		}
		c.def, c.defSet = p, true
	}
}

// WithMethod sets the rules of the method fullMethod
// ("/package.Service/Method", as grpc.UnaryServerInfo.FullMethod names
// it), in place of the default rules. A method's calls count apart from
// every other method's, even under equal rules.
func WithMethod(fullMethod string, rules ...hammer.Rule) Option {
	return WithMethodPolicies(fullMethod, policiesOf(rules)...)
}

// WithMethodPolicies is WithMethod with a name for each rule in the
// metadata (a Policy's empty Name is rlheader.DefaultName of its Rule).
func WithMethodPolicies(fullMethod string, policies ...rlheader.Policy) Option {
	p := slices.Clone(policies)
	return func(c *config) { c.setMethod(fullMethod, methodConfig{policies: p}) }
}

// WithUnlimited leaves the methods fullMethods unlimited, in spite of the
// default rules: their calls go on unchecked, with no metadata and no key
// computed, as health checks and reflection usually should.
func WithUnlimited(fullMethods ...string) Option {
	ms := slices.Clone(fullMethods)
	return func(c *config) {
		for _, m := range ms {
			c.setMethod(m, methodConfig{unlimited: true})
		}
	}
}

// Interceptors limits the calls of a gRPC server with a hammer.Limiter.
// Make it with New; it is safe for concurrent use. The interceptors of a
// nil or zero Interceptors fail every call, as codes.Internal.
type Interceptors struct {
	l       *hammer.Limiter
	key     KeyFunc
	onError ErrorHandler
	maxID   int
	def     *group            // nil: methods not listed are not limited
	methods map[string]*group // a nil *group: the method is not limited
}

// group is the rules a set of methods is charged against.
type group struct {
	idBase string // IDPrefix + scope + ":", where the key follows
	rules  []hammer.Rule
	enc    *rlheader.Encoder // the RateLimit fields, the policy formatted once
}

// New returns the interceptors that limit calls on l as opts say. See the
// package doc for what they answer.
//
// It checks everything up front, without a backend call, and returns an
// error wrapping ErrInvalidConfig for: a nil Limiter; no rules at all (no
// WithDefault, WithDefaultPolicies, WithMethod or WithMethodPolicies); an
// empty list of rules; an invalid rule (hammer.Rule.Validate; that error
// also wraps hammer.ErrInvalidArgument) or one given twice to a method;
// policy names that rlheader.Validate refuses (also wrapping
// rlheader.ErrInvalidPolicy); a method name that is not
// "/package.Service/Method"; a method named twice, or the default rules
// set twice; an IDPrefix so long that no key fits in the Limiter's
// MaxIDBytes.
func New(l *hammer.Limiter, opts ...Option) (*Interceptors, error) {
	c := config{key: ByPeer(), onError: DefaultErrorHandler, methods: map[string]methodConfig{}}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if l == nil {
		return nil, fmt.Errorf("%w: nil Limiter", ErrInvalidConfig)
	}
	ic := &Interceptors{l: l, key: c.key, onError: c.onError, maxID: l.MaxIDBytes(), methods: map[string]*group{}}
	limited := false
	if c.defSet {
		g, err := newGroup(defaultScope, "default rules", c.def, c.prefix, ic.maxID)
		if err != nil {
			return nil, err
		}
		ic.def, limited = g, true
	}
	for _, m := range slices.Sorted(maps.Keys(c.methods)) {
		mc := c.methods[m]
		if mc.unlimited {
			ic.methods[m] = nil
			continue
		}
		g, err := newGroup(m, "method "+m, mc.policies, c.prefix, ic.maxID)
		if err != nil {
			return nil, err
		}
		ic.methods[m], limited = g, true
	}
	if !limited {
		return nil, fmt.Errorf("%w: no rules: give WithDefault or WithMethod", ErrInvalidConfig)
	}
	return ic, nil
}

// newGroup checks the policies of scope (what errors call what) and makes
// their group.
func newGroup(scope, what string, policies []rlheader.Policy, prefix string, maxID int) (*group, error) {
	if len(policies) == 0 {
		return nil, fmt.Errorf("%w: %s: no rules (WithUnlimited leaves a method unlimited)", ErrInvalidConfig, what)
	}
	rules := make([]hammer.Rule, len(policies))
	for i, p := range policies {
		if err := p.Rule.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: rule %d: %w", ErrInvalidConfig, what, i, err)
		}
		if slices.Contains(rules[:i], p.Rule) {
			return nil, fmt.Errorf("%w: %s: rule %v given twice", ErrInvalidConfig, what, p.Rule)
		}
		rules[i] = p.Rule
	}
	enc, err := rlheader.NewEncoder(policies)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, what, err)
	}
	idBase := prefix + scope + ":"
	if len(idBase) >= maxID {
		return nil, fmt.Errorf("%w: %s: IDPrefix and scope take %d bytes, leaving no room for a key in %d", ErrInvalidConfig, what, len(idBase), maxID)
	}
	return &group{idBase: idBase, rules: rules, enc: enc}, nil
}

// UnaryServerInterceptor returns the interceptor of unary calls: install
// it with grpc.UnaryInterceptor or grpc.ChainUnaryInterceptor.
func (ic *Interceptors) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		setHeader := func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }
		if err := ic.admit(ctx, info.FullMethod, setHeader, deniedStatus); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the interceptor of streaming calls:
// install it with grpc.StreamInterceptor or grpc.ChainStreamInterceptor. A
// stream is checked once, when it starts, whatever the number of its
// messages.
func (ic *Interceptors) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := ic.admit(ss.Context(), info.FullMethod, ss.SetHeader, deniedStatus); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// admit checks a call of fullMethod, sends its metadata with setHeader, and
// returns nil to let it go on, denied(wait) when it is denied, or the error
// handler's answer when the check failed.
func (ic *Interceptors) admit(ctx context.Context, fullMethod string, setHeader func(metadata.MD) error, denied func(time.Duration) error) error {
	v := ic.check(ctx, fullMethod)
	if v.header != nil {
		// An error means that headers were sent already, or that ctx is
		// not a server call's: there is nowhere to send them.
		_ = setHeader(v.header)
	}
	switch {
	case v.err != nil && (ic == nil || ic.onError == nil):
		return DefaultErrorHandler(ctx, fullMethod, v.err)
	case v.err != nil:
		return ic.onError(ctx, fullMethod, v.err)
	case v.denied:
		return denied(v.wait)
	}
	return nil
}

// verdict is what check decided of a call.
type verdict struct {
	header metadata.MD   // the rate limit metadata to send; nil when none
	denied bool          // the Limiter denied the call
	wait   time.Duration // a denial's wait (retryWait)
	err    error         // the check failed: for the error handler
}

// check charges a call of fullMethod against its rules. It never panics:
// a panic of the KeyFunc is an error wrapping ErrKey.
func (ic *Interceptors) check(ctx context.Context, fullMethod string) verdict {
	if ic == nil || ic.l == nil {
		return verdict{err: fmt.Errorf("%w: Interceptors not made by New", ErrInvalidConfig)}
	}
	g, listed := ic.methods[fullMethod]
	if !listed {
		g = ic.def
	}
	if g == nil {
		return verdict{}
	}
	k, err := callKey(ctx, ic.key, fullMethod)
	if err != nil {
		return verdict{err: err}
	}
	if k == "" {
		return verdict{}
	}
	if n := len(g.idBase) + len(k); n > ic.maxID {
		return verdict{err: fmt.Errorf("%w: id of %d bytes, more than %d", ErrKeyTooLong, n, ic.maxID)}
	}
	d, err := ic.l.Hit(ctx, g.idBase+k, g.rules...)
	if err != nil {
		return verdict{err: err}
	}
	if d.FailedOpen {
		// The backend is unavailable: nothing counted, nothing to say.
		return verdict{}
	}
	v := verdict{header: metadata.MD{MetadataPolicy: {g.enc.Policy()}, MetadataRateLimit: {g.enc.RateLimit(d)}}}
	if !d.Allowed {
		v.denied, v.wait = true, retryWait(d)
		v.header[MetadataRetryAfter] = []string{strconv.FormatInt(rlheader.RetryAfterSeconds(d), 10)}
	}
	return v
}
