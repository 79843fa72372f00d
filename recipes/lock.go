package recipes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
)

// ErrLeaseLost is returned by Lease.Release (and is what Lease.Done
// signals) when the session was Suspended or lost while the lease was held:
// the holder may have overlapped with the next one and must check its
// effects through fencing.
var ErrLeaseLost = errors.New("recipes: lease lost with its session")

const lockPrefix = "lock-"

// defaultCleanup bounds the removal of a contender that gave up.
const defaultCleanup = 5 * time.Second

// Lock is a distributed mutual-exclusion lock (ZooKeeper's lock recipe):
// contenders queue as ephemeral sequential nodes under a directory and each
// watches only its predecessor, so a release wakes one waiter (no herd).
// A Lock value may be used by many goroutines; each Acquire is a separate
// contender.
type Lock struct {
	s    Session
	dir  string
	data []byte
}

// NewLock returns a lock whose contenders live under dir (created as a
// container if missing). data, if any, is stored in each contender's node
// (who holds the lock, for operators).
func NewLock(s Session, dir string, data []byte) *Lock {
	return &Lock{s: s, dir: strings.TrimRight(dir, "/"), data: data}
}

// Lease is a held lock.
type Lease struct {
	s     Session
	path  string
	token int64
	done  <-chan struct{}
}

// Token is the lease's fencing token: the zxid that created its node. Tokens
// of successive holders strictly increase, so a resource that remembers the
// highest token it has seen can refuse a stale holder.
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

// Release gives the lock up. It returns ErrLeaseLost if the lease had
// already been lost (the node is deleted anyway if it still exists).
func (l *Lease) Release(ctx context.Context) error {
	err := l.s.Delete(ctx, l.path, coord.AnyVersion)
	if err != nil && !errors.Is(err, coord.ErrNoNode) && !errors.Is(err, coord.ErrSessionExpired) && !errors.Is(err, coord.ErrClosed) {
		return err
	}
	select {
	case <-l.done:
		return ErrLeaseLost
	default:
		return nil
	}
}

// Acquire waits until the lock is held or ctx ends. On failure it removes
// its place in the queue.
func (k *Lock) Acquire(ctx context.Context) (*Lease, error) {
	// The lease is watched from before the node exists, so a suspension
	// while acquiring is not missed.
	done := k.s.Suspended()
	path, err := k.enqueue(ctx)
	if err != nil {
		return nil, err
	}
	lease, err := k.wait(ctx, path, done)
	if err != nil {
		// Leave the queue; a fresh context, since ctx may be what ended.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		_ = k.s.Delete(dctx, path, coord.AnyVersion)
		cancel()
		return nil, err
	}
	return lease, nil
}

// TryAcquire takes the lock only if it is free now.
func (k *Lock) TryAcquire(ctx context.Context) (*Lease, bool, error) {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := k.s.Suspended()
	path, err := k.enqueue(ctx)
	if err != nil {
		return nil, false, err
	}
	first, _, err := k.queue(tctx, path)
	if err == nil && first {
		return k.lease(tctx, path, done)
	}
	_ = k.s.Delete(ctx, path, coord.AnyVersion)
	return nil, false, err
}

func (k *Lock) lease(ctx context.Context, path string, done <-chan struct{}) (*Lease, bool, error) {
	st, ok, err := k.s.Exists(ctx, path)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, ErrLeaseLost
	}
	return &Lease{s: k.s, path: path, token: st.Czxid, done: done}, true, nil
}

func (k *Lock) wait(ctx context.Context, path string, done <-chan struct{}) (*Lease, error) {
	for {
		first, pred, err := k.queue(ctx, path)
		if err != nil {
			return nil, err
		}
		if first {
			l, _, err := k.lease(ctx, path, done)
			return l, err
		}
		_, ok, ch, err := k.s.ExistsW(ctx, k.dir+"/"+pred)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // the predecessor left between the two reads
		}
		select {
		case <-ch:
		case <-done:
			return nil, ErrLeaseLost
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// queue reports whether path is first among the contenders and, if not,
// the name of the contender just before it.
func (k *Lock) queue(ctx context.Context, path string) (first bool, pred string, err error) {
	names, _, err := k.s.Children(ctx, k.dir)
	if err != nil {
		return false, "", err
	}
	mine := path[strings.LastIndexByte(path, '/')+1:]
	var seqs []string
	for _, n := range names {
		if strings.HasPrefix(n, lockPrefix) {
			seqs = append(seqs, n)
		}
	}
	// One prefix and a 10-digit suffix: names sort like their sequence numbers.
	sort.Strings(seqs)
	i := sort.SearchStrings(seqs, mine)
	if i == len(seqs) || seqs[i] != mine {
		return false, "", fmt.Errorf("%w: lock node %s vanished", ErrLeaseLost, path)
	}
	if i == 0 {
		return true, "", nil
	}
	return false, seqs[i-1], nil
}

// enqueue creates this contender's node, creating the directory and its
// missing parents as containers (the reaper removes them once empty, so a
// directory may vanish between the two steps: then it tries again). A
// retried create is applied once (coord's request ids), so a lost reply
// leaves no orphan node.
func (k *Lock) enqueue(ctx context.Context) (string, error) {
	for {
		path, err := k.s.Create(ctx, k.dir+"/"+lockPrefix, k.data, coord.EphemeralSequential)
		if !errors.Is(err, coord.ErrNoNode) {
			return path, err
		}
		if err := ensureDir(ctx, k.s, k.dir); err != nil {
			return "", fmt.Errorf("recipes: lock dir %s: %w", k.dir, err)
		}
	}
}

// ensureDir creates dir and its missing ancestors as containers.
func ensureDir(ctx context.Context, s Session, dir string) error {
	for i := 1; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		_, err := s.Create(ctx, dir[:i], nil, coord.Container)
		if err != nil && !errors.Is(err, coord.ErrNodeExists) {
			return err
		}
	}
	return nil
}
