package hammergrpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-hammer/hammer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

var (
	// ErrInvalidConfig is wrapped by every error New returns.
	ErrInvalidConfig = errors.New("hammergrpc: invalid configuration")

	// ErrKey is wrapped, with the KeyFunc's own error, by the error given
	// to the error handler when the KeyFunc fails or panics.
	ErrKey = errors.New("hammergrpc: key function failed")

	// ErrKeyTooLong is wrapped by the error given to the error handler
	// when the Limiter's id for a key, IDPrefix, scope and key together, is
	// longer than the Limiter's MaxIDBytes.
	ErrKeyTooLong = errors.New("hammergrpc: key too long")

	// ErrLimited is wrapped by the error that MiddlewareLimiter.Limit
	// returns for a denied call.
	ErrLimited = errors.New("hammergrpc: rate limit exceeded")
)

// ErrorHandler answers a call that could not be checked, with the reason.
// It returns the error the call ends with, normally a status error; nil
// lets the call go on, unlimited. It must be safe for concurrent use. See
// the package doc for the errors it gets.
type ErrorHandler func(ctx context.Context, fullMethod string, err error) error

// Code returns the status code DefaultErrorHandler answers err with:
//
//   - codes.InvalidArgument for ErrKeyTooLong: the key comes from the
//     client, so an over-long one is the client's error;
//   - codes.Internal for ErrKey, ErrInvalidConfig, hammer.ErrInvalidArgument
//     and hammer.ErrNoRuleBackend: server bugs;
//   - codes.Canceled and codes.DeadlineExceeded for an error wrapping
//     context.Canceled or context.DeadlineExceeded: the call's own context
//     ended during the check;
//   - codes.Unavailable for anything else: the backend is down and the
//     Limiter fails closed (hammer.ErrUnavailable), or it is misconfigured
//     (hammer.ErrMisconfigured).
func Code(err error) codes.Code {
	switch {
	case errors.Is(err, ErrKeyTooLong):
		return codes.InvalidArgument
	case errors.Is(err, ErrKey), errors.Is(err, ErrInvalidConfig),
		errors.Is(err, hammer.ErrInvalidArgument), errors.Is(err, hammer.ErrNoRuleBackend):
		return codes.Internal
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	default:
		return codes.Unavailable
	}
}

// DefaultErrorHandler returns a status error with the code Code gives for
// err and a short message naming the code only: the error itself, which
// may hold addresses of the backend or the panic of a KeyFunc, is not sent
// to the client.
func DefaultErrorHandler(_ context.Context, _ string, err error) error {
	c := Code(err)
	var msg string
	switch c {
	case codes.InvalidArgument:
		msg = "rate limit key too long"
	case codes.Internal:
		msg = "rate limit check failed"
	case codes.Canceled:
		msg = "rate limit check canceled"
	case codes.DeadlineExceeded:
		msg = "rate limit check: deadline exceeded"
	default:
		msg = "rate limiter unavailable"
	}
	return status.Error(c, msg)
}

// retryWait is the wait a denial asks for: Decision.RetryAfter rounded up
// to the millisecond, at least 1ms.
func retryWait(d hammer.Decision) time.Duration {
	w := (d.RetryAfter + time.Millisecond - 1).Truncate(time.Millisecond)
	return max(w, time.Millisecond)
}

// deniedStatus is the error of a denied call: codes.ResourceExhausted with
// a google.rpc.RetryInfo detail of the wait.
func deniedStatus(wait time.Duration) error {
	st := status.New(codes.ResourceExhausted, "rate limit exceeded, retry after "+wait.String())
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// limitedError is the error of a denied call for MiddlewareLimiter.Limit.
func limitedError(wait time.Duration) error {
	return fmt.Errorf("%w, retry after %v", ErrLimited, wait)
}
