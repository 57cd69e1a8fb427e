package hammer

import "github.com/redis/go-redis/v9"

// The Lua scripts, in one place. Field names are shared with the Go code
// through the constants below. Scripts are sent with EVALSHA, or called
// with FCALL as the functions of one library (see function.go); on
// NOSCRIPT (the script cache is per node and is lost on restart, failover
// and SCRIPT FLUSH), or a missing function, they are loaded and sent again
// (see send).

// luaScript is a script's source and its SHA1, for EVAL and EVALSHA, and
// the name of the function that serves it in the library, for FCALL (""
// where none does; see function.go). srcArg, shaArg and fnArg hold them
// boxed once: a command's []any then holds them without an allocation.
type luaScript struct {
	src, sha, fn          string
	srcArg, shaArg, fnArg any
}

func newScript(src string) *luaScript {
	sha := redis.NewScript(src).Hash()
	return &luaScript{src: src, sha: sha, srcArg: src, shaArg: sha}
}

const (
	fieldCount   = "count"
	fieldCreated = "created"
	fieldUpdated = "updated"
)

// preludeLua opens every script: shared constants and helpers; begin,
// which every script call runs first: it reaches the standard libraries
// (a function library is loaded where they cannot be reached yet) and
// starts the call's state anew (a function keeps its upvalues from one
// call to the next; see function.go); ST, the state of the running unit
// of work: ST.w is set just before its first write, so that a batch (see
// batchSource) can tell a unit that failed before writing anything from
// one that may have written; and the reply being built, one flat array:
// O, of ON values. Each call puts its reply there with put, so that a
// batch of any size replies one array, with no table per call; the script
// call returns reply(), which ends O after its ON values. In the function
// library O is kept from one call to the next, so that it does not grow
// anew each time: Redis reads an array reply up to its first nil.
//
// Whole numbers go to redis.call as strings, written by dec, or as they
// came in ARGV: Redis would write a number argument with "%.17g", exact
// but several times dearer than '%d'. Where a script builds a string of
// numbers it uses dec too, never tostring or '..' (14 digits only). A
// string known to hold a number (an argument, or digits a script wrote) is
// read with s + 0, which converts it once, where tonumber converts it
// twice; where an argument is mostly one value ("1", "0"), the script
// compares the string first. (The rule script finds a whole remainder
// with Lua's '%' where it is exact, not with a call of math.fmod: see mod
// in ruleLua.)
const preludeLua = `
local MAX = 9007199254740992
local fmt, fmod -- string.format and math.fmod, set by begin
local function dec(x) return fmt('%d', x) end
local ST = {w = false}
local O, ON = {}, 0
local function begin()
  fmt, fmod = string.format, math.fmod
  ST.w, ON = false, 0
end
local function put(x)
  ON = ON + 1
  O[ON] = x
end
local function reply()
  O[ON + 1] = nil
  return O
end
local function errmsg(e)
  if type(e) == 'table' and e.err then return e.err end
  return tostring(e)
end
`

// indexLua defines index_key, which fixed_hits calls after writing a
// bucket, as index_key(index key, key base, member, ttl ms, created, pttl),
// where member is the bucket's number, created says that the bucket is
// new, and pttl is the index's PTTL as read before the script's first
// write. The id's index (a sorted set) lists every bucket of the id by its
// number, so that DeleteBuckets never scans; two rules keep it exact
// whatever the callers' clocks say:
//
//   - The index outlives every bucket it lists: after a bucket is given a
//     TTL of ttl ms, the index's TTL is raised to 2*ttl whenever it is
//     below ttl (one PTTL read per call; a write about once per ttl).
//
//   - An entry is dropped only once its bucket is gone: when a bucket is
//     created and listed, the two oldest entries are looked at; a gone
//     bucket's entry is removed, a live one's is moved to the back. Scores
//     are the server's TIME in microseconds, never a caller's clock.
//     During a slot migration a bucket that is not on this node cannot be
//     read; its entry is then left alone (pcall).
const indexLua = `
local function index_key(idx, base, member, ttl, created, pttl)
  if created then
    local t = redis.call('TIME')
    local us = t[1] * 1000000 + t[2]
    redis.call('ZADD', idx, dec(us), member)
    for _, old in ipairs(redis.call('ZRANGE', idx, 0, 1)) do
      if old ~= member then
        local ok, n = pcall(redis.call, 'EXISTS', base .. old)
        if ok and n == 0 then
          redis.call('ZREM', idx, old)
        elseif ok then
          redis.call('ZADD', idx, 'XX', us, old)
        end
      end
    end
  end
  if pttl < ttl then
    if not created then
      local t = redis.call('TIME')
      redis.call('ZADD', idx, 'NX', dec(t[1] * 1000000 + t[2]), member)
    end
    redis.call('PEXPIRE', idx, dec(2 * ttl))
  end
end
`

// fixedLua defines fixed_hits(bucket, index, ttl, ttls, A, a, m), which
// counts m hits one after another in the bucket hash, hit j (from 0)
// being A[a+2j] (now) and A[a+2j+1] (increment), and puts each hit's
// count after it: the counts of the same hits sent one by one. ttl is the
// bucket TTL (ms), and ttls the same as it was sent. A hit that would
// pass 2^53 puts "E" and its error instead, and counts nothing, as it
// would alone. The bucket is written once, whatever the number of hits:
// HSET count and updated (the last hit's now), and created (the first
// hit's) when the bucket is new, then PEXPIRE; the index is looked at
// (PTTL) and written only when needed.
//
// It reads every key it writes (HGET, PTTL) before its first write: where
// a key is not served by this node (a slot moved or being migrated), it
// fails before writing anything.
const fixedLua = `
local function fixed_hits(bucket, idx, ttl, ttls, A, a, m)
  local n = redis.call('HGET', bucket, 'count')
  local pttl = redis.call('PTTL', idx)
  local created = not n
  if n then n = n + 0 else n = 0 end
  local first, last = nil, nil
  for j = 0, m - 1 do
    local now, inc = A[a + 2 * j], A[a + 2 * j + 1]
    if inc == '1' then inc = 1 else inc = tonumber(inc) end
    if n > MAX - inc then
      put('EERR count would pass 2^53')
    else
      n = n + inc
      put(n)
      first = first or now
      last = now
    end
  end
  if not last then return end
  ST.w = true
  if created then
    redis.call('HSET', bucket, 'count', dec(n), 'created', first, 'updated', last)
  else
    redis.call('HSET', bucket, 'count', dec(n), 'updated', last)
  end
  redis.call('PEXPIRE', bucket, ttls)
  if created or pttl < ttl then
    local member = string.match(string.sub(bucket, -21), ':(-?%d+)$')
    index_key(idx, string.sub(bucket, 1, #bucket - #member), member, ttl, created, pttl)
  end
end
`

// hitSource is the script that counts a hit in one round trip. It is sent
// with EVALSHA, and with EVAL on NOSCRIPT.
//
//	KEYS[1] bucket hash, KEYS[2] index of the id's buckets
//	ARGV[1] now (unix ms), ARGV[2] increment, ARGV[3] bucket TTL (ms)
//
// An existing bucket costs two reads and two writes: HGET count, the
// index's PTTL, HSET count and updated, PEXPIRE. (Writes are what replicas
// replay, so the script adds in Lua rather than with HINCRBY plus an HSET.)
// Counts are exact up to 2^53, as Lua numbers are doubles: a hit that would
// pass it fails, and writes nothing. Only the first hit of a bucket writes
// created and adds the bucket to the index. The bucket's number is the
// key's last ":" field, at most 20 bytes, so the match looks at the key's
// last 21 bytes only; the key base is what precedes it.
const hitSource = preludeLua + indexLua + fixedLua + "begin()\n" + hitEntry

// hitEntry is the body of hitSource's script call.
const hitEntry = `
local ok, e = pcall(fixed_hits, KEYS[1], KEYS[2], tonumber(ARGV[3]), ARGV[3], ARGV, 1, 1)
if not ok then return redis.error_reply(errmsg(e)) end
if type(O[1]) == 'string' then return redis.error_reply(string.sub(O[1], 2)) end
return O[1]
`

// hitScript is hitSource and its SHA1.
var hitScript = newScript(hitSource)

// deleteScript deletes the buckets it is given and drops them from their
// index, and deletes the id's rule record. It returns how many buckets
// existed plus how many rule states the record held. Every key
// is declared, so Redis Cluster routes it right even while the slot is
// being migrated.
//
//	KEYS[1] index, KEYS[2] rule record, KEYS[3..] bucket keys
//	ARGV    the buckets' index entries
var deleteScript = newScript(`
local n = 0
local rec = redis.call('GET', KEYS[2])
if rec then
  local _, states = string.gsub(rec, ';', ';')
  n = states
  redis.call('DEL', KEYS[2])
end
for i = 3, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
end
if #ARGV > 0 then
  redis.call('ZREM', KEYS[1], unpack(ARGV))
end
return n
`)

// deleteChunk is the most buckets one deleteScript call is given: Lua's
// unpack has a stack limit.
const deleteChunk = 1000
