package hammer

import (
	"fmt"
	"strings"
)

// ruleLua defines rule_calls(key, n, P, p0, A, a, m), which charges m
// calls one after another against n rules of one id, whose states are kept
// in the id's rule record, key. Rule i is P[p0+i], its token: its member
// (see Rule.member), which holds its kind and every parameter, and "=".
// rule_params reads a token's parameters once per script call (and keeps
// them across calls in the function library). Call j
// (from 0) is A[a+2j..a+2j+1]: now, and its cost, negative for a peek of
// -cost. The arguments are read where they lie, in KEYS and ARGV, and the
// work is done in scratch tables, one per rule position, made on first
// use (see RS), so that a call makes no table. It puts
// each call's reply in O (see preludeLua): what the same calls sent one
// by one would get. It does the model's arithmetic (model.go), in Lua
// doubles, which are exact for every value it meets (see Rule.Validate);
// floor and ceil divisions go through math.fmod, which is exact. Where
// the model asks whether el >= divCeil(x, rate), the script asks whether
// el * rate >= x, the same test: a whole product below 2^53 is exact, and
// rounding never brings a larger one below x.
//
// A call's reply is a flat array of integers: 1 when the call is allowed
// (0 otherwise), then per rule: allowed (1/0), remaining, resetAfter ms
// and retryAfter ms. A peek replies what the hit would.
//
// The record is one string of entries, one per rule, each a token and
// fields: "<member>=<t>:<v>:<p>:<x>;". t, v and p are the fields of
// ruleState (the unix ms of the last update; the count or scaled level; a
// sliding window's previous count, 0 for other kinds), and x is the
// caller's unix ms after which the state is back to full (or empty) with
// ruleTTLMarginMs to spare, rounded up to a whole ruleXStepMs (see
// ruleExpiry): from then on the entry means the same as no entry. A token
// starts with the kind's letter, the only letter of an entry, and ends
// with the only "=", so a plain search for it finds its entry and no
// other.
//
// The script reads the record (one GET), decides each call in turn in
// memory, and writes only when some call was allowed and charged: one SET
// of its rules' new entries and of the record's other entries whose x is
// still ahead of the last charged call's now (the rest are dropped). The
// record lasts until the latest x of its entries, at most ruleMaxTTLMs
// from now: the SET has PX of that much, or KEEPTTL when the record held
// an entry for each of the call's rules and their x are the same after
// the call, so that the record's TTL already runs long enough. (As x is
// rounded up, hits in one window, and bucket hits whose refill time is
// well under a second, often write the same x; and a KEEPTTL costs a
// master and its replicas less than a PX.) Denied calls and peeks write
// nothing at all. Its only key is read before it is written, so a call
// whose record this node does not serve fails before writing anything.
const ruleLua = `
local MARGIN = 1000 -- ruleTTLMarginMs
local MAXTTL = 4398046511104 -- ruleMaxTTLMs
local XSTEP = 1000 -- ruleXStepMs
-- mod returns a mod b, from 0 to b - 1, for whole a and b > 0 below 2^53,
-- exactly. Lua's a % b is a - floor(a / b) * b, with a / b rounded; while
-- |a| + b < 2^53 it is exact: a / b is a whole number or at least 1 / b
-- away from one, and its rounding error is below that, so its floor is
-- the true quotient, whose product by b is exact. Beyond that, math.fmod,
-- which is exact.
local function mod(a, b)
  if a < MAX - b and a > b - MAX then return a % b end
  local r = fmod(a, b)
  if r < 0 then r = r + b end
  return r
end
local function dfloor(a, b)
  return (a - mod(a, b)) / b
end
local function dceil(a, b)
  local r = mod(a, b)
  if r > 0 then return (a - r) / b + 1 end
  return a / b
end
-- expiry returns x for a state written at now whose reset is reset ms
-- away (see ruleExpiry).
local function expiry(now, reset)
  local x = now + reset + MARGIN
  local r = mod(x, XSTEP)
  if r > 0 then x = x + XSTEP - r end
  if x - now > MAXTTL then x = now + MAXTTL end
  return x
end
local function rel(d, x)
  local y = d + x
  if y > MAX then y = MAX end
  return y
end

-- rule_params returns the kind, window or per (ms), limit (or burst or
-- capacity) and rate (0 for windows) of a rule from its token:
-- "<kind>:<per>:<limit>=" for windows, "<kind>:<rate>:<per>:<limit>=" for
-- buckets. A token is parsed once and kept: for the script call, and in
-- the function library from one call to the next, at most 64 at a time.
local PARAMS, NPARAMS = {}, 0
local function rule_params(tok)
  local r = PARAMS[tok]
  if r then return r[1], r[2], r[3], r[4] end
  if NPARAMS >= 64 then PARAMS, NPARAMS = {}, 0 end
  local k, x, y, z = string.match(tok, '^([fstl]):(%d+):(%d+):?(%d*)=$')
  local bucket = k == 't' or k == 'l'
  if not k or bucket == (z == '') then
    error({err = 'ERR bad rule ' .. tostring(tok)})
  end
  if bucket then
    r = {k, tonumber(y), tonumber(z), tonumber(x)}
  else
    r = {k, tonumber(x), tonumber(y), 0}
  end
  PARAMS[tok] = r
  NPARAMS = NPARAMS + 1
  return r[1], r[2], r[3], r[4]
end

-- RS[i] is the scratch state of rule i of a unit, made on first use and
-- reused by every unit and call of a script call (in the function
-- library, of every call: decide and rule_calls set each field before
-- they read it): a script call makes a table per rule position, not one
-- per field. Its fields: the rule's
-- member and "=" (mem) and parameters (kind, per, lim, rate); the state
-- read (set, t, v, p) and the x of its entry, as written (xs; false:
-- none); what decide found (ok; rem, rst and rty, where the rule stands
-- and its wait; rema and rsta, what a charge leaves; ne, nv and np, the
-- state after it); and the x of the state written (x).
local RS = {}
local function rule_slot(i)
  local r = {mem = '', kind = '', per = 0, lim = 0, rate = 0,
    set = false, t = 0, v = 0, p = 0, xs = false, ok = false, rem = 0,
    rst = 0, rty = 0, rema = 0, rsta = 0, ne = 0, nv = 0, np = 0, x = 0}
  RS[i] = r
  return r
end
-- The pieces of the record written.
local PCS = {}

-- decide decides the rule of scratch state r for a call at now of cost:
-- r.ok; when it allows, what a charge leaves (r.rema, r.rsta) and the
-- state after it (r.ne, r.nv, r.np); when it denies, the wait (r.rty).
-- What the rule says as it stands (r.rem, r.rst) is found only when it
-- denies or standing is set: a call that every rule allows replies with
-- what its charge leaves.
local function decide(r, now, cost, standing)
  local kind, per, lim, rate = r.kind, r.per, r.lim, r.rate
  local set, t, v, p = r.set, r.t, r.v, r.p
  local e = now
  if set and t > now then e = t end
  local d = e - now
  local ok, rem, rst, rty = false, 0, 0, 0
  r.ne, r.np = e, 0
  if kind == 't' then
    local cap = lim * per
    local s = cap
    if set then
      s = v
      -- full again once (e - t) * rate >= cap - s: the product is exact
      -- below 2^53, and at or above it when it is not.
      if (e - t) * rate >= cap - s then
        s = cap
      else
        s = s + rate * (e - t)
      end
    end
    local need = cost * per
    ok = need <= s
    if ok then
      local after = s - need
      r.rema, r.rsta, r.nv = dfloor(after, per), rel(d, dceil(cap - after, rate)), after
    else
      rty = rel(d, dceil(need - s, rate))
    end
    if standing or not ok then
      rem = dfloor(s, per)
      if s < cap then rst = rel(d, dceil(cap - s, rate)) end
    end
  elseif kind == 'f' then
    local w = per
    local b = dfloor(e, w)
    local used = 0
    if set and dfloor(t, w) == b then used = v end
    local toend = rel(d, (b + 1) * w - e)
    ok = cost <= lim - used
    if ok then
      r.rema, r.rsta, r.nv = lim - used - cost, toend, used + cost
    else
      rty = toend
    end
    if standing or not ok then
      rem = lim - used
      if rem < 0 then rem = 0 end
      if used > 0 then rst = toend end
    end
  elseif kind == 's' then
    local w = per
    local b = dfloor(e, w)
    local el = e - b * w
    local cur, prev = 0, 0
    if set then
      local sb = dfloor(t, w)
      if sb == b then
        cur, prev = v, p
      elseif sb == b - 1 then
        prev = v
      end
    end
    local room = lim * w - prev * (w - el) - cur * w
    ok = cost * w <= room
    if ok then
      local left = dfloor(room - cost * w, w)
      if left < 0 then left = 0 end
      r.rema, r.rsta = left, rel(d, (b + 2) * w - e)
      r.nv, r.np = cur + cost, prev
    else
      local y
      if cost <= lim - cur then
        y = w - el - dfloor((lim - cur - cost) * w, prev)
      else
        y = (w - el) + w - dfloor((lim - cost) * w, cur)
      end
      rty = rel(d, y)
    end
    if standing or not ok then
      rem = dfloor(room, w)
      if rem < 0 then rem = 0 end
      if cur > 0 then
        rst = rel(d, (b + 2) * w - e)
      elseif prev > 0 then
        rst = rel(d, (b + 1) * w - e)
      end
    end
  elseif kind == 'l' then
    local cap = lim * per
    local lv = 0
    if set then
      lv = v
      -- empty again once (e - t) * rate >= lv (see 't')
      if (e - t) * rate >= lv then
        lv = 0
      else
        lv = lv - rate * (e - t)
      end
    end
    local need = cost * per
    ok = need <= cap - lv
    if ok then
      local after = lv + need
      r.rema, r.rsta, r.nv = dfloor(cap - after, per), rel(d, dceil(after, rate)), after
    else
      rty = rel(d, dceil(need - (cap - lv), rate))
    end
    if standing or not ok then
      rem = dfloor(cap - lv, per)
      if lv > 0 then rst = rel(d, dceil(lv, rate)) end
    end
  else
    error({err = 'ERR unknown rule kind'})
  end
  r.ok, r.rem, r.rst, r.rty = ok, rem, rst, rty
end

local function rule_calls(key, n, P, p0, A, a, m)
  local raw = redis.call('GET', key)
  local own = 0 -- bytes of the record in the entries of this call's rules
  for i = 1, n do
    local r = RS[i] or rule_slot(i)
    local tok = P[p0 + i]
    r.mem = tok
    r.kind, r.per, r.lim, r.rate = rule_params(tok)
    r.set, r.t, r.v, r.p, r.xs = false, 0, 0, 0, false
    local s, e = nil, nil
    if raw then s, e = string.find(raw, tok, 1, true) end
    if s then
      local t, v, p, x, after = string.match(raw, '^(%-?%d+):(%-?%d+):(%-?%d+):(%-?%d+);()', e + 1)
      if not t then
        error({err = 'ERR bad rule record'})
      end
      if p == '0' then p = 0 else p = p + 0 end
      r.set, r.t, r.v, r.p, r.xs = true, t + 0, v + 0, p, x
      own = own + after - s
    end
  end
  local charged, last, lasts = false, 0, nil
  for j = 0, m - 1 do
    local q = a + 2 * j
    local now, cost = A[q] + 0, A[q + 1]
    if cost == '1' then cost = 1 else cost = cost + 0 end
    local charge = cost > 0
    if not charge then cost = -cost end
    local all = true
    for i = 1, n do
      local r = RS[i]
      decide(r, now, cost, false)
      if not r.ok then all = false end
    end
    if not all then -- the reply says where each rule stands
      for i = 1, n do
        local r = RS[i]
        if r.ok then decide(r, now, cost, true) end
      end
    end
    local k = ON
    O[k + 1] = all and 1 or 0
    for i = 1, n do
      local r = RS[i]
      if all then
        O[k + 2], O[k + 3], O[k + 4], O[k + 5] = 1, r.rema, r.rsta, 0
      else
        O[k + 2], O[k + 3], O[k + 4], O[k + 5] = r.ok and 1 or 0, r.rem, r.rst, r.rty
      end
      k = k + 4
    end
    ON = k + 1
    if all and charge then
      charged, last, lasts = true, now, A[q]
      for i = 1, n do
        local r = RS[i]
        r.set, r.t, r.v, r.p = true, r.ne, r.nv, r.np
        r.x = expiry(now, r.rsta)
      end
    end
  end
  if not charged then return end
  -- The entries written. Each field is formatted with '%d' (Lua's
  -- tostring writes 14 digits only), but where most calls have it at
  -- hand: t is mostly the last call's now, as it was sent, p is 0 but for
  -- sliding windows, and x is mostly the x read.
  local c, xnew, keep = 0, -MAX, raw
  for i = 1, n do
    local r = RS[i]
    local ts, ps, xs = lasts, '0', r.xs
    if not xs or xs + 0 ~= r.x then xs, keep = dec(r.x), false end
    if r.t ~= last then ts = dec(r.t) end
    if r.p ~= 0 then ps = dec(r.p) end
    c = c + 1
    PCS[c] = r.mem .. ts .. ':' .. dec(r.v) .. ':' .. ps .. ':' .. xs .. ';'
    if r.x > xnew then xnew = r.x end
  end
  if raw and own < #raw then -- the record holds entries of other rules
    local size = 0
    for w, tok, x in string.gmatch(raw, '(([^;=]+=)%-?%d+:%-?%d+:%-?%d+:(%-?%d+);)') do
      size = size + #w
      local ours = false
      for i = 1, n do
        if RS[i].mem == tok then ours = true end
      end
      x = x + 0
      if not ours and x > last then
        c = c + 1
        PCS[c] = w
        if x > xnew then xnew = x end
      end
    end
    if size ~= #raw then
      error({err = 'ERR bad rule record'})
    end
  end
  local val = PCS[1]
  if c > 1 then val = table.concat(PCS, '', 1, c) end
  ST.w = true
  if keep then
    redis.call('SET', key, val, 'KEEPTTL')
  else
    local ttl = xnew - last
    if ttl > MAXTTL then ttl = MAXTTL end
    redis.call('SET', key, val, 'PX', dec(ttl))
  end
end
`

// ruleSource is the script that charges one call against all of its
// rules, atomically, in one round trip (see ruleLua).
//
//	KEYS[1]      the id's rule record: keyBase(prefix, id) + "r"
//	ARGV[1]      now (unix ms)
//	ARGV[2]      the cost of a hit, or minus the cost of a peek
//	ARGV[2+i]    for rule i = 1..n: its token, its member and "="
//
// The reply is the call's reply of rule_calls.
const ruleSource = preludeLua + ruleLua + "begin()\n" + ruleEntry

// ruleEntry is the body of ruleSource's script call.
const ruleEntry = `
local n = #ARGV - 2
if #KEYS ~= 1 or n < 1 then
  return redis.error_reply('ERR wrong number of keys or arguments')
end
local ok, e = pcall(rule_calls, KEYS[1], n, ARGV, 2, ARGV, 1, 1)
if not ok then return redis.error_reply(errmsg(e)) end
return reply()
`

// ruleScript is ruleSource and its SHA1.
var ruleScript = newScript(ruleSource)

// ruleKeySet returns the key of id's rule record, and the string that
// names a call of id over rules: the key, then each rule's member and "=",
// the token of its entry in the record. Both are cut from one allocation.
// Members hold no "=", and a bucket key never starts with a rule record's
// key, so two calls share the name only when they are of one id and the
// same rules, in order.
func ruleKeySet(prefix, id string, rules []Rule) (key, set string) {
	e := escapeID(id)
	var buf [80]byte
	size := len(prefix) + len(e) + 3 + len(ruleSuffix)
	for _, r := range rules {
		size += len(r.appendMember(buf[:0])) + 1
	}
	var sb strings.Builder
	sb.Grow(size)
	writeBase(&sb, prefix, e)
	sb.WriteString(ruleSuffix)
	n := sb.Len()
	for _, r := range rules {
		sb.Write(r.appendMember(buf[:0]))
		sb.WriteByte('=')
	}
	s := sb.String()
	return s[:n], s
}

// ruleArgs appends to args the ARGV of ruleSource for a call at now (unix
// ms, an int64 or an *intArg) of cost over n rules: a hit when charge is
// set, else a peek. tokens is what follows the key in ruleKeySet's set,
// the rules' members each followed by "="; the arguments are cut from it.
// The token of a call of one rule is put in one, when given, and goes by
// pointer (see strArg).
func ruleArgs(args []any, now any, cost int64, charge bool, n int, tokens string, one *string) []any {
	if !charge {
		cost = -cost
	}
	args = append(args, now, cost)
	if n == 1 && one != nil {
		*one = tokens
		return append(args, (*strArg)(one))
	}
	for range n {
		end := strings.IndexByte(tokens, '=') + 1
		args = append(args, tokens[:end])
		tokens = tokens[end:]
	}
	return args
}

// ruleCall is the script call of a call over rules, with room for the
// decision of one rule: a call of one rule and its decision are then one
// allocation.
type ruleCall struct {
	call
	one [1]RuleDecision
}

// initRuleCall makes cl the script call of a call of id over rules at now
// of cost: a hit when charge is set, else a peek.
func initRuleCall(cl *call, prefix, id string, rules []Rule, now, cost int64, charge bool) {
	key, set := ruleKeySet(prefix, id, rules)
	cl.script, cl.group = ruleScript, set
	cl.now.n = now
	cl.args = ruleArgs(cl.argBuf[:0], &cl.now, cost, charge, len(rules), set[len(key):], &cl.tok) // one rule: no allocation
	cl.keyBuf[0] = key
	cl.keys = cl.keyBuf[:1]
}

// ruleCallRules returns the number of rules of cl, a call of ruleScript.
func ruleCallRules(cl *call) int { return len(cl.args) - 2 }

// parseRuleReplyInto reads the reply of ruleSource for rules: whether the
// call was allowed, and each rule's decision, in dst when it has room for
// them. The reply is the script's array, or a pointer to it (a call's
// reply within a batch reply, see settleBatch). A reply of another form
// is an error wrapping errBadReply.
func parseRuleReplyInto(v any, rules []Rule, dst []RuleDecision) (allowed bool, ds []RuleDecision, err error) {
	var vals []any
	switch v := v.(type) {
	case []any:
		vals = v
	case *[]any:
		vals = *v
	default:
		return false, nil, fmt.Errorf("%w: rule reply of type %T", errBadReply, v)
	}
	if len(vals) != 1+4*len(rules) {
		return false, nil, fmt.Errorf("%w: rule reply of %d values, want %d", errBadReply, len(vals), 1+4*len(rules))
	}
	for i, x := range vals {
		n, ok := x.(int64)
		if !ok {
			return false, nil, fmt.Errorf("%w: rule reply value %d of type %T", errBadReply, i, x)
		}
		if n < 0 || n > MaxValue || (i == 0 || i%4 == 1) && n > 1 { // flags at 0, 1, 5, 9, ...
			return false, nil, fmt.Errorf("%w: rule reply value %d is %d", errBadReply, i, n)
		}
	}
	num := func(i int) int64 { return vals[i].(int64) }
	allowed = num(0) == 1
	all := true
	if cap(dst) >= len(rules) {
		ds = dst[:len(rules)]
	} else {
		ds = make([]RuleDecision, len(rules))
	}
	for i, r := range rules {
		x := 1 + 4*i
		ds[i] = RuleDecision{
			Rule:       r,
			Allowed:    num(x) == 1,
			Limit:      r.limit,
			Remaining:  num(x + 1),
			ResetAfter: msDuration(num(x + 2)),
			RetryAfter: msDuration(num(x + 3)),
		}
		all = all && ds[i].Allowed
	}
	if all != allowed {
		return false, nil, fmt.Errorf("%w: rule reply says allowed=%v but its rules say %v", errBadReply, allowed, all)
	}
	return allowed, ds, nil
}
