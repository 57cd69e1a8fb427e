package hammergrpc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/go-hammer/hammer/rlheader"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAllowedThenDenied(t *testing.T) {
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(20_250 * time.Millisecond)) // 39.75s before the minute ends
	rule := hammer.FixedWindow(time.Minute, 3)
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(rule))), "")
	name := rlheader.DefaultName(rule)

	for i, want := range []int64{2, 1, 0} {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.OK, r.code, "call %d: %v", i+1, r.st)
		policy := parseList(t, first(t, r.header, hammergrpc.MetadataPolicy))
		require.Len(t, policy, 1)
		assert.Equal(t, name, policy[0].name)
		assert.Equal(t, int64(3), policy[0].param(t, "q"))
		assert.Equal(t, int64(60), policy[0].param(t, "w"))
		rl := parseList(t, first(t, r.header, hammergrpc.MetadataRateLimit))
		require.Len(t, rl, 1)
		assert.Equal(t, name, rl[0].name)
		assert.Equal(t, want, rl[0].param(t, "r"), "call %d", i+1)
		assert.Empty(t, first(t, r.header, hammergrpc.MetadataRetryAfter), "an allowed call has no retry-after")
	}
	for i := 0; i < 2; i++ {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.ResourceExhausted, r.code, "call %d", 4+i)
		delay, ok := r.retryDelay()
		require.True(t, ok, "no RetryInfo in %v", r.st.Proto())
		assert.Equal(t, 39_750*time.Millisecond, delay, "the wait until the window ends")
		assert.Equal(t, "rate limit exceeded, retry after 39.75s", r.st.Message())
		assert.Equal(t, "40", first(t, r.header, hammergrpc.MetadataRetryAfter))
		rl := parseList(t, first(t, r.header, hammergrpc.MetadataRateLimit))
		require.Len(t, rl, 1)
		assert.Equal(t, int64(0), rl[0].param(t, "r"))
		assert.Equal(t, int64(40), rl[0].param(t, "t"))
		assert.NotEmpty(t, first(t, r.header, hammergrpc.MetadataPolicy))
	}

	// The wait given is enough, and 1ms less is not.
	c.Add(39_749 * time.Millisecond)
	assert.Equal(t, codes.ResourceExhausted, call(t, client, checkMethod).code)
	c.Add(time.Millisecond)
	r := call(t, client, checkMethod)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, int64(2), r.remaining(t))
}

// TestRetryInfoRoundsUp checks a wait that is not a whole number of
// milliseconds: a token of TokenBucket(7, 1s, 2) comes back in 1/7 s,
// 142.857...ms, and RetryInfo says 143ms, never less: 142ms is not enough.
func TestRetryInfoRoundsUp(t *testing.T) {
	l, _, c := newLimiter(t)
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(hammer.TokenBucket(7, time.Second, 2)))), "")
	for i := 0; i < 2; i++ {
		require.Equal(t, codes.OK, call(t, client, checkMethod).code)
	}
	r := call(t, client, checkMethod)
	require.Equal(t, codes.ResourceExhausted, r.code)
	delay, ok := r.retryDelay()
	require.True(t, ok)
	assert.Equal(t, 143*time.Millisecond, delay)
	assert.Equal(t, "1", first(t, r.header, hammergrpc.MetadataRetryAfter))

	c.Add(142 * time.Millisecond) // 0.994 of a token
	assert.Equal(t, codes.ResourceExhausted, call(t, client, checkMethod).code)
	c.Add(time.Millisecond)
	assert.Equal(t, codes.OK, call(t, client, checkMethod).code)
}

func TestStreamAllowedThenDenied(t *testing.T) {
	l, _, c := newLimiter(t)
	c.Set(windowStart.Add(30 * time.Second))
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 2)))), "")
	for i, want := range []int64{1, 0} {
		r := watch(t, client)
		require.Equal(t, codes.OK, r.code, "stream %d: %v", i+1, r.st)
		assert.Equal(t, want, r.remaining(t))
	}
	r := watch(t, client)
	require.Equal(t, codes.ResourceExhausted, r.code)
	delay, ok := r.retryDelay()
	require.True(t, ok)
	assert.Equal(t, 30*time.Second, delay)
	assert.Equal(t, "30", first(t, r.header, hammergrpc.MetadataRetryAfter))
	assert.Equal(t, int64(0), r.remaining(t))
}

// TestSeveralRules charges two named rules, all or nothing: the call the
// token bucket denies is not charged to the window.
func TestSeveralRules(t *testing.T) {
	l, _, c := newLimiter(t)
	ic := newInterceptors(t, l, hammergrpc.WithDefaultPolicies(
		rlheader.Policy{Name: "burst", Rule: hammer.TokenBucket(1, time.Second, 2)},
		rlheader.Policy{Name: "minute", Rule: hammer.FixedWindow(time.Minute, 5)},
	))
	client := dial(t, serveWith(t, ic), "")

	items := func(r result) map[string]sfItem {
		out := map[string]sfItem{}
		for _, it := range parseList(t, first(t, r.header, hammergrpc.MetadataRateLimit)) {
			out[it.name] = it
		}
		return out
	}
	r := call(t, client, checkMethod)
	require.Equal(t, codes.OK, r.code)
	policy := parseList(t, first(t, r.header, hammergrpc.MetadataPolicy))
	require.Len(t, policy, 2)
	assert.Equal(t, "burst", policy[0].name)
	assert.Equal(t, int64(2), policy[0].param(t, "q"))
	assert.Equal(t, "minute", policy[1].name)
	assert.Equal(t, int64(5), policy[1].param(t, "q"))
	assert.Equal(t, int64(1), items(r)["burst"].param(t, "r"))
	assert.Equal(t, int64(4), items(r)["minute"].param(t, "r"))

	require.Equal(t, codes.OK, call(t, client, checkMethod).code)
	r = call(t, client, checkMethod)
	require.Equal(t, codes.ResourceExhausted, r.code)
	delay, _ := r.retryDelay()
	assert.Equal(t, time.Second, delay)
	assert.Equal(t, int64(0), items(r)["burst"].param(t, "r"))
	assert.Equal(t, int64(3), items(r)["minute"].param(t, "r"), "the denied call charged the window")

	c.Add(time.Second)
	r = call(t, client, checkMethod)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, int64(2), items(r)["minute"].param(t, "r"), "3 calls allowed of 5")
}

func TestPerMethodRules(t *testing.T) {
	l, _, _ := newLimiter(t)
	rule := hammer.FixedWindow(time.Minute, 2)
	ic := newInterceptors(t, l,
		hammergrpc.WithDefault(rule),
		hammergrpc.WithMethod(listMethod, rule), // the same rule, counted apart
	)
	client := dial(t, serveWith(t, ic), "")

	for i := 0; i < 2; i++ {
		require.Equal(t, codes.OK, call(t, client, listMethod).code)
	}
	require.Equal(t, codes.ResourceExhausted, call(t, client, listMethod).code)

	// Check and Watch share the default rules: one budget.
	require.Equal(t, codes.OK, call(t, client, checkMethod).code)
	require.Equal(t, codes.OK, watch(t, client).code)
	assert.Equal(t, codes.ResourceExhausted, call(t, client, checkMethod).code)
	assert.Equal(t, codes.ResourceExhausted, watch(t, client).code)
}

func TestUnlimitedMethods(t *testing.T) {
	l, m, _ := newLimiter(t)
	ic := newInterceptors(t, l,
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1)),
		hammergrpc.WithUnlimited(checkMethod),
	)
	client := dial(t, serveWith(t, ic), "")
	for i := 0; i < 5; i++ {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.OK, r.code)
		assert.Empty(t, r.header.Get(hammergrpc.MetadataRateLimit))
		assert.Empty(t, r.header.Get(hammergrpc.MetadataPolicy))
	}
	assert.Empty(t, m.Keys(), "an unlimited method is not counted")
	require.Equal(t, codes.OK, watch(t, client).code)
	assert.Equal(t, codes.ResourceExhausted, watch(t, client).code)
}

func TestMethodsNotListedWithoutDefault(t *testing.T) {
	l, m, _ := newLimiter(t)
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithMethod(listMethod, hammer.FixedWindow(time.Minute, 1)))), "")
	for i := 0; i < 3; i++ {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.OK, r.code)
		assert.Empty(t, r.header.Get(hammergrpc.MetadataRateLimit))
	}
	assert.Empty(t, m.Keys())
	require.Equal(t, codes.OK, call(t, client, listMethod).code)
	assert.Equal(t, codes.ResourceExhausted, call(t, client, listMethod).code)
}

// TestIDs checks the documented ids, with which a service can Peek or
// DeleteBuckets a client's state.
func TestIDs(t *testing.T) {
	l, _, _ := newLimiter(t)
	def := hammer.FixedWindow(time.Minute, 5)
	list := hammer.TokenBucket(1, time.Second, 3)
	client := dial(t, serveWith(t, newInterceptors(t, l,
		hammergrpc.WithIDPrefix("api:"), hammergrpc.WithDefault(def), hammergrpc.WithMethod(listMethod, list))), "")
	require.Equal(t, codes.OK, call(t, client, checkMethod).code)
	require.Equal(t, codes.OK, call(t, client, listMethod).code)
	require.Equal(t, codes.OK, call(t, client, listMethod).code)

	// Peek reports what one more call would leave.
	ctx := t.Context()
	d, err := l.Peek(ctx, "api:*:127.0.0.1", def)
	require.NoError(t, err)
	assert.Equal(t, int64(3), d.Remaining)
	d, err = l.Peek(ctx, "api:"+listMethod+":127.0.0.1", list)
	require.NoError(t, err)
	assert.Equal(t, int64(0), d.Remaining)

	_, err = l.DeleteBuckets(ctx, "api:"+listMethod+":127.0.0.1")
	require.NoError(t, err)
	r := call(t, client, listMethod)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, int64(2), r.remaining(t), "a fresh bucket after DeleteBuckets")
}

func TestByPeer(t *testing.T) {
	l, _, _ := newLimiter(t)
	addr := serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 2))))
	a, b := dial(t, addr, "127.0.0.1"), dial(t, addr, "127.0.0.2")
	for i := 0; i < 2; i++ {
		require.Equal(t, codes.OK, call(t, a, checkMethod).code)
	}
	require.Equal(t, codes.ResourceExhausted, call(t, a, checkMethod).code)
	r := call(t, b, checkMethod)
	require.Equal(t, codes.OK, r.code, "another peer has its own budget: %v", r.st)
	assert.Equal(t, int64(1), r.remaining(t))

	// A second connection from the same address shares the first's budget:
	// the port is not part of the key.
	assert.Equal(t, codes.ResourceExhausted, call(t, dial(t, addr, "127.0.0.1"), checkMethod).code)
}

func TestByMetadata(t *testing.T) {
	l, m, _ := newLimiter(t)
	ic := newInterceptors(t, l,
		hammergrpc.WithKey(hammergrpc.ByMetadata("X-API-Key")), // keys are not case-sensitive
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1)))
	client := dial(t, serveWith(t, ic), "")

	require.Equal(t, codes.OK, call(t, client, checkMethod, "x-api-key", "alice").code)
	require.Equal(t, codes.ResourceExhausted, call(t, client, checkMethod, "x-api-key", "alice").code)
	require.Equal(t, codes.OK, call(t, client, checkMethod, "x-api-key", "bob").code)
	// The first value is the key.
	assert.Equal(t, codes.ResourceExhausted, call(t, client, checkMethod, "x-api-key", "bob", "x-api-key", "carol").code)

	// Without the key, or with it empty, a call is not limited.
	keys := len(m.Keys())
	for _, kv := range [][]string{nil, {"x-api-key", ""}} {
		for i := 0; i < 3; i++ {
			r := call(t, client, checkMethod, kv...)
			require.Equal(t, codes.OK, r.code)
			assert.Empty(t, r.header.Get(hammergrpc.MetadataRateLimit))
		}
	}
	assert.Len(t, m.Keys(), keys, "nothing counted without a key")
}

func TestByMetadataInvalidName(t *testing.T) {
	for _, name := range []string{"", "x api key", "x-api-key\n", "ключ"} {
		k, err := hammergrpc.ByMetadata(name)(t.Context(), checkMethod)
		assert.Empty(t, k)
		assert.Error(t, err, "%q", name)
	}

	l, _, _ := newLimiter(t)
	client := dial(t, serveWith(t, newInterceptors(t, l,
		hammergrpc.WithKey(hammergrpc.ByMetadata("x api key")), hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1)))), "")
	assert.Equal(t, codes.Internal, call(t, client, checkMethod).code, "a typo is not let through unlimited")
}

func TestByMethod(t *testing.T) {
	l, _, _ := newLimiter(t)
	addr := serveWith(t, newInterceptors(t, l,
		hammergrpc.WithKey(hammergrpc.ByMethod()), hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 2))))
	a, b := dial(t, addr, "127.0.0.1"), dial(t, addr, "127.0.0.2")
	require.Equal(t, codes.OK, call(t, a, checkMethod).code)
	require.Equal(t, codes.OK, call(t, b, checkMethod).code)
	assert.Equal(t, codes.ResourceExhausted, call(t, a, checkMethod).code, "every client shares a method's budget")
	assert.Equal(t, codes.ResourceExhausted, call(t, b, checkMethod).code)
	assert.Equal(t, codes.OK, call(t, a, listMethod).code, "another method has its own key")
}

// TestConcurrentCallers sends 50 calls at once against a limit of 20:
// exactly 20 pass, and each is told a different remaining count.
func TestConcurrentCallers(t *testing.T) {
	const callers, limit = 50, 20
	rule := hammer.FixedWindow(time.Minute, limit)
	l, _, _ := newLimiter(t)
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(rule))), "")

	results := make([]result, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			results[i] = call(t, client, checkMethod)
		})
	}
	close(start)
	wg.Wait()

	seen := map[int64]int{}
	denied := 0
	for _, r := range results {
		switch r.code {
		case codes.OK:
			seen[r.remaining(t)]++
		case codes.ResourceExhausted:
			denied++
		default:
			t.Fatalf("unexpected %v", r.st)
		}
	}
	assert.Equal(t, callers-limit, denied)
	require.Len(t, seen, limit, "remaining counts told: %v", seen)
	for r := range int64(limit) {
		assert.Equal(t, 1, seen[r], "remaining %d told %d times", r, seen[r])
	}
	d, err := l.Peek(t.Context(), "*:127.0.0.1", rule)
	require.NoError(t, err)
	assert.Equal(t, int64(0), d.Remaining)
	assert.False(t, d.Allowed)
}

func TestBackendDown(t *testing.T) {
	rule := hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1))
	t.Run("fail closed", func(t *testing.T) {
		l, m, _ := newLimiter(t)
		client := dial(t, serveWith(t, newInterceptors(t, l, rule)), "")
		m.Close()
		for _, r := range []result{call(t, client, checkMethod), watch(t, client)} {
			assert.Equal(t, codes.Unavailable, r.code, "%v", r.st)
			assert.Equal(t, "rate limiter unavailable", r.st.Message(), "no backend address for the client")
			assert.Empty(t, r.header.Get(hammergrpc.MetadataRateLimit))
		}
	})
	t.Run("fail open", func(t *testing.T) {
		l, m, _ := newLimiter(t, hammer.WithFailurePolicy(hammer.FailOpen))
		client := dial(t, serveWith(t, newInterceptors(t, l, rule)), "")
		m.Close()
		for i := 0; i < 3; i++ { // over the limit of 1: nothing is counted
			for _, r := range []result{call(t, client, checkMethod), watch(t, client)} {
				assert.Equal(t, codes.OK, r.code, "%v", r.st)
				assert.Empty(t, r.header.Get(hammergrpc.MetadataRateLimit), "no metadata when nothing was counted")
			}
		}
	})
}

func TestShadow(t *testing.T) {
	l, _, _ := newLimiter(t, hammer.WithShadow())
	client := dial(t, serveWith(t, newInterceptors(t, l, hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1)))), "")
	for i := 0; i < 3; i++ {
		r := call(t, client, checkMethod)
		require.Equal(t, codes.OK, r.code, "call %d", i+1)
		assert.Equal(t, int64(0), r.remaining(t), "the metadata is the would-be decision's")
		assert.Empty(t, first(t, r.header, hammergrpc.MetadataRetryAfter), "a passed call has no retry-after")
	}
	r := watch(t, client)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, int64(0), r.remaining(t))
}

// panicKey panics with the value of the metadata "panic" when there is
// one, and otherwise keys by peer.
func panicKey(ctx context.Context, method string) (string, error) {
	k, _ := hammergrpc.ByMetadata("panic")(ctx, method)
	switch k {
	case "":
		return hammergrpc.ByPeer()(ctx, method)
	case "error":
		panic(errBoom)
	case "nil":
		panic(nil)
	}
	panic(k)
}

var errBoom = errors.New("boom")

func TestKeyFuncPanics(t *testing.T) {
	l, _, _ := newLimiter(t)
	var mu sync.Mutex
	var got []error
	ic := newInterceptors(t, l,
		hammergrpc.WithKey(panicKey),
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 10)),
		hammergrpc.WithErrorHandler(func(ctx context.Context, method string, err error) error {
			mu.Lock()
			got = append(got, err)
			mu.Unlock()
			return hammergrpc.DefaultErrorHandler(ctx, method, err)
		}))
	client := dial(t, serveWith(t, ic), "")

	for _, v := range []string{"error", "nil", "text"} {
		r := call(t, client, checkMethod, "panic", v)
		assert.Equal(t, codes.Internal, r.code, v)
		assert.Equal(t, "rate limit check failed", r.st.Message(), "the panic is not sent to the client")
		assert.Equal(t, codes.Internal, watch(t, client, "panic", v).code, v)
	}
	// The server survived.
	r := call(t, client, checkMethod)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, int64(9), r.remaining(t))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 6)
	for _, err := range got {
		assert.ErrorIs(t, err, hammergrpc.ErrKey)
		assert.Contains(t, err.Error(), "panicked")
	}
	assert.ErrorIs(t, got[0], errBoom, "a panic's error is wrapped")
}

func TestKeyFuncError(t *testing.T) {
	l, _, _ := newLimiter(t)
	ic := newInterceptors(t, l,
		hammergrpc.WithKey(func(context.Context, string) (string, error) { return "", errBoom }),
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 10)))
	client := dial(t, serveWith(t, ic), "")
	assert.Equal(t, codes.Internal, call(t, client, checkMethod).code)
	assert.Equal(t, codes.Internal, watch(t, client).code)
}

func TestKeyTooLong(t *testing.T) {
	l, m, _ := newLimiter(t)
	ic := newInterceptors(t, l,
		hammergrpc.WithKey(hammergrpc.ByMetadata("x-api-key")),
		hammergrpc.WithIDPrefix("p:"),
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 10)))
	client := dial(t, serveWith(t, ic), "")
	room := l.MaxIDBytes() - len("p:*:")

	r := call(t, client, checkMethod, "x-api-key", strings.Repeat("k", room))
	require.Equal(t, codes.OK, r.code, "the longest key accepted: %v", r.st)
	keys := len(m.Keys())
	r = call(t, client, checkMethod, "x-api-key", strings.Repeat("k", room+1))
	assert.Equal(t, codes.InvalidArgument, r.code)
	assert.Equal(t, "rate limit key too long", r.st.Message())
	assert.Len(t, m.Keys(), keys, "the Limiter was not called")
}

func TestErrorHandler(t *testing.T) {
	l, m, _ := newLimiter(t)
	var handled []error
	ic := newInterceptors(t, l,
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 1)),
		hammergrpc.WithErrorHandler(func(_ context.Context, method string, err error) error {
			handled = append(handled, err) // the calls below are sequential
			if method == checkMethod {
				return nil // let Check through while the backend is down
			}
			return status.Error(codes.Aborted, "try elsewhere")
		}))
	client := dial(t, serveWith(t, ic), "")
	m.Close()
	assert.Equal(t, codes.OK, call(t, client, checkMethod).code)
	r := watch(t, client)
	assert.Equal(t, codes.Aborted, r.code)
	assert.Equal(t, "try elsewhere", r.st.Message())
	require.Len(t, handled, 2)
	for _, err := range handled {
		assert.ErrorIs(t, err, hammer.ErrUnavailable)
		assert.Equal(t, codes.Unavailable, hammergrpc.Code(err))
	}
}

func TestNew(t *testing.T) {
	l, _, _ := newLimiter(t)
	rule := hammer.FixedWindow(time.Minute, 10)
	cases := []struct {
		name   string
		l      *hammer.Limiter
		opts   []hammergrpc.Option
		alsoIs error
	}{
		{"nil Limiter", nil, []hammergrpc.Option{hammergrpc.WithDefault(rule)}, nil},
		{"no options", l, nil, nil},
		{"only unlimited", l, []hammergrpc.Option{hammergrpc.WithUnlimited(checkMethod)}, nil},
		{"no default rules", l, []hammergrpc.Option{hammergrpc.WithDefault()}, nil},
		{"no method rules", l, []hammergrpc.Option{hammergrpc.WithMethod(checkMethod)}, nil},
		{"zero rule", l, []hammergrpc.Option{hammergrpc.WithDefault(hammer.Rule{})}, hammer.ErrInvalidArgument},
		{"invalid rule", l, []hammergrpc.Option{hammergrpc.WithMethod(checkMethod, hammer.FixedWindow(time.Microsecond, 1))}, hammer.ErrInvalidArgument},
		{"rule twice", l, []hammergrpc.Option{hammergrpc.WithDefault(rule, rule)}, nil},
		{"names twice", l, []hammergrpc.Option{hammergrpc.WithDefaultPolicies(
			rlheader.Policy{Name: "a", Rule: rule}, rlheader.Policy{Name: "a", Rule: hammer.FixedWindow(time.Second, 1)})}, rlheader.ErrInvalidPolicy},
		{"name not printable", l, []hammergrpc.Option{hammergrpc.WithDefaultPolicies(rlheader.Policy{Name: "a\nb", Rule: rule})}, rlheader.ErrInvalidPolicy},
		{"default twice", l, []hammergrpc.Option{hammergrpc.WithDefault(rule), hammergrpc.WithDefault(rule)}, nil},
		{"method twice", l, []hammergrpc.Option{hammergrpc.WithMethod(checkMethod, rule), hammergrpc.WithUnlimited(checkMethod)}, nil},
		{"method without slash", l, []hammergrpc.Option{hammergrpc.WithMethod("grpc.health.v1.Health/Check", rule)}, nil},
		{"method without service", l, []hammergrpc.Option{hammergrpc.WithMethod("//Check", rule)}, nil},
		{"method without method", l, []hammergrpc.Option{hammergrpc.WithMethod("/grpc.health.v1.Health/", rule)}, nil},
		{"method with three parts", l, []hammergrpc.Option{hammergrpc.WithMethod("/a/b/c", rule)}, nil},
		{"method with a colon", l, []hammergrpc.Option{hammergrpc.WithMethod("/a:b/c", rule)}, nil},
		{"method with a space", l, []hammergrpc.Option{hammergrpc.WithUnlimited("/a b/c")}, nil},
		{"prefix too long", l, []hammergrpc.Option{hammergrpc.WithIDPrefix(strings.Repeat("p", l.MaxIDBytes()-2)), hammergrpc.WithDefault(rule)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ic, err := hammergrpc.New(tc.l, tc.opts...)
			assert.Nil(t, ic)
			require.ErrorIs(t, err, hammergrpc.ErrInvalidConfig)
			if tc.alsoIs != nil {
				assert.ErrorIs(t, err, tc.alsoIs)
			}
		})
	}

	// At the edges: the longest prefix that leaves a byte for the key, nil
	// options, a nil KeyFunc and a nil ErrorHandler (the defaults stay).
	_, err := hammergrpc.New(l, nil, hammergrpc.WithKey(nil), hammergrpc.WithErrorHandler(nil),
		hammergrpc.WithIDPrefix(strings.Repeat("p", l.MaxIDBytes()-3)), hammergrpc.WithDefault(rule))
	assert.NoError(t, err)
}

// TestNewKeepsNoCallerSlice changes the caller's slices after the options
// are made and after New: the interceptors do not see it.
func TestNewKeepsNoCallerSlice(t *testing.T) {
	l, _, _ := newLimiter(t)
	policies := []rlheader.Policy{{Name: "a", Rule: hammer.FixedWindow(time.Minute, 1)}}
	methods := []string{checkMethod}
	unlimited := hammergrpc.WithUnlimited(methods...)
	methods[0] = listMethod
	ic := newInterceptors(t, l, hammergrpc.WithDefaultPolicies(policies...), unlimited)
	policies[0] = rlheader.Policy{Name: "b", Rule: hammer.FixedWindow(time.Minute, 100)}
	client := dial(t, serveWith(t, ic), "")
	assert.Equal(t, codes.OK, call(t, client, checkMethod).code)
	assert.Equal(t, codes.OK, call(t, client, checkMethod).code, "Check is still unlimited")
	r := call(t, client, listMethod)
	require.Equal(t, codes.OK, r.code)
	assert.Equal(t, `"a";r=0;t=60`, first(t, r.header, hammergrpc.MetadataRateLimit))
	assert.Equal(t, codes.ResourceExhausted, call(t, client, listMethod).code, "the limit is still 1")
}

func TestCode(t *testing.T) {
	cases := []struct {
		err  error
		want codes.Code
	}{
		{hammergrpc.ErrKeyTooLong, codes.InvalidArgument},
		{errors.Join(errBoom, hammergrpc.ErrKey), codes.Internal},
		{hammergrpc.ErrInvalidConfig, codes.Internal},
		{hammer.ErrInvalidArgument, codes.Internal},
		{hammer.ErrNoRuleBackend, codes.Internal},
		{context.Canceled, codes.Canceled},
		{errors.Join(hammer.ErrUnavailable, context.DeadlineExceeded), codes.DeadlineExceeded},
		{hammer.ErrUnavailable, codes.Unavailable},
		{hammer.ErrMisconfigured, codes.Unavailable},
		{errBoom, codes.Unavailable},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, hammergrpc.Code(tc.err), "%v", tc.err)
		st, ok := status.FromError(hammergrpc.DefaultErrorHandler(t.Context(), checkMethod, tc.err))
		require.True(t, ok)
		assert.Equal(t, tc.want, st.Code(), "%v", tc.err)
		assert.NotContains(t, st.Message(), errBoom.Error(), "the error is not sent")
	}
}

// TestZeroInterceptors uses Interceptors not made by New: every call fails
// with codes.Internal, and nothing panics.
func TestZeroInterceptors(t *testing.T) {
	for _, ic := range []*hammergrpc.Interceptors{nil, {}} {
		_, err := ic.UnaryServerInterceptor()(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: checkMethod},
			func(context.Context, any) (any, error) { return nil, nil })
		assert.Equal(t, codes.Internal, status.Code(err))
		assert.Equal(t, codes.Internal, status.Code(ic.MiddlewareLimiter().Limit(t.Context())))
	}
	assert.Equal(t, codes.Internal, status.Code(hammergrpc.MiddlewareLimiter{}.Limit(t.Context())))
}
