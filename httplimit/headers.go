package httplimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
)

// Header names, in canonical form so that they can be set on the map
// directly and read back with Header.Get.
const (
	hRateLimit    = "Ratelimit"
	hPolicy       = "Ratelimit-Policy"
	hLimit        = "Ratelimit-Limit"
	hRemaining    = "Ratelimit-Remaining"
	hReset        = "Ratelimit-Reset"
	hLegacyLimit  = "X-Ratelimit-Limit"
	hLegacyRemain = "X-Ratelimit-Remaining"
	hLegacyReset  = "X-Ratelimit-Reset"
	hRetryAfter   = "Retry-After"
)

// headerValues writes the RateLimit headers of a Rule. What depends on
// the Rule only is formatted once, when the middleware is built.
type headerValues struct {
	draft06 bool // RateLimit-Limit, -Remaining, -Reset and the old Policy
	legacy  bool // X-RateLimit-*
	enc     *rlheader.Encoder
	policy  string // RateLimit-Policy, in the form of the chosen draft
	limit   string // the Limit of a CheckRate rule; "" for Rules
}

// newHeaderValues returns the headerValues of rule, whose policies are
// policies (as checked by rlheader.Validate).
func newHeaderValues(rule Rule, policies []rlheader.Policy, c config) (headerValues, error) {
	enc, err := rlheader.NewEncoder(policies)
	if err != nil {
		return headerValues{}, err
	}
	hv := headerValues{draft06: c.draft06, legacy: c.legacy, enc: enc, policy: enc.Policy()}
	if len(rule.Rules) == 0 {
		hv.limit = strconv.FormatInt(rule.Limit, 10)
	}
	if c.draft06 {
		hv.policy = draft06Policy(policies)
	}
	return hv, nil
}

// draft06Policy is the RateLimit-Policy of draft-06: "<q>;w=<w>" for each
// policy, with the q and w of the current draft (rlheader.Quota), such as
// "10;w=60, 100;w=3600".
func draft06Policy(policies []rlheader.Policy) string {
	var b strings.Builder
	for i, p := range policies {
		if i > 0 {
			b.WriteString(", ")
		}
		q, w := rlheader.Quota(p.Rule)
		b.WriteString(strconv.FormatInt(q, 10))
		b.WriteString(";w=")
		b.WriteString(strconv.FormatInt(w, 10))
	}
	return b.String()
}

// set writes the RateLimit headers of d. Every header gets a slice of its
// own, cut from one allocation, so that a handler that changes one changes
// nothing else.
func (hv *headerValues) set(h http.Header, d hammer.Decision) {
	n := 2
	if hv.draft06 {
		n = 4
	}
	if hv.legacy {
		n += 3
	}
	v := make([]string, 0, n)
	add := func(name, value string) {
		v = append(v, value)
		h[name] = v[len(v)-1 : len(v) : len(v)]
	}
	var limit, remaining, reset string
	if hv.draft06 || hv.legacy {
		limit = hv.limit
		if limit == "" {
			limit = strconv.FormatInt(d.Limit, 10)
		}
		remaining = strconv.FormatInt(d.Remaining, 10)
		reset = strconv.FormatInt(resetSeconds(d), 10)
	}
	if hv.draft06 {
		add(hLimit, limit)
		add(hRemaining, remaining)
		add(hReset, reset)
		add(hPolicy, hv.policy)
	} else {
		var buf [128]byte
		add(hPolicy, hv.policy)
		add(hRateLimit, string(hv.enc.AppendRateLimit(buf[:0], d)))
	}
	if hv.legacy {
		add(hLegacyLimit, limit)
		add(hLegacyRemain, remaining)
		add(hLegacyReset, reset)
	}
}

// resetSeconds is the RateLimit-Reset of draft-06 (and X-RateLimit-Reset)
// for d: the seconds until the binding rule is back to full, rounded up,
// or, for a denied Hit, the Retry-After, so that both name the same time.
func resetSeconds(d hammer.Decision) int64 {
	if (!d.Allowed || d.Shadow) && d.RetryAfter > 0 {
		return rlheader.RetryAfterSeconds(d)
	}
	return secondsUp(d.ResetAfter)
}

// secondsUp returns d in whole seconds, rounded up: 1ms and 1s give 1,
// 1.001s gives 2. It is 0 only when d is not positive.
func secondsUp(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
