package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram: each power of two of
// nanoseconds is split into subBuckets linear buckets, so a quantile is off
// by at most 1/subBuckets (about 6%). Recording is an index computation and
// an increment, with no allocation. A hist is not safe for concurrent use:
// every caller has its own, merged at the end.
type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	subBits    = 4
	subBuckets = 1 << subBits
)

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v) // exact below 16ns
	}
	exp := bits.Len64(v) - 1 - subBits // v >> exp is in [16, 32)
	return (exp+1)*subBuckets + int(v>>uint(exp)) - subBuckets
}

// lowerBound returns the smallest value of bucket i, in nanoseconds.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets - 1
	return uint64(subBuckets+i%subBuckets) << uint(exp)
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the samples lie:
// the middle of the bucket that holds it, capped at the maximum seen.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}
