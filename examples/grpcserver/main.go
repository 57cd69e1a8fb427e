// Command grpcserver shows hammer limiting a gRPC server with the
// hammergrpc interceptors. It starts the standard health service on
// 127.0.0.1:0, makes a few calls to it as a client, prints what each call
// was answered, rate limit metadata included, and exits.
//
// With REDIS_CLUSTER_ADDRS unset it counts in an embedded miniredis, so it
// needs no setup:
//
//	cd examples/grpcserver && go run .
//
// With REDIS_CLUSTER_ADDRS set to comma-separated seed nodes it uses that
// Redis Cluster:
//
//	REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001 go run .
//
// The rules, per client IP:
//
//	Check, Watch  3 calls a minute, together (the default rules)
//	List          2 calls at once, then 1 a second (a token bucket named "list")
//
// It is a module of its own, like hammergrpc, so that the hammer module does
// not depend on gRPC.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/go-hammer/hammer/rlheader"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	log.SetFlags(0)
	seeds, where, err := seedNodes()
	if err != nil {
		log.Fatal(err)
	}
	// A fresh prefix for each run, so that the counts start afresh on a
	// shared cluster.
	prefix := fmt.Sprintf("run-%d:", time.Now().UnixNano())
	if err := run(os.Stdout, seeds, where, prefix, time.Now); err != nil {
		log.Fatal(err)
	}
}

// run serves the health service with limits on 127.0.0.1:0, calls it, and
// writes what it sees to w. The Limiter reads now.
func run(w io.Writer, seeds []string, where, idPrefix string, now func() time.Time) error {
	backend, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    10 * 60 * 1000, // a bucket lives 10 minutes after its latest hit
		InitServers: seeds,
		KeyPrefix:   "grpcserver:",
	})
	if err != nil {
		return err
	}
	defer backend.Close()
	limiter := hammer.New(backend, hammer.WithClock(now))

	// New checks the rules here, before the server listens.
	ic, err := hammergrpc.New(limiter,
		hammergrpc.WithIDPrefix(idPrefix),
		hammergrpc.WithDefault(hammer.FixedWindow(time.Minute, 3)),
		hammergrpc.WithMethodPolicies(healthpb.Health_List_FullMethodName,
			rlheader.Policy{Name: "list", Rule: hammer.TokenBucket(1, time.Second, 2)}),
	)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(ic.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(ic.StreamServerInterceptor()),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()
	fmt.Fprintf(w, "gRPC server on %s, backend: %s\n", ln.Addr(), where)

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	ctx := context.Background()

	fmt.Fprintln(w, "\nCheck, four times (3 a minute, shared with Watch):")
	for i := 1; i <= 4; i++ {
		var header metadata.MD
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
		report(w, fmt.Sprintf("Check #%d", i), err, header)
	}

	fmt.Fprintln(w, "\nList, three times (a token bucket of 2, refilled at 1 a second):")
	for i := 1; i <= 3; i++ {
		var header metadata.MD
		_, err := client.List(ctx, &healthpb.HealthListRequest{}, grpc.Header(&header))
		report(w, fmt.Sprintf("List #%d", i), err, header)
	}

	fmt.Fprintln(w, "\nWatch, a stream, checked when it starts (Check used the budget):")
	header, err := watchOnce(ctx, client)
	report(w, "Watch", err, header)
	return nil
}

// watchOnce starts a Watch stream, reads its first message, and ends it.
func watchOnce(ctx context.Context, client healthpb.HealthClient) (metadata.MD, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return nil, err
	}
	_, err = stream.Recv()
	header, herr := stream.Header()
	if herr != nil && err == nil {
		err = herr
	}
	return header, err
}

// report writes the outcome of a call: its code, its message when it
// failed, the rate limit metadata, and the RetryInfo of a denial.
func report(w io.Writer, call string, err error, header metadata.MD) {
	st := status.Convert(err)
	if err == nil {
		fmt.Fprintf(w, "  %-8s %v\n", call, st.Code())
	} else {
		fmt.Fprintf(w, "  %-8s %v: %s\n", call, st.Code(), st.Message())
	}
	for _, key := range []string{hammergrpc.MetadataPolicy, hammergrpc.MetadataRateLimit, hammergrpc.MetadataRetryAfter} {
		if v := header.Get(key); len(v) > 0 {
			fmt.Fprintf(w, "           %-17s %s\n", key+":", strings.Join(v, ", "))
		}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			fmt.Fprintf(w, "           %-17s retry_delay %v\n", "RetryInfo:", info.GetRetryDelay().AsDuration())
		}
	}
}

// seedNodes returns the cluster's seed nodes from REDIS_CLUSTER_ADDRS, or
// starts an embedded miniredis when it is unset.
func seedNodes() ([]string, string, error) {
	if env := os.Getenv("REDIS_CLUSTER_ADDRS"); env != "" {
		var seeds []string
		for _, a := range strings.Split(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				seeds = append(seeds, a)
			}
		}
		return seeds, "Redis Cluster at " + strings.Join(seeds, ","), nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", err
	}
	return []string{m.Addr()}, "embedded miniredis at " + m.Addr() + " (set REDIS_CLUSTER_ADDRS to use a real cluster)", nil
}
