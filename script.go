package hammer

import "github.com/redis/go-redis/v9"

// The Lua scripts, in one place. Field names are shared with the Go code
// through the constants below. Scripts are sent with EVALSHA; on NOSCRIPT
// (the script cache is per node and is lost on restart, failover and SCRIPT
// FLUSH) they are loaded and sent again (see send).

// luaScript is a script's source and its SHA1, for EVAL and EVALSHA.
type luaScript struct{ src, sha string }

func newScript(src string) *luaScript {
	return &luaScript{src: src, sha: redis.NewScript(src).Hash()}
}

const (
	fieldCount   = "count"
	fieldCreated = "created"
	fieldUpdated = "updated"
)

// indexLua defines index_key, which every script that writes a key of an id
// calls after writing it, as index_key(index key, key base, member, ttl
// ms, created). The id's index (a sorted set) lists every key of
// the id by its suffix after the key base, so that DeleteBuckets never
// scans; two rules keep it exact whatever the callers' clocks say:
//
//   - The index outlives every key it lists: after a key is given a TTL of
//     ttl ms, the index's TTL is raised to 2*ttl whenever it is below ttl
//     (one PTTL read per call; a write about once per ttl).
//
//   - An entry is dropped only once its key is gone: when a key is created,
//     the two oldest entries are looked at; a gone key's entry is removed, a
//     live key's entry is moved to the back. Scores are the server's TIME in
//     microseconds, never a caller's clock. During a slot migration a key
//     that is not on this node cannot be read; its entry is then left alone
//     (pcall).
const indexLua = `
local function index_key(idx, base, member, ttl, created)
  if created then
    local t = redis.call('TIME')
    local us = t[1] * 1000000 + t[2]
    redis.call('ZADD', idx, us, member)
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
  if redis.call('PTTL', idx) < ttl then
    if not created then
      local t = redis.call('TIME')
      redis.call('ZADD', idx, 'NX', t[1] * 1000000 + t[2], member)
    end
    redis.call('PEXPIRE', idx, 2 * ttl)
  end
end
`

// hitSource is the script that counts a hit in one round trip. It is sent
// with EVALSHA, and with EVAL on NOSCRIPT.
//
//	KEYS[1] bucket hash, KEYS[2] index of the id's buckets
//	ARGV[1] now (unix ms), ARGV[2] increment, ARGV[3] bucket TTL (ms)
//
// An existing bucket costs a read and two writes: HGET count, HSET count
// and updated, PEXPIRE, plus the index's PTTL. (Writes are what replicas
// replay, so the script adds in Lua rather than with HINCRBY plus an HSET.)
// Counts are exact up to 2^53, as Lua numbers are doubles: a hit that would
// pass it fails, and writes nothing. Only the first hit of a bucket writes
// created and adds the bucket to the index. The bucket's number is the
// key's last ":" field, at most 20 bytes, so the match looks at the key's
// last 21 bytes only; the key base is what precedes it.
const hitSource = indexLua + `
local n = redis.call('HGET', KEYS[1], 'count')
local inc = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local created = not n
if n then
  n = tonumber(n)
  if n > 9007199254740992 - inc then
    return redis.error_reply('ERR count would pass 2^53')
  end
  n = n + inc
  redis.call('HSET', KEYS[1], 'count', string.format('%.0f', n), 'updated', ARGV[1])
else
  n = inc
  redis.call('HSET', KEYS[1], 'count', ARGV[2], 'created', ARGV[1], 'updated', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ttl)
local member = string.match(string.sub(KEYS[1], -21), ':(-?%d+)$')
index_key(KEYS[2], string.sub(KEYS[1], 1, #KEYS[1] - #member), member, ttl, created)
return n
`

// hitScript is hitSource and its SHA1.
var hitScript = newScript(hitSource)

// deleteScript deletes the buckets it is given and drops them from their
// index, and returns how many buckets existed. Every key is declared, so
// Redis Cluster routes it right even while the slot is being migrated.
//
//	KEYS[1] index, KEYS[2..] bucket keys
//	ARGV    the buckets' index entries
var deleteScript = newScript(`
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
end
redis.call('ZREM', KEYS[1], unpack(ARGV))
return n
`)

// deleteChunk is the most buckets one deleteScript call is given: Lua's
// unpack has a stack limit.
const deleteChunk = 1000
