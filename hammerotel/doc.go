// Package hammerotel records the checks of a hammer.Limiter as
// OpenTelemetry metrics.
//
// It is a module of its own, so that the hammer module does not depend on
// OpenTelemetry. Install an Observer on a Limiter with hammer.WithObserver:
//
//	obs, err := hammerotel.New(meterProvider)
//	if err != nil {
//		return err
//	}
//	backend, err := hammer.NewClusterBackend(hammer.Options{
//		// ...
//		BatchObserver: obs, // sizes of coalesced pipelines
//	})
//	limiter := hammer.New(backend, hammer.WithObserver(obs))
//
// # Instruments
//
//	hammer.checks          counter, {check}: checks that reached the backend,
//	                       by attribute outcome = allowed, denied, error or
//	                       failed_open
//	hammer.check.duration  histogram, seconds: time spent in the backend per
//	                       check, by the same outcome attribute
//	hammer.batch.size      histogram, {hit}: hits sent in one coalesced
//	                       pipeline (with Options.BatchObserver)
//	hammer.deny_cache.hits counter, {hit}: checks denied by the Limiter's
//	                       deny cache (hammer.WithDenyCache), without a
//	                       Redis command; they count in hammer.checks as
//	                       denied too, and have no duration
//
// Checks refused for their arguments are not observed (see
// hammer.Observer). WithAttributes adds constant attributes to every
// measurement, for example to tell several Limiters apart.
package hammerotel
