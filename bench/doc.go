// Package bench compares hammer with other Redis rate limiters for Go on
// a real Redis Cluster, and measures what hammer's checks cost Redis in
// CPU and memory. It is a module of its own, so that the peers it imports
// never become dependencies of hammer. Its only code is tests, skipped
// unless HAMMER_PEER_BENCH=1: TestPeers (throughput, and Redis and
// client CPU per check, against the peers, under uniform and Zipf ids),
// TestRedisCPU (Redis CPU per check, Hit with one rule and with three) and
// TestMemory (Redis memory per id of each rule kind); see README.md.
package bench
