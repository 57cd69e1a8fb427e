package hammer

import "context"

// Backend stores Hammer buckets. It is the Go form of Hammer's backend
// behaviour: count_hit, get_bucket and delete_buckets. Implementations are
// safe for concurrent use.
type Backend interface {
	// CountHit adds one hit to the bucket of key, creating the bucket at
	// now (unix ms) when absent, and returns the new count.
	CountHit(ctx context.Context, key BucketKey, now int64) (int64, error)

	// CountHitInc adds increment hits to the bucket of key, like CountHit.
	CountHitInc(ctx context.Context, key BucketKey, now int64, increment int64) (int64, error)

	// GetBucket returns the bucket of key, or (nil, nil) when it does not
	// exist.
	GetBucket(ctx context.Context, key BucketKey) (*BucketInfo, error)

	// DeleteBuckets deletes every bucket of id, in every window, and
	// returns how many it deleted. A RuleBackend deletes the states of
	// the id's rules too, and counts them.
	DeleteBuckets(ctx context.Context, id string) (int64, error)
}

// RuleBackend is a Backend that also keeps the state of rules (fixed and
// sliding windows, token and leaky buckets): Limiter.Hit, HitN and Peek
// need it. ClusterBackend implements it. Implementations are safe for
// concurrent use.
type RuleBackend interface {
	Backend

	// ChargeRules charges cost against every rule of id at now (unix ms),
	// all or nothing, when charge is set: only when every rule allows, and
	// then every rule, atomically. A denied call changes nothing. When
	// charge is not set it changes nothing, and reports what the charge
	// would decide. It returns whether the call is allowed, and each
	// rule's decision, in the order of rules.
	ChargeRules(ctx context.Context, id string, rules []Rule, now, cost int64, charge bool) (bool, []RuleDecision, error)
}
