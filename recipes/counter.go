package recipes

import (
	"context"
	"errors"

	"github.com/coord-dev/coord/coord"
)

// Counter is a shared int64 in a znode (Curator's DistributedAtomicLong):
// Add and CompareAndSet are versioned compare-and-sets, retried when another
// writer got in first, so concurrent adds are never lost. The znode is
// created (with its missing parents, as containers) on the first write; a
// missing counter reads as 0. Watch gives a live view of the value.
type Counter struct {
	s    Session
	path string
}

// NewCounter returns the counter stored at path.
func NewCounter(s Session, path string) *Counter {
	return &Counter{s: s, path: path}
}

// Get returns the value on this node's replica (Sync the session first for a
// linearizable read).
func (k *Counter) Get(ctx context.Context) (int64, error) {
	data, _, err := k.s.Get(ctx, k.path)
	if errors.Is(err, coord.ErrNoNode) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return Int64Codec{}.Unmarshal(data)
}

// Add adds delta and returns the new value. A write whose outcome is
// unknown is returned as such (wrapping coord.ErrOutcomeUnknown), never
// retried, so the delta is applied at most once.
func (k *Counter) Add(ctx context.Context, delta int64) (int64, error) {
	v, _, err := update(ctx, k.s, k.path, Int64Codec{}, func(old int64) (int64, error) {
		return old + delta, nil
	})
	return v, err
}

// errNotExpected aborts a CompareAndSet whose expected value is not there.
var errNotExpected = errors.New("recipes: counter value differs")

// CompareAndSet sets the value to new if it is old now, and reports
// whether it did.
func (k *Counter) CompareAndSet(ctx context.Context, old, new int64) (bool, error) {
	synced := false
	_, _, err := update(ctx, k.s, k.path, Int64Codec{}, func(cur int64) (int64, error) {
		if cur != old {
			if !synced {
				// The replica may be behind: decide on a synced read.
				synced = true
				return 0, errReadFresh
			}
			return 0, errNotExpected
		}
		return new, nil
	})
	if errors.Is(err, errNotExpected) {
		return false, nil
	}
	return err == nil, err
}

// Watch returns a live view of the counter (a Config of Int64Codec values);
// close it when done. sessions gives its watch a session (and a new one
// after a loss); FixedSession(s) uses the counter's own.
func (k *Counter) Watch(ctx context.Context, sessions SessionFactory) (*Config[int64], error) {
	return NewConfig(ctx, sessions, k.path, ConfigOptions[int64]{Codec: Int64Codec{}})
}
