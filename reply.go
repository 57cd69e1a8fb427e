package hammer

import (
	"errors"
	"fmt"
	"strconv"
)

// errBadReply is wrapped when Redis answers with a value of an unexpected
// type or form.
var errBadReply = errors.New("unexpected reply")

// parseBucket turns the HMGET count created updated reply into a
// BucketInfo: nil when the bucket does not exist.
func parseBucket(key BucketKey, vals []any) (*BucketInfo, error) {
	if len(vals) != 3 {
		return nil, fmt.Errorf("%w: %d values, want 3", errBadReply, len(vals))
	}
	if vals[0] == nil {
		return nil, nil
	}
	info := &BucketInfo{Key: key}
	for i, dst := range []*int64{&info.Count, &info.Created, &info.Updated} {
		n, err := parseInt(vals[i])
		if err != nil {
			return nil, err
		}
		*dst = n
	}
	return info, nil
}

// parseInt reads an integer from a reply value, a string or an integer.
func parseInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %q is not an integer", errBadReply, v)
		}
		return n, nil
	case nil:
		return 0, nil
	default:
		return 0, fmt.Errorf("%w: value of type %T", errBadReply, v)
	}
}
