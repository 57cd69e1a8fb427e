package testcluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// MasterForSlot asks the cluster (CLUSTER SLOTS on the first answering live
// node) which master currently serves slot.
func (c *Cluster) MasterForSlot(tb testing.TB, slot int) *Node {
	tb.Helper()
	n, err := c.masterForSlot(slot)
	if err != nil {
		tb.Fatalf("testcluster: MasterForSlot(%d): %v", slot, err)
	}
	return n
}

// MasterForKey returns the master currently serving key's slot.
func (c *Cluster) MasterForKey(tb testing.TB, key string) *Node {
	tb.Helper()
	return c.MasterForSlot(tb, Slot(key))
}

func (c *Cluster) masterForSlot(slot int) (*Node, error) {
	if slot < 0 || slot >= NumSlots {
		return nil, fmt.Errorf("slot %d out of range", slot)
	}
	var errs []error
	for _, n := range c.liveNodes() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		slots, err := n.cl().ClusterSlots(ctx).Result()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("CLUSTER SLOTS on %s: %w", n.Addr, err))
			continue
		}
		for _, s := range slots {
			if slot < s.Start || slot > s.End || len(s.Nodes) == 0 {
				continue
			}
			m := c.nodeByAddr(s.Nodes[0].Addr)
			if m == nil {
				return nil, fmt.Errorf("%s reports unknown master %q for slot %d", n.Addr, s.Nodes[0].Addr, slot)
			}
			return m, nil
		}
		return nil, fmt.Errorf("slot %d is not served in the view of %s", slot, n.Addr)
	}
	if len(errs) == 0 {
		return nil, errors.New("no live node")
	}
	return nil, errors.Join(errs...)
}

func (c *Cluster) nodeByAddr(addr string) *Node {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return nil
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return nil
	}
	return c.byPort[port]
}

// ReplicaOf asks the cluster (CLUSTER NODES on the first answering live
// node) for a running replica of master that is not flagged as failing and
// returns it, or nil if there is none.
func (c *Cluster) ReplicaOf(tb testing.TB, master *Node) *Node {
	tb.Helper()
	views, err := c.anyView()
	if err != nil {
		tb.Fatalf("testcluster: ReplicaOf(%s): %v", master.Addr, err)
	}
	for _, v := range views {
		if v.masterID != master.ID || v.hasFlag("fail") || v.hasFlag("fail?") {
			continue
		}
		if n := c.byID[v.id]; n != nil && n.Running() {
			return n
		}
	}
	return nil
}

// Masters returns the running nodes that the cluster currently sees as
// masters (CLUSTER NODES on the first answering live node), in start order.
func (c *Cluster) Masters(tb testing.TB) []*Node {
	tb.Helper()
	return c.byRole(tb, "master")
}

// Replicas returns the running nodes that the cluster currently sees as
// replicas, in start order.
func (c *Cluster) Replicas(tb testing.TB) []*Node {
	tb.Helper()
	return c.byRole(tb, "slave")
}

func (c *Cluster) byRole(tb testing.TB, role string) []*Node {
	tb.Helper()
	views, err := c.anyView()
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	is := map[string]bool{}
	for _, v := range views {
		if v.hasFlag(role) {
			is[v.id] = true
		}
	}
	var out []*Node
	for _, n := range c.nodes {
		if is[n.ID] && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// anyView returns CLUSTER NODES of the first live node that answers.
func (c *Cluster) anyView() ([]nodeView, error) {
	var errs []error
	for _, n := range c.liveNodes() {
		views, err := n.clusterNodes(context.Background())
		if err == nil {
			return views, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no live node")
	}
	return nil, errors.Join(errs...)
}
