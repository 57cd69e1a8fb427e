// Package httplimit limits HTTP requests with a hammer.Limiter.
//
// New (or Middleware, which panics where New returns an error) wraps a
// handler: for each request a KeyFunc names the client (ByIP, ByForwarded,
// ByHeader, or any function), the Limiter checks Rule.IDPrefix+key, and
// the request either goes on to the handler or is answered 429 Too Many
// Requests. A Rule is either a fixed window, Scale and Limit, counted by
// Limiter.CheckRate (denied requests count too, as in Hammer), or one or
// more hammer.Rule values, Rules, charged one unit by Limiter.Hit, all or
// nothing: a request is allowed only when every rule allows it, and a
// denied request charges nothing.
//
//	limit, err := httplimit.New(limiter, httplimit.Rule{
//		Rules: []hammer.Rule{
//			hammer.SlidingWindow(time.Minute, 100),
//			hammer.TokenBucket(1, time.Second, 5),
//		},
//		Names:    []string{"minute", "burst"},
//		IDPrefix: "search:",
//	})
//
// # Headers
//
// Every limited response, allowed or denied, carries the two fields of
// the IETF draft "RateLimit header fields for HTTP"
// (draft-ietf-httpapi-ratelimit-headers-10 and later), written by package
// rlheader as Structured Fields (RFC 9651) with one item per rule:
//
//	RateLimit-Policy: "minute";q=100;w=60, "burst";q=5;w=5
//	RateLimit:        "minute";r=97;t=100, "burst";r=2;t=1
//
// An item is named by Rule.Names, or else by the rule itself
// (rlheader.DefaultName, such as "fixed_window(1m0s,10)"); a Rule of Scale
// and Limit is the one policy hammer.FixedWindow(Scale, Limit). In
// RateLimit-Policy, q is the rule's limit, burst or capacity and w the
// seconds in which it gives all of q back; in RateLimit, r is what the
// rule has left and t the seconds until it has more. Per algorithm:
//
//   - FixedWindow: q the limit, w the window; t the end of the window.
//   - SlidingWindow: q the limit, w the window; t the end of the window
//     after the current one, when the last hit stops weighing (more may
//     come sooner: the draft lets t vary for sliding windows).
//   - TokenBucket(rate, per, burst): q the burst, and w the time the
//     bucket takes to refill it, burst*per/rate. A bucket has no window;
//     this w is the one in which a client that spends q at once and waits
//     w is never denied, and q/w is the bucket's rate, exactly, but for
//     rounding. t is when the next token comes, not when the bucket is
//     full.
//   - LeakyBucket(rate, per, capacity): q the capacity, w the time it
//     takes to drain, capacity*per/rate; t is when one more request fits.
//
// Seconds are rounded up, so that a client that waits them is never early
// (1ms and 1000ms give 1, 1001ms gives 2), and w is at least 1: a 500ms
// window is w=1, and a client reading the policy assumes a rate no faster
// than the real one. A rule with its whole quota left has no t. Integers
// above 999,999,999,999,999, the most a Structured Field carries, are sent
// as that.
//
// A denial adds Retry-After: the least wait after which the same request
// could be allowed (hammer.Decision.RetryAfter, exact to the millisecond),
// or, for Scale and Limit, the end of the window; in whole seconds rounded
// up, never down, and at least 1 (rlheader.RetryAfterSeconds). In a
// denial no t is later than Retry-After: a denying rule's t is its own
// wait, and an allowing rule's t is cut to Retry-After. The body is small:
// JSON {"error":"rate limit exceeded","retry_after":N} when the Accept
// header prefers application/json, plain text otherwise.
// WithDeniedHandler replaces the body; it should write 429. A status it
// does not write is 429 all the same: a body or a flush before any status
// goes out with 429, not Go's implicit 200, and when it writes nothing the
// middleware answers 429 with an empty body.
//
// Older clients read older fields:
//
//   - WithDraft06Headers sends the fields of draft-06 instead:
//     RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (of the
//     rule with the least left) and RateLimit-Policy as "10;w=60" (one
//     "q;w=w" per rule). It replaces the current fields, as the two
//     RateLimit-Policy forms cannot share a response.
//   - WithLegacyHeaders adds X-RateLimit-Limit, X-RateLimit-Remaining and
//     X-RateLimit-Reset, with the values of the draft-06 fields, to
//     either. The reset is in delay-seconds (not epoch seconds as GitHub
//     sends): a delay does not depend on the client's clock.
//
// A draft-06 reset is the seconds until the rule with the least left is
// back to full, or, in a denial of Rules, the Retry-After.
//
// Go writes header names in canonical form, so on the wire they read
// "Ratelimit-Policy", "Ratelimit" and so on; HTTP header names are
// case-insensitive.
//
// # Shadow mode
//
// A Limiter in shadow mode (hammer.WithShadow) allows what it would deny,
// with Decision.Shadow set. The middleware passes such a request on to the
// handler, with the RateLimit fields of the denial (r=0 for the denying
// rule, and every t cut to the wait) but no Retry-After: a service can
// watch what a new rule would do, and clients can see it coming, before it
// denies anything.
//
// # Unlimited requests
//
// A KeyFunc that returns an empty key skips limiting: the request goes on
// with no RateLimit headers and nothing is counted. ByHeader does this for
// requests without the header, so a client can dodge a ByHeader rule by
// leaving the header out: put authentication, or another rule, in front.
//
// # Invalid rules
//
// New checks the Rule when the middleware is built, without a backend
// call, and returns an error wrapping ErrInvalidRule for a nil Limiter, a
// Scale that is not a whole number of milliseconds >= 1ms, a Limit outside
// [1, 2^53], a Scale the Limiter refuses (longer than the backend's
// expiry; that error also wraps hammer.ErrInvalidArgument), Rules set
// with Scale or Limit, an invalid hammer.Rule (wrapping
// hammer.ErrInvalidArgument too), a rule given twice, more Names than
// rules, a name that is not printable ASCII or not unique (those wrap
// rlheader.ErrInvalidPolicy too), or an IDPrefix as long as the longest
// id accepted. Middleware panics with that error
// instead, when it is called, like regexp.MustCompile: use it for rules
// fixed in the code, and New for rules from flags or configuration. No
// request meets an invalid rule.
//
// # Errors
//
// The Limiter's failure policy (hammer.WithFailurePolicy) decides what
// happens when the backend is unavailable. When it fails open, CheckRate
// and Hit return an allowing Decision with FailedOpen set: the request
// goes on to the handler with no RateLimit headers, since nothing was
// counted. Every other error goes to the error handler, by default a
// small body with the status that ErrorStatus gives:
//
//   - 400 Bad Request when IDPrefix+key is longer than the middleware
//     accepts (ErrKeyTooLong): WithMaxKeyBytes, capped by the Limiter's
//     MaxIDBytes, which is also the default. The key comes from the
//     client, so an over-long one is always the client's error. The
//     Limiter is not called.
//   - 500 Internal Server Error when the KeyFunc fails or panics (ErrKey;
//     the error of a panic says "panicked", and wraps the panic's value
//     when it is an error), and for Rules on a Limiter whose backend keeps
//     no rules (hammer.ErrNoRuleBackend): these are server bugs. A panic
//     with http.ErrAbortHandler is not recovered. The next handler's
//     panics are not recovered either: they are the server's.
//   - 503 Service Unavailable for every backend error: the backend is down
//     and the Limiter fails closed, or it is misconfigured.
//
// WithErrorHandler replaces it. Apart from the panics above, which it does
// not cause, the middleware does not panic when it serves a request.
package httplimit
