package hammer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Batches: when a flush carries several calls for one master, they are
// sent as one script call that runs them all (batchSource), rather than
// one script call each: a master then pays the cost of entering a script
// once per batch, not once per hit.
//
// The batch script declares no keys: it reaches keys of many slots, which
// Redis 7 allows with the allow-cross-slot-keys flag, as long as this node
// serves them now. Each unit of the batch reads every key it writes before
// its first write, inside pcall, so a unit whose keys this node does not
// serve (a slot moved, or being migrated) fails before writing anything:
// it comes back "not run", and its calls are sent again on the ordinary
// path, one script call each with declared keys, where MOVED, ASK and
// TRYAGAIN are followed. A unit never runs in part.
//
// Calls of one batch for the same key and rules (a hot id) are merged into
// one unit, which applies them one after another in queue order and writes
// once; each call gets the reply it would have got alone, in that order.
//
// Where the script cannot be loaded (Redis before 7, or a server without
// script flags, such as miniredis), batches are off: calls go as a
// pipeline of single calls. This is found out once per backend, with a
// SCRIPT LOAD on the first master that gets a batch.

// batchSource runs units of work, each of one key set, and replies one
// flat array: the units' entries, one after another.
//
//	ARGV[1]  the bucket TTL (ms), then each unit, one after another:
//	hits:  0, bucket key, index key, m, then m times: now, increment
//	rules: n (1 or more), rule record key, the n rules' tokens, m, then m
//	       times: now, cost (negative: a peek of -cost)
//
// A unit's entry is its m replies, one after another: for hits, a count or
// "E<error>" for a hit that failed alone; for rules, the 1+4n integers of
// a rule reply. When the unit failed, its entry is one string instead:
// "N<error>" if it failed before its first write (it did not run), or
// "W<error>" if it may have written; what it had put is taken back.
const batchSource = "#!lua flags=allow-cross-slot-keys\n" + preludeLua + indexLua + fixedLua + ruleLua + batchLua + "begin()\n" + batchEntry

// batchLua defines failed(start, e), which takes back what a unit that
// failed with e had put since start, and puts its failure.
const batchLua = `
local function failed(start, e)
  for k = ON, start + 1, -1 do O[k] = nil end
  ON = start
  if ST.w then put('W' .. errmsg(e)) else put('N' .. errmsg(e)) end
end
`

// batchEntry is the body of batchSource's script call.
const batchEntry = `
local ttl = tonumber(ARGV[1])
local a = 2
local na = #ARGV
while a <= na do
  local n = 0 -- a hit unit, or a rule unit of n rules
  local u = ARGV[a]
  if u == '1' then n = 1 elseif u ~= '0' then n = tonumber(u) end
  local start = ON
  ST.w = false
  if n == 0 then
    local m = ARGV[a + 3]
    if m == '1' then m = 1 else m = tonumber(m) end
    local ok, e = pcall(fixed_hits, ARGV[a + 1], ARGV[a + 2], ttl, ARGV[1], ARGV, a + 4, m)
    if not ok then failed(start, e) end
    a = a + 4 + 2 * m
  elseif n and n >= 1 and n % 1 == 0 then
    local p0 = a + 1 -- the rules' tokens: ARGV[p0+1..p0+n]
    local mi = p0 + n + 1
    local m = ARGV[mi]
    if m == '1' then m = 1 else m = tonumber(m) end
    local ok, e = pcall(rule_calls, ARGV[a + 1], n, ARGV, p0, ARGV, mi + 1, m)
    if not ok then failed(start, e) end
    a = mi + 1 + 2 * m
  else
    return redis.error_reply('ERR bad batch unit')
  end
end
return reply()
`

// batchScript is batchSource and its SHA1.
var batchScript = newScript(batchSource)

// batchUnits is the most units in one batch script call: a script holds
// its master for its whole run.
const batchUnits = 64

// Whether batches can be sent, found out once per sender.
const (
	batchUnknown int32 = iota
	batchOn
	batchOff
)

// scriptError is an error that one call of a batch got inside the script:
// an error reply of its own, classified by kindOf as any other.
type scriptError string

func (e scriptError) Error() string { return string(e) }
func (scriptError) RedisError()     {}

// unit is the calls of one batch on one key set, in queue order.
type unit struct {
	calls []*call
}

// sendMany sends calls bound for the master node and settles every one:
// as batches when there are several calls and the master takes batch
// scripts, as a pipeline of single calls otherwise.
func (s *sender) sendMany(ctx context.Context, node conn, calls []*call) {
	if len(calls) < 2 || !s.batching(ctx, node) {
		s.send(ctx, node, calls)
		return
	}
	units, single := groupUnits(calls)
	var batches []*call
	var owners [][]unit
	for len(units) > 0 {
		n := min(len(units), batchUnits)
		batches = append(batches, &call{script: batchScript, cmd: batchCmd(units[:n])})
		owners = append(owners, units[:n])
		units = units[n:]
	}
	if len(batches) == 0 {
		s.send(ctx, node, single)
		return
	}
	if err := ctx.Err(); err != nil {
		for _, us := range owners {
			settleUnits(us, outcome{err: err})
		}
		s.send(ctx, node, single) // settles them with ctx's error
		return
	}
	s.batchesSent.Add(int64(len(batches)))
	s.round(ctx, node, nil, batches)
	if again := noScriptCalls(batches); len(again) > 0 {
		// The master lost its script cache: load the batch script, and
		// send those batches again, in one pipeline.
		s.round(ctx, node, batchScript, again)
	}
	var resend []*call // did not run: the ordinary path
	for i, b := range batches {
		resend = s.settleBatch(b, owners[i], resend)
	}
	s.unitsResent.Add(int64(len(resend)))
	resend = append(resend, single...)
	if len(resend) > 0 {
		s.send(ctx, s.client, resend)
	}
}

// batching tells whether node takes batch scripts, finding out on the
// first call: a SCRIPT LOAD of the batch script, refused where script
// flags are unknown. A failure to reach the node leaves it unknown.
func (s *sender) batching(ctx context.Context, node conn) bool {
	switch s.batch.Load() {
	case batchOn:
		return true
	case batchOff:
		return false
	}
	err := node.Process(ctx, redis.NewStringCmd(ctx, "script", "load", batchScript.src))
	var rerr redis.Error
	switch {
	case err == nil:
		s.batch.Store(batchOn)
		return true
	case errors.As(err, &rerr):
		s.batch.Store(batchOff)
	}
	return false
}

// groupUnits merges calls of one group (see call.group) into units, in
// the order of their first call. Calls of no group are returned apart, to
// be sent alone. A bucket key never names a rule call (see ruleKeySet), so
// the groups of the two scripts never meet. Calls of one id over different
// rule sets share their first key, the id's rule record: a call joins its
// group's unit only while that unit is the latest on its first key, so
// that the calls on one key run in queue order. A unit of one call shares
// calls' array.
func groupUnits(calls []*call) (units []unit, single []*call) {
	units = make([]unit, 0, len(calls))
	byGroup := make(map[string]int, len(calls)) // index in units
	var byKey map[string]int                    // the latest unit on a rule record
	for i, cl := range calls {
		if cl.group == "" {
			single = append(single, cl)
			continue
		}
		shared := cl.group != cl.keys[0] // a rule call: its key is the id's
		if j, ok := byGroup[cl.group]; ok && (!shared || byKey[cl.keys[0]] == j) {
			units[j].calls = append(units[j].calls, cl)
			continue
		}
		byGroup[cl.group] = len(units)
		if shared {
			if byKey == nil {
				byKey = make(map[string]int, len(calls))
			}
			byKey[cl.keys[0]] = len(units)
		}
		units = append(units, unit{calls: calls[i : i+1 : i+1]})
	}
	return units, single
}

// batchCmd returns the command of batchSource for units: EVALSHA, its
// SHA, no keys, and its ARGV, in one slice of the exact size. The calls'
// own arguments are those of hitSource and ruleSource.
func batchCmd(units []unit) []any {
	size := 4
	for _, u := range units {
		first := u.calls[0]
		if first.script == hitScript {
			size += 4 + 2*len(u.calls)
		} else {
			size += 3 + ruleCallRules(first) + 2*len(u.calls)
		}
	}
	args := make([]any, 4, size)
	args[0], args[1], args[2], args[3] = "evalsha", batchScript.shaArg, 0, "0" // "0": no fixed-window unit, unused
	for _, u := range units {
		first := u.calls[0]
		if first.script == hitScript {
			// hitSource's ARGV: now, increment, ttl.
			args[3] = first.args[2]
			args = append(args, 0, (*strArg)(&first.keys[0]), (*strArg)(&first.keys[1]), len(u.calls))
			for _, cl := range u.calls {
				args = append(args, cl.args[0], cl.args[1])
			}
			continue
		}
		// ruleSource's ARGV: now, cost (signed), then each rule's token.
		args = append(args, ruleCallRules(first), (*strArg)(&first.keys[0]))
		args = append(args, first.args[2:]...)
		args = append(args, len(u.calls))
		for _, cl := range u.calls {
			args = append(args, cl.args[0], cl.args[1])
		}
	}
	return args
}

// noScriptCalls returns the batches that got NOSCRIPT.
func noScriptCalls(batches []*call) []*call {
	var out []*call
	for _, b := range batches {
		if b.err != nil && kindOf(b.err).noScript {
			b.err = nil
			out = append(out, b)
		}
	}
	return out
}

// settleBatch settles the calls of the units of batch b from its reply,
// and appends to resend those that did not run.
func (s *sender) settleBatch(b *call, units []unit, resend []*call) []*call {
	if b.err != nil {
		k := kindOf(b.err)
		if k.class == ErrUnavailable {
			s.reload.trigger()
		}
		if k.notRun {
			for _, u := range units {
				resend = append(resend, u.calls...)
			}
			return resend
		}
		settleUnits(units, outcome{err: b.err, ran: true})
		return resend
	}
	entries, ok := b.val.([]any)
	if !ok {
		settleUnits(units, outcome{err: fmt.Errorf("%w: batch reply of type %T", errBadReply, b.val), ran: true})
		return resend
	}
	// First find where each unit's entry starts, so that a reply of the
	// wrong shape settles nothing from it.
	var startsBuf [batchUnits + 1]int
	starts := startsBuf[:0]
	at := 0
	for _, u := range units {
		if at >= len(entries) {
			at = -1 // too few values
			break
		}
		starts = append(starts, at)
		if _, failed := unitFailure(entries[at]); failed {
			at++
			continue
		}
		at += len(u.calls) * replyWidth(u.calls[0])
	}
	if at != len(entries) {
		settleUnits(units, outcome{err: fmt.Errorf("%w: batch reply of %d values for %d units", errBadReply, len(entries), len(units)), ran: true})
		return resend
	}
	// A call's reply of several values is given as a pointer to its part
	// of entries, in vals: one allocation per batch rather than one per
	// call (see parseRuleReplyInto).
	var vals [][]any
	for i, u := range units {
		at := starts[i]
		if e, failed := unitFailure(entries[at]); failed {
			if e[0] == 'N' {
				resend = append(resend, u.calls...)
			} else { // it may have written
				settleUnits(units[i:i+1], outcome{err: scriptError(e[1:]), ran: true})
			}
			continue
		}
		w := replyWidth(u.calls[0])
		if w > 1 && vals == nil {
			vals = make([][]any, 0, len(entries)/5) // a rule reply has 5 values or more
		}
		for _, cl := range u.calls {
			var v any
			if w == 1 {
				v = entries[at]
			} else {
				vals = append(vals, entries[at:at+w:at+w])
				v = &vals[len(vals)-1]
			}
			at += w
			if msg, ok := v.(string); ok && strings.HasPrefix(msg, "E") {
				err := scriptError(msg[1:])
				cl.val, cl.err, cl.ran = nil, err, !kindOf(err).notRun
				continue
			}
			cl.val, cl.err, cl.ran = v, nil, false
		}
	}
	return resend
}

// unitFailure reports whether v, the first value of a unit's entry in a
// batch reply, says that the unit failed ("N" or "W" and the error).
func unitFailure(v any) (string, bool) {
	e, ok := v.(string)
	return e, ok && (strings.HasPrefix(e, "N") || strings.HasPrefix(e, "W"))
}

// replyWidth is the number of values of cl's reply in a batch reply: one
// for a hit, 1+4n for a rule call of n rules.
func replyWidth(cl *call) int {
	if cl.script == hitScript {
		return 1
	}
	return 1 + 4*ruleCallRules(cl)
}

// settleUnits gives every call of units the outcome out.
func settleUnits(units []unit, out outcome) {
	for _, u := range units {
		for _, cl := range u.calls {
			cl.val, cl.err, cl.ran = out.val, out.err, out.ran
		}
	}
}
