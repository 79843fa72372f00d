package recipes

import (
	"context"
	"strings"

	"github.com/coord-dev/coord/internal/lockcore"
)

const (
	readPrefix  = "read-"
	writePrefix = "write-"
)

// RWLock is a distributed readers-writer lock (ZooKeeper's shared-lock
// recipe): many readers or one writer. Readers and writers queue in one
// directory in arrival order; a reader waits only for the writers queued
// before it, a writer for everyone queued before it. A reader that arrives
// after a waiting writer queues behind it, so a stream of readers cannot
// starve writers. Each waiter watches one node (the last writer before a
// reader, the node just before a writer): a release wakes only those it
// lets in.
//
// An RWLock value is one holder: a second RLock or Lock while it holds (or
// is acquiring) a lease fails with ErrAlreadyHeld, so a holder cannot
// deadlock on itself (a read lock upgraded to a write lock would wait for
// itself for ever). Use one value per contending goroutine.
type RWLock struct {
	q    queue
	data []byte
	h    holder
}

// NewRWLock returns a readers-writer lock whose contenders live under dir
// (created as a container if missing; use the directory for nothing
// else). data, if any, is stored in each contender's node.
func NewRWLock(s Session, dir string, data []byte) *RWLock {
	return &RWLock{q: newQueue(s, dir, readPrefix, writePrefix), data: data, h: newHolder("RWLock")}
}

// reader holds unless a writer queued before it; it watches the last one.
func reader(q []lockcore.Contender, me int) lockcore.Decision {
	for i := me - 1; i >= 0; i-- {
		if strings.HasPrefix(q[i].Name, writePrefix) {
			return lockcore.Decision{Watch: q[i].Name}
		}
	}
	return lockcore.Decision{Held: true}
}

// RLock waits until this value holds the lock shared with other readers,
// or ctx ends. The lease's token orders it after every writer before it.
func (l *RWLock) RLock(ctx context.Context) (*Lease, error) {
	return l.acquire(ctx, readPrefix, reader)
}

// Lock waits until this value holds the lock alone, or ctx ends. Tokens of
// successive writers strictly increase.
func (l *RWLock) Lock(ctx context.Context) (*Lease, error) {
	return l.acquire(ctx, writePrefix, lockcore.Mutex)
}

func (l *RWLock) acquire(ctx context.Context, prefix string, r lockcore.Rule) (*Lease, error) {
	if err := l.h.take(); err != nil {
		return nil, err
	}
	lease, err := l.q.acquire(ctx, prefix, l.data, r, nil)
	if err != nil {
		l.h.free()
		return nil, err
	}
	return lease.bind(l.h), nil
}
