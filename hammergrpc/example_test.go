package hammergrpc_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/go-hammer/hammer/rlheader"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func ExampleNew() {
	m, err := miniredis.Run() // a real service gives its cluster's seed nodes
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{ExpiryMs: 60 * 60 * 1000, InitServers: []string{m.Addr()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	// A fixed clock, 20s into a minute, for a stable output.
	now := time.Date(2026, 1, 1, 12, 0, 20, 0, time.UTC)
	limiter := hammer.New(backend, hammer.WithClock(func() time.Time { return now }))

	// Two calls a minute per client IP for List, named "list" in the
	// metadata; Check is not limited.
	ic, err := hammergrpc.New(limiter,
		hammergrpc.WithMethodPolicies(healthpb.Health_List_FullMethodName,
			rlheader.Policy{Name: "list", Rule: hammer.FixedWindow(time.Minute, 2)}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(ic.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(ic.StreamServerInterceptor()),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	for i := 0; i < 3; i++ {
		var header metadata.MD
		_, err := client.List(context.Background(), &healthpb.HealthListRequest{}, grpc.Header(&header))
		st := status.Convert(err)
		if i == 0 {
			fmt.Println("ratelimit-policy:", header.Get("ratelimit-policy"))
		}
		fmt.Println(st.Code(), "ratelimit:", header.Get("ratelimit"), "retry-after:", header.Get("retry-after"))
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.RetryInfo); ok {
				fmt.Println("  RetryInfo:", info.GetRetryDelay().AsDuration())
			}
		}
	}
	_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println("Check:", status.Code(err))
	// Output:
	// ratelimit-policy: ["list";q=2;w=60]
	// OK ratelimit: ["list";r=1;t=40] retry-after: []
	// OK ratelimit: ["list";r=0;t=40] retry-after: []
	// ResourceExhausted ratelimit: ["list";r=0;t=40] retry-after: [40]
	//   RetryInfo: 40s
	// Check: OK
}

func ExampleInterceptors_MiddlewareLimiter() {
	m, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{ExpiryMs: 60 * 60 * 1000, InitServers: []string{m.Addr()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	limiter := hammer.New(backend, hammer.WithClock(func() time.Time { return now }))

	// One call a second per value of the metadata key "tenant", through the
	// interceptors of go-grpc-middleware.
	ic, err := hammergrpc.New(limiter,
		hammergrpc.WithKey(hammergrpc.ByMetadata("tenant")),
		hammergrpc.WithDefault(hammer.TokenBucket(1, time.Second, 1)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(ratelimit.UnaryServerInterceptor(ic.MiddlewareLimiter())))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	for _, tenant := range []string{"a", "a", "b"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "tenant", tenant)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			fmt.Printf("tenant %s: %v\n", tenant, err)
			continue
		}
		fmt.Printf("tenant %s: OK\n", tenant)
	}
	// Output:
	// tenant a: OK
	// tenant a: rpc error: code = ResourceExhausted desc = /grpc.health.v1.Health/Check is rejected by grpc_ratelimit middleware, please retry later. hammergrpc: rate limit exceeded, retry after 1s
	// tenant b: OK
}
