package hammergrpc_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/go-hammer/hammer/internal/hammertest"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The methods of the health service, the service under test.
const (
	checkMethod = healthpb.Health_Check_FullMethodName
	listMethod  = healthpb.Health_List_FullMethodName
	watchMethod = healthpb.Health_Watch_FullMethodName
)

// windowStart, clock and newLimiter: a Limiter over a fresh miniredis,
// on a settable clock (see hammertest).
var windowStart = hammertest.WindowStart

type clock = hammertest.Clock

func newLimiter(t *testing.T, opts ...hammer.Option) (*hammer.Limiter, *miniredis.Miniredis, *clock) {
	t.Helper()
	return hammertest.NewLimiter(t, opts...)
}

// serve starts a gRPC server with the health service on 127.0.0.1:0,
// with opts, and returns its address. The server stops at the end of the
// test.
func serve(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String()
}

// serveWith starts a server with the interceptors of ic.
func serveWith(t *testing.T, ic *hammergrpc.Interceptors) string {
	t.Helper()
	return serve(t,
		grpc.ChainUnaryInterceptor(ic.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(ic.StreamServerInterceptor()))
}

// newInterceptors is New that must succeed.
func newInterceptors(t *testing.T, l *hammer.Limiter, opts ...hammergrpc.Option) *hammergrpc.Interceptors {
	t.Helper()
	ic, err := hammergrpc.New(l, opts...)
	require.NoError(t, err)
	return ic
}

// dial returns a health client of the server at addr, from the local
// address from ("" lets the kernel choose).
func dial(t *testing.T, addr, from string) healthpb.HealthClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if from != "" {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			return d.DialContext(ctx, "tcp", a)
		}))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// result is what a client saw of one call.
type result struct {
	code   codes.Code
	st     *status.Status
	header metadata.MD
}

// retryDelay returns the delay of the RetryInfo detail of r's status, and
// whether there is one.
func (r result) retryDelay() (time.Duration, bool) {
	for _, d := range r.st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			return info.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// remaining returns the r parameter of the single item of the RateLimit
// metadata of r.
func (r result) remaining(t *testing.T) int64 {
	t.Helper()
	items := parseList(t, first(t, r.header, hammergrpc.MetadataRateLimit))
	require.Len(t, items, 1)
	return items[0].param(t, "r")
}

// call makes one unary call of method (Check or List) with the metadata
// pairs kv.
func call(t *testing.T, c healthpb.HealthClient, method string, kv ...string) result {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(t.Context(), kv...)
	var header metadata.MD
	var err error
	switch method {
	case checkMethod:
		_, err = c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
	case listMethod:
		_, err = c.List(ctx, &healthpb.HealthListRequest{}, grpc.Header(&header))
	default:
		t.Fatalf("no unary method %s", method)
	}
	st, _ := status.FromError(err)
	return result{code: st.Code(), st: st, header: header}
}

// watch starts a Watch stream, reads its first message, and ends it.
func watch(t *testing.T, c healthpb.HealthClient, kv ...string) result {
	t.Helper()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), kv...))
	defer cancel()
	stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = stream.Recv()
	header, herr := stream.Header()
	require.NoError(t, herr)
	st, _ := status.FromError(err)
	return result{code: st.Code(), st: st, header: header}
}

// first returns the only value of key in md, "" when it has none, and
// fails when it has several.
func first(t *testing.T, md metadata.MD, key string) string {
	t.Helper()
	v := md.Get(key)
	require.LessOrEqual(t, len(v), 1, "values of %s: %q", key, v)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// sfItem is an item of an RFC 9651 List whose bare items are Strings and
// whose parameters are Integers, as the RateLimit fields are.
type sfItem struct {
	name   string
	params map[string]int64
}

func (it sfItem) param(t *testing.T, key string) int64 {
	t.Helper()
	v, ok := it.params[key]
	require.True(t, ok, "no parameter %s in item %q", key, it.name)
	return v
}

// parseList parses s, a List of Strings with Integer parameters
// (RFC 9651, 4.2.1), and fails the test on anything else.
func parseList(t *testing.T, s string) []sfItem {
	t.Helper()
	var items []sfItem
	i := 0
	for {
		require.Less(t, i, len(s), "list %q ends early", s)
		require.Equal(t, byte('"'), s[i], "item of %q at %d is not a String", s, i)
		var name []byte
		for i++; ; i++ {
			require.Less(t, i, len(s), "unterminated String in %q", s)
			if s[i] == '\\' {
				i++
				require.Less(t, i, len(s))
				require.Contains(t, `"\`, string(s[i]), "bad escape in %q", s)
			} else if s[i] == '"' {
				i++
				break
			}
			name = append(name, s[i])
		}
		it := sfItem{name: string(name), params: map[string]int64{}}
		for i < len(s) && s[i] == ';' {
			j := i + 1
			for j < len(s) && s[j] != '=' {
				j++
			}
			key := s[i+1 : j]
			require.Less(t, j, len(s), "parameter %q of %q has no value", key, s)
			k := j + 1
			for k < len(s) && (s[k] == '-' || '0' <= s[k] && s[k] <= '9') {
				k++
			}
			n, err := strconv.ParseInt(s[j+1:k], 10, 64)
			require.NoError(t, err, "parameter %q of %q", key, s)
			it.params[key] = n
			i = k
		}
		items = append(items, it)
		if i == len(s) {
			return items
		}
		require.True(t, len(s) > i+2 && s[i:i+2] == ", ", "no \", \" after an item of %q at %d", s, i)
		i += 2
	}
}
