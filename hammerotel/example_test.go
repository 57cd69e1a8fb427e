package hammerotel_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammerotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func ExampleNew() {
	// Any MeterProvider: here the SDK's, read by hand.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	obs, err := hammerotel.New(mp)
	if err != nil {
		fmt.Println(err)
		return
	}

	m, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	backend, err := hammer.NewClusterBackend(hammer.Options{ExpiryMs: 60_000, InitServers: []string{m.Addr()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Close()
	limiter := hammer.New(backend, hammer.WithObserver(obs))

	for i := 0; i < 3; i++ {
		_, _ = limiter.CheckRate(context.Background(), "user:42", time.Minute, 2)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		fmt.Println(err)
		return
	}
	for _, sm := range rm.ScopeMetrics {
		for _, met := range sm.Metrics {
			if sum, ok := met.Data.(metricdata.Sum[int64]); ok && met.Name == hammerotel.ChecksName {
				for _, outcome := range []string{"allowed", "denied"} {
					for _, dp := range sum.DataPoints {
						if v, _ := dp.Attributes.Value(hammerotel.OutcomeKey); v.AsString() == outcome {
							fmt.Printf("%s{outcome=%s} %d\n", met.Name, outcome, dp.Value)
						}
					}
				}
			}
		}
	}
	// Output:
	// hammer.checks{outcome=allowed} 2
	// hammer.checks{outcome=denied} 1
}
