package testcluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodeView is one line of CLUSTER NODES: how the asking node sees a node.
type nodeView struct {
	id       string
	port     int
	flags    []string
	masterID string // "" for masters
	epoch    int64
	link     string
	slots    [][2]int // owned slot ranges (migration markers dropped)
}

func (v nodeView) hasFlag(f string) bool { return slices.Contains(v.flags, f) }

func (v nodeView) nslots() int {
	n := 0
	for _, r := range v.slots {
		n += r[1] - r[0] + 1
	}
	return n
}

// parseClusterNodes parses the CLUSTER NODES format:
// <id> <ip:port@cport[,hostname]> <flags> <master|-> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
func parseClusterNodes(s string) ([]nodeView, error) {
	var out []nodeView
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("malformed CLUSTER NODES line %q", line)
		}
		addr := f[1]
		if i := strings.IndexAny(addr, "@,"); i >= 0 {
			addr = addr[:i]
		}
		port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		if err != nil {
			return nil, fmt.Errorf("bad address in CLUSTER NODES line %q", line)
		}
		epoch, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad config epoch in CLUSTER NODES line %q", line)
		}
		v := nodeView{id: f[0], port: port, flags: strings.Split(f[2], ","), epoch: epoch, link: f[7]}
		if f[3] != "-" {
			v.masterID = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // [slot->-id] / [slot-<-id]: migration state
				continue
			}
			lo, hi, _ := strings.Cut(s, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if hi != "" {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad slot %q in CLUSTER NODES line %q", s, line)
			}
			v.slots = append(v.slots, [2]int{a, b})
		}
		out = append(out, v)
	}
	return out, nil
}

func (n *Node) clusterNodes(ctx context.Context) ([]nodeView, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s, err := n.cl().ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n.Addr, err)
	}
	return parseClusterNodes(s)
}

// waitUntil polls check every pollInterval until it returns nil or ctx
// expires; the timeout error carries the last check error and node logs.
func (c *Cluster) waitUntil(ctx context.Context, what string, check func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	begin := time.Now()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %v waiting for %s; last problem: %v\nnode logs:\n%s",
				time.Since(begin).Round(time.Millisecond), what, err, c.logTails(15))
		case <-tick.C:
		}
	}
}

// waitHealthy waits until checkHealthy passes. With initial it also checks
// the configured shape (Masters masters with ReplicasPerMaster replicas).
func (c *Cluster) waitHealthy(ctx context.Context, initial bool) error {
	return c.waitUntil(ctx, "a healthy cluster", func(ctx context.Context) error {
		return c.checkHealthy(ctx, initial)
	})
}

// checkHealthy returns nil if every live node is ok, sees the same topology
// restricted to live nodes, all slots are served by live masters, and every
// live replica's replication link is up.
func (c *Cluster) checkHealthy(ctx context.Context, initial bool) error {
	live := c.liveNodes()
	if len(live) == 0 {
		return fmt.Errorf("no live node")
	}
	isLive := make(map[int]bool, len(live))
	for _, n := range live {
		isLive[n.Port] = true
	}
	var ref string
	var refNode *Node
	var refViews []nodeView
	for _, n := range live {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		var info, nodes, repl *redis.StringCmd
		_, err := n.cl().Pipelined(pctx, func(p redis.Pipeliner) error {
			info = p.ClusterInfo(pctx)
			nodes = p.ClusterNodes(pctx)
			repl = p.Info(pctx, "replication")
			return nil
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %v", n.Addr, err)
		}
		if !strings.Contains(info.Val(), "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", n.Addr)
		}
		views, err := parseClusterNodes(nodes.Val())
		if err != nil {
			return fmt.Errorf("%s: %v", n.Addr, err)
		}
		canon, err := canonicalView(views, isLive)
		if err != nil {
			return fmt.Errorf("in the view of %s: %v", n.Addr, err)
		}
		if strings.Contains(repl.Val(), "role:slave") && !strings.Contains(repl.Val(), "master_link_status:up") {
			return fmt.Errorf("%s: replication link to its master is not up", n.Addr)
		}
		if refNode == nil {
			ref, refNode, refViews = canon, n, views
		} else if canon != ref {
			return fmt.Errorf("%s and %s disagree on the cluster:\n%s:\n%s%s:\n%s",
				refNode.Addr, n.Addr, refNode.Addr, ref, n.Addr, canon)
		}
	}
	if initial {
		replicas := map[string]int{}
		masters := 0
		for _, v := range refViews {
			if v.hasFlag("master") && v.nslots() > 0 {
				masters++
			}
			if v.masterID != "" {
				replicas[v.masterID]++
			}
		}
		if masters != c.cfg.Masters {
			return fmt.Errorf("%d masters with slots, want %d", masters, c.cfg.Masters)
		}
		for _, v := range refViews {
			if v.hasFlag("master") && replicas[v.id] != c.cfg.ReplicasPerMaster {
				return fmt.Errorf("master port %d has %d replicas, want %d", v.port, replicas[v.id], c.cfg.ReplicasPerMaster)
			}
		}
	}
	return nil
}

// canonicalView renders the part of one node's CLUSTER NODES output that
// concerns live nodes, in a form that is equal for all nodes once they
// agree: one line per live node with role, master, config epoch and slots.
// It fails if a live node is missing or flagged, a live replica follows a
// non-live master, or live masters do not serve all slots.
func canonicalView(views []nodeView, isLive map[int]bool) (string, error) {
	portOf := make(map[string]int, len(views))
	for _, v := range views {
		portOf[v.id] = v.port
	}
	slices.SortFunc(views, func(a, b nodeView) int { return a.port - b.port })
	var b strings.Builder
	seen := 0
	served := 0
	for _, v := range views {
		if !isLive[v.port] {
			continue // killed or paused node: only its slots matter (below)
		}
		seen++
		for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
			if v.hasFlag(bad) {
				return "", fmt.Errorf("port %d is flagged %s", v.port, strings.Join(v.flags, ","))
			}
		}
		if !v.hasFlag("myself") && v.link != "connected" {
			return "", fmt.Errorf("link to port %d is %s", v.port, v.link)
		}
		role := "master"
		master := 0
		if v.hasFlag("slave") {
			role = "replica"
			master = portOf[v.masterID]
			if !isLive[master] {
				return "", fmt.Errorf("replica port %d follows non-live master %s", v.port, v.masterID)
			}
		}
		served += v.nslots()
		fmt.Fprintf(&b, "%d %s of=%d epoch=%d slots=%v\n", v.port, role, master, v.epoch, v.slots)
	}
	if seen != len(isLive) {
		return "", fmt.Errorf("knows %d of the %d live nodes", seen, len(isLive))
	}
	if served != NumSlots {
		return "", fmt.Errorf("live masters serve %d of %d slots", served, NumSlots)
	}
	return b.String(), nil
}
