package hammer

import "github.com/redis/go-redis/v9"

// The Lua scripts, in one place. Field names are shared with the Go code
// through the constants below. Scripts are sent with EVALSHA, and again with
// EVAL on NOSCRIPT: the script cache is per node and is lost on restart and
// failover.

const (
	fieldCount   = "count"
	fieldCreated = "created"
	fieldUpdated = "updated"
)

// hitSource is the script that counts a hit in one round trip. It is sent
// with EVALSHA, and with EVAL on NOSCRIPT.
//
//	KEYS[1] bucket hash, KEYS[2] index of the id's buckets
//	ARGV[1] now (unix ms), ARGV[2] increment, ARGV[3] bucket TTL (ms),
//	ARGV[4] index TTL (ms)
//
// An existing bucket costs a read and two writes: HGET count, HSET count
// and updated, PEXPIRE. (Writes are what replicas replay, so the script
// adds in Lua rather than with HINCRBY plus an HSET.) Counts are exact up
// to 2^53, as Lua numbers are doubles: a hit that would pass it fails.
// Only the first hit of a bucket writes created and touches the index: it
// adds the bucket number (the key's last ":" field, at most 20 bytes, so the
// match looks at the key's last 21 bytes only), drops entries of buckets
// that must be gone, and renews the index's TTL.
const hitSource = `
local n = redis.call('HGET', KEYS[1], 'count')
local inc = tonumber(ARGV[2])
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
  local now = tonumber(ARGV[1])
  redis.call('ZADD', KEYS[2], now, string.match(string.sub(KEYS[1], -21), ':(-?%d+)$'))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[4])))
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`

// hitSHA is the SHA1 of hitSource, for EVALSHA.
var hitSHA = redis.NewScript(hitSource).Hash()

// deleteScript deletes the buckets it is given and drops them from their
// index, and returns how many buckets existed. Every key is declared, so
// Redis Cluster routes it right even while the slot is being migrated.
//
//	KEYS[1] index, KEYS[2..] bucket keys
//	ARGV    the buckets' index entries
var deleteScript = redis.NewScript(`
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
