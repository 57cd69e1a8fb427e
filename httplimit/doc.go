// Package httplimit limits HTTP requests with a hammer.Limiter.
//
// New (or Middleware, which panics where New returns an error) wraps a
// handler: for each request a KeyFunc names the client
// (ByIP, ByForwarded, ByHeader, or any function), the Limiter counts one hit
// of Rule.IDPrefix+key in the current window of Rule.Scale, and the request
// either goes on to the handler or is answered 429 Too Many Requests.
//
// # Headers
//
// Every limited response, allowed or denied, carries the headers of the
// IETF draft "RateLimit header fields for HTTP" (draft-ietf-httpapi-
// ratelimit-headers-07, the form most clients read):
//
//	RateLimit-Limit:     the Rule's Limit
//	RateLimit-Remaining: hits left in the current window
//	RateLimit-Reset:     seconds until the window ends, rounded up
//	RateLimit-Policy:    "<limit>;w=<window seconds>", e.g. "10;w=60"
//
// Seconds are always rounded up, so a client that waits that long is in the
// next window: 1ms and 1000ms give 1, 1001ms gives 2. The policy's window
// is rounded up too, with at least 1: a 500ms window is "w=1" and a 1.5s
// window "w=2". A client reading the policy then assumes a rate no faster
// than the real one.
//
// A denial adds Retry-After (the same seconds as RateLimit-Reset) and a
// small body: JSON {"error":"rate limit exceeded","retry_after":N} when the
// Accept header prefers application/json, plain text otherwise.
// WithDeniedHandler replaces the body; it should write 429. A status it
// does not write is 429 all the same: a body or a flush before any status
// goes out with 429, not Go's implicit 200, and when it writes nothing the
// middleware answers 429 with an empty body. WithLegacyHeaders adds
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset, the last
// in delay-seconds like RateLimit-Reset (not epoch seconds as GitHub sends):
// a delay does not depend on the client's clock.
//
// Go writes header names in canonical form, so on the wire they read
// "Ratelimit-Limit" and so on; HTTP header names are case-insensitive.
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
// expiry; that error also wraps hammer.ErrInvalidArgument), or an IDPrefix
// as long as the longest id accepted. Middleware panics with that error
// instead, when it is called, like regexp.MustCompile: use it for rules
// fixed in the code, and New for rules from flags or configuration. No
// request meets an invalid rule.
//
// # Errors
//
// The Limiter's failure policy (hammer.WithFailurePolicy) decides what
// happens when the backend is unavailable. When it fails open, CheckRate
// returns an allowing Decision with FailedOpen set: the request goes on to
// the handler with no RateLimit headers, since nothing was counted. Every
// other error goes to the error handler, by default a small body with the
// status that ErrorStatus gives:
//
//   - 400 Bad Request when IDPrefix+key is longer than the middleware
//     accepts (ErrKeyTooLong): WithMaxKeyBytes, capped by the Limiter's
//     MaxIDBytes, which is also the default. The key comes from the
//     client, so an over-long one is always the client's error. The
//     Limiter is not called.
//   - 500 Internal Server Error when the KeyFunc fails or panics (ErrKey;
//     the error of a panic says "panicked", and wraps the panic's value
//     when it is an error): these are server bugs. A panic with
//     http.ErrAbortHandler is not recovered. The next handler's panics are
//     not recovered either: they are the server's.
//   - 503 Service Unavailable for every backend error: the backend is down
//     and the Limiter fails closed, or it is misconfigured.
//
// WithErrorHandler replaces it. Apart from the panics above, which it does
// not cause, the middleware does not panic when it serves a request.
package httplimit
