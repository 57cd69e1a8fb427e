package hammerotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/hammerotel"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newObserver returns an Observer on an SDK MeterProvider and the reader
// that collects it.
func newObserver(t *testing.T, opts ...hammerotel.Option) (*hammerotel.Observer, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := hammerotel.New(mp, opts...)
	require.NoError(t, err)
	return obs, reader
}

// collect returns the metrics of the hammerotel scope, by name.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name == hammerotel.ScopeName {
			for _, m := range sm.Metrics {
				out[m.Name] = m
			}
		}
	}
	return out
}

func outcomeOf(t *testing.T, set attribute.Set) string {
	t.Helper()
	v, ok := set.Value(hammerotel.OutcomeKey)
	require.True(t, ok, "no outcome attribute in %v", set)
	return v.AsString()
}

// TestChecksOnMiniredis runs checks of every outcome on a miniredis-backed
// Limiter and reads back what the Observer recorded.
func TestChecksOnMiniredis(t *testing.T) {
	obs, reader := newObserver(t, hammerotel.WithAttributes(attribute.String("limiter", "test")))

	m := miniredis.RunT(t)
	b, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs:    60 * 60 * 1000,
		InitServers: []string{m.Addr()},
		RedisOptions: &redis.ClusterOptions{
			DialTimeout:  200 * time.Millisecond,
			ReadTimeout:  200 * time.Millisecond,
			WriteTimeout: 200 * time.Millisecond,
		},
	})
	require.NoError(t, err)
	defer b.Close()
	closed := hammer.New(b, hammer.WithObserver(obs))
	open := hammer.New(b, hammer.WithObserver(obs), hammer.WithFailurePolicy(hammer.FailOpen))
	ctx := context.Background()

	for i := 0; i < 5; i++ { // 3 allowed, 2 denied
		_, err := closed.CheckRate(ctx, "user:1", time.Minute, 3)
		require.NoError(t, err)
	}
	_, err = closed.CheckRate(ctx, "", time.Minute, 3) // refused for its id: not observed
	require.ErrorIs(t, err, hammer.ErrInvalidArgument)

	shadow := hammer.New(b, hammer.WithObserver(obs), hammer.WithShadow())
	for i := 0; i < 3; i++ { // allowed with 0 left (near the limit), then 2 shadow denials
		d, err := shadow.CheckRate(ctx, "user:3", time.Minute, 1)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.Equal(t, i > 0, d.Shadow)
	}

	m.Close()
	_, err = closed.CheckRate(ctx, "user:2", time.Minute, 3)
	require.ErrorIs(t, err, hammer.ErrUnavailable)
	for i := 0; i < 2; i++ {
		d, err := open.CheckRate(ctx, "user:2", time.Minute, 3)
		require.NoError(t, err, "an open policy allows, with no error")
		require.True(t, d.FailedOpen)
	}

	got := collect(t, reader)
	want := map[string]int64{"allowed": 4, "denied": 2, "error": 1, "failed_open": 2, "shadow_denied": 2}

	checks, ok := got[hammerotel.ChecksName].Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s: %T", hammerotel.ChecksName, got[hammerotel.ChecksName].Data)
	assert.True(t, checks.IsMonotonic)
	counts := map[string]int64{}
	for _, dp := range checks.DataPoints {
		counts[outcomeOf(t, dp.Attributes)] += dp.Value
		v, _ := dp.Attributes.Value("limiter")
		assert.Equal(t, "test", v.AsString())
	}
	assert.Equal(t, want, counts)

	dur, ok := got[hammerotel.CheckDurationName].Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s: %T", hammerotel.CheckDurationName, got[hammerotel.CheckDurationName].Data)
	assert.Equal(t, "s", got[hammerotel.CheckDurationName].Unit)
	var total uint64
	perOutcome := map[string]int64{}
	for _, dp := range dur.DataPoints {
		total += dp.Count
		perOutcome[outcomeOf(t, dp.Attributes)] += int64(dp.Count)
		assert.GreaterOrEqual(t, dp.Sum, 0.0)
	}
	assert.Equal(t, uint64(11), total, "one latency per observed check")
	assert.Equal(t, want, perOutcome)

	// Near the limit: user:1's third hit (0 of 3 left) and user:3's first.
	near, ok := got[hammerotel.NearLimitName].Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s: %T", hammerotel.NearLimitName, got[hammerotel.NearLimitName].Data)
	require.Len(t, near.DataPoints, 1)
	assert.Equal(t, int64(2), near.DataPoints[0].Value)

	// No BatchObserver and no deny cache: neither is recorded.
	for _, name := range []string{hammerotel.BatchSizeName, hammerotel.DenyCacheHitsName} {
		if m, ok := got[name]; ok {
			switch d := m.Data.(type) {
			case metricdata.Histogram[int64]:
				assert.Empty(t, d.DataPoints, name)
			case metricdata.Sum[int64]:
				assert.Empty(t, d.DataPoints, name)
			}
		}
	}
}

// TestBatchesAndCacheHits runs checks through a coalescing backend and a
// deny cache, both reporting to the Observer.
func TestBatchesAndCacheHits(t *testing.T) {
	obs, reader := newObserver(t)
	m := miniredis.RunT(t)
	b, err := hammer.NewClusterBackend(hammer.Options{
		ExpiryMs: 60_000, InitServers: []string{m.Addr()},
		Coalesce: hammer.CoalesceOn, BatchObserver: obs,
	})
	require.NoError(t, err)
	defer b.Close()
	l := hammer.New(b, hammer.WithObserver(obs), hammer.WithDenyCache(10))
	ctx := context.Background()
	for i := 0; i < 4; i++ { // allowed, denied by Redis, denied twice by the cache
		_, err := l.CheckRate(ctx, "u", time.Minute, 1)
		require.NoError(t, err)
	}

	got := collect(t, reader)
	batch, ok := got[hammerotel.BatchSizeName].Data.(metricdata.Histogram[int64])
	require.True(t, ok)
	require.Len(t, batch.DataPoints, 1)
	assert.Equal(t, uint64(2), batch.DataPoints[0].Count, "two sends of one hit, one per call that reached Redis")
	assert.Equal(t, int64(2), batch.DataPoints[0].Sum)

	hits, ok := got[hammerotel.DenyCacheHitsName].Data.(metricdata.Sum[int64])
	require.True(t, ok)
	require.Len(t, hits.DataPoints, 1)
	assert.Equal(t, int64(2), hits.DataPoints[0].Value)

	checks := got[hammerotel.ChecksName].Data.(metricdata.Sum[int64])
	counts := map[string]int64{}
	for _, dp := range checks.DataPoints {
		counts[outcomeOf(t, dp.Attributes)] += dp.Value
	}
	assert.Equal(t, map[string]int64{"allowed": 1, "denied": 3}, counts)
	dur := got[hammerotel.CheckDurationName].Data.(metricdata.Histogram[float64])
	var n uint64
	for _, dp := range dur.DataPoints {
		n += dp.Count
	}
	assert.Equal(t, uint64(2), n, "cached denials have no backend latency")
}

func TestUnknownOutcome(t *testing.T) {
	obs, reader := newObserver(t)
	obs.ObserveCheck(context.Background(), hammer.CheckEvent{Outcome: hammer.Outcome(1000), Latency: time.Millisecond})
	obs.ObserveCheck(context.Background(), hammer.CheckEvent{Outcome: hammer.Outcome(-1), Latency: time.Millisecond})
	checks := collect(t, reader)[hammerotel.ChecksName].Data.(metricdata.Sum[int64])
	require.Len(t, checks.DataPoints, 1)
	assert.Equal(t, "unknown", outcomeOf(t, checks.DataPoints[0].Attributes))
	assert.Equal(t, int64(2), checks.DataPoints[0].Value)
}

func TestNoopProvider(t *testing.T) {
	obs, err := hammerotel.New(noop.NewMeterProvider())
	require.NoError(t, err)
	obs.ObserveCheck(context.Background(), hammer.CheckEvent{Outcome: hammer.OutcomeAllowed})
	obs.ObserveBatch(context.Background(), 3)

	obs, err = hammerotel.New(nil) // the global provider
	require.NoError(t, err)
	obs.ObserveCheck(context.Background(), hammer.CheckEvent{Outcome: hammer.OutcomeDenied})
}

func BenchmarkObserveCheck(b *testing.B) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := hammerotel.New(mp)
	require.NoError(b, err)
	ctx := context.Background()
	ev := hammer.CheckEvent{Outcome: hammer.OutcomeAllowed, Latency: 300 * time.Microsecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs.ObserveCheck(ctx, ev)
		}
	})
}
