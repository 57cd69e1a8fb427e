package hammer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterBackend is a Backend over Redis Cluster, or over a standalone Redis
// when given a *redis.Client. Each bucket is a hash holding count, created
// and updated, with a TTL of Options.ExpiryMs after its latest hit; each id
// has an index of its buckets so that DeleteBuckets never scans. A hit is one
// Lua script, sent with EVALSHA (EVAL on NOSCRIPT): in a round trip of its
// own, or, with coalescing (the default), in a pipeline shared with the
// concurrent hits bound for the same master.
//
// A ClusterBackend is safe for concurrent use.
type ClusterBackend struct {
	client redis.UniversalClient
	owned  bool // Close closes client
	cfg    config
	reload reloader
	co     *coalescer // nil: every hit is sent on its own

	// Script arguments that never change, formatted and boxed once.
	expiryArg any
	indexArg  any
}

var _ Backend = (*ClusterBackend)(nil)

// NewClusterBackend returns a backend over the cluster that opts describe.
// It checks opts, and returns an error wrapping ErrInvalidOptions when they
// are wrong. It does not connect: the first call does, so a backend can be
// made before the cluster is up.
func NewClusterBackend(opts Options) (*ClusterBackend, error) {
	cfg, err := opts.validate()
	if err != nil {
		return nil, err
	}
	b := &ClusterBackend{
		client:    opts.Client,
		cfg:       cfg,
		expiryArg: strconv.FormatInt(cfg.expiryMs, 10),
		// A bucket created at t takes hits until its window ends, at most
		// ExpiryMs later (a Limiter refuses longer scales), and lives
		// ExpiryMs after its latest hit: its index entry is kept that long.
		indexArg: strconv.FormatInt(2*cfg.expiryMs, 10),
	}
	if b.client == nil {
		b.client = redis.NewClusterClient(opts.clusterOptions())
		b.owned = true
	}
	b.reload.cc, _ = b.client.(*redis.ClusterClient)
	if cfg.coalesce {
		b.co = newCoalescer(b, cfg.maxQueue, cfg.maxBatch, cfg.flushers, cfg.flushTimeout)
	}
	return b, nil
}

// Close closes the client that NewClusterBackend created. It does nothing
// when the client was given in Options.Client.
func (b *ClusterBackend) Close() error {
	if !b.owned {
		return nil
	}
	return b.client.Close()
}

// Expiry returns Options.ExpiryMs as a duration. A Limiter refuses scales
// longer than this.
func (b *ClusterBackend) Expiry() time.Duration {
	return time.Duration(b.cfg.expiryMs) * time.Millisecond
}

// MaxIDBytes returns the longest id the backend accepts.
func (b *ClusterBackend) MaxIDBytes() int { return b.cfg.maxIDBytes }

// CountHit adds one hit to the bucket of key. See Backend.
func (b *ClusterBackend) CountHit(ctx context.Context, key BucketKey, now int64) (int64, error) {
	return b.CountHitInc(ctx, key, now, 1)
}

// CountHitInc adds increment hits to the bucket of key. See Backend.
func (b *ClusterBackend) CountHitInc(ctx context.Context, key BucketKey, now int64, increment int64) (int64, error) {
	if err := checkID(key.ID, b.cfg.maxIDBytes); err != nil {
		return 0, err
	}
	if err := checkIncrement(increment); err != nil {
		return 0, err
	}
	bucket, index := hitKeys(b.cfg.prefix, key)
	var n int64
	var err error
	if b.co != nil {
		n, err = b.co.hit(ctx, bucket, index, now, increment)
	} else {
		n, err = b.runHit(ctx, []string{bucket, index}, now, increment)
	}
	if err != nil {
		return 0, b.wrap("count hit", key.ID, err)
	}
	return n, nil
}

// runHit sends one hit on its own: EVALSHA, EVAL when the node does not
// have the script, and again after a pause on TRYAGAIN.
func (b *ClusterBackend) runHit(ctx context.Context, keys []string, now, inc int64) (int64, error) {
	n, err := b.client.EvalSha(ctx, hitSHA, keys, now, inc, b.expiryArg, b.indexArg).Int64()
	for err != nil {
		switch {
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			n, err = b.client.Eval(ctx, hitSource, keys, now, inc, b.expiryArg, b.indexArg).Int64()
		case redis.IsTryAgainError(err) && pause(ctx):
			n, err = b.client.EvalSha(ctx, hitSHA, keys, now, inc, b.expiryArg, b.indexArg).Int64()
		default:
			return 0, err
		}
	}
	return n, nil
}

// GetBucket returns the bucket of key, or (nil, nil) when it does not exist.
// It is one HMGET and changes nothing.
func (b *ClusterBackend) GetBucket(ctx context.Context, key BucketKey) (*BucketInfo, error) {
	if err := checkID(key.ID, b.cfg.maxIDBytes); err != nil {
		return nil, err
	}
	vals, err := b.client.HMGet(ctx, bucketKey(b.cfg.prefix, key), fieldCount, fieldCreated, fieldUpdated).Result()
	if err != nil {
		return nil, b.wrap("get bucket", key.ID, err)
	}
	info, err := parseBucket(key, vals)
	if err != nil {
		return nil, b.wrap("get bucket", key.ID, err)
	}
	return info, nil
}

// DeleteBuckets deletes every bucket of id and returns how many it deleted.
// It reads the id's index (ZRANGE), then deletes the buckets listed there
// with one script per 1000 buckets: O(buckets of id), never a scan, and
// only keys of id. A bucket created while it runs is left alone.
func (b *ClusterBackend) DeleteBuckets(ctx context.Context, id string) (int64, error) {
	if err := checkID(id, b.cfg.maxIDBytes); err != nil {
		return 0, err
	}
	base := keyBase(b.cfg.prefix, id)
	index := base + indexSuffix
	members, err := b.client.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		return 0, b.wrap("delete buckets", id, err)
	}
	var deleted int64
	for len(members) > 0 {
		chunk := members[:min(len(members), deleteChunk)]
		members = members[len(chunk):]
		keys := make([]string, 1, len(chunk)+1)
		keys[0] = index
		args := make([]any, len(chunk))
		for i, m := range chunk {
			keys = append(keys, base+m)
			args[i] = m
		}
		n, err := deleteScript.Run(ctx, b.client, keys, args...).Int64()
		for redis.IsTryAgainError(err) && pause(ctx) {
			n, err = deleteScript.Run(ctx, b.client, keys, args...).Int64()
		}
		if err != nil {
			return deleted, b.wrap("delete buckets", id, err)
		}
		deleted += n
	}
	return deleted, nil
}

// Redis Cluster answers TRYAGAIN, without running anything, to a
// multi-key call while the keys' slot is half migrated. Such calls are sent
// again after tryAgainPause, until the caller's context ends.
const tryAgainPause = 10 * time.Millisecond

// pause waits tryAgainPause, and reports false when ctx ends first.
func pause(ctx context.Context) bool {
	t := time.NewTimer(tryAgainPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// wrap adds the backend's name, the operation and the id to a Redis error,
// and ErrUnavailable or ErrMisconfigured when the error is of that class.
// An ErrUnavailable error also schedules a reload of the slot map.
func (b *ClusterBackend) wrap(op, id string, err error) error {
	switch class := errorClass(err); class {
	case nil:
		return fmt.Errorf("hammer %s: %s %s: %w", b.cfg.name, op, quoteID(id), err)
	case ErrUnavailable:
		b.reload.trigger()
		fallthrough
	default:
		return fmt.Errorf("hammer %s: %s %s: %w: %w", b.cfg.name, op, quoteID(id), class, err)
	}
}

// quoteID quotes an id for an error message, cut to 64 bytes.
func quoteID(id string) string {
	const max = 64
	if len(id) > max {
		return strconv.Quote(id[:max]) + "..."
	}
	return strconv.Quote(id)
}
