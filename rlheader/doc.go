// Package rlheader writes the RateLimit-Policy and RateLimit fields of the
// IETF draft "RateLimit header fields for HTTP"
// (draft-ietf-httpapi-ratelimit-headers-10 and later) for the rules of a
// hammer.Limiter. The HTTP middleware (package httplimit) sends them as
// headers; any other server can, and gRPC can send them as metadata.
//
// A Policy is a hammer.Rule and the name of its item. Both fields are
// Lists of Structured Fields (RFC 9651), one item per policy, in order;
// each item is the policy's name, an SF String, with Integer parameters:
//
//	RateLimit-Policy: "minute";q=100;w=60, "burst";q=5;w=5
//	RateLimit:        "minute";r=97;t=100, "burst";r=2;t=1
//
// A name is printable ASCII (0x20 to 0x7E), written in double quotes with
// '"' and '\' escaped; by default it is the rule's String, such as
// "fixed_window(1m0s,10)" (DefaultName). Validate refuses other names,
// names given twice, rules given twice and invalid rules.
//
// # RateLimit-Policy: q and w
//
// q is the quota, in requests: the rule's Limit (a window's limit, a
// token bucket's burst, a leaky bucket's capacity). w is the time window
// in seconds: for a window rule, its length; for a bucket, which has no
// window, the time it takes to give all of q back, burst*per/rate for a
// token bucket and capacity*per/rate for a leaky bucket. A bucket gives
// back q in w, steadily, so a client that spends q in one go, then waits
// w, is never denied, and q/w is the bucket's long-run rate, exactly but
// for rounding. (q=rate and w=per would tell the rate but not the burst,
// and would tell a client that it may spend rate at once, which a burst
// below the rate denies.) w is rounded up to whole seconds and is at
// least 1, as the draft asks: a client that believes the policy never
// goes faster than the rule.
//
// # RateLimit: r and t
//
// r is what the rule has left: for a Hit allowed as a whole, after its
// charge; otherwise as it stands. t is the time, in seconds rounded up,
// until the rule has more than r, so that a client that spends no more
// than r within t is not denied by it:
//
//   - a fixed window: the end of the window, when all of it comes back;
//   - a sliding window: when the last hit stops weighing, at the end of
//     the window after the current one (the estimate falls steadily
//     before; the Decision does not say when it passes the next whole
//     request, and the draft lets a server vary t for sliding windows);
//   - a token bucket: when the next token comes, not when the bucket is
//     full;
//   - a leaky bucket: when one more request fits.
//
// A rule that has all of q left has nothing more to come: its item has no
// t. For a rule that denies, t is its own wait until it allows again
// (RuleDecision.RetryAfter, or for CheckRate the end of the window). In a
// denial (and in a shadow Decision, which is a denial let through), every
// t is at most Retry-After, as the draft asks: the t of a rule that would
// allow is cut to it, which is still true (within less time, no more than
// r can be spent). RetryAfterSeconds gives Retry-After: the Decision's
// wait in whole seconds rounded up, never down, and at least 1.
//
// q and r above 999,999,999,999,999, the largest SF Integer, are sent as
// that, which tells a client less than it has.
//
// # Decisions
//
// A Decision of Limiter.Hit over several rules has Rules, one per rule:
// each gets an item. A Decision of one rule, or of CheckRate (whose
// policy is hammer.FixedWindow(scale, limit)), has its figures in its own
// fields. A denial of several rules that the deny cache answered
// (Decision.Cached) has the figures of the rule with the least left but
// does not say which: its item is the first policy of that Limit.
//
// Fields formats both fields for one Decision; an Encoder, made once per
// list of policies, formats RateLimit-Policy once and RateLimit with one
// allocation per Decision (none with AppendRateLimit).
package rlheader
