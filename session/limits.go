package session

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxTimeout is the longest session timeout coord can record: the tree stores
// a session's timeout as int32 milliseconds (tree.Op.Timeout).
const MaxTimeout = time.Duration(math.MaxInt32) * time.Millisecond

// Limits bounds the session timeouts the cluster grants, like ZooKeeper's
// minSessionTimeout and maxSessionTimeout.
type Limits struct {
	// Min is the shortest timeout granted. ZooKeeper's default is 2 ticks.
	Min time.Duration
	// Max is the longest timeout granted. ZooKeeper's default is 20 ticks.
	Max time.Duration
}

// DefaultLimits returns ZooKeeper's defaults for the given tick:
// Min = 2*tick, Max = 20*tick.
func DefaultLimits(tick time.Duration) Limits {
	return Limits{Min: 2 * tick, Max: 20 * tick}
}

// Validate reports every out-of-range field, each named in the error, wrapped
// around ErrInvalidConfig. Both bounds must be positive whole milliseconds
// (timeouts are replicated in ms), Min <= Max, and Max <= MaxTimeout.
func (l Limits) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	if l.Min <= 0 {
		bad("Limits.Min (%v) must be positive", l.Min)
	} else if l.Min%time.Millisecond != 0 {
		bad("Limits.Min (%v) must be a whole number of milliseconds", l.Min)
	}
	if l.Max <= 0 {
		bad("Limits.Max (%v) must be positive", l.Max)
	} else if l.Max%time.Millisecond != 0 {
		bad("Limits.Max (%v) must be a whole number of milliseconds", l.Max)
	}
	if l.Max > MaxTimeout {
		bad("Limits.Max (%v) must be at most %v", l.Max, MaxTimeout)
	}
	if l.Min > 0 && l.Max > 0 && l.Min > l.Max {
		bad("Limits.Min (%v) must not exceed Limits.Max (%v)", l.Min, l.Max)
	}
	return errors.Join(errs...)
}

// Negotiate returns the timeout granted for the requested one under l; see
// the package function Negotiate.
func (l Limits) Negotiate(requested time.Duration) time.Duration {
	return Negotiate(requested, l.Min, l.Max)
}

// Negotiate clamps a client's requested session timeout into [min, max], as
// ZooKeeper's server does when it creates a session: a request below min
// (including zero or negative) gets min, a request above max gets max, and
// anything in between is granted as asked, truncated to whole milliseconds.
// The truncation matters: the tree replicates timeouts in milliseconds, and
// the owner must run with exactly the timeout the leader will use, never a
// longer one. The bounds are assumed valid (see Limits.Validate: whole
// milliseconds, min <= max); if min > max, max wins, so the result never
// exceeds max.
func Negotiate(requested, min, max time.Duration) time.Duration {
	requested = requested.Truncate(time.Millisecond)
	if requested < min {
		requested = min
	}
	if requested > max {
		requested = max
	}
	return requested
}
