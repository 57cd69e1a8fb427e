package hammergrpc_test

import (
	"errors"
	"testing"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

var _ ratelimit.Limiter = hammergrpc.MiddlewareLimiter{}

// TestMiddlewareLimiter limits calls through the interceptors of
// go-grpc-middleware's ratelimit package.
func TestMiddlewareLimiter(t *testing.T) {
	l, m, c := newLimiter(t)
	c.Set(windowStart.Add(45 * time.Second))
	ic := newInterceptors(t, l,
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 2)),
		hammergrpc.WithMethod(listMethod, hammer.FixedWindow(time.Minute, 1)))
	lim := ic.MiddlewareLimiter()
	client := dial(t, serve(t,
		grpc.ChainUnaryInterceptor(ratelimit.UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(ratelimit.StreamServerInterceptor(lim))), "")

	for i, want := range []int64{1, 0} {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.OK, r.code, "call %d: %v", i+1, r.st)
		assert.Equal(t, want, r.remaining(t))
	}
	for _, r := range []result{call(t, client, checkMethod), watch(t, client)} {
		require.Equal(t, codes.ResourceExhausted, r.code)
		assert.Contains(t, r.st.Message(), "hammergrpc: rate limit exceeded, retry after 15s")
		assert.Equal(t, "15", first(t, r.header, hammergrpc.MetadataRetryAfter))
		assert.Equal(t, int64(0), r.remaining(t))
	}

	// The method's own rules apply: grpc.Method names it.
	require.Equal(t, codes.OK, call(t, client, listMethod).code)
	assert.Equal(t, codes.ResourceExhausted, call(t, client, listMethod).code)

	// A failed check is ResourceExhausted through that package, with the
	// error handler's message.
	m.Close()
	r := call(t, client, listMethod)
	assert.Equal(t, codes.ResourceExhausted, r.code)
	assert.Contains(t, r.st.Message(), "rate limiter unavailable")
}

// TestMiddlewareLimiterOutsideACall calls Limit with no server call in the
// context: the default rules apply, and the error of a denial wraps
// ErrLimited.
func TestMiddlewareLimiterOutsideACall(t *testing.T) {
	l, _, _ := newLimiter(t)
	lim := newInterceptors(t, l,
		hammergrpc.WithKey(hammergrpc.ByMetadata("tenant")),
		hammergrpc.WithDefault(hammer.TokenBucket(1, time.Second, 1))).MiddlewareLimiter()
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs("tenant", "t1"))
	require.NoError(t, lim.Limit(ctx))
	err := lim.Limit(ctx)
	require.ErrorIs(t, err, hammergrpc.ErrLimited)
	assert.Equal(t, "hammergrpc: rate limit exceeded, retry after 1s", err.Error())
	assert.NoError(t, lim.Limit(t.Context()), "no key, no limit")

	// A KeyFunc error is the error handler's answer.
	lim = newInterceptors(t, l, hammergrpc.WithDefault(hammer.TokenBucket(1, time.Second, 1))).MiddlewareLimiter()
	err = lim.Limit(peer.NewContext(t.Context(), &peer.Peer{}))
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.False(t, errors.Is(err, hammergrpc.ErrLimited))
}
