package rlheader

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-hammer/hammer"
)

// ErrInvalidPolicy is wrapped by the errors of Validate and NewEncoder.
var ErrInvalidPolicy = errors.New("rlheader: invalid policy")

// Policy is one quota policy: a rule and the name of its item.
type Policy struct {
	// Name is the item's name, sent as an SF String: printable ASCII
	// (0x20 to 0x7E) only. The default value, for "", is DefaultName(Rule).
	Name string

	// Rule is the rule the policy describes. It is required.
	Rule hammer.Rule
}

// name returns p.Name, or DefaultName(p.Rule) when it is "".
func (p Policy) name() string {
	if p.Name == "" {
		return DefaultName(p.Rule)
	}
	return p.Name
}

// DefaultName is the item name of a rule whose Policy has no Name:
// r.String(), such as "fixed_window(1m0s,10)" or "token_bucket(7/1s,10)".
// It is stable, and printable ASCII for every valid rule.
func DefaultName(r hammer.Rule) string { return r.String() }

// Validate checks that policies is not empty, that every policy's rule is
// valid (the rule's error is wrapped too), that no rule is given twice,
// that every name can be an SF String, and that names are unique; errors
// wrap ErrInvalidPolicy.
func Validate(policies []Policy) error {
	_, err := names(policies)
	return err
}

// names returns the name of each policy, or Validate's error.
func names(policies []Policy) ([]string, error) {
	if len(policies) == 0 {
		return nil, fmt.Errorf("%w: no policies", ErrInvalidPolicy)
	}
	ns := make([]string, len(policies))
	for i, p := range policies {
		if err := p.Rule.Validate(); err != nil {
			return nil, fmt.Errorf("%w: policy %d: %w", ErrInvalidPolicy, i, err)
		}
		ns[i] = p.name()
		if err := checkString(ns[i]); err != nil {
			return nil, fmt.Errorf("%w: policy %d: name %q: %w", ErrInvalidPolicy, i, ns[i], err)
		}
		for j, q := range policies[:i] {
			switch {
			case q.Rule == p.Rule:
				return nil, fmt.Errorf("%w: policies %d and %d have the same rule %v", ErrInvalidPolicy, j, i, p.Rule)
			case ns[j] == ns[i]:
				return nil, fmt.Errorf("%w: policies %d and %d have the same name %q", ErrInvalidPolicy, j, i, ns[i])
			}
		}
	}
	return ns, nil
}

// Fields returns the values of RateLimit-Policy and RateLimit for Decision
// d of a check against policies (in the same order as the rules given to
// Hit; when len(policies)>1 and d.Rules is set, one item per rule;
// otherwise d's own fields are the single policy's). See the package doc
// for what each item holds. Both are "" when policies do not pass
// Validate, and rateLimit is "" when d matches none of the policies.
//
// Fields checks and formats the policies on every call: an Encoder, made
// once, does it once.
func Fields(policies []Policy, d hammer.Decision) (policy, rateLimit string) {
	e, err := NewEncoder(policies)
	if err != nil {
		return "", ""
	}
	return e.Policy(), e.RateLimit(d)
}

// RetryAfterSeconds is the Retry-After of a denied d, in whole seconds
// rounded up, never earlier than any t of RateLimit: d.RetryAfter when set
// (Hit), else d.ResetAfter (CheckRate). It is at least 1, so that a client
// never retries at once, and it is meant for a denial or, with d.Shadow, a
// would-be denial.
func RetryAfterSeconds(d hammer.Decision) int64 {
	wait := d.RetryAfter
	if wait <= 0 {
		wait = d.ResetAfter
	}
	return max(secondsUp(wait), 1)
}

// secondsUp returns d in whole seconds, rounded up: 1ms and 1s give 1,
// 1.001s gives 2. It is 0 when d is not positive.
func secondsUp(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
