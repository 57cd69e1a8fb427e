package hammer

import "errors"

var (
	// ErrInvalidArgument is wrapped by every error about an argument of a
	// call: an empty or oversized id, a bad scale, limit or increment. Such
	// errors are returned before any Redis command is sent.
	ErrInvalidArgument = errors.New("hammer: invalid argument")

	// ErrInvalidOptions is wrapped by every error about the Options given to
	// NewClusterBackend.
	ErrInvalidOptions = errors.New("hammer: invalid options")
)
