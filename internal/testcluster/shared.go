package testcluster

import (
	"errors"
	"os"
	"sync"
	"testing"
)

var shared struct {
	mu      sync.Mutex
	started bool
	c       *Cluster
	err     error
}

// Shared returns the cluster shared by all tests of the current test
// binary, starting it (with the default Config) on first use. If Redis is
// not installed, every caller is skipped (or fails with
// HAMMER_REQUIRE_CLUSTER=1); if the start failed, every caller fails with
// the same reason. The shared cluster must not be used destructively
// (Kill, Pause, Failover, MoveSlot, ...) — start a private one with Start
// for that. Stop it with StopShared or Main.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	requireRedis(tb)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.c, shared.err = start(Config{})
	}
	if shared.err != nil {
		tb.Fatalf("testcluster: shared cluster: %v", shared.err)
	}
	return shared.c
}

// StopShared stops the shared cluster if it was started. Later calls of
// Shared fail.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		shared.c.Close()
		shared.c = nil
	}
	shared.started = true
	shared.err = errors.New("the shared cluster was stopped (StopShared)")
}

// Main runs the tests and then stops the shared cluster. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { testcluster.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}
