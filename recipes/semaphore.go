package recipes

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/lockcore"
)

const semPrefix = "lease-"

// Semaphore is a distributed counting semaphore: at most n leases are held
// at once, granted in arrival order (fair, FIFO; Curator's
// InterProcessSemaphoreV2). Contenders queue as ephemeral sequential nodes
// and the first n hold. A waiter watches the directory, so every release
// wakes every waiter to recount (n leases can be freed by any of the n
// holders, so no single predecessor tells it when its turn comes).
//
// Every participant must use the same n: the bound is each contender's own
// count, so one that asks for more could hold beside n others.
//
// A Semaphore value is one holder of one lease: a second Acquire while it
// holds (or is acquiring) one fails with ErrAlreadyHeld, so a holder cannot
// wait for a lease only it could free. Use one value per lease wanted.
type Semaphore struct {
	q    queue
	n    int
	data []byte
	h    holder
}

// NewSemaphore returns a semaphore of n leases whose contenders live under
// dir (created as a container if missing; use the directory for nothing
// else). data, if any, is stored in each contender's node. n must be at
// least 1.
func NewSemaphore(s Session, dir string, n int, data []byte) *Semaphore {
	q := newQueue(s, dir, semPrefix)
	q.children = true
	return &Semaphore{q: q, n: n, data: data, h: newHolder("Semaphore")}
}

// rule holds within the first n places and otherwise waits on the
// directory.
func (m *Semaphore) rule(_ []lockcore.Contender, me int) lockcore.Decision {
	if me < m.n {
		return lockcore.Decision{Held: true}
	}
	return lockcore.Decision{Children: true}
}

// Acquire waits until this value holds one of the n leases or ctx ends.
// On failure it removes its place in the queue and its watch.
func (m *Semaphore) Acquire(ctx context.Context) (*Lease, error) {
	if m.n < 1 {
		return nil, fmt.Errorf("%w: a semaphore of %d leases", coord.ErrBadArguments, m.n)
	}
	if err := m.h.take(); err != nil {
		return nil, err
	}
	l, err := m.q.acquire(ctx, semPrefix, m.data, m.rule, nil)
	if err != nil {
		m.h.free()
		return nil, err
	}
	return l.bind(m.h), nil
}
