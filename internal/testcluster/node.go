package testcluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Node is one redis-server process of a Cluster. Its address, port, data
// directory and cluster node ID never change, also not across Restart. Its
// role (master or replica) can change at any time and is therefore only
// available through methods that ask the node.
type Node struct {
	// Addr is "127.0.0.1:<Port>".
	Addr string
	// Port is the client port (the TLS port for a TLS cluster). The cluster
	// bus listens on Port+10000.
	Port int
	// Dir is the node's private working directory; it holds nodes.conf,
	// redis.log (the server log) and stdout.log.
	Dir string
	// ID is the node's cluster node ID (CLUSTER MYID).
	ID string

	c *Cluster

	mu         sync.Mutex
	client     *redis.Client   // current client, see Cluster.Client
	oldClients []*redis.Client // replaced by Restart, closed by Close
	proc       *process        // nil when not running
	lastPid    int
	paused     bool
}

// cl returns the node's current client.
func (n *Node) cl() *redis.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.client
}

// renewClient replaces the node's client by a fresh one. go-redis stops
// dialing for up to a second after repeated dial errors, which a client of a
// killed node has seen; a new client talks to the restarted node at once.
// The old client keeps working (it recovers by itself) until Close.
func (n *Node) renewClient() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.client != nil {
		n.oldClients = append(n.oldClients, n.client)
	}
	n.client = newNodeClient(n.Addr, n.c)
}

// closeClients closes all clients of n.
func (n *Node) closeClients() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, cl := range append(n.oldClients, n.client) {
		if cl != nil {
			_ = cl.Close()
		}
	}
	n.oldClients = nil
}

// process is one started redis-server; done is closed once it was reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait result, valid after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// String returns n.Addr.
func (n *Node) String() string { return n.Addr }

// Pid returns the process id of the node's most recently started process,
// also after that process was killed or the cluster was closed.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastPid
}

// Running reports whether the node's process is running (a paused node is
// running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Paused reports whether the node was stopped with Pause and not resumed.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused && n.proc != nil && !n.proc.exited()
}

// live reports whether the node is running and not paused, i.e. expected to
// answer commands.
func (n *Node) live() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited() && !n.paused
}

// Role asks the node for its replication role (ROLE) and returns "master"
// or "slave".
func (n *Node) Role() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := n.cl().Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", fmt.Errorf("ROLE on %s: %w", n.Addr, err)
	}
	if len(v) == 0 {
		return "", fmt.Errorf("ROLE on %s: empty reply", n.Addr)
	}
	role, ok := v[0].(string)
	if !ok {
		return "", fmt.Errorf("ROLE on %s: unexpected reply %v", n.Addr, v)
	}
	return role, nil
}

// IsMaster asks the node whether it currently is a master. It returns false
// if the node does not answer (killed, paused or unreachable).
func (n *Node) IsMaster() bool {
	role, err := n.Role()
	return err == nil && role == "master"
}

func newNodeClient(addr string, c *Cluster) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		TLSConfig:             c.TLSConfig(),
		DialTimeout:           2 * time.Second,
		DialerRetries:         1, // fail fast; callers poll
		ContextTimeoutEnabled: true,
		DisableIdentity:       true, // CLIENT SETINFO needs Redis 7.2
		PoolSize:              4,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// args returns the redis-server command line of n.
func (n *Node) args() []string {
	c := n.c
	port := strconv.Itoa(n.Port)
	var a []string
	if c.tls != nil {
		a = append(a,
			"--port", "0",
			"--tls-port", port,
			"--tls-cluster", "yes",
			"--tls-replication", "yes",
			"--tls-cert-file", c.tls.certFile,
			"--tls-key-file", c.tls.keyFile,
			"--tls-ca-cert-file", c.tls.caFile,
			"--tls-auth-clients", "no",
		)
	} else {
		a = append(a, "--port", port)
	}
	a = append(a,
		"--bind", "127.0.0.1",
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(n.Dir, "nodes.conf"),
		"--cluster-node-timeout", "2000",
		"--cluster-replica-validity-factor", "0",
		"--save", "",
		"--appendonly", "no",
		"--dir", n.Dir,
		"--daemonize", "no",
		"--logfile", filepath.Join(n.Dir, "redis.log"),
		// Replicas sync right away instead of after the default 5s wait
		// for more replicas to arrive.
		"--repl-diskless-sync-delay", "0",
		// Do not wait up to shutdown-timeout for lagging replicas on SIGTERM.
		"--shutdown-on-sigterm", "now",
		// Allow DEBUG (e.g. DEBUG SLEEP) from localhost for fault injection.
		"--enable-debug-command", "local",
	)
	return append(a, c.cfg.ExtraArgs...)
}

// spawn starts the node's redis-server process.
func (n *Node) spawn() error {
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(n.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	argv := append(slices.Clone(n.c.cfg.Wrapper), n.c.serverPath)
	argv = append(argv, n.args()...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = n.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("start redis-server for %s: %w", n.Addr, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.proc = p
	n.lastPid = cmd.Process.Pid
	n.paused = false
	n.mu.Unlock()
	return nil
}

// errExited is returned by waitReady when the process exited during startup.
var errExited = errors.New("redis-server exited during startup")

// waitReady polls PING until the node answers, its process exits or ctx
// expires.
func (n *Node) waitReady(ctx context.Context) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s: not running", n.Addr)
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var d net.Dialer
	for {
		// Probe with a bare TCP connect first: failed dials through the
		// go-redis pool would make it back off for up to a second.
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		conn, err := d.DialContext(pctx, "tcp", n.Addr)
		if err == nil {
			_ = conn.Close()
			err = n.cl().Ping(pctx).Err()
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s: %w (%v)", n.Addr, errExited, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s: not answering PING: %v", n.Addr, err)
		case <-tick.C:
		}
	}
}

// signal sends sig to the running process of n.
func (n *Node) signal(sig os.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return fmt.Errorf("node %s is not running", n.Addr)
	}
	if err := n.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s (pid %d): %w", sig, n.Addr, n.lastPid, err)
	}
	switch sig {
	case sigStop:
		n.paused = true
	case sigCont:
		n.paused = false
	}
	return nil
}

// kill SIGKILLs the process (if running) and waits until it was reaped.
func (n *Node) kill() error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sigKill)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("node %s (pid %d) did not exit after SIGKILL", n.Addr, p.cmd.Process.Pid)
	}
	n.mu.Lock()
	if n.proc == p {
		n.proc = nil
		n.paused = false
	}
	n.mu.Unlock()
	return nil
}

// stop terminates the process gracefully: SIGTERM (plus SIGCONT in case it
// is paused), then SIGKILL after grace; it always reaps the process.
func (n *Node) stop(grace time.Duration) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if !p.exited() {
		_ = p.cmd.Process.Signal(sigTerm)
		_ = p.cmd.Process.Signal(sigCont) // a stopped process only sees SIGTERM once continued
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	return n.kill()
}

// Port allocation. Client ports come from [portMin, portMax); the cluster
// bus uses port+10000, which stays below the Linux ephemeral port range
// (32768+), so outgoing connections never steal one of our ports.
const (
	portMin = 20000
	portMax = 22700
)

var (
	portsMu       sync.Mutex
	portsReserved = map[int]bool{} // ports handed out in this process
)

// portFree reports whether port can be bound on 127.0.0.1 right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// reservePorts picks n random ports P such that P and P+10000 are free and
// not handed out to another cluster of this process. Randomisation keeps
// concurrently running test binaries apart; a remaining race is handled by
// retrying the start on a bind failure.
func reservePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20000 {
			for _, p := range ports {
				delete(portsReserved, p)
			}
			return nil, fmt.Errorf("no free port pairs P, P+10000 with P in [%d, %d)", portMin, portMax)
		}
		p := portMin + rand.IntN(portMax-portMin)
		if portsReserved[p] || !portFree(p) || !portFree(p+10000) {
			continue
		}
		portsReserved[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

func releasePorts(ports []int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(portsReserved, p)
	}
}
