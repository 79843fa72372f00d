package session

import "errors"

// Errors returned by this package. Compare with errors.Is: returned errors wrap
// these sentinels with the offending field or value.
var (
	// ErrInvalidConfig means a Limits, Config or Tracker parameter is out of
	// range; the message names the field.
	ErrInvalidConfig = errors.New("session: invalid config")
	// ErrInvalidID means a session id is not positive.
	ErrInvalidID = errors.New("session: invalid session id")
	// ErrInvalidTimeout means a session timeout is not positive.
	ErrInvalidTimeout = errors.New("session: invalid session timeout")
)
