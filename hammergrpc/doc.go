// Package hammergrpc limits the calls of a gRPC server with a
// hammer.Limiter.
//
// It is a module of its own, so that the hammer module does not depend on
// gRPC. New checks the configuration once and returns Interceptors, whose
// UnaryServerInterceptor and StreamServerInterceptor do the limiting:
//
//	ic, err := hammergrpc.New(limiter,
//		hammergrpc.WithDefault(hammer.TokenBucket(10, time.Second, 20)),
//		hammergrpc.WithMethod("/shop.Orders/Create", hammer.FixedWindow(time.Minute, 30)),
//		hammergrpc.WithUnlimited(healthpb.Health_Check_FullMethodName),
//	)
//	if err != nil {
//		return err
//	}
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(ic.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(ic.StreamServerInterceptor()),
//	)
//
// For each call, a KeyFunc names the client (ByPeer, the default; ByMetadata;
// ByMethod; or any function), and Limiter.Hit charges one unit to every
// rule of the call's method, all or nothing: a call denied by one rule is
// charged to none. A stream is charged once, when it starts.
//
// # Rules
//
// WithMethod (or WithMethodPolicies, which names the rules in the
// metadata) gives a method its own rules, and its calls count apart from
// every other method's. WithDefault (or WithDefaultPolicies) sets the
// rules of the methods not named otherwise; their calls count together,
// one budget per key. WithUnlimited leaves methods out, in spite of the
// default rules. Without default rules, the methods not named are not
// limited. A method is named by its full name, "/package.Service/Method",
// as grpc.UnaryServerInfo.FullMethod gives it.
//
// The Limiter's id of a call is IDPrefix + scope + ":" + key, where the
// scope is the method's full name for a method's own rules and "*" for the
// default rules: "*:192.0.2.1", or "/shop.Orders/Create:192.0.2.1". With
// it, Limiter.Peek reads a client's state, and Limiter.DeleteBuckets
// resets it.
//
// # Metadata
//
// Every checked call, allowed or denied, gets the RateLimit fields of the
// IETF draft "RateLimit header fields for HTTP" as response header
// metadata, formatted by the rlheader package (rlheader.Fields), one item
// per rule:
//
//	ratelimit-policy: "fixed_window(1m0s,30)";q=30;w=60
//	ratelimit:        "fixed_window(1m0s,30)";r=29;t=60
//
// A call that is not checked (an unlimited method, an empty key, a
// Limiter that failed open) gets none.
//
// # Denials
//
// A denied call ends with codes.ResourceExhausted and a google.rpc.RetryInfo
// detail whose retry_delay is the wait after which the same call could be
// allowed (hammer.Decision.RetryAfter rounded up to the millisecond, at
// least 1ms). Its header metadata adds retry-after, the wait in whole
// seconds rounded up (rlheader.RetryAfterSeconds). In shadow mode
// (hammer.WithShadow) a would-be denial goes on, with the metadata of the
// denial but no retry-after.
//
// # Unlimited calls
//
// A KeyFunc that returns an empty key skips limiting: the call goes on with
// no metadata and nothing is counted. ByMetadata does this for calls
// without the metadata key, so a client can dodge a ByMetadata limit by
// leaving the key out: put authentication, or another limit, in front.
//
// # Errors
//
// New checks every rule, policy name and method name, without a backend
// call, and returns an error wrapping ErrInvalidConfig for an invalid one:
// no call meets an invalid rule.
//
// The Limiter's failure policy (hammer.WithFailurePolicy) decides what
// happens when the backend is unavailable. When it fails open, the call
// goes on with no metadata, since nothing was counted. Every other error
// goes to the error handler (WithErrorHandler), by default
// DefaultErrorHandler, which ends the call with the code that Code gives
// and a message that does not repeat the error:
//
//   - codes.InvalidArgument when IDPrefix + scope + ":" + key is longer
//     than the Limiter's MaxIDBytes (ErrKeyTooLong). The key comes from the
//     client, so an over-long one is the client's error. The Limiter is
//     not called.
//   - codes.Internal when the KeyFunc fails or panics (ErrKey; the error of
//     a panic says "panicked", and wraps the panic's value when it is an
//     error): these are server bugs. The handler's own panics are not
//     recovered: they are the server's.
//   - codes.Canceled or codes.DeadlineExceeded when the call's context
//     ended during the check.
//   - codes.Unavailable for every backend error: the backend is down and
//     the Limiter fails closed, or it is misconfigured.
//
// Apart from the panics of the handler, which they do not cause, the
// interceptors do not panic.
//
// # go-grpc-middleware
//
// MiddlewareLimiter adapts the Interceptors to the Limiter interface of
// go-grpc-middleware v2's ratelimit package, with the limits noted there.
package hammergrpc
