package recipes

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/lockcore"
)

// ErrLeaseLost is returned by Lease.Release (and is what Lease.Done
// signals) when the session was Suspended or lost while the lease was held:
// the holder may have overlapped with the next one and must check its
// effects through fencing. TryAcquire returns it when the session is not
// Connected, and an acquisition when its contender vanished (deleted by an
// operator, or with its session).
var ErrLeaseLost = lockcore.ErrLeaseLost

// ErrAlreadyHeld is returned when a lock value (Lock, RWLock, Semaphore,
// MultiLock, Election) is asked for a second lease while it holds one or is
// acquiring one. Each value is one holder: locks are not re-entrant, and a
// second Acquire fails at once instead of queueing behind the first (a
// self-deadlock). Release the lease first, or contend through another
// value (they are cheap).
var ErrAlreadyHeld = errors.New("recipes: already held by this value")

const lockPrefix = "lock-"

// Lock is a distributed mutual-exclusion lock (ZooKeeper's lock recipe):
// contenders queue as ephemeral sequential nodes under a directory and each
// watches only its predecessor, so a release wakes one waiter (no herd).
//
// A Lock value is one holder: Acquire while it holds (or is acquiring) a
// lease fails with ErrAlreadyHeld. Goroutines that contend with each other
// each use their own Lock, over the same or different sessions.
type Lock struct {
	q    queue
	data []byte
	h    holder
}

// NewLock returns a lock whose contenders live under dir (created as a
// container if missing; use the directory for nothing else). data, if
// any, is stored in each contender's node (who holds the lock, for
// operators).
func NewLock(s Session, dir string, data []byte) *Lock {
	return &Lock{q: newQueue(s, dir, lockPrefix), data: data, h: newHolder("Lock")}
}

func newQueue(s Session, dir string, prefixes ...string) queue {
	return queue{s: s, dir: strings.TrimRight(dir, "/"), prefixes: prefixes}
}

// Lease is a held lock, semaphore lease or leadership.
type Lease struct {
	s     Session
	path  string
	token int64
	done  <-chan struct{}
	free  func() // frees the value that acquired it
	freed sync.Once
}

// Token is the lease's fencing token: the zxid that created its node.
// Tokens of successive holders of a lock strictly increase, so a resource
// that remembers the highest token it has seen can refuse a stale holder.
func (l *Lease) Token() int64 { return l.token }

// Path is the lease's node.
func (l *Lease) Path() string { return l.path }

// Done is closed when the lease can no longer be relied on: the session was
// Suspended or lost. Stop acting as the holder when it closes.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Remaining returns how long the holder may still act: zero once Done is
// closed, else how long the session is certain to stay alive by the clock
// now (see coord.Session.Remaining). Check it right before acting on the
// protected resource, and pass the Token along.
func (l *Lease) Remaining() time.Duration {
	select {
	case <-l.done:
		return 0
	default:
	}
	return l.s.Remaining()
}

// Guard returns an op for a coord Multi that fails (with coord.ErrNoNode)
// unless the lease's node still exists when the Multi is applied, so writes
// into coord made with it take effect only while the lease is held, in the
// cluster's own order: a holder that was too slow to notice Done cannot
// overwrite its successor's work. The node's name is never reused, so its
// existence is this lease's.
func (l *Lease) Guard() coord.Op { return coord.CheckOp(l.path, coord.AnyVersion) }

// Release gives the lease up. It returns ErrLeaseLost if the lease had
// already been lost (the node is deleted anyway if it still exists). If the
// node could not be deleted (ctx ended, no quorum), it returns that error
// and the lease stays with its value: call Release again.
func (l *Lease) Release(ctx context.Context) error {
	err := l.s.Delete(ctx, l.path, coord.AnyVersion)
	if err != nil && !errors.Is(err, coord.ErrNoNode) && !errors.Is(err, coord.ErrSessionExpired) && !errors.Is(err, coord.ErrClosed) {
		return err
	}
	if l.free != nil {
		l.freed.Do(l.free)
	}
	select {
	case <-l.done:
		return ErrLeaseLost
	default:
		return nil
	}
}

// bind makes releasing l free h.
func (l *Lease) bind(h holder) *Lease {
	l.free = h.free
	return l
}

// Acquire waits until the lock is held or ctx ends. On failure it removes
// its place in the queue and the watch it waited on.
func (k *Lock) Acquire(ctx context.Context) (*Lease, error) {
	if err := k.h.take(); err != nil {
		return nil, err
	}
	l, err := k.q.acquire(ctx, lockPrefix, k.data, lockcore.Mutex, nil)
	if err != nil {
		k.h.free()
		return nil, err
	}
	return l.bind(k.h), nil
}

// TryAcquire takes the lock only if it is free now.
func (k *Lock) TryAcquire(ctx context.Context) (*Lease, bool, error) {
	if err := k.h.take(); err != nil {
		return nil, false, err
	}
	l, ok, err := k.q.tryAcquire(ctx, lockPrefix, k.data, k.q.s.Suspended(), lockcore.Mutex)
	if !ok {
		k.h.free()
		return nil, false, err
	}
	return l.bind(k.h), true, nil
}
