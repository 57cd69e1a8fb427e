package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/go-hammer/hammer"
)

// stats is a hammer.Observer that counts checks per outcome in memory, and
// an http.Handler that shows the counts as JSON.
type stats struct {
	mu      sync.Mutex
	counts  map[string]int64 // by hammer.Outcome.String()
	latency time.Duration    // total time spent in the backend
	checks  int64
}

var _ hammer.Observer = (*stats)(nil)

func newStats() *stats {
	return &stats{counts: map[string]int64{"allowed": 0, "denied": 0, "error": 0, "failed_open": 0}}
}

// ObserveCheck counts one check.
func (s *stats) ObserveCheck(_ context.Context, ev hammer.CheckEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[ev.Outcome.String()]++
	s.latency += ev.Latency
	s.checks++
}

// ServeHTTP writes {"checks":N,"outcomes":{"allowed":N,...},"mean_latency_ms":F}.
func (s *stats) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := struct {
		Checks      int64            `json:"checks"`
		Outcomes    map[string]int64 `json:"outcomes"`
		MeanLatency float64          `json:"mean_latency_ms"`
	}{Checks: s.checks, Outcomes: make(map[string]int64, len(s.counts))}
	for k, v := range s.counts {
		out.Outcomes[k] = v
	}
	if s.checks > 0 {
		out.MeanLatency = float64(s.latency.Microseconds()) / float64(s.checks) / 1000
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
