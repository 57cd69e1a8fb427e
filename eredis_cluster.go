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
// own, or, with coalescing (the default), with the concurrent hits bound
// for the same master, all of them run by one batch script call where the
// server takes it (Redis 7 and later; see Options.NoBatchScript), or as a
// pipeline of script calls.
//
// A ClusterBackend is safe for concurrent use.
type ClusterBackend struct {
	client redis.UniversalClient
	owned  bool // Close closes client
	cfg    config
	s      *sender
	co     *coalescer // nil: every hit is sent on its own

	// The bucket TTL, a script argument that never changes, formatted and
	// boxed once.
	expiryArg any
}

var (
	_ Backend     = (*ClusterBackend)(nil)
	_ RuleBackend = (*ClusterBackend)(nil)
)

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
	}
	if b.client == nil {
		b.client = redis.NewClusterClient(opts.clusterOptions())
		b.owned = true
	}
	b.s = &sender{client: b.client}
	b.s.reload.cc, _ = b.client.(*redis.ClusterClient)
	if cfg.noBatch {
		b.s.batch.Store(batchOff)
	}
	if cfg.noFunctions {
		b.s.fn.Store(fnOff)
	}
	if cfg.coalesce {
		b.co = newCoalescer(b.s, cfg.maxQueue, cfg.maxBatch, cfg.flushers, cfg.flushTimeout, cfg.batchObs)
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
//
// The hit is sent once: go-redis never sends it again on its own. When its
// reply is lost (a read timeout, a lost connection, a context that ended
// while it was on its way), the error wraps ErrUnavailable (or the
// context's error) and ErrMaybeCounted: the hit may have been counted,
// once. Any other error means that it was not counted.
func (b *ClusterBackend) CountHitInc(ctx context.Context, key BucketKey, now int64, increment int64) (int64, error) {
	if err := checkID(key.ID, b.cfg.maxIDBytes); err != nil {
		return 0, err
	}
	if err := checkIncrement(increment); err != nil {
		return 0, err
	}
	bucket, index := hitKeys(b.cfg.prefix, key)
	cl := newHitCall(bucket, index, now, increment, b.expiryArg)
	out := b.run(ctx, cl)
	if out.err != nil {
		return 0, b.wrap("count hit", key.ID, out)
	}
	n, err := parseInt(out.val)
	if err != nil {
		return 0, b.wrap("count hit", key.ID, outcome{err: err, ran: true})
	}
	return n, nil
}

// ChargeRules charges cost against every rule of id, all or nothing, or
// reports what the charge would decide. See RuleBackend. It is one script
// call on the id's master, on the same path as a hit: never sent twice.
func (b *ClusterBackend) ChargeRules(ctx context.Context, id string, rules []Rule, now, cost int64, charge bool) (bool, []RuleDecision, error) {
	if err := checkID(id, b.cfg.maxIDBytes); err != nil {
		return false, nil, err
	}
	if err := checkRules(rules, cost); err != nil {
		return false, nil, err
	}
	op := "hit"
	if !charge {
		op = "peek"
	}
	rc := new(ruleCall)
	initRuleCall(&rc.call, b.cfg.prefix, id, rules, now, cost, charge)
	out := b.run(ctx, &rc.call)
	if out.err != nil {
		out.ran = out.ran && charge // a peek changes nothing
		return false, nil, b.wrap(op, id, out)
	}
	allowed, ds, err := parseRuleReplyInto(out.val, rules, rc.one[:])
	if err != nil {
		return false, nil, b.wrap(op, id, outcome{err: err, ran: charge})
	}
	return allowed, ds, nil
}

// run sends one call: through its master's queue when coalescing, on its
// own otherwise. A call whose context has already ended is not sent.
func (b *ClusterBackend) run(ctx context.Context, cl *call) outcome {
	if err := ctx.Err(); err != nil {
		return outcome{err: err}
	}
	if b.co != nil {
		return b.co.do(ctx, cl)
	}
	b.s.send(ctx, b.client, []*call{cl})
	return cl.outcome()
}

// GetBucket returns the bucket of key, or (nil, nil) when it does not exist.
// It is one HMGET and changes nothing.
func (b *ClusterBackend) GetBucket(ctx context.Context, key BucketKey) (*BucketInfo, error) {
	if err := checkID(key.ID, b.cfg.maxIDBytes); err != nil {
		return nil, err
	}
	vals, err := b.client.HMGet(ctx, bucketKey(b.cfg.prefix, key), fieldCount, fieldCreated, fieldUpdated).Result()
	if err != nil {
		return nil, b.wrap("get bucket", key.ID, outcome{err: err})
	}
	info, err := parseBucket(key, vals)
	if err != nil {
		return nil, b.wrap("get bucket", key.ID, outcome{err: err})
	}
	return info, nil
}

// DeleteBuckets deletes every bucket of id, and the states of its rules,
// and returns how many it deleted. It reads the id's index (ZRANGE) and
// whether the id's rule record exists, in one round trip, then deletes the
// buckets listed with one script per 1000 buckets, the first of which also
// deletes the rule record, whose key it knows: O(buckets of id), never a
// scan, and only keys of id. A bucket or a rule record created while it
// runs is left alone.
func (b *ClusterBackend) DeleteBuckets(ctx context.Context, id string) (int64, error) {
	if err := checkID(id, b.cfg.maxIDBytes); err != nil {
		return 0, err
	}
	base := keyBase(b.cfg.prefix, id)
	index, record := base+indexSuffix, base+ruleSuffix
	var (
		listed *redis.StringSliceCmd
		rules  *redis.IntCmd
	)
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		listed = p.ZRange(ctx, index, 0, -1)
		rules = p.Exists(ctx, record)
		return nil
	})
	if err != nil {
		return 0, b.wrap("delete buckets", id, outcome{err: err})
	}
	members := listed.Val()
	var deleted int64
	for first := rules.Val() > 0; first || len(members) > 0; first = false {
		chunk := members[:min(len(members), deleteChunk)]
		members = members[len(chunk):]
		keys := make([]string, 2, len(chunk)+2)
		keys[0], keys[1] = index, record
		args := make([]any, len(chunk))
		for i, m := range chunk {
			keys = append(keys, base+m)
			args[i] = m
		}
		cl := &call{script: deleteScript, keys: keys, args: args}
		b.s.send(ctx, b.client, []*call{cl})
		if cl.err != nil {
			return deleted, b.wrap("delete buckets", id, outcome{err: cl.err})
		}
		n, err := parseInt(cl.val)
		if err != nil {
			return deleted, b.wrap("delete buckets", id, outcome{err: err})
		}
		deleted += n
	}
	return deleted, nil
}

// wrap adds the backend's name, the operation and the id to the error of
// a call, ErrUnavailable or ErrMisconfigured when the error is of that
// class, and ErrMaybeCounted when the call may have run. An ErrUnavailable
// error also schedules a reload of the slot map.
func (b *ClusterBackend) wrap(op, id string, out outcome) error {
	prefix := fmt.Sprintf("hammer %s: %s %s", b.cfg.name, op, quoteID(id))
	class := errorClass(out.err)
	if class == ErrUnavailable {
		b.s.reload.trigger()
	}
	switch {
	case class != nil && out.ran:
		return fmt.Errorf("%s: %w: %w: %w", prefix, class, ErrMaybeCounted, out.err)
	case out.ran:
		return fmt.Errorf("%s: %w: %w", prefix, ErrMaybeCounted, out.err)
	case class != nil:
		return fmt.Errorf("%s: %w: %w", prefix, class, out.err)
	}
	return fmt.Errorf("%s: %w", prefix, out.err)
}

// quoteID quotes an id for an error message, cut to 64 bytes.
func quoteID(id string) string {
	const max = 64
	if len(id) > max {
		return strconv.Quote(id[:max]) + "..."
	}
	return strconv.Quote(id)
}
