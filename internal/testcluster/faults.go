package testcluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Kill sends SIGKILL to the node and waits until the process was reaped.
// The node stays killed until Restart.
func (c *Cluster) Kill(tb testing.TB, n *Node) {
	tb.Helper()
	if !n.Running() {
		tb.Fatalf("testcluster: Kill(%s): node is not running", n.Addr)
	}
	if err := n.kill(); err != nil {
		tb.Fatalf("testcluster: Kill: %v", err)
	}
}

// Pause stops the node with SIGSTOP: it keeps its sockets but answers
// nothing, like a hung server. Resume continues it; Close cleans it up.
func (c *Cluster) Pause(tb testing.TB, n *Node) {
	tb.Helper()
	if err := n.signal(sigStop); err != nil {
		tb.Fatalf("testcluster: Pause: %v", err)
	}
}

// Resume continues a node stopped with Pause (SIGCONT).
func (c *Cluster) Resume(tb testing.TB, n *Node) {
	tb.Helper()
	if err := n.signal(sigCont); err != nil {
		tb.Fatalf("testcluster: Resume: %v", err)
	}
}

// Restart starts a killed node again with the same port, directory and
// nodes.conf, so it keeps its node ID and rejoins the cluster (a former
// master whose slots were taken over becomes a replica). It waits until the
// process answers PING and replays SetupACL calls, but does not wait for the
// cluster to converge: call WaitHealthy for that. The node's data is lost
// (persistence is off).
func (c *Cluster) Restart(tb testing.TB, n *Node) {
	tb.Helper()
	if n.Running() {
		tb.Fatalf("testcluster: Restart(%s): node is still running; Kill it first", n.Addr)
	}
	n.renewClient()
	if err := n.spawn(); err != nil {
		tb.Fatalf("testcluster: Restart: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	if err := n.waitReady(ctx); err != nil {
		tb.Fatalf("testcluster: Restart: %v\n%s", err, c.logTail(n, 20))
	}
	c.aclMu.Lock()
	lines := append([][]string(nil), c.aclLines...)
	c.aclMu.Unlock()
	for _, args := range lines {
		if err := n.applyACL(args); err != nil {
			tb.Fatalf("testcluster: Restart(%s): replaying ACL SETUSER %v: %v", n.Addr, args, err)
		}
	}
}

// Failover sends CLUSTER FAILOVER [mode] to replica and waits until it is a
// master and the cluster is healthy again (see WaitHealthy). mode is
// optional: "" (coordinated manual failover, needs a reachable master),
// "FORCE" or "TAKEOVER".
func (c *Cluster) Failover(tb testing.TB, replica *Node, mode ...string) {
	tb.Helper()
	args := []any{"CLUSTER", "FAILOVER"}
	for _, m := range mode {
		if m != "" {
			args = append(args, m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	octx, ocancel := context.WithTimeout(ctx, opTimeout)
	err := replica.cl().Do(octx, args...).Err()
	ocancel()
	if err != nil {
		tb.Fatalf("testcluster: %v on %s: %v", args, replica.Addr, err)
	}
	err = c.waitUntil(ctx, replica.Addr+" to become master", func(context.Context) error {
		role, err := replica.Role()
		if err != nil {
			return err
		}
		if role != "master" {
			return fmt.Errorf("%s is still %s", replica.Addr, role)
		}
		return nil
	})
	if err == nil {
		err = c.waitHealthy(ctx, false)
	}
	if err != nil {
		tb.Fatalf("testcluster: Failover(%s): %v", replica.Addr, err)
	}
}

// WaitHealthy waits until the cluster is healthy as seen by all running,
// non-paused nodes: each reports cluster_state:ok, knows every other such
// node without fail/pfail/handshake flags, sees all 16384 slots served by
// such masters, all of them agree on slot ownership, roles and config
// epochs, and every such replica reports master_link_status:up. A timeout
// <= 0 means the cluster's Config.Timeout (default 60s). On timeout the test
// fails with the reason and the tail of the node logs.
func (c *Cluster) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.waitHealthy(ctx, false); err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
}
