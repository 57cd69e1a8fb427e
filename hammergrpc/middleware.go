package hammergrpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MiddlewareLimiter adapts Interceptors to the Limiter interface of the
// ratelimit package of go-grpc-middleware v2
// (github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit),
// for servers that already chain that package's interceptors:
//
//	lim := ic.MiddlewareLimiter()
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(ratelimit.UnaryServerInterceptor(lim)),
//		grpc.ChainStreamInterceptor(ratelimit.StreamServerInterceptor(lim)),
//	)
//
// The checks, keys, rules and metadata are those of the Interceptors, but
// that package answers every error of Limit with codes.ResourceExhausted
// and the error's text: a denial has no RetryInfo detail (its message and
// the retry-after metadata still say the wait), and a failed check is
// ResourceExhausted too, whatever the error handler returned. Prefer
// UnaryServerInterceptor and StreamServerInterceptor where that matters.
// Use it on servers only: that package's client interceptors would charge
// the default rules.
type MiddlewareLimiter struct {
	ic *Interceptors
}

// MiddlewareLimiter returns the adapter of ic to go-grpc-middleware's
// ratelimit.Limiter.
func (ic *Interceptors) MiddlewareLimiter() MiddlewareLimiter {
	return MiddlewareLimiter{ic: ic}
}

// Limit checks the call of ctx, whose method grpc.Method(ctx) gives (the
// default rules apply where it gives none), and sends its metadata with
// grpc.SetHeader. It returns nil to let the call go on, an error wrapping
// ErrLimited that says the wait when the call is denied, or the error
// handler's answer when the check failed. The zero MiddlewareLimiter
// fails every call, as codes.Internal.
func (m MiddlewareLimiter) Limit(ctx context.Context) error {
	method, _ := grpc.Method(ctx)
	setHeader := func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }
	return m.ic.admit(ctx, method, setHeader, limitedError)
}
