package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunMiniredis runs every mode briefly on the embedded miniredis: it
// checks that checks were made without errors, never how fast.
func TestRunMiniredis(t *testing.T) {
	cfg, err := parseFlags([]string{"-callers", "4", "-ids", "100", "-duration", "300ms", "-progress", "100ms"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	results, err := run(context.Background(), cfg, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if len(results) != 3 {
		t.Fatalf("got %d results, want raw-hincrby, direct and coalesced", len(results))
	}
	for _, r := range results {
		if r.checks == 0 || r.errors != 0 || r.denied != 0 {
			t.Errorf("%s: %d checks, %d errors (%q), %d denied; want checks, no errors, no denials", r.mode, r.checks, r.errors, r.errs, r.denied)
		}
		if r.lat.n != uint64(r.checks) || r.lat.quantile(0.5) <= 0 || r.lat.quantile(0.5) > r.lat.max {
			t.Errorf("%s: latency histogram of %d samples, p50 %v, max %v", r.mode, r.lat.n, r.lat.quantile(0.5), r.lat.max)
		}
	}
	if !strings.Contains(stderr.String(), "embedded miniredis") || !strings.Contains(stderr.String(), "checks/s so far") {
		t.Errorf("stderr lacks the target or the progress lines:\n%s", stderr.String())
	}
	var out bytes.Buffer
	printReport(&out, cfg, results)
	for _, want := range []string{"raw-hincrby", "direct", "coalesced", "1.00x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunDenyCache sets a limit of 1 over a few ids: most checks are denied,
// and the deny cache answers them.
func TestRunDenyCache(t *testing.T) {
	cfg, err := parseFlags([]string{"-callers", "2", "-ids", "5", "-duration", "200ms", "-limit", "1",
		"-deny-cache", "100", "-mode", "direct", "-baseline=false", "-progress", "0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	results, err := run(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("got %d results, want direct only", len(results))
	}
	r := results[0]
	if r.errors != 0 || r.denied == 0 || r.cached == 0 {
		t.Errorf("%d checks, %d errors (%q), %d denied, %d cached; want denials from the cache", r.checks, r.errors, r.errs, r.denied, r.cached)
	}
}

// TestRunInterrupted ends the context during the run: run returns at once
// with errInterrupted.
func TestRunInterrupted(t *testing.T) {
	cfg, err := parseFlags([]string{"-callers", "2", "-ids", "10", "-duration", "1h", "-progress", "0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	results, err := run(ctx, cfg, &bytes.Buffer{})
	if err != errInterrupted {
		t.Fatalf("run: %v, want errInterrupted", err)
	}
	if len(results) > 1 {
		t.Errorf("%d results after an interrupt in the first mode", len(results))
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{{"-mode", "fast"}, {"-callers", "0"}, {"extra"}, {"-duration", "0s"}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"-addrs", "a:1, b:2", "-baseline=false", "-mode", "coalesced"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.addrs) != 2 || cfg.addrs[1] != "b:2" || len(cfg.modes) != 1 || cfg.modes[0] != modeCoalesced {
		t.Errorf("got addrs %q, modes %q", cfg.addrs, cfg.modes)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.07 || d > 0.07 {
			t.Errorf("quantile(%v) = %v, want %v within 7%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != time.Millisecond || h.max != time.Millisecond {
		t.Errorf("quantile(1) = %v, max %v, want 1ms", h.quantile(1), h.max)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if b := bucketOf(v); lowerBound(b) > v || lowerBound(b+1) <= v {
			t.Fatalf("value %d in bucket %d of [%d, %d)", v, b, lowerBound(b), lowerBound(b+1))
		}
	}
}
