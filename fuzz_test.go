package hammer

import (
	"strings"
	"testing"

	"github.com/go-hammer/hammer/internal/testcluster"
)

// FuzzKeyEncoding checks the key layout for any ids, buckets and prefixes:
// the encoding is injective across (id, bucket), every key of an id lies in
// one slot (CRC16 as Redis Cluster computes it, which the testcluster
// package checks against CLUSTER KEYSLOT), and the prefix is never part of
// the hash tag. CI runs the seed corpus; run the fuzzer itself with
//
//	go test -run '^$' -fuzz FuzzKeyEncoding -fuzztime 5m .
func FuzzKeyEncoding(f *testing.F) {
	for i, id := range oddIDs {
		other := oddIDs[(i+1)%len(oddIDs)]
		f.Add("hammer:", id, int64(i), other, int64(i))
		f.Add("", id, int64(-1), id+"}", int64(0))
		f.Add("a:b:", id, int64(1)<<62, id, int64(7))
	}
	f.Fuzz(func(t *testing.T, prefix, id1 string, b1 int64, id2 string, b2 int64) {
		if strings.ContainsAny(prefix, "{}") || id1 == "" || id2 == "" {
			t.Skip() // refused by NewClusterBackend and checkID
		}
		k1 := bucketKey(prefix, BucketKey{Bucket: b1, ID: id1})
		k2 := bucketKey(prefix, BucketKey{Bucket: b2, ID: id2})
		i1, i2 := indexKey(prefix, id1), indexKey(prefix, id2)

		// Injective: different (id, bucket) pairs, different keys; an
		// index is never a bucket.
		if (id1 != id2 || b1 != b2) && k1 == k2 {
			t.Fatalf("(%q, %d) and (%q, %d) share key %q", id1, b1, id2, b2, k1)
		}
		if (id1 != id2) == (i1 == i2) {
			t.Fatalf("indexes of %q and %q: %q, %q", id1, id2, i1, i2)
		}
		if k1 == i2 || k2 == i1 {
			t.Fatalf("a bucket key is an index key: %q %q %q %q", k1, k2, i1, i2)
		}

		// One slot per id, whatever the bucket; the tag is the escaped id,
		// never empty, never holding the prefix.
		other := bucketKey(prefix, BucketKey{Bucket: b2, ID: id1})
		slot := testcluster.Slot(i1)
		if testcluster.Slot(k1) != slot || testcluster.Slot(other) != slot {
			t.Fatalf("keys of %q in slots %d, %d, %d", id1, testcluster.Slot(k1), testcluster.Slot(other), slot)
		}
		for _, k := range []string{k1, i1, other} {
			if tag := testcluster.HashTag(k); tag != escapeID(id1) || tag == "" {
				t.Fatalf("key %q: hash tag %q, want %q", k, tag, escapeID(id1))
			}
		}

		// hitKeys is the same layout, cut from one allocation.
		if bk, idx := hitKeys(prefix, BucketKey{Bucket: b1, ID: id1}); bk != k1 || idx != i1 {
			t.Fatalf("hitKeys: %q %q, want %q %q", bk, idx, k1, i1)
		}
	})
}
