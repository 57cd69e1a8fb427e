package hammer

import (
	"fmt"
	"testing"

	"github.com/go-hammer/hammer/internal/testcluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEscapeID(t *testing.T) {
	cases := map[string]string{
		"a":     "a",
		"}":     "%7D",
		"%":     "%25",
		"%7D":   "%257D",
		"a}b%c": "a%7Db%25c",
		"{a}":   "{a%7D",
	}
	for in, want := range cases {
		assert.Equal(t, want, escapeID(in), "escapeID(%q)", in)
	}
}

func TestKeyLayout(t *testing.T) {
	assert.Equal(t, "hammer:{a:b}:17", bucketKey("hammer:", BucketKey{Bucket: 17, ID: "a:b"}))
	assert.Equal(t, "p{%7Dx}:-3", bucketKey("p", BucketKey{Bucket: -3, ID: "}x"}))
	assert.Equal(t, "hammer:{{}:i", indexKey("hammer:", "{"))
	for _, id := range oddIDs {
		for _, bucket := range []int64{0, 1, -1, 1 << 62, -1 << 63} {
			k := BucketKey{Bucket: bucket, ID: id}
			bk, idx := hitKeys("pre:", k)
			assert.Equal(t, bucketKey("pre:", k), bk)
			assert.Equal(t, indexKey("pre:", id), idx)
			assert.Equal(t, keyBase("pre:", id)+indexSuffix, idx)
		}
	}
}

func TestKeysAreInjective(t *testing.T) {
	owner := map[string]string{} // key -> what it stores
	claim := func(key, what string) {
		if prev, ok := owner[key]; ok && prev != what {
			t.Fatalf("%s and %s share key %q", prev, what, key)
		}
		owner[key] = what
	}
	for _, id := range oddIDs {
		claim(indexKey("p:", id), fmt.Sprintf("index of %q", id))
		for _, bucket := range []int64{0, 1, 10, -1, 7, 1 << 62} {
			claim(bucketKey("p:", BucketKey{Bucket: bucket, ID: id}), fmt.Sprintf("bucket %d of %q", bucket, id))
		}
	}
	assert.Len(t, owner, 7*len(oddIDs))
}

func TestHashTagIsTheEscapedID(t *testing.T) {
	for _, id := range oddIDs {
		for _, prefix := range []string{"", "hammer:", "a:b:"} {
			tag := testcluster.HashTag(bucketKey(prefix, BucketKey{Bucket: 5, ID: id}))
			require.Equal(t, escapeID(id), tag, "id %q", id)
			require.Equal(t, tag, testcluster.HashTag(indexKey(prefix, id)))
		}
	}
}

func TestBucketArithmetic(t *testing.T) {
	cases := []struct{ now, scale, bucket, toNext int64 }{
		{0, 1000, 0, 1000},
		{999, 1000, 0, 1},
		{1000, 1000, 1, 1000},
		{1_700_000_000_123, 60_000, 28_333_333, 60_000 - 20_123},
		{5, 1, 5, 1},
		{-1, 1000, -1, 1}, // floor, not truncation
		{-1000, 1000, -1, 1000},
	}
	for _, c := range cases {
		assert.Equal(t, c.bucket, bucketOf(c.now, c.scale), "bucketOf(%d, %d)", c.now, c.scale)
		assert.Equal(t, c.toNext, msToNextBucket(c.now, c.scale), "msToNextBucket(%d, %d)", c.now, c.scale)
	}
	assert.Equal(t, int64(3), remaining(5, 2))
	assert.Equal(t, int64(0), remaining(5, 5))
	assert.Equal(t, int64(0), remaining(5, 9))
}

func TestParseBucket(t *testing.T) {
	k := BucketKey{Bucket: 1, ID: "x"}
	info, err := parseBucket(k, []any{nil, nil, nil})
	require.NoError(t, err)
	assert.Nil(t, info)
	info, err = parseBucket(k, []any{"3", "10", int64(20)})
	require.NoError(t, err)
	assert.Equal(t, &BucketInfo{Key: k, Count: 3, Created: 10, Updated: 20}, info)
	for _, bad := range [][]any{{"3"}, {"x", "1", "2"}, {"1", 2.5, "3"}, {"1", "2", []any{}}} {
		_, err := parseBucket(k, bad)
		assert.ErrorIs(t, err, errBadReply, "%v", bad)
	}
}
