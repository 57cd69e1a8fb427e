package hammer

import (
	"fmt"
	"time"
)

const (
	// MaxValue is the largest limit or increment accepted: Lua numbers are
	// doubles, exact up to 2^53.
	MaxValue = 1 << 53

	// DefaultMaxIDBytes is the longest id accepted unless
	// Options.MaxIDBytes says otherwise.
	DefaultMaxIDBytes = 1024
)

func checkID(id string, max int) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidArgument)
	}
	if len(id) > max {
		return fmt.Errorf("%w: id of %d bytes, longer than %d", ErrInvalidArgument, len(id), max)
	}
	return nil
}

func checkIncrement(inc int64) error {
	if inc < 1 || inc > MaxValue {
		return fmt.Errorf("%w: increment %d outside [1, 2^53]", ErrInvalidArgument, inc)
	}
	return nil
}

func checkLimit(limit int64) error {
	if limit < 1 || limit > MaxValue {
		return fmt.Errorf("%w: limit %d outside [1, 2^53]", ErrInvalidArgument, limit)
	}
	return nil
}

// checkScale returns the scale in milliseconds. maxMs, when positive, is the
// backend's expiry: a longer window could lose its bucket before it ends.
func checkScale(scale time.Duration, maxMs int64) (int64, error) {
	if scale < time.Millisecond || scale%time.Millisecond != 0 {
		return 0, fmt.Errorf("%w: scale %v is not a whole number of milliseconds >= 1ms", ErrInvalidArgument, scale)
	}
	ms := scale.Milliseconds()
	if maxMs > 0 && ms > maxMs {
		return 0, fmt.Errorf("%w: scale %v is longer than the backend's expiry %v", ErrInvalidArgument, scale, time.Duration(maxMs)*time.Millisecond)
	}
	return ms, nil
}
