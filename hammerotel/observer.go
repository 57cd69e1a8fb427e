package hammerotel

import (
	"context"
	"fmt"

	"github.com/go-hammer/hammer"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the Meter the instruments are
// made with.
const ScopeName = "github.com/go-hammer/hammer/hammerotel"

// Names of the instruments.
const (
	ChecksName        = "hammer.checks"
	CheckDurationName = "hammer.check.duration"
	BatchSizeName     = "hammer.batch.size"
	DenyCacheHitsName = "hammer.deny_cache.hits"
	NearLimitName     = "hammer.checks.near_limit"
)

// OutcomeKey is the attribute that carries a check's hammer.Outcome.
const OutcomeKey = attribute.Key("outcome")

// DurationBuckets are the default bucket boundaries of
// hammer.check.duration, in seconds: 100µs to 1s, where Redis round trips
// and their timeouts fall.
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// BatchBuckets are the default bucket boundaries of hammer.batch.size.
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// maxOutcomes bounds the hammer.Outcome values New looks for.
const maxOutcomes = 64

// Observer is a hammer.Observer that records OpenTelemetry metrics. It is
// safe for concurrent use.
type Observer struct {
	checks    metric.Int64Counter
	duration  metric.Float64Histogram
	batch     metric.Int64Histogram
	cacheHits metric.Int64Counter
	nearLimit metric.Int64Counter

	// Options with the attribute set of each outcome, built once so that
	// recording a check does not build attributes. The last entry is for
	// outcomes unknown when New ran: "unknown".
	addByOutcome    [][]metric.AddOption
	recordByOutcome [][]metric.RecordOption
	add             []metric.AddOption    // constant attributes only
	record          []metric.RecordOption // constant attributes only
}

var _ hammer.Observer = (*Observer)(nil)

// Option configures New.
type Option func(*config)

type config struct {
	attrs           []attribute.KeyValue
	durationBuckets []float64
	batchBuckets    []float64
}

// WithAttributes adds attrs to every measurement. The default value is
// none.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// WithDurationBuckets sets the bucket boundaries of hammer.check.duration,
// in seconds. The default value is DurationBuckets.
func WithDurationBuckets(b ...float64) Option {
	return func(c *config) { c.durationBuckets = b }
}

// WithBatchBuckets sets the bucket boundaries of hammer.batch.size. The
// default value is BatchBuckets.
func WithBatchBuckets(b ...float64) Option {
	return func(c *config) { c.batchBuckets = b }
}

// New makes the instruments on a Meter of mp, named ScopeName. A nil mp
// means the global MeterProvider, otel.GetMeterProvider(). It returns the
// error of the first instrument that could not be made.
func New(mp metric.MeterProvider, opts ...Option) (*Observer, error) {
	c := config{durationBuckets: DurationBuckets, batchBuckets: BatchBuckets}
	for _, opt := range opts {
		opt(&c)
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)

	var o Observer
	var err error
	if o.checks, err = m.Int64Counter(ChecksName,
		metric.WithDescription("Rate limit checks that reached the backend, by outcome."),
		metric.WithUnit("{check}")); err != nil {
		return nil, fmt.Errorf("hammerotel: %s: %w", ChecksName, err)
	}
	if o.duration, err = m.Float64Histogram(CheckDurationName,
		metric.WithDescription("Time spent in the backend per rate limit check, by outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(c.durationBuckets...)); err != nil {
		return nil, fmt.Errorf("hammerotel: %s: %w", CheckDurationName, err)
	}
	if o.batch, err = m.Int64Histogram(BatchSizeName,
		metric.WithDescription("Hits sent to the backend in one batch, when the backend reports batches."),
		metric.WithUnit("{hit}"),
		metric.WithExplicitBucketBoundaries(c.batchBuckets...)); err != nil {
		return nil, fmt.Errorf("hammerotel: %s: %w", BatchSizeName, err)
	}
	if o.cacheHits, err = m.Int64Counter(DenyCacheHitsName,
		metric.WithDescription("Checks denied from a local deny cache without reaching the backend, when reported."),
		metric.WithUnit("{hit}")); err != nil {
		return nil, fmt.Errorf("hammerotel: %s: %w", DenyCacheHitsName, err)
	}
	if o.nearLimit, err = m.Int64Counter(NearLimitName,
		metric.WithDescription("Allowed checks that left at most a tenth of the quota of one of their rules."),
		metric.WithUnit("{check}")); err != nil {
		return nil, fmt.Errorf("hammerotel: %s: %w", NearLimitName, err)
	}

	// Every Outcome whose String is not "unknown", then "unknown": the
	// table follows the outcomes the hammer module knows.
	for i := 0; i <= maxOutcomes; i++ {
		name := hammer.Outcome(i).String()
		if i == maxOutcomes {
			name = "unknown"
		}
		set := metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{OutcomeKey.String(name)}, c.attrs...)...))
		o.addByOutcome = append(o.addByOutcome, []metric.AddOption{set})
		o.recordByOutcome = append(o.recordByOutcome, []metric.RecordOption{set})
		if name == "unknown" {
			break
		}
	}
	set := metric.WithAttributeSet(attribute.NewSet(c.attrs...))
	o.add = []metric.AddOption{set}
	o.record = []metric.RecordOption{set}
	return &o, nil
}

// ObserveCheck counts the check in hammer.checks, with its outcome
// (shadow denials, of a Limiter in shadow mode, are "shadow_denied", apart
// from real denials), and in hammer.checks.near_limit when it was allowed
// with at most a tenth of a rule's quota left. A check
// that reached the backend has its latency recorded in
// hammer.check.duration; one denied by the Limiter's deny cache is counted
// in hammer.deny_cache.hits instead. A Limiter calls it through
// hammer.WithObserver.
func (o *Observer) ObserveCheck(ctx context.Context, ev hammer.CheckEvent) {
	i := int(ev.Outcome)
	if i < 0 || i >= len(o.addByOutcome) {
		i = len(o.addByOutcome) - 1 // "unknown"
	}
	o.checks.Add(ctx, 1, o.addByOutcome[i]...)
	if ev.NearLimit {
		o.nearLimit.Add(ctx, 1, o.add...)
	}
	if ev.Cached {
		o.cacheHits.Add(ctx, 1, o.add...)
		return
	}
	o.duration.Record(ctx, ev.Latency.Seconds(), o.recordByOutcome[i]...)
}

// ObserveBatch records in hammer.batch.size that size hits went to the
// backend in one pipeline. A coalescing ClusterBackend calls it when the
// Observer is set as hammer.Options.BatchObserver.
func (o *Observer) ObserveBatch(ctx context.Context, size int) {
	o.batch.Record(ctx, int64(size), o.record...)
}
