package hammer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idsOn returns n ids whose keys under prefix live on the master node
// that owns the first of them, and that node's client.
func idsOn(t *testing.T, cc *redis.ClusterClient, prefix, name string, n int) (*redis.Client, []string) {
	t.Helper()
	ctx := context.Background()
	var node *redis.Client
	var ids []string
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("%s-%d", name, i)
		m, err := cc.MasterForKey(ctx, indexKey(prefix, id))
		require.NoError(t, err)
		if node == nil {
			node = m
		}
		if m == node {
			ids = append(ids, id)
		}
	}
	return node, ids
}

// hitCall is a CheckRate hit's script call, as CountHitInc makes it.
func (b *ClusterBackend) hitCall(prefix string, key BucketKey, now, inc int64) *call {
	bucket, index := hitKeys(prefix, key)
	return newHitCall(bucket, index, now, inc, b.expiryArg)
}

// storedKeys returns every key of id under prefix, by its suffix, with
// what it holds: a bucket's fields, or the rule record.
func storedKeys(t *testing.T, raw *redis.ClusterClient, prefix, id string) map[string]string {
	t.Helper()
	ctx := context.Background()
	base := keyBase(prefix, id)
	members, err := raw.ZRange(ctx, base+indexSuffix, 0, -1).Result()
	require.NoError(t, err)
	n, err := raw.Exists(ctx, base+ruleSuffix).Result()
	require.NoError(t, err)
	if n == 1 {
		members = append(members, ruleSuffix)
	}
	out := map[string]string{}
	for _, m := range members {
		typ, err := raw.Type(ctx, base+m).Result()
		require.NoError(t, err)
		switch typ {
		case "hash":
			v, err := raw.HMGet(ctx, base+m, fieldCount, fieldCreated, fieldUpdated).Result()
			require.NoError(t, err)
			out[m] = fmt.Sprint(v...)
		case "string":
			out[m], err = raw.Get(ctx, base+m).Result()
			require.NoError(t, err)
		default:
			out[m] = typ
		}
		ttl, err := raw.PTTL(ctx, base+m).Result()
		require.NoError(t, err)
		require.Positive(t, ttl, "key %q has a TTL", base+m)
	}
	return out
}

// TestBatchMatchesSequential sends random calls (CheckRate hits of several
// increments, Hits and Peeks of several rule sets, from callers whose
// clocks disagree a little) over a few hot ids as batches, and the same
// calls one by one under another prefix: every reply, and every key
// stored, must be the same. Calls on one key set in a batch are merged.
func TestBatchMatchesSequential(t *testing.T) {
	_, b, raw, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	seqPrefix := namespace()
	node, ids := idsOn(t, b.client.(*redis.ClusterClient), prefix, "hot", 4)
	ruleSets := [][]Rule{
		{TokenBucket(3, time.Second, 5)},
		{SlidingWindow(time.Second, 4), FixedWindow(200*time.Millisecond, 2)},
		{LeakyBucket(7, time.Second, 3), TokenBucket(1, 90*time.Second, 2)},
	}
	rng := rand.New(rand.NewPCG(11, 12))
	now := hourBase
	sent, resent := b.s.batchesSent.Load(), b.s.unitsResent.Load()
	var calls, merged int
	for round := 0; round < 80; round++ {
		var batch, seq []*call
		keys := map[string]bool{}
		for i := 0; i < 2+rng.IntN(40); i++ {
			id := ids[rng.IntN(len(ids))]
			at := now + rng.Int64N(60) - 20
			if rng.IntN(3) == 0 {
				key := BucketKey{Bucket: bucketOf(at, 100), ID: id}
				inc := 1 + rng.Int64N(3)
				batch = append(batch, b.hitCall(prefix, key, at, inc))
				seq = append(seq, b.hitCall(seqPrefix, key, at, inc))
			} else {
				rules := ruleSets[rng.IntN(len(ruleSets))]
				cost, charge := 1+rng.Int64N(2), rng.IntN(8) != 0
				batch = append(batch, newRuleCall(prefix, id, rules, at, cost, charge))
				seq = append(seq, newRuleCall(seqPrefix, id, rules, at, cost, charge))
			}
			k := batch[len(batch)-1].group
			if keys[k] {
				merged++
			}
			keys[k] = true
		}
		calls += len(batch)
		b.s.sendMany(ctx, node, batch)
		for _, cl := range seq {
			b.s.send(ctx, b.client, []*call{cl})
		}
		for i := range batch {
			require.NoError(t, seq[i].err, "round %d, call %d, one by one", round, i)
			require.NoError(t, batch[i].err, "round %d, call %d, batched", round, i)
			require.Equal(t, seq[i].val, replyOf(batch[i]), "round %d, call %d (%s)", round, i, batch[i].keys[0])
		}
		now += rng.Int64N(300)
	}
	t.Logf("%d calls, %d of them merged into a unit of an earlier call; %d batch scripts", calls, merged, b.s.batchesSent.Load()-sent)
	assert.Greater(t, merged, calls/8, "hot ids: many calls merged")
	assert.Greater(t, b.s.batchesSent.Load(), sent, "batch scripts sent")
	assert.Equal(t, resent, b.s.unitsResent.Load(), "every unit ran in its batch")
	for _, id := range ids {
		assert.Equal(t, storedKeys(t, raw, seqPrefix, id), storedKeys(t, raw, prefix, id), "keys of %q", id)
	}
}

// TestBatchKeysOfOtherMasters sends a batch to one master with calls of
// ids that live there and of ids that live on the other masters: those
// fail inside the script before writing anything, come back not run, and
// are sent again alone. Every call counts once.
func TestBatchKeysOfOtherMasters(t *testing.T) {
	c, b, raw, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	cc := b.client.(*redis.ClusterClient)
	node, local := idsOn(t, cc, prefix, "local", 5)
	var foreign []string
	for i := 0; len(foreign) < 10; i++ {
		id := fmt.Sprintf("foreign-%d", i)
		m, err := cc.MasterForKey(ctx, indexKey(prefix, id))
		require.NoError(t, err)
		if m != node {
			foreign = append(foreign, id)
		}
	}
	require.Len(t, c.Masters(t), 3)
	rules := []Rule{TokenBucket(1, time.Second, 10)}
	resent := b.s.unitsResent.Load()
	var calls []*call
	for i, id := range append(slices.Clone(local), foreign...) {
		calls = append(calls, b.hitCall(prefix, BucketKey{Bucket: 7, ID: id}, hourBase, int64(i+1)))
		calls = append(calls, newRuleCall(prefix, id, rules, hourBase, 2, true))
	}
	b.s.sendMany(ctx, node, calls)
	for i, cl := range calls {
		require.NoError(t, cl.err, "call %d", i)
		if i%2 == 0 {
			assert.Equal(t, int64(i/2+1), cl.val, "call %d: counted once", i)
		} else {
			_, ds, err := parseRuleReply(cl.val, rules)
			require.NoError(t, err)
			assert.Equal(t, int64(8), ds[0].Remaining, "call %d: charged once", i)
		}
	}
	assert.Equal(t, int64(2*len(foreign)), b.s.unitsResent.Load()-resent, "the calls of other masters' ids, and only they, were sent again")
	for i, id := range append(slices.Clone(local), foreign...) {
		n, err := raw.HGet(ctx, keyBase(prefix, id)+"7", fieldCount).Int64()
		require.NoError(t, err)
		assert.Equal(t, int64(i+1), n, "stored count of %q", id)
	}
}

// TestBatchUnitFailsAfterItsReplies sends a batch with units of CheckRate
// hits that fail after they have put their replies and written: their
// id's index is a key of the wrong type. Those units come back as "may
// have written", with what they had put taken back, and the units around
// them get their own replies, in place; rule calls of that id, which
// write no index, too.
func TestBatchUnitFailsAfterItsReplies(t *testing.T) {
	_, b, raw, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	node, ids := idsOn(t, b.client.(*redis.ClusterClient), prefix, "afterputs", 3)
	good, bad := ids[:2], ids[2]
	require.NoError(t, raw.Set(ctx, indexKey(prefix, bad), "not a sorted set", time.Minute).Err())
	rules := []Rule{TokenBucket(1, time.Second, 10), FixedWindow(time.Minute, 10)}
	calls := []*call{
		b.hitCall(prefix, BucketKey{Bucket: 3, ID: good[0]}, hourBase, 1),
		b.hitCall(prefix, BucketKey{Bucket: 3, ID: bad}, hourBase, 1),
		b.hitCall(prefix, BucketKey{Bucket: 3, ID: bad}, hourBase, 2),
		newRuleCall(prefix, good[1], rules, hourBase, 1, true),
		newRuleCall(prefix, bad, rules, hourBase, 1, true),
		b.hitCall(prefix, BucketKey{Bucket: 3, ID: good[0]}, hourBase, 4),
		newRuleCall(prefix, good[1], rules, hourBase, 2, true),
	}
	sent := b.s.batchesSent.Load()
	b.s.sendMany(ctx, node, calls)
	assert.Equal(t, sent+1, b.s.batchesSent.Load(), "one batch script")

	for _, i := range []int{1, 2} {
		require.Error(t, calls[i].err, "call %d", i)
		assert.Contains(t, calls[i].err.Error(), "WRONGTYPE", "call %d", i)
		assert.True(t, calls[i].ran, "call %d: it may have written", i)
		assert.Nil(t, calls[i].val, "call %d", i)
	}
	for _, i := range []int{0, 3, 4, 5, 6} {
		require.NoError(t, calls[i].err, "call %d", i)
	}
	assert.Equal(t, int64(1), calls[0].val)
	assert.Equal(t, int64(5), calls[5].val)
	for i, want := range map[int]int64{3: 9, 4: 9, 6: 7} { // rules write no index
		allowed, ds, err := parseRuleReply(calls[i].val, rules)
		require.NoError(t, err, "call %d", i)
		assert.True(t, allowed, "call %d", i)
		assert.Equal(t, want, ds[0].Remaining, "call %d", i)
		assert.Equal(t, want, ds[1].Remaining, "call %d", i)
	}
}

// replyOf returns the reply of cl, sent alone or in a batch: in a batch, a
// reply of several values is a pointer to them (see settleBatch).
func replyOf(cl *call) any {
	if p, ok := cl.val.(*[]any); ok {
		return *p
	}
	return cl.val
}

// TestBatchBadUnit sends batch scripts whose unit is neither of hits (0)
// nor of rules (n >= 1): the script refuses the batch, before the unit
// runs, and writes nothing.
func TestBatchBadUnit(t *testing.T) {
	_, b, raw, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	node, ids := idsOn(t, b.client.(*redis.ClusterClient), prefix, "badunit", 1)
	key, _ := ruleKeySet(prefix, ids[0], nil)
	tok := "t:1:1000:10="
	for _, u := range []any{"h", "r", "-1", "1.5", "", "x"} {
		cmd := []any{"eval", batchScript.src, 0, "60000", u, key, tok, 1, hourBase, 1}
		err := node.Do(ctx, cmd...).Err()
		assert.ErrorContains(t, err, "bad batch unit", "unit %q", u)
	}
	assert.Zero(t, raw.Exists(ctx, key).Val(), "nothing written")
	good := []any{"eval", batchScript.src, 0, "60000", 1, key, tok, 1, hourBase, 1}
	require.NoError(t, node.Do(ctx, good...).Err(), "the same unit, of one rule")
	_, err := parseRecord(raw.Get(ctx, key).Val())
	require.NoError(t, err)
}

// TestBatchNoScript flushes the script caches and the function
// libraries, then sends a batch: it gets NOSCRIPT, or "Function not
// found", and is sent again with the script, or the library, loaded.
// Every call counts once.
func TestBatchNoScript(t *testing.T) {
	c, b, _, prefix := sharedCluster(t, CoalesceOn)
	ctx := context.Background()
	node, ids := idsOn(t, b.client.(*redis.ClusterClient), prefix, "noscript", 8)
	_, err := b.CountHit(ctx, BucketKey{Bucket: 1, ID: "noscript-first"}, 1)
	require.NoError(t, err)
	awaitFunctions(t, b, fnOn)
	for round := int64(1); round <= 4; round++ {
		c.FlushScripts(t)
		c.FlushFunctions(t)
		if round > 2 {
			b.s.fn.Store(fnOff) // EVALSHA: NOSCRIPT
		}
		var calls []*call
		for _, id := range ids {
			calls = append(calls, b.hitCall(prefix, BucketKey{Bucket: 1, ID: id}, hourBase, 1))
		}
		b.s.sendMany(ctx, node, calls)
		for i, cl := range calls {
			require.NoError(t, cl.err, "call %d", i)
			assert.Equal(t, round, cl.val, "call %d", i)
		}
		assert.Equal(t, round <= 2, hasLibrary(t, node), "round %d: library loaded again", round)
	}
	assert.Equal(t, int64(4), b.s.batchesSent.Load())
	assert.Zero(t, b.s.unitsResent.Load())
}

// TestBatchOffWhereNotTaken checks the fallback: miniredis does not take
// script flags, so batches are found off once, and calls go as a pipeline
// of single calls, with the replies they would get alone.
func TestBatchOffWhereNotTaken(t *testing.T) {
	b, _ := miniBackend(t)
	ctx := context.Background()
	node, err := b.client.(*redis.ClusterClient).MasterForKey(ctx, "x")
	require.NoError(t, err)
	for round := int64(1); round <= 3; round++ {
		calls := []*call{
			b.hitCall("", BucketKey{Bucket: 1, ID: "a"}, hourBase, 1),
			b.hitCall("", BucketKey{Bucket: 1, ID: "a"}, hourBase, 1),
		}
		b.s.sendMany(ctx, node, calls)
		for i, cl := range calls {
			require.NoError(t, cl.err)
			assert.Equal(t, 2*round-1+int64(i), cl.val)
		}
		assert.Equal(t, batchOff, b.s.batch.Load())
	}
	assert.Zero(t, b.s.batchesSent.Load())
}

// TestSettleBatch checks how each form of a batch reply settles the calls
// of its units: replies, errors of one call, units not run (sent again),
// units that may have written, and replies of the wrong form.
func TestSettleBatch(t *testing.T) {
	mk := func(n int) unit {
		u := unit{}
		for i := 0; i < n; i++ {
			u.calls = append(u.calls, &call{script: hitScript, group: "g"})
		}
		return u
	}
	s := &sender{}
	two := []Rule{FixedWindow(time.Second, 10), TokenBucket(1, time.Second, 10)}
	rules := unit{calls: []*call{
		newRuleCall("", "r", two, hourBase, 1, true),
		newRuleCall("", "r", two, hourBase, 1, true),
	}}
	units := []unit{mk(2), mk(1), mk(1), mk(2), rules}
	b := &call{val: []any{
		int64(4), int64(5),
		"NERR Script attempted to access a non local key in a cluster node",
		"WOOM command not allowed",
		"EERR count would pass 2^53", int64(9),
		int64(1), int64(1), int64(2), int64(0), int64(0), int64(1), int64(3), int64(0), int64(0),
		int64(0), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(7),
	}}
	resend := s.settleBatch(b, units, nil)
	assert.Equal(t, units[1].calls, resend, "the unit not run is sent again, alone")

	assert.Equal(t, []any{int64(4), int64(5)}, []any{units[0].calls[0].val, units[0].calls[1].val})
	assert.NoError(t, units[0].calls[0].err)

	w := units[2].calls[0]
	assert.EqualError(t, w.err, "OOM command not allowed")
	assert.True(t, w.ran, "a unit that failed after writing may have run")

	e := units[3].calls[0]
	assert.EqualError(t, e.err, "ERR count would pass 2^53")
	assert.True(t, e.ran, "an error reply of a call is classified as alone: unknown, so it may have run")
	assert.Equal(t, int64(9), units[3].calls[1].val)

	assert.Equal(t, []any{int64(1), int64(1), int64(2), int64(0), int64(0), int64(1), int64(3), int64(0), int64(0)}, replyOf(rules.calls[0]))
	assert.Equal(t, []any{int64(0), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(7)}, replyOf(rules.calls[1]))
	assert.NoError(t, rules.calls[1].err)

	// A reply of the wrong length settles every call with errBadReply,
	// as may have run: none of its values is taken.
	for _, vals := range [][]any{
		{int64(1)},                     // one value short
		{int64(1), int64(2), int64(3)}, // one too many
		{"NERR moved", int64(1), int64(2)},
	} {
		units = []unit{mk(1), mk(1)}
		assert.Empty(t, s.settleBatch(&call{val: vals}, units, nil), "%v", vals)
		for _, u := range units {
			assert.ErrorIs(t, u.calls[0].err, errBadReply, "%v", vals)
			assert.True(t, u.calls[0].ran)
		}
	}

	// A whole batch that did not run is sent again; one that may have run
	// is settled with its error.
	units = []unit{mk(2), mk(1)}
	resend = s.settleBatch(&call{err: scriptError("READONLY You can't write against a read only replica.")}, units, nil)
	assert.Len(t, resend, 3)
	units = []unit{mk(2)}
	assert.Empty(t, s.settleBatch(&call{err: context.DeadlineExceeded}, units, nil))
	for _, cl := range units[0].calls {
		assert.ErrorIs(t, cl.err, context.DeadlineExceeded)
		assert.True(t, cl.ran)
	}
}

// TestBatchCallsOfNoGroup checks that calls of no group (not a hit's or a
// rule call's) are sent alone, and settled, whether the batch goes or its
// context has ended.
func TestBatchCallsOfNoGroup(t *testing.T) {
	_, b, _, prefix := sharedCluster(t, CoalesceOn)
	node, ids := idsOn(t, b.client.(*redis.ClusterClient), prefix, "nogroup", 2)
	ping := func() *call { return &call{script: newScript("return 7")} }
	ctx := context.Background()

	alone := []*call{ping(), ping()}
	b.s.sendMany(ctx, node, alone)
	for _, cl := range alone {
		require.NoError(t, cl.err)
		assert.Equal(t, int64(7), cl.val)
	}

	mixed := []*call{b.hitCall(prefix, BucketKey{Bucket: 1, ID: ids[0]}, hourBase, 1), ping(), b.hitCall(prefix, BucketKey{Bucket: 1, ID: ids[1]}, hourBase, 1)}
	b.s.sendMany(ctx, node, mixed)
	for i, cl := range mixed {
		require.NoError(t, cl.err, "call %d", i)
	}
	assert.Equal(t, int64(7), mixed[1].val)

	done, cancel := context.WithCancel(ctx)
	cancel()
	mixed = []*call{b.hitCall(prefix, BucketKey{Bucket: 2, ID: ids[0]}, hourBase, 1), ping()}
	b.s.sendMany(done, node, mixed)
	for i, cl := range mixed {
		assert.ErrorIs(t, cl.err, context.Canceled, "call %d", i)
		assert.False(t, cl.ran, "call %d", i)
	}
}

// TestBatchCmd checks the arguments of a batch command, as go-redis writes
// them (MarshalBinary where an argument has it) and as logs and traces
// print them (fmt), and that building it allocates its slice only: keys
// and times go by pointer.
func TestBatchCmd(t *testing.T) {
	bucket, index := hitKeys("p:", BucketKey{Bucket: 7, ID: "id"})
	h1 := newHitCall(bucket, index, 1234567890123, 1, "60000")
	h2 := newHitCall(bucket, index, -5, 2, "60000")
	r := newRuleCall("p:", "id", []Rule{TokenBucket(7, time.Second, 3)}, 1234567890124, 1, true)
	units := []unit{{calls: []*call{h1, h2}}, {calls: []*call{r}}}
	cmd := batchCmd(units)
	want := []string{"evalsha", batchScript.sha, "0", "60000",
		"0", "p:{id}:7", "p:{id}:i", "2", "1234567890123", "1", "-5", "2",
		"1", "p:{id}:r", "t:7:1000:3=", "1", "1234567890124", "1"}
	var printed []string
	for _, a := range cmd {
		printed = append(printed, fmt.Sprint(a))
	}
	assert.Equal(t, want, argStrings(t, cmd), "as written")
	assert.Equal(t, want, printed, "as printed")
	assert.Equal(t, "evalsha "+batchScript.sha+" 0 60000 0 p:{id}:7 p:{id}:i 2 1234567890123 1 -5 2 1 p:{id}:r t:7:1000:3= 1 1234567890124 1",
		redis.NewCmd(context.Background(), cmd...).String(), "a command as go-redis prints it")

	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { batchCmd(units) }), "the command's slice")
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { newHitCall(bucket, index, 1234567890123, 1, "60000") }), "the call: now goes by pointer")
}
