package httplimit

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-hammer/hammer"
)

// headerValues holds the header values that depend on the Rule only,
// formatted once.
type headerValues struct {
	limit  string // RateLimit-Limit
	policy string // RateLimit-Policy
}

func newHeaderValues(rule Rule) headerValues {
	limit := strconv.FormatInt(rule.Limit, 10)
	return headerValues{limit: limit, policy: limit + ";w=" + policyWindow(rule.Scale)}
}

// Header names, in canonical form so that they can be set on the map
// directly and read back with Header.Get.
const (
	hLimit        = "Ratelimit-Limit"
	hRemaining    = "Ratelimit-Remaining"
	hReset        = "Ratelimit-Reset"
	hPolicy       = "Ratelimit-Policy"
	hLegacyLimit  = "X-Ratelimit-Limit"
	hLegacyRemain = "X-Ratelimit-Remaining"
	hLegacyReset  = "X-Ratelimit-Reset"
)

// set writes the RateLimit headers of d, and their legacy twins when asked.
// Every header gets a slice of its own, cut from one allocation, so that a
// handler that changes one changes nothing else.
func (hv headerValues) set(h http.Header, d hammer.Decision, legacy bool) {
	remaining := strconv.FormatInt(d.Remaining, 10)
	reset := ceilSeconds(d.ResetAfter)
	n := 4
	if legacy {
		n = 7
	}
	v := make([]string, n)
	v[0], v[1], v[2], v[3] = hv.limit, remaining, reset, hv.policy
	h[hLimit], h[hRemaining], h[hReset], h[hPolicy] = v[0:1:1], v[1:2:2], v[2:3:3], v[3:4:4]
	if legacy {
		v[4], v[5], v[6] = hv.limit, remaining, reset
		h[hLegacyLimit], h[hLegacyRemain], h[hLegacyReset] = v[4:5:5], v[5:6:6], v[6:7:7]
	}
}

// secondsUp returns d in whole seconds, rounded up: 1ms and 1s give 1,
// 1.001s gives 2. It is 0 only when d is not positive.
func secondsUp(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// ceilSeconds is secondsUp as a header value.
func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(secondsUp(d), 10)
}

// policyWindow is the w of RateLimit-Policy: the window in seconds, rounded
// up, at least 1.
func policyWindow(scale time.Duration) string {
	return strconv.FormatInt(max(secondsUp(scale), 1), 10)
}
