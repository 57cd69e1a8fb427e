package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NoReplicas can be used as Config.ReplicasPerMaster to start masters
// without replicas.
const NoReplicas = -1

const (
	defaultTimeout = 60 * time.Second
	pollInterval   = 25 * time.Millisecond
	opTimeout      = 5 * time.Second
	stopGrace      = 2 * time.Second
	maxStartTries  = 5
)

// Config describes the cluster Start creates. The zero value is a plain-TCP
// cluster of 3 masters with 1 replica each.
type Config struct {
	// Masters is the number of masters; the 16384 slots are split evenly
	// between them. Default (0): 3. With 3 or more masters the cluster is
	// created with `redis-cli --cluster create`; with 1 or 2 masters (which
	// redis-cli refuses) the same steps are done directly.
	Masters int

	// ReplicasPerMaster is the number of replicas of every master.
	// Default (0): 1. Use NoReplicas (any negative value) for none.
	ReplicasPerMaster int

	// TLS starts a TLS-only cluster: the plain port is disabled (--port 0),
	// clients, the cluster bus and replication all use TLS with a CA and a
	// node certificate generated for this cluster. The nodes run with
	// --tls-auth-clients no, so clients need no certificate, only
	// TLSConfig() (which trusts the generated CA). Default: false.
	TLS bool

	// ExtraArgs are appended to every redis-server command line, e.g.
	// []string{"--maxmemory", "64mb"}. For most options the last occurrence
	// wins, so they can also override the harness defaults (e.g.
	// "--cluster-node-timeout", "5000"). Do not set options that keep the
	// harness from connecting as the default user without password
	// (requirepass, renamed CLUSTER/CONFIG commands, another bind address).
	// Default: none.
	ExtraArgs []string

	// Timeout bounds every wait of Start (node startup, cluster creation,
	// convergence) and is the default timeout of the waits in Failover,
	// Restart and migrations. Default: 60s.
	Timeout time.Duration

	// Wrapper, when set, is a command line that every redis-server is
	// started under: the node runs Wrapper[0] with Wrapper[1:], then the
	// redis-server path and its arguments, e.g. []string{"valgrind",
	// "--tool=callgrind"} to count its instructions. The process (and
	// Node.Pid) is the wrapper's, which for valgrind is the server's.
	// Default: none.
	Wrapper []string

	// MigrateBatchSize is the number of keys MoveSlot/MoveSlots move per
	// MIGRATE call. Default: 100.
	MigrateBatchSize int

	// MigrateBatchDelay is slept between two MIGRATE batches of
	// MoveSlot/MoveSlots, to keep a slot in the migrating state longer so
	// that concurrent load sees ASK redirects. Default: 0.
	MigrateBatchDelay time.Duration
}

func (cfg Config) withDefaults() Config {
	if cfg.Masters <= 0 {
		cfg.Masters = 3
	}
	switch {
	case cfg.ReplicasPerMaster == 0:
		cfg.ReplicasPerMaster = 1
	case cfg.ReplicasPerMaster < 0:
		cfg.ReplicasPerMaster = 0
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.MigrateBatchSize <= 0 {
		cfg.MigrateBatchSize = 100
	}
	return cfg
}

// Cluster is a running Redis Cluster made of redis-server child processes of
// the test binary. All methods are safe for concurrent use. Methods that
// take a testing.TB report failures with tb.Fatalf and must therefore be
// called from the goroutine running that test.
type Cluster struct {
	cfg        Config
	dir        string
	serverPath string
	cliPath    string
	tls        *tlsMaterial
	nodes      []*Node
	byPort     map[int]*Node
	byID       map[string]*Node

	aclMu    sync.Mutex
	aclLines [][]string // SetupACL calls, replayed on Restart

	closeOnce sync.Once
}

// Start starts a new cluster as described by cfg, waits until it is fully
// usable and registers Close with tb.Cleanup, so the nodes are stopped when
// the test ends, also when it fails. When redis-server or redis-cli are not
// installed the test is skipped (or fails when HAMMER_REQUIRE_CLUSTER=1).
//
// "Usable" means: every node reports cluster_state:ok, all nodes agree on
// the same slot map, roles and config epochs, all slots are served, the
// expected number of masters each have their replicas, and every replica
// reports master_link_status:up.
func Start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	requireRedis(tb)
	begin := time.Now()
	c, err := start(cfg)
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("testcluster: test failed; node logs:\n%s", c.logTails(15))
		}
		c.Close()
	})
	tb.Logf("testcluster: started %d masters x %d replicas (tls=%v) in %v: %s",
		c.cfg.Masters, c.cfg.ReplicasPerMaster, c.cfg.TLS,
		time.Since(begin).Round(time.Millisecond), strings.Join(c.Addrs(), " "))
	return c
}

// requireRedis skips (or fails, with HAMMER_REQUIRE_CLUSTER=1) tb when Redis
// is not available.
func requireRedis(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("HAMMER_REQUIRE_CLUSTER") == "1" {
			tb.Fatalf("testcluster: %v (HAMMER_REQUIRE_CLUSTER=1)", err)
		}
		tb.Skipf("testcluster: %v; install it with `apt-get install -y redis-server` (or run `make test`); set HAMMER_REQUIRE_CLUSTER=1 to fail instead of skipping", err)
	}
}

var (
	availOnce sync.Once
	availErr  error
	binPaths  [2]string // redis-server, redis-cli
)

var versionRe = regexp.MustCompile(`v=(\d+)\.(\d+)`)

// Available reports whether a real cluster can be started: it returns nil
// if redis-server (version 7.0 or newer) and redis-cli are found on PATH,
// and otherwise an error that says what is missing.
func Available() error {
	availOnce.Do(func() {
		server, err := exec.LookPath("redis-server")
		if err != nil {
			availErr = errors.New("redis-server not found on PATH")
			return
		}
		cli, err := exec.LookPath("redis-cli")
		if err != nil {
			availErr = errors.New("redis-cli not found on PATH")
			return
		}
		out, err := exec.Command(server, "--version").Output()
		if err != nil {
			availErr = fmt.Errorf("%s --version: %v", server, err)
			return
		}
		m := versionRe.FindSubmatch(out)
		if m == nil {
			availErr = fmt.Errorf("cannot parse redis-server version from %q", strings.TrimSpace(string(out)))
			return
		}
		if major, _ := strconv.Atoi(string(m[1])); major < 7 {
			availErr = fmt.Errorf("redis-server %s.%s is too old, need 7.0 or newer", m[1], m[2])
			return
		}
		binPaths = [2]string{server, cli}
	})
	return availErr
}

// start does the work of Start without a testing.TB, so that it can also
// back Shared. On error everything started so far has been stopped.
func start(cfg Config) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir, err := os.MkdirTemp("", "hammer-testcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:        cfg,
		dir:        dir,
		serverPath: binPaths[0],
		cliPath:    binPaths[1],
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if cfg.TLS {
		if c.tls, err = newTLSMaterial(filepath.Join(dir, "tls")); err != nil {
			return nil, fmt.Errorf("generating TLS certificates: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	if err := c.startNodes(ctx); err != nil {
		return nil, err
	}
	if err := c.createCluster(ctx); err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, true); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// testHookPortsReserved, if set, is called by startNodes after choosing the
// ports of an attempt (tests use it to provoke a port conflict).
var testHookPortsReserved func(attempt int, ports []int)

// startNodes starts all processes on fresh random ports, retrying with new
// ports when a port turned out to be taken.
func (c *Cluster) startNodes(ctx context.Context) error {
	total := c.cfg.Masters * (1 + c.cfg.ReplicasPerMaster)
	for attempt := 1; ; attempt++ {
		ports, err := reservePorts(total)
		if err != nil {
			return err
		}
		if testHookPortsReserved != nil {
			testHookPortsReserved(attempt, ports)
		}
		c.nodes = make([]*Node, total)
		c.byPort = make(map[int]*Node, total)
		for i, p := range ports {
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			n := &Node{Addr: addr, Port: p, Dir: filepath.Join(c.dir, fmt.Sprintf("node-%d", p)), c: c}
			n.renewClient()
			c.nodes[i] = n
			c.byPort[p] = n
		}
		err = c.spawnAll(ctx)
		if err == nil {
			break
		}
		bindErr := errors.Is(err, errExited) && strings.Contains(c.logTails(50), "in use")
		// Clean up this attempt completely before retrying or giving up.
		logs := c.logTails(15)
		for _, n := range c.nodes {
			_ = n.kill()
			n.closeClients()
			_ = os.RemoveAll(n.Dir)
		}
		releasePorts(ports)
		c.nodes, c.byPort = nil, nil
		if !bindErr || attempt == maxStartTries || ctx.Err() != nil {
			return fmt.Errorf("starting redis-server nodes (attempt %d): %v\n%s", attempt, err, logs)
		}
	}
	// Node IDs never change (they are kept in nodes.conf).
	c.byID = make(map[string]*Node, len(c.nodes))
	for _, n := range c.nodes {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		id, err := n.cl().Do(cctx, "CLUSTER", "MYID").Text()
		cancel()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID on %s: %v", n.Addr, err)
		}
		n.ID = id
		c.byID[id] = n
	}
	return nil
}

func (c *Cluster) spawnAll(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.spawn(); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if err := n.waitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// createCluster assigns slots and replicas and joins the nodes.
func (c *Cluster) createCluster(ctx context.Context) error {
	if c.cfg.Masters >= 3 {
		return c.createWithCLI(ctx)
	}
	return c.createManually(ctx)
}

// cliTLSArgs returns the redis-cli flags needed to talk to the nodes.
func (c *Cluster) cliTLSArgs() []string {
	if c.tls == nil {
		return nil
	}
	return []string{"--tls", "--cacert", c.tls.caFile}
}

func (c *Cluster) createWithCLI(ctx context.Context) error {
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.cfg.ReplicasPerMaster), "--cluster-yes")
	args = append(args, c.cliTLSArgs()...)
	cmd := exec.CommandContext(ctx, c.cliPath, args...)
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "[ERR]") {
		return fmt.Errorf("redis-cli %s: %v\n%s\n%s", strings.Join(args, " "), err, out, c.logTails(15))
	}
	return nil
}

// createManually does what redis-cli --cluster create does, for clusters
// with fewer than 3 masters: assign slot ranges, distinct config epochs,
// CLUSTER MEET, then CLUSTER REPLICATE.
func (c *Cluster) createManually(ctx context.Context) error {
	m := c.cfg.Masters
	masters, replicas := c.nodes[:m], c.nodes[m:]
	do := func(n *Node, args ...any) error {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		if err := n.cl().Do(cctx, args...).Err(); err != nil {
			return fmt.Errorf("%v on %s: %w", args, n.Addr, err)
		}
		return nil
	}
	for i, n := range masters {
		first, last := i*NumSlots/m, (i+1)*NumSlots/m-1
		if err := do(n, "CLUSTER", "ADDSLOTSRANGE", first, last); err != nil {
			return err
		}
	}
	for i, n := range c.nodes {
		if err := do(n, "CLUSTER", "SET-CONFIG-EPOCH", i+1); err != nil {
			return err
		}
	}
	for _, n := range c.nodes[1:] {
		if err := do(n, "CLUSTER", "MEET", "127.0.0.1", c.nodes[0].Port); err != nil {
			return err
		}
	}
	// CLUSTER REPLICATE needs the master to be known under its real ID.
	err := c.waitUntil(ctx, "all nodes to meet", func(ctx context.Context) error {
		for _, n := range c.nodes {
			views, err := n.clusterNodes(ctx)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, v := range views {
				if !v.hasFlag("handshake") {
					known[v.id] = true
				}
			}
			for _, o := range c.nodes {
				if !known[o.ID] {
					return fmt.Errorf("%s does not know %s yet", n.Addr, o.Addr)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, n := range replicas {
		if err := do(n, "CLUSTER", "REPLICATE", masters[i%m].ID); err != nil {
			return err
		}
	}
	return nil
}

// Close stops all nodes this cluster started (SIGTERM, SIGKILL after a short
// grace period; paused nodes are continued first), reaps them, closes the
// node clients and removes the cluster's temporary directory. It never
// signals a process it did not start. Close is idempotent; Start registers
// it with tb.Cleanup.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = n.stop(stopGrace)
			}()
		}
		wg.Wait()
		ports := make([]int, 0, len(c.nodes))
		for _, n := range c.nodes {
			n.closeClients()
			ports = append(ports, n.Port)
		}
		releasePorts(ports)
		_ = os.RemoveAll(c.dir)
	})
}

// Addrs returns the addresses ("127.0.0.1:port") of all nodes, in start
// order (the first Masters nodes were created as masters). Use them as seed
// nodes of a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Nodes returns all nodes in start order, including killed ones.
func (c *Cluster) Nodes() []*Node {
	return append([]*Node(nil), c.nodes...)
}

// Node returns the node with the given client address, or nil.
func (c *Cluster) Node(addr string) *Node {
	for _, n := range c.nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// ClusterOptions returns go-redis options with all nodes as seeds and, for
// a TLS cluster, TLSConfig set. Modify as needed and pass them to
// redis.NewClusterClient; closing that client is up to the caller.
func (c *Cluster) ClusterOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs(), TLSConfig: c.TLSConfig()}
}

// Client returns a plain single-node go-redis client connected to n. It is
// owned by the cluster (closed by Close) and must not be closed by the
// caller. Restart gives the node a new client (an old one keeps working
// once it has noticed the restart), so call Client again after Restart.
func (c *Cluster) Client(n *Node) *redis.Client { return n.cl() }

// liveNodes returns the nodes that are running and not paused.
func (c *Cluster) liveNodes() []*Node {
	var live []*Node
	for _, n := range c.nodes {
		if n.live() {
			live = append(live, n)
		}
	}
	return live
}

// ForEachNode calls fn for every running, non-paused node with that node's
// client, in start order, and returns the first error (annotated with the
// node address).
func (c *Cluster) ForEachNode(fn func(*Node, *redis.Client) error) error {
	for _, n := range c.liveNodes() {
		if err := fn(n, n.cl()); err != nil {
			return fmt.Errorf("node %s: %w", n.Addr, err)
		}
	}
	return nil
}

// FlushScripts runs SCRIPT FLUSH on every running, non-paused node.
func (c *Cluster) FlushScripts(tb testing.TB) {
	tb.Helper()
	err := c.ForEachNode(func(_ *Node, cl *redis.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		return cl.ScriptFlush(ctx).Err()
	})
	if err != nil {
		tb.Fatalf("testcluster: SCRIPT FLUSH: %v", err)
	}
}

// FlushFunctions runs FUNCTION FLUSH on every running, non-paused master,
// which its replicas replay: every function library is gone.
func (c *Cluster) FlushFunctions(tb testing.TB) {
	tb.Helper()
	err := c.ForEachNode(func(_ *Node, cl *redis.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := cl.FunctionFlush(ctx).Err()
		if err != nil && strings.HasPrefix(err.Error(), "READONLY") {
			return nil // a replica: its master's flush reaches it
		}
		return err
	})
	if err != nil {
		tb.Fatalf("testcluster: FUNCTION FLUSH: %v", err)
	}
}

// SetupACL runs `ACL SETUSER args...` (args[0] is the user name, the rest
// are rules, e.g. "app", "on", ">secret", "~*", "+@all") on every running,
// non-paused node; ACLs are per node. The call is remembered and replayed on
// nodes started later with Restart. Create separate users: the harness itself
// connects as the default user without password.
func (c *Cluster) SetupACL(tb testing.TB, args ...string) {
	tb.Helper()
	if len(args) == 0 {
		tb.Fatalf("testcluster: SetupACL needs a user name")
	}
	c.aclMu.Lock()
	c.aclLines = append(c.aclLines, append([]string(nil), args...))
	c.aclMu.Unlock()
	err := c.ForEachNode(func(n *Node, _ *redis.Client) error { return n.applyACL(args) })
	if err != nil {
		tb.Fatalf("testcluster: ACL SETUSER %v: %v", args, err)
	}
}

func (n *Node) applyACL(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := []any{"ACL", "SETUSER"}
	for _, a := range args {
		cmd = append(cmd, a)
	}
	return n.cl().Do(ctx, cmd...).Err()
}

// logTail returns the last lines of n's server log and stdout.
func (c *Cluster) logTail(n *Node, lines int) string {
	var b strings.Builder
	for _, name := range []string{"redis.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(n.Dir, name))
		if err != nil || len(strings.TrimSpace(string(data))) == 0 {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "--- %s %s (pid %d) ---\n%s\n", n.Addr, name, n.Pid(), strings.Join(all, "\n"))
	}
	return b.String()
}

// logTails returns the last lines of every node's logs.
func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	for _, n := range c.nodes {
		b.WriteString(c.logTail(n, lines))
	}
	return b.String()
}
