package hammer

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a ClusterBackend. They are the Go spelling of the
// options of Hammer's Redis Cluster backend: expiry_ms, eredis_cluster_name,
// eredis_cluster_init_servers and eredis_options.
//
// NewClusterBackend copies what it needs: it never changes the Options, nor
// the RedisOptions they point to.
type Options struct {
	// ExpiryMs is how long a bucket lives after its latest hit, in
	// milliseconds. It is required: it must be at least 1 and at most
	// MaxExpiryMs. A Limiter refuses scales longer than the expiry, since
	// such a bucket could vanish before its window ends.
	ExpiryMs int64

	// ClusterName names this backend in errors. The default value is
	// "default".
	ClusterName string

	// InitServers are the seed nodes of the cluster, as "host:port". One
	// reachable node is enough: the client learns the others from it. They
	// are required unless Client is set, and unused when it is.
	InitServers []string

	// RedisOptions are passed down to the go-redis cluster client created
	// from InitServers: username, password, TLS, timeouts, pool sizes. Its
	// Addrs are replaced by InitServers. Unused when Client is set.
	//
	// Fields left zero get the backend's defaults, which differ from
	// go-redis's own so that a call fails or recovers quickly when a node
	// dies or stalls:
	//
	//	DialTimeout            1s    (go-redis: 5s)
	//	ReadTimeout            500ms (go-redis: 5s)
	//	WriteTimeout           500ms (go-redis: ReadTimeout)
	//	DialerRetries          1     (go-redis: 5, 100ms apart)
	//	ContextTimeoutEnabled  true  (go-redis: false; a context deadline
	//	                              then bounds socket I/O too)
	//
	// Every other zero field keeps go-redis's default. Set KeepRedisDefaults
	// to use RedisOptions exactly as given. The default value is nil: the
	// defaults above.
	RedisOptions *redis.ClusterOptions

	// KeepRedisDefaults passes RedisOptions to go-redis as they are, without
	// the backend's defaults: for example to leave ContextTimeoutEnabled
	// off. The default value is false.
	KeepRedisDefaults bool

	// Client is a go-redis client to use instead of creating one: a
	// *redis.ClusterClient, or a *redis.Client for a standalone Redis.
	// The backend never closes it. The default value is nil: a cluster
	// client is created from InitServers and RedisOptions, and Close
	// closes it.
	Client redis.UniversalClient

	// KeyPrefix is put in front of every key the backend writes. It may not
	// contain '{' or '}', so it never becomes part of a hash tag and ids
	// spread over all slots. The default value is "hammer:".
	KeyPrefix string

	// MaxIDBytes is the longest id accepted, in bytes. The default value is
	// DefaultMaxIDBytes (1024).
	MaxIDBytes int

	// Coalesce sets whether hits from concurrent callers are queued per
	// master and sent together, as batch script calls or pipelines (see
	// NoBatchScript, and the README's Batches section).
	// The default value is CoalesceDefault, which is CoalesceOn.
	Coalesce CoalesceMode

	// CoalesceMaxBatch is the most hits sent in one round trip (a batch
	// script call runs at most 64 of them; more go as several calls in one
	// pipeline). The default value is 128.
	CoalesceMaxBatch int

	// CoalesceMaxQueue bounds the hits queued or in flight, over all
	// nodes; a caller waits for room (or for its context to end) when the
	// queue is full. The default value is 8192.
	CoalesceMaxQueue int

	// CoalesceFlushers is the most round trips of coalesced hits in flight
	// to one node at a time: with one, a batch runs while the next one
	// gathers. More make smaller batches, which cost the servers and the
	// client more per hit, and lower latency only where the servers have
	// CPU to spare. The default value is 1.
	CoalesceFlushers int

	// CoalesceTimeout bounds one round trip of coalesced hits. Callers
	// return at their own context's end whatever this is. The default
	// value is 1s.
	CoalesceTimeout time.Duration

	// BatchObserver, when set, receives the number of coalesced hits of
	// every round trip. The default value is nil.
	BatchObserver BatchObserver

	// NoBatchScript turns off batch scripts: the coalesced hits of one
	// flush then go as a pipeline of script calls, one per hit, rather
	// than as one script call that runs them all (and merges the hits of
	// one key). The default value is false: batch scripts are used where
	// the server takes them (Redis 7 and later; found out once).
	NoBatchScript bool

	// NoFunctions turns off Redis functions: scripts are then always sent
	// with EVALSHA (and EVAL when a node lacks them), and nothing is
	// loaded with FUNCTION LOAD. The default value is false: the scripts
	// are loaded on every master as one function library and called with
	// FCALL, which costs a master less per call, where every master
	// takes it (Redis 7 and later; found out after the first reply:
	// calls go with EVALSHA until then). The
	// library stays on the nodes until FUNCTION DELETE (see the README's
	// Data model section).
	NoFunctions bool
}

// CoalesceMode says whether hits are coalesced into pipelines.
type CoalesceMode int

const (
	CoalesceDefault CoalesceMode = iota // the default: CoalesceOn
	CoalesceOn                          // queue concurrent hits per master, send them as pipelines
	CoalesceOff                         // send every hit on its own, from its caller's goroutine
)

// MaxExpiryMs is the longest Options.ExpiryMs accepted: about 139 years.
const MaxExpiryMs = 1 << 42

const (
	defaultClusterName = "default"
	defaultKeyPrefix   = "hammer:"
)

// Defaults of coalescing; see Options.
const (
	defaultCoalesce         = CoalesceOn
	defaultCoalesceMaxBatch = 128
	defaultCoalesceMaxQueue = 8192
	defaultCoalesceFlushers = 1
	defaultCoalesceTimeout  = time.Second
)

// config is the validated form of Options with every default applied.
type config struct {
	expiryMs   int64
	name       string
	prefix     string
	maxIDBytes int

	coalesce     bool
	noBatch      bool
	noFunctions  bool
	maxBatch     int
	maxQueue     int
	flushers     int
	flushTimeout time.Duration
	batchObs     BatchObserver
}

// validate checks opts and applies the defaults, without touching opts.
func (opts *Options) validate() (config, error) {
	c := config{
		expiryMs:   opts.ExpiryMs,
		name:       opts.ClusterName,
		prefix:     opts.KeyPrefix,
		maxIDBytes: opts.MaxIDBytes,
		batchObs:   opts.BatchObserver,
	}
	if c.expiryMs < 1 || c.expiryMs > MaxExpiryMs {
		return c, fmt.Errorf("%w: ExpiryMs %d outside [1, %d]", ErrInvalidOptions, c.expiryMs, int64(MaxExpiryMs))
	}
	if opts.Client == nil && len(opts.InitServers) == 0 {
		return c, fmt.Errorf("%w: neither InitServers nor Client is set", ErrInvalidOptions)
	}
	if strings.ContainsAny(c.prefix, "{}") {
		return c, fmt.Errorf("%w: KeyPrefix %q contains '{' or '}'", ErrInvalidOptions, c.prefix)
	}
	if c.maxIDBytes < 0 {
		return c, fmt.Errorf("%w: MaxIDBytes %d is negative", ErrInvalidOptions, c.maxIDBytes)
	}
	mode := opts.Coalesce
	if mode == CoalesceDefault {
		mode = defaultCoalesce
	}
	if mode != CoalesceOn && mode != CoalesceOff {
		return c, fmt.Errorf("%w: unknown Coalesce mode %d", ErrInvalidOptions, opts.Coalesce)
	}
	c.coalesce = mode == CoalesceOn
	c.noBatch = opts.NoBatchScript
	c.noFunctions = opts.NoFunctions
	var err error
	if c.maxBatch, err = positive("CoalesceMaxBatch", opts.CoalesceMaxBatch, defaultCoalesceMaxBatch); err != nil {
		return c, err
	}
	if c.maxQueue, err = positive("CoalesceMaxQueue", opts.CoalesceMaxQueue, defaultCoalesceMaxQueue); err != nil {
		return c, err
	}
	if c.flushers, err = positive("CoalesceFlushers", opts.CoalesceFlushers, defaultCoalesceFlushers); err != nil {
		return c, err
	}
	if opts.CoalesceTimeout < 0 {
		return c, fmt.Errorf("%w: CoalesceTimeout %v is negative", ErrInvalidOptions, opts.CoalesceTimeout)
	}
	c.flushTimeout = opts.CoalesceTimeout
	if c.flushTimeout == 0 {
		c.flushTimeout = defaultCoalesceTimeout
	}
	if c.name == "" {
		c.name = defaultClusterName
	}
	if c.prefix == "" {
		c.prefix = defaultKeyPrefix
	}
	if c.maxIDBytes == 0 {
		c.maxIDBytes = DefaultMaxIDBytes
	}
	return c, nil
}

// Defaults of the client created from InitServers; see Options.RedisOptions.
const (
	DefaultDialTimeout   = time.Second
	DefaultReadTimeout   = 500 * time.Millisecond
	DefaultWriteTimeout  = 500 * time.Millisecond
	DefaultDialerRetries = 1
)

// positive returns v, or def when v is 0, and an error when v is negative.
func positive(name string, v, def int) (int, error) {
	switch {
	case v < 0:
		return 0, fmt.Errorf("%w: %s %d is negative", ErrInvalidOptions, name, v)
	case v == 0:
		return def, nil
	}
	return v, nil
}

// clusterOptions returns the options of the client created from InitServers:
// a copy of RedisOptions with Addrs set to InitServers and, unless
// KeepRedisDefaults, the backend's defaults in its zero fields.
func (opts *Options) clusterOptions() *redis.ClusterOptions {
	var co redis.ClusterOptions
	if opts.RedisOptions != nil {
		co = *opts.RedisOptions
	}
	co.Addrs = append([]string(nil), opts.InitServers...)
	if opts.KeepRedisDefaults {
		return &co
	}
	if co.DialTimeout == 0 {
		co.DialTimeout = DefaultDialTimeout
	}
	if co.ReadTimeout == 0 {
		co.ReadTimeout = DefaultReadTimeout
	}
	if co.WriteTimeout == 0 {
		co.WriteTimeout = DefaultWriteTimeout
	}
	if co.DialerRetries == 0 {
		co.DialerRetries = DefaultDialerRetries
	}
	co.ContextTimeoutEnabled = true
	return &co
}
