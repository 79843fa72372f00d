package recipes

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/lockcore"
)

// MultiLock holds several Locks at once, all of them or none (Curator's
// InterProcessMultiLock). It takes them one by one in one canonical order
// (their directories sorted), so holders of overlapping sets can never
// wait for each other in a cycle; if one cannot be had, those already
// taken are released. Each directory is an ordinary Lock's: a MultiLock and
// single Locks on the same directory exclude each other.
//
// All the locks go through one session, so one Suspended ends them all.
// A MultiLock value is one holder: a second Acquire while it holds (or is
// acquiring) fails with ErrAlreadyHeld.
type MultiLock struct {
	s    Session
	dirs []string
	data []byte
	h    holder
}

// NewMultiLock returns a lock over the Locks under dirs (duplicates count
// once). data, if any, is stored in each contender's node.
func NewMultiLock(s Session, dirs []string, data []byte) *MultiLock {
	ds := make([]string, 0, len(dirs))
	for _, d := range dirs {
		ds = append(ds, strings.TrimRight(d, "/"))
	}
	slices.Sort(ds)
	return &MultiLock{s: s, dirs: slices.Compact(ds), data: data, h: newHolder("MultiLock")}
}

// MultiLease is a held MultiLock: one Lease per directory.
type MultiLease struct {
	leases []*Lease
	done   <-chan struct{}
	h      holder
	freed  sync.Once
}

// Acquire waits until every lock is held, or ctx ends; then it holds none.
func (m *MultiLock) Acquire(ctx context.Context) (*MultiLease, error) {
	if err := m.h.take(); err != nil {
		return nil, err
	}
	var stale *MultiLease // taken in a period that ended
	for {
		// One Connected period for all: a suspension before every lock is
		// taken releases those taken and starts again once Connected.
		done, err := connected(ctx, m.s)
		if err == nil && stale != nil {
			err = stale.releaseAll(ctx)
			if errors.Is(err, ErrLeaseLost) {
				err = nil
			}
		}
		if err != nil {
			m.h.free()
			return nil, err
		}
		ml := &MultiLease{done: done, h: m.h}
		for _, dir := range m.dirs {
			var l *Lease
			l, err = newQueue(m.s, dir, lockPrefix).acquire(ctx, lockPrefix, m.data, lockcore.Mutex, done)
			if err != nil {
				break
			}
			ml.leases = append(ml.leases, l)
		}
		if err == nil {
			return ml, nil
		}
		if errors.Is(err, ErrLeaseLost) && isClosed(done) && ctx.Err() == nil {
			stale = ml // released once Connected again
			continue
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		_ = ml.releaseAll(rctx)
		cancel()
		m.h.free()
		return nil, err
	}
}

// Leases returns the held leases in the lock's canonical order (sorted
// directories). Fence each resource with the Token of the lease of the
// lock that protects it: tokens of different locks are not comparable.
func (ml *MultiLease) Leases() []*Lease { return slices.Clone(ml.leases) }

// Done is closed when the leases can no longer be relied on: the session
// was Suspended or lost.
func (ml *MultiLease) Done() <-chan struct{} { return ml.done }

// Remaining returns how long the holder may still act (see
// Lease.Remaining).
func (ml *MultiLease) Remaining() time.Duration {
	var least time.Duration = -1
	for _, l := range ml.leases {
		if r := l.Remaining(); least < 0 || r < least {
			least = r
		}
	}
	return max(least, 0)
}

// Guard returns one op per lease (see Lease.Guard): a Multi carrying them
// applies only while every lock is held.
func (ml *MultiLease) Guard() []coord.Op {
	ops := make([]coord.Op, len(ml.leases))
	for i, l := range ml.leases {
		ops[i] = l.Guard()
	}
	return ops
}

// Release gives every lock up. It returns ErrLeaseLost if the leases had
// been lost, and the first other error if a node could not be deleted
// (then call Release again).
func (ml *MultiLease) Release(ctx context.Context) error {
	err := ml.releaseAll(ctx)
	if err == nil || errors.Is(err, ErrLeaseLost) {
		ml.freed.Do(ml.h.free)
	}
	return err
}

// releaseAll releases every lease (again: Lease.Release is idempotent).
// The leases stay listed, so Guard still guards (and fails) after Release.
func (ml *MultiLease) releaseAll(ctx context.Context) error {
	var lost bool
	var first error
	for _, l := range ml.leases {
		switch err := l.Release(ctx); {
		case err == nil:
		case errors.Is(err, ErrLeaseLost):
			lost = true
		case first == nil:
			first = err
		}
	}
	if first != nil {
		return first
	}
	if lost {
		return ErrLeaseLost
	}
	return nil
}
