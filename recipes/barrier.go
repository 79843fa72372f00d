package recipes

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coord-dev/coord/coord"
)

// Barrier is a gate (ZooKeeper's barrier recipe): while its node exists,
// Wait blocks; removing the node lets every waiter through.
type Barrier struct {
	s    Session
	path string
}

// NewBarrier returns the barrier whose node is path.
func NewBarrier(s Session, path string) *Barrier {
	return &Barrier{s: s, path: strings.TrimRight(path, "/")}
}

// Set raises the barrier (creating its node, and missing parents as
// containers). Raising a raised barrier is not an error.
func (b *Barrier) Set(ctx context.Context) error {
	for {
		_, err := b.s.Create(ctx, b.path, nil, coord.Persistent)
		switch {
		case err == nil || errors.Is(err, coord.ErrNodeExists):
			return nil
		case !errors.Is(err, coord.ErrNoNode):
			return err
		}
		if err := ensureDir(ctx, b.s, parentDir(b.path)); err != nil {
			return fmt.Errorf("recipes: barrier %s: %w", b.path, err)
		}
	}
}

// Remove lowers the barrier, letting every waiter through. Removing a
// lowered barrier is not an error.
func (b *Barrier) Remove(ctx context.Context) error {
	err := b.s.Delete(ctx, b.path, coord.AnyVersion)
	if errors.Is(err, coord.ErrNoNode) {
		return nil
	}
	return err
}

// Wait returns once the barrier is down (at once if it is not set), or
// ctx's error; cancelled, it leaves no watch behind.
func (b *Barrier) Wait(ctx context.Context) error {
	return waitFor(ctx, b.s, b.path, func(ctx context.Context) (bool, error) {
		_, ok, err := b.s.Exists(ctx, b.path)
		return !ok, err
	})
}

// waitFor watches path and returns once done reports true: it is asked
// first and again after every event of the watch (a persistent watch set
// before the first ask, so no change is missed). The watch is removed on
// return.
func waitFor(ctx context.Context, s Session, path string, done func(context.Context) (bool, error)) error {
	for {
		w, err := s.Watch(ctx, path, false)
		if err != nil {
			return err
		}
		err = waitOn(ctx, w, done)
		stopWatch(w)
		if !errors.Is(err, coord.ErrWatchOverflow) {
			return err
		}
	}
}

func waitOn(ctx context.Context, w *coord.Watch, done func(context.Context) (bool, error)) error {
	for {
		ok, err := done(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case ev, open := <-w.C():
			if !open {
				return coord.ErrClosed
			}
			if ev.Err != nil {
				return ev.Err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

const readyNode = "ready"

// DoubleBarrier lets a fixed number of participants start and finish a
// computation together (ZooKeeper's double barrier): Enter returns once
// Count participants have entered, Leave once every one of them has left.
// Each participant is an ephemeral node under the directory, so one that
// dies leaves. The directory serves one round at a time: start the next
// round after the last Leave returned (or use another directory).
type DoubleBarrier struct {
	s     Session
	dir   string
	name  string
	count int
}

// NewDoubleBarrier returns participant name's handle on the barrier under
// dir for count participants. Names must be unique among the participants
// and not "ready".
func NewDoubleBarrier(s Session, dir, name string, count int) *DoubleBarrier {
	return &DoubleBarrier{s: s, dir: strings.TrimRight(dir, "/"), name: name, count: count}
}

// Enter registers this participant and waits until count have entered. If
// ctx ends first it leaves again (its node is deleted) and returns ctx's
// error.
func (d *DoubleBarrier) Enter(ctx context.Context) error {
	if d.count < 1 || d.name == "" || d.name == readyNode || strings.Contains(d.name, "/") {
		return fmt.Errorf("%w: double barrier participant %q of %d", coord.ErrBadArguments, d.name, d.count)
	}
	ready := d.dir + "/" + readyNode
	me := d.dir + "/" + d.name
	// Watch the ready node before arriving: its creation cannot be missed.
	w, err := d.s.Watch(ctx, ready, false)
	if err != nil {
		return err
	}
	defer stopWatch(w)
	err = d.arrive(ctx, me)
	if err == nil {
		err = waitOn(ctx, w, func(ctx context.Context) (bool, error) {
			if _, ok, err := d.s.Exists(ctx, ready); err != nil || ok {
				return ok, err
			}
			n, err := d.participants(ctx)
			if err != nil || n < d.count {
				return false, err
			}
			// The last to arrive opens the barrier.
			_, err = d.s.Create(ctx, ready, nil, coord.Persistent)
			if errors.Is(err, coord.ErrNodeExists) {
				err = nil
			}
			return err == nil, err
		})
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		_ = d.s.Delete(dctx, me, coord.AnyVersion)
		cancel()
	}
	return err
}

// arrive creates this participant's node. The create runs to its outcome
// whatever ctx does (see settled); if ctx ended meanwhile, arrive returns
// its error and Enter removes the node.
func (d *DoubleBarrier) arrive(ctx context.Context, me string) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		cctx, cancel := settled(ctx)
		_, err := d.s.Create(cctx, me, nil, coord.Ephemeral)
		cancel()
		if err == nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, coord.ErrNoNode) {
			return err
		}
		if err := ensureDir(ctx, d.s, d.dir); err != nil {
			return err
		}
	}
}

// participants counts the participants' nodes.
func (d *DoubleBarrier) participants(ctx context.Context) (int, error) {
	names, _, err := d.s.Children(ctx, d.dir)
	if errors.Is(err, coord.ErrNoNode) {
		return 0, nil
	}
	n := 0
	for _, name := range names {
		if name != readyNode {
			n++
		}
	}
	return n, err
}

// Leave removes this participant and waits until every participant has
// left; the last one out closes the barrier for the next round. If ctx
// ends first it returns ctx's error (this participant has left either way).
func (d *DoubleBarrier) Leave(ctx context.Context) error {
	err := d.s.Delete(ctx, d.dir+"/"+d.name, coord.AnyVersion)
	if err != nil && !errors.Is(err, coord.ErrNoNode) {
		return err
	}
	return waitFor(ctx, d.s, d.dir, func(ctx context.Context) (bool, error) {
		n, err := d.participants(ctx)
		if err != nil || n > 0 {
			return false, err
		}
		err = d.s.Delete(ctx, d.dir+"/"+readyNode, coord.AnyVersion)
		if errors.Is(err, coord.ErrNoNode) {
			err = nil
		}
		return err == nil, err
	})
}

// settled returns a context for a create that must run to its outcome even
// if ctx ends, bounded by defaultCleanup: abandoned in flight, it could be
// applied after its caller gave up and cleaned up, leaving a node nobody
// knows of.
func settled(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
}
