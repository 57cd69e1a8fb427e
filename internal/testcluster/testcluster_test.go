package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestCRC16AndSlot(t *testing.T) {
	if got := CRC16("123456789"); got != 0x31C3 {
		t.Fatalf("CRC16(123456789) = %#04x, want 0x31c3", got)
	}
	slots := map[string]int{
		"foo":                  12182,
		"bar":                  5061,
		"":                     0,
		"{user1000}.following": Slot("user1000"),
		"{user1000}.followers": Slot("user1000"),
		"foo{}{bar}":           Slot("foo{}{bar}"),
	}
	for k, want := range slots {
		if got := Slot(k); got != want {
			t.Errorf("Slot(%q) = %d, want %d", k, got, want)
		}
	}
	tags := map[string]string{
		"x{y}z":         "y",
		"{}":            "{}",
		"}x":            "}x",
		"{":             "{",
		"a{}b{c}":       "a{}b{c}",
		"foo{{bar}}zap": "{bar",
		"foo{bar}{zap}": "bar",
		"{a":            "{a",
		"}{a}":          "a",
	}
	for k, want := range tags {
		if got := HashTag(k); got != want {
			t.Errorf("HashTag(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestParseClusterNodes(t *testing.T) {
	out := "07c3 127.0.0.1:30004@31004,host.example slave e7d1 0 1426238317239 4 connected\n" +
		"e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-10 12 [13->-292f] [14-<-292f]\n" +
		"292f 127.0.0.1:30002@31002 master,fail? - 1426238316232 0 2 disconnected 15-16383\n"
	views, err := parseClusterNodes(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 {
		t.Fatalf("got %d views", len(views))
	}
	if v := views[0]; v.port != 30004 || v.masterID != "e7d1" || !v.hasFlag("slave") || v.epoch != 4 {
		t.Errorf("replica line parsed as %+v", v)
	}
	if v := views[1]; v.nslots() != 12 || !v.hasFlag("myself") || v.masterID != "" {
		t.Errorf("master line parsed as %+v (%d slots)", v, v.nslots())
	}
	if v := views[2]; !v.hasFlag("fail?") || v.link != "disconnected" || v.nslots() != NumSlots-15 {
		t.Errorf("failing master parsed as %+v", v)
	}
}

// clusterClient returns a go-redis cluster client for c, closed at test end.
func clusterClient(t *testing.T, c *Cluster) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(c.ClusterOptions())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestSlotMatchesClusterKeyslot(t *testing.T) {
	c := Shared(t)
	keys := []string{
		"", "foo", "bar", "{}", "}x", "{", "}", "x{y}z", "a{}b{c}", "{}{x}", "x{}",
		"{user1000}.following", "foo{{bar}}zap", "foo{bar}{zap}", "}{a}",
		"a\x00b", "\x00{\x00}", "{\x00}\x00", "\xff\xfe{\x80\x81}", "\xc3\x28", "日本語{語}",
		strings.Repeat("k", 1024), strings.Repeat("\x9f", 1000) + "{tag}" + strings.Repeat("z", 19),
	}
	cl := c.Client(c.Nodes()[0])
	for _, k := range keys {
		want, err := cl.ClusterKeySlot(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
		}
		if got := c.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

func TestSharedClusterBasics(t *testing.T) {
	c := Shared(t)
	if got, want := len(c.Nodes()), 6; got != want {
		t.Fatalf("%d nodes, want %d", got, want)
	}
	if got := len(c.Masters(t)); got != 3 {
		t.Fatalf("%d masters, want 3", got)
	}
	if got := len(c.Replicas(t)); got != 3 {
		t.Fatalf("%d replicas, want 3", got)
	}
	rdb := clusterClient(t, c)
	ctx := t.Context()
	for i := range 20 {
		key := fmt.Sprintf("basics:%d", i)
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		// The key lives on the master MasterForKey names.
		m := c.MasterForKey(t, key)
		if !m.IsMaster() {
			t.Fatalf("MasterForKey(%s) = %s, which is not a master", key, m)
		}
		if n, err := c.Client(m).Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Fatalf("EXISTS %s on %s = %d, %v; want 1", key, m, n, err)
		}
		r := c.ReplicaOf(t, m)
		if r == nil || r.IsMaster() {
			t.Fatalf("ReplicaOf(%s) = %v, want a replica", m, r)
		}
	}

	// Scripts are per node; FlushScripts removes them everywhere.
	sha, err := rdb.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		t.Fatal(err)
	}
	c.FlushScripts(t)
	err = c.ForEachNode(func(n *Node, cl *redis.Client) error {
		ex, err := cl.ScriptExists(ctx, sha).Result()
		if err != nil {
			return err
		}
		if ex[0] {
			return errors.New("script still cached")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Function libraries replicate; FlushFunctions removes them everywhere.
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.FunctionLoad(ctx, "#!lua name=tclib\nredis.register_function('tcfn', function() return 1 end)").Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	c.FlushFunctions(t)
	for deadline := time.Now().Add(10 * time.Second); ; { // replicas replay the flush
		err = c.ForEachNode(func(n *Node, cl *redis.Client) error {
			libs, err := cl.FunctionList(ctx, redis.FunctionListQuery{}).Result()
			if err != nil {
				return err
			}
			if len(libs) != 0 {
				return fmt.Errorf("%d libraries left", len(libs))
			}
			return nil
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// ACL users are created on every node.
	c.SetupACL(t, "tc-basic", "reset", "on", ">s3cret", "~acl:*", "+@all")
	opts := c.ClusterOptions()
	opts.Username, opts.Password = "tc-basic", "s3cret"
	acl := redis.NewClusterClient(opts)
	defer acl.Close()
	for i := range 10 {
		if err := acl.Set(ctx, fmt.Sprintf("acl:%d", i), "v", 0).Err(); err != nil {
			t.Fatalf("SET as ACL user: %v", err)
		}
	}
	if err := acl.Set(ctx, "forbidden", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET outside the user's key pattern: err = %v, want NOPERM", err)
	}
}

// pidGone reports whether no process with this pid exists any more.
func pidGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestFailoverPauseAndClose(t *testing.T) {
	t.Parallel()
	// One master and one replica: also covers creation without redis-cli.
	c := Start(t, Config{Masters: 1})
	rdb := clusterClient(t, c)
	ctx := t.Context()
	if err := rdb.Set(ctx, "fo:key", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	master := c.MasterForSlot(t, 0)
	replica := c.ReplicaOf(t, master)
	if replica == nil {
		t.Fatalf("no replica of %s", master)
	}
	c.Failover(t, replica)
	if !replica.IsMaster() || master.IsMaster() {
		t.Fatalf("after Failover(%s): IsMaster = %v, old master %s IsMaster = %v",
			replica, replica.IsMaster(), master, master.IsMaster())
	}
	if got := c.MasterForSlot(t, 0); got != replica {
		t.Fatalf("MasterForSlot(0) = %s, want %s", got, replica)
	}
	if got := c.ReplicaOf(t, replica); got != master {
		t.Fatalf("ReplicaOf(new master) = %v, want %s", got, master)
	}
	if v, err := rdb.Get(ctx, "fo:key").Result(); err != nil || v != "v1" {
		t.Fatalf("GET after failover = %q, %v", v, err)
	}

	// Pause/Resume of the old master (now a replica).
	c.Pause(t, master)
	if !master.Paused() || !master.Running() {
		t.Fatalf("after Pause: Paused=%v Running=%v", master.Paused(), master.Running())
	}
	c.Resume(t, master)
	c.WaitHealthy(t, 0)

	// Close stops everything, also a paused node, and removes the files.
	c.Pause(t, master)
	var pids []int
	for _, n := range c.Nodes() {
		pids = append(pids, n.Pid())
	}
	c.Close()
	for i, pid := range pids {
		if !pidGone(pid) {
			t.Errorf("node %s (pid %d) still exists after Close", c.Nodes()[i], pid)
		}
	}
	for _, n := range c.Nodes() {
		if n.Running() {
			t.Errorf("%s reports Running after Close", n)
		}
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s not removed: %v", c.dir, err)
	}
}

func TestKillMasterPromotesReplica(t *testing.T) {
	t.Parallel()
	c := Start(t, Config{})
	ctx := t.Context()
	const key = "kill:key"
	master := c.MasterForKey(t, key)
	replica := c.ReplicaOf(t, master)
	if replica == nil {
		t.Fatalf("no replica of %s", master)
	}
	// Write on the master's own connection, then WAIT on that connection:
	// WAIT waits for the writes of the connection it is sent on, so this
	// makes sure the write reached the replica before the master dies.
	if err := c.Client(master).Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Client(master).Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on %s = %d, %v", master, n, err)
	}

	oldPid := master.Pid()
	c.Kill(t, master)
	if master.Running() || !pidGone(oldPid) {
		t.Fatalf("%s (pid %d) still running after Kill", master, oldPid)
	}
	c.WaitHealthy(t, 0)
	if !replica.IsMaster() {
		t.Fatalf("replica %s of killed master %s was not promoted", replica, master)
	}
	if got := c.MasterForKey(t, key); got != replica {
		t.Fatalf("MasterForKey = %s, want promoted %s", got, replica)
	}
	// A fresh client: rdb may still hold the slot map naming the dead node.
	if v, err := clusterClient(t, c).Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET after promotion = %q, %v", v, err)
	}

	// The killed node comes back as a replica of its former replica.
	c.Restart(t, master)
	if master.Pid() == oldPid || !master.Running() {
		t.Fatalf("Restart did not start a new process (pid %d, was %d)", master.Pid(), oldPid)
	}
	c.WaitHealthy(t, 0)
	if got := c.ReplicaOf(t, replica); got != master {
		t.Fatalf("after Restart, ReplicaOf(%s) = %v, want %s", replica, got, master)
	}
}

func TestMoveSlot(t *testing.T) {
	t.Parallel()
	c := Start(t, Config{MigrateBatchSize: 7, MigrateBatchDelay: time.Millisecond})
	rdb := clusterClient(t, c)
	ctx := t.Context()
	const nkeys = 50
	key := func(i int) string { return fmt.Sprintf("{move}:%d", i) }
	slot := c.Slot(key(0))
	for i := range nkeys {
		if err := rdb.Set(ctx, key(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func(when string) {
		t.Helper()
		for i := range nkeys {
			if v, err := rdb.Get(ctx, key(i)).Int(); err != nil || v != i {
				t.Fatalf("%s: GET %s = %d, %v", when, key(i), v, err)
			}
		}
	}

	from := c.MasterForSlot(t, slot)
	var to *Node
	for _, m := range c.Masters(t) {
		if m != from {
			to = m
			break
		}
	}

	// Step by step: half-way through, keys live on both nodes (ASK).
	m := c.BeginMigration(t, slot, to)
	if got := m.MigrateKeys(t, 20); got != 20 {
		t.Fatalf("MigrateKeys moved %d keys, want 20", got)
	}
	readAll("during migration")
	m.Finish(t)
	if got := c.MasterForSlot(t, slot); got != to {
		t.Fatalf("after migration slot %d is served by %s, want %s", slot, got, to)
	}
	if n, err := c.Client(to).ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || n != nkeys {
		t.Fatalf("target has %d keys in slot %d (%v), want %d", n, slot, err, nkeys)
	}
	readAll("after migration")

	// And back in one call, together with two empty slots.
	c.MoveSlots(t, []int{slot, (slot + 1) % NumSlots, (slot + 2) % NumSlots}, from)
	for _, s := range []int{slot, (slot + 1) % NumSlots, (slot + 2) % NumSlots} {
		if got := c.MasterForSlot(t, s); got != from {
			t.Fatalf("slot %d is served by %s, want %s", s, got, from)
		}
	}
	readAll("after moving back")
}

func TestTLSCluster(t *testing.T) {
	t.Parallel()
	c := Start(t, Config{TLS: true})
	if c.TLSConfig() == nil {
		t.Fatal("TLSConfig() = nil for a TLS cluster")
	}
	rdb := clusterClient(t, c)
	ctx := t.Context()
	for i := range 20 {
		key := fmt.Sprintf("tls:%d", i)
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET over TLS: %v", err)
		}
		if v, err := rdb.Get(ctx, key).Int(); err != nil || v != i {
			t.Fatalf("GET over TLS = %d, %v", v, err)
		}
	}

	opts := c.ClusterOptions()
	opts.TLSConfig = WrongCATLSConfig()
	opts.MaxRetries = -1
	opts.Addrs = opts.Addrs[:1] // one seed keeps the failure quick
	bad := redis.NewClusterClient(opts)
	defer bad.Close()
	err := bad.Set(ctx, "tls:bad", "v", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("SET with an untrusted CA: err = %v, want a certificate error", err)
	}

	plain := redis.NewClient(&redis.Options{Addr: c.Addrs()[0], MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("plain-text PING to a TLS-only node succeeded")
	}

	// MIGRATE between TLS nodes goes over TLS too.
	key := "{tlsmove}:k"
	if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	from := c.MasterForKey(t, key)
	to := c.Masters(t)[0]
	if to == from {
		to = c.Masters(t)[1]
	}
	c.MoveSlot(t, c.Slot(key), to)
	if got := c.MasterForKey(t, key); got != to {
		t.Fatalf("after MoveSlot the key is served by %s, want %s", got, to)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET after MoveSlot over TLS = %q, %v", v, err)
	}
}

func TestStartRetriesOnPortConflict(t *testing.T) {
	requireRedis(t)
	// Not parallel: the hook is global. A single master without replicas is
	// enough to see that a lost port race leads to a retry on new ports.
	var conflicted []int
	testHookPortsReserved = func(attempt int, ports []int) {
		if attempt != 1 {
			return
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]+10000))
		if err != nil {
			return // somebody else took it: a conflict all the same
		}
		conflicted = append(conflicted, ports[0])
		t.Cleanup(func() { _ = l.Close() })
	}
	defer func() { testHookPortsReserved = nil }()
	c := Start(t, Config{Masters: 1, ReplicasPerMaster: NoReplicas})
	if len(c.Nodes()) != 1 {
		t.Fatalf("%d nodes, want 1", len(c.Nodes()))
	}
	if len(conflicted) > 0 && c.Nodes()[0].Port == conflicted[0] {
		t.Fatalf("node runs on port %d whose bus port was taken", conflicted[0])
	}
	rdb := clusterClient(t, c)
	if err := rdb.Set(t.Context(), "retry", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestWrapper starts a node under a shell that leaves a mark and execs
// redis-server: the node answers, and its pid, the wrapper's, is the
// server's.
func TestWrapper(t *testing.T) {
	requireRedis(t)
	marker := filepath.Join(t.TempDir(), "wrapped")
	c := Start(t, Config{Masters: 1, ReplicasPerMaster: NoReplicas, Wrapper: []string{"sh", "-c", `touch "$0" && exec "$@"`, marker}})
	n := c.Nodes()[0]
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the wrapper did not run: %v", err)
	}
	info, err := c.Client(n).Info(t.Context(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("process_id:%d", n.Pid()); !strings.Contains(info, want) {
		t.Fatalf("INFO server lacks %q: the node's pid is not the server's", want)
	}
}
