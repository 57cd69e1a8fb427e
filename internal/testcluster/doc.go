// Package testcluster starts real Redis Clusters made of redis-server child
// processes on 127.0.0.1, for tests and benchmarks that need the real thing
// (redirections, failover, slot migration, ACL, TLS) rather than miniredis.
//
// It needs redis-server (7.0 or newer) and redis-cli on PATH, e.g. from
// `apt-get install -y redis-server` (or run `make test`). Without them Start
// and Shared skip the test; with HAMMER_REQUIRE_CLUSTER=1 in the environment
// they fail it instead. Available reports the same check.
//
// # Private clusters
//
// Start launches a new cluster for one test and stops it when the test ends:
//
//	c := testcluster.Start(t, testcluster.Config{}) // 3 masters, 1 replica each
//	rdb := redis.NewClusterClient(c.ClusterOptions())
//	defer rdb.Close()
//	m := c.MasterForKey(t, "k")
//	c.Kill(t, m)         // SIGKILL; its replica gets promoted
//	c.WaitHealthy(t, 0)  // until every live node agrees and is ok
//
// Every node runs as
//
//	redis-server --port P --bind 127.0.0.1 --cluster-enabled yes
//	  --cluster-config-file DIR/nodes.conf --cluster-node-timeout 2000
//	  --cluster-replica-validity-factor 0 --save "" --appendonly no
//	  --dir DIR --daemonize no --logfile DIR/redis.log
//	  --repl-diskless-sync-delay 0 --shutdown-on-sigterm now
//	  --enable-debug-command local [ExtraArgs...]
//
// with a random port P in [20000, 22700) whose cluster bus port P+10000 is
// free as well; a start that loses a port race is retried on new ports. TLS
// clusters use --port 0 --tls-port P plus the TLS options instead of
// --port P. DIR is a private directory per node inside a temporary directory
// that Close removes. With
// three or more masters the cluster is created with `redis-cli --cluster
// create`. Start returns only when every node reports cluster_state:ok, all
// nodes agree on slot owners, roles and config epochs, and every replica's
// link is up, so clients see no transient MOVED/CLUSTERDOWN. A start that
// does not get there within Config.Timeout fails the test with the tail of
// the node logs. A start takes about 2-3 seconds (a Redis Cluster master
// refuses to report cluster_state:ok during its first 2 seconds).
//
// Processes are only ever signalled by the pid this package started them
// with. On Linux they additionally get a parent-death signal, so they do not
// outlive a test binary that crashes or times out.
//
// # One cluster per test binary
//
// Starting a cluster takes a few seconds, so read-only or non-destructive
// tests of a package can share one:
//
//	func TestMain(m *testing.M) { testcluster.Main(m) } // runs tests, then StopShared
//
//	func TestSomething(t *testing.T) {
//		c := testcluster.Shared(t) // started on first use
//		...
//	}
//
// Tests using the shared cluster must leave its topology alone (no Kill,
// Pause, Failover, MoveSlot, Restart) and should use their own key names;
// destructive tests call Start to get a private cluster.
//
// # Faults and topology changes
//
// Kill, Pause, Resume and Restart act on single processes; Failover runs
// CLUSTER FAILOVER and waits for the promotion; BeginMigration/MoveSlot move
// a slot by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) so that
// clients see ASK redirects. MasterForSlot, MasterForKey, ReplicaOf, Masters
// and Replicas ask the running cluster, so they are correct after a failover.
//
// # TLS
//
// Config.TLS starts a TLS-only cluster (client port, cluster bus and
// replication) with a CA and node certificate generated into the cluster's
// temporary directory. Clients need TLSConfig(); nodes do not ask for client
// certificates (--tls-auth-clients no). WrongCATLSConfig gives a client
// configuration that must be rejected.
package testcluster
