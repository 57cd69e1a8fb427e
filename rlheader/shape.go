package rlheader

import (
	"time"

	"github.com/go-hammer/hammer"
)

// kind is the algorithm of a rule.
type kind uint8

const (
	kindUnknown kind = iota
	kindFixed
	kindSliding
	kindToken
	kindLeaky
)

// shape is what the fields need of a rule: its kind, limit, window (per,
// for a bucket) and a bucket's rate.
type shape struct {
	kind   kind
	limit  int64
	window time.Duration
	rate   int64 // per window; 0 for a window rule
}

// shapeOf returns the shape of r; the kind is kindUnknown for the zero
// Rule.
func shapeOf(r hammer.Rule) shape {
	s := shape{limit: r.Limit(), window: r.Window(), rate: r.Rate()}
	switch r.Algorithm() {
	case "fixed_window":
		s.kind = kindFixed
	case "sliding_window":
		s.kind = kindSliding
	case "token_bucket":
		s.kind = kindToken
	case "leaky_bucket":
		s.kind = kindLeaky
	}
	return s
}

// isBucket reports whether s is a token or a leaky bucket.
func (s shape) isBucket() bool { return s.kind == kindToken || s.kind == kindLeaky }

// quota returns the q and w of s (see Quota).
func (s shape) quota() (q, w int64) {
	window := s.window
	if s.isBucket() {
		// limit*perMs <= 2^53 for a valid bucket: no overflow.
		window = time.Duration(ceilDiv(s.limit*s.window.Milliseconds(), s.rate)) * time.Millisecond
	}
	return clampInteger(s.limit), clampInteger(max(secondsUp(window), 1))
}

// nextAfter returns a wait, not shorter than the real one, until a rule of
// shape s that has remaining left and is back to full after resetAfter
// has more than remaining, if nothing else hits it.
//
// A window gives back its quota all at once or, for a sliding window, at a
// pace the Decision does not show: resetAfter is the bound. A bucket gives
// back one unit every per/rate, and its last unit (of limit-remaining) at
// resetAfter: the first comes limit-remaining-1 units earlier, that is
// floor((limit-remaining-1)*perMs/rate) ms before resetAfter or later.
func (s shape) nextAfter(remaining int64, resetAfter time.Duration) time.Duration {
	if !s.isBucket() || remaining >= s.limit || remaining < 0 {
		return resetAfter
	}
	early := (s.limit - remaining - 1) * s.window.Milliseconds() / s.rate
	return max(resetAfter-time.Duration(early)*time.Millisecond, 0)
}

// ceilDiv returns ceil(a/b) for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
