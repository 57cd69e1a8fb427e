// Package bench compares hammer with other Redis rate limiters for Go on
// a real Redis Cluster. It is a module of its own, so that the peers it
// imports never become dependencies of hammer. Its only code is the test
// TestPeers; see README.md.
package bench
