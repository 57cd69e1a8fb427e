// Command hammerbench puts load on a Redis Cluster (or on an embedded
// miniredis) through hammer's Limiter and reports throughput and latency,
// next to a raw HINCRBY baseline measured in the same run with the same
// callers and duration.
//
//	go run ./cmd/hammerbench -addrs 127.0.0.1:7000,127.0.0.1:7001 -callers 256 -duration 10s
//
// Every caller loops over CheckRate of a random id among -ids, with a limit
// so high that every check is allowed (set -limit to see denials). Compare
// the modes with the baseline's ratio, not with absolute figures: they
// depend on the machine and on what else it runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := run(ctx, cfg, os.Stderr)
	if len(results) > 0 {
		printReport(os.Stdout, cfg, results)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hammerbench:", err)
		os.Exit(1)
	}
}

// config is the tool's flags.
type config struct {
	addrs     []string // empty: an embedded miniredis
	callers   int
	duration  time.Duration
	ids       int
	scale     time.Duration
	limit     int64
	modes     []string // of modeRaw, modeDirect, modeCoalesced, in run order
	denyCache int
	progress  time.Duration // between progress lines; 0: none
}

const (
	modeRaw       = "raw-hincrby"
	modeDirect    = "direct"
	modeCoalesced = "coalesced"
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("hammerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      config
		addrs    string
		mode     string
		baseline bool
	)
	fs.StringVar(&addrs, "addrs", "", "comma-separated seed nodes of a Redis Cluster; empty: an embedded miniredis")
	fs.IntVar(&cfg.callers, "callers", 64, "concurrent callers")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each mode runs")
	fs.IntVar(&cfg.ids, "ids", 10000, "distinct ids the callers pick from at random")
	fs.DurationVar(&cfg.scale, "scale", time.Minute, "window of the checks")
	fs.Int64Var(&cfg.limit, "limit", 1<<40, "limit of the checks (the default allows every check)")
	fs.StringVar(&mode, "mode", "both", "direct, coalesced or both")
	fs.IntVar(&cfg.denyCache, "deny-cache", 0, "entries of the Limiter's deny cache; 0: off")
	fs.BoolVar(&baseline, "baseline", true, "first run a raw HINCRBY baseline with the same callers and duration")
	fs.DurationVar(&cfg.progress, "progress", time.Second, "interval of the progress line on stderr; 0: none")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fail := func(format string, a ...any) (config, error) {
		err := fmt.Errorf(format, a...)
		fmt.Fprintln(stderr, "hammerbench:", err)
		fs.Usage()
		return cfg, err
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.addrs = append(cfg.addrs, a)
		}
	}
	if cfg.callers < 1 || cfg.ids < 1 || cfg.duration <= 0 || cfg.denyCache < 0 {
		return fail("-callers and -ids must be at least 1, -duration positive, -deny-cache not negative")
	}
	if baseline {
		cfg.modes = append(cfg.modes, modeRaw)
	}
	switch mode {
	case "direct":
		cfg.modes = append(cfg.modes, modeDirect)
	case "coalesced":
		cfg.modes = append(cfg.modes, modeCoalesced)
	case "both":
		cfg.modes = append(cfg.modes, modeDirect, modeCoalesced)
	default:
		return fail("-mode %q: want direct, coalesced or both", mode)
	}
	return cfg, nil
}

// errInterrupted is returned by run when its context ended early.
var errInterrupted = errors.New("interrupted")
