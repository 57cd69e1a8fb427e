package hammer

import (
	"strconv"
	"strings"
)

// Key layout. Every key of one id shares the hash tag {escaped id}, so all of
// them live in one cluster slot, and different ids spread over all slots:
//
//	<prefix>{<escaped id>}:<bucket>   bucket hash: count, created, updated
//	<prefix>{<escaped id>}:r          rule record: the states of the id's rules
//	<prefix>{<escaped id>}:i          index: sorted set of the id's buckets
//
// Redis takes the hash tag from the first '{' to the first '}' after it. The
// prefix may hold neither brace (NewClusterBackend checks), so the tag starts
// at the brace written here. The escaping removes every '}' from the id, so
// the tag ends at the closing brace written here and is never empty: any id,
// whatever its bytes, gives one slot for all of its keys. Escaping '%' too
// keeps the encoding injective, and the part after the tag is either a
// decimal bucket number (maybe with a '-'), "i" or "r", so no two (id,
// bucket) pairs share a key and no bucket key is an index key or a rule
// record.

const (
	escapeByte  = '%'
	escapedPct  = "%25"
	escapedBrac = "%7D"
)

// escapeID returns id with '%' written as "%25" and '}' as "%7D".
func escapeID(id string) string {
	// Two byte searches cost less than ContainsAny, which builds a set of
	// its bytes on every call: this runs once per check.
	if strings.IndexByte(id, escapeByte) < 0 && strings.IndexByte(id, '}') < 0 {
		return id
	}
	var sb strings.Builder
	sb.Grow(len(id) + 8)
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case escapeByte:
			sb.WriteString(escapedPct)
		case '}':
			sb.WriteString(escapedBrac)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// keyBase returns "<prefix>{<escaped id>}:", the part shared by every key of
// id. A bucket key is the base followed by the bucket number; the index key
// is the base followed by indexSuffix.
func keyBase(prefix, id string) string {
	e := escapeID(id)
	var sb strings.Builder
	sb.Grow(len(prefix) + len(e) + 3)
	writeBase(&sb, prefix, e)
	return sb.String()
}

// writeBase writes "<prefix>{<escaped>}:" to sb.
func writeBase(sb *strings.Builder, prefix, escaped string) {
	sb.WriteString(prefix)
	sb.WriteByte('{')
	sb.WriteString(escaped)
	sb.WriteString("}:")
}

const (
	indexSuffix = "i"
	ruleSuffix  = "r"
)

// bucketKey returns the Redis key of one bucket.
func bucketKey(prefix string, k BucketKey) string {
	return keyBase(prefix, k.ID) + strconv.FormatInt(k.Bucket, 10)
}

// indexKey returns the Redis key of the index of id's buckets.
func indexKey(prefix, id string) string {
	return keyBase(prefix, id) + indexSuffix
}

// hitKeys returns the bucket key and the index key of k, both cut from one
// allocation.
func hitKeys(prefix string, k BucketKey) (bucket, index string) {
	e := escapeID(k.ID)
	n := len(prefix) + len(e) + 3 // length of the base
	var num [20]byte
	digits := strconv.AppendInt(num[:0], k.Bucket, 10)
	var sb strings.Builder
	sb.Grow(2*n + len(indexSuffix) + len(digits))
	writeBase(&sb, prefix, e)
	sb.WriteString(indexSuffix)
	writeBase(&sb, prefix, e)
	sb.Write(digits)
	s := sb.String()
	return s[n+len(indexSuffix):], s[:n+len(indexSuffix)]
}
