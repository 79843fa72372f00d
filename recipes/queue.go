package recipes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/coord-dev/coord/coord"
)

const queuePrefix = "q-"

// Queue is a distributed FIFO queue with priorities (ZooKeeper's queue
// recipe): each item is a persistent sequential node under a directory,
// named by its priority and then its sequence number, so items come out by
// priority (lowest first) and, within one priority, in the order their
// Puts committed. Any number of producers and consumers may share it: a
// consumer takes an item by deleting its node, and exactly one delete of a
// node succeeds, so each item is taken once.
//
// An item's data is never changed after its Put. A Take whose delete had an
// unknown outcome (coord.ErrOutcomeUnknown) may have taken the item; it
// reports the error and the item is then lost, never delivered twice.
type Queue struct {
	s   Session
	dir string
}

// NewQueue returns the queue kept under dir (created as a container on the
// first Put, so it disappears when empty).
func NewQueue(s Session, dir string) *Queue {
	return &Queue{s: s, dir: strings.TrimRight(dir, "/")}
}

// Put appends an item of priority 0.
func (q *Queue) Put(ctx context.Context, data []byte) error {
	return q.PutPriority(ctx, data, 0)
}

// PutPriority appends an item; items of a lower priority are taken first.
func (q *Queue) PutPriority(ctx context.Context, data []byte, priority int32) error {
	name := fmt.Sprintf("%s/%s%010d-", q.dir, queuePrefix, int64(priority)-math.MinInt32)
	for {
		_, err := q.s.Create(ctx, name, data, coord.PersistentSequential)
		if !errors.Is(err, coord.ErrNoNode) {
			return err
		}
		if err := ensureDir(ctx, q.s, q.dir); err != nil {
			return fmt.Errorf("recipes: queue dir %s: %w", q.dir, err)
		}
	}
}

// items lists the queue's item names in the order they are taken.
func (q *Queue) items(ctx context.Context) ([]string, error) {
	names, _, err := q.s.Children(ctx, q.dir)
	if errors.Is(err, coord.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var items []string
	for _, n := range names {
		if strings.HasPrefix(n, queuePrefix) {
			items = append(items, n)
		}
	}
	// Fixed-width priority, then a fixed-width sequence: names sort in order.
	sort.Strings(items)
	return items, nil
}

// Len returns the number of items on this node's replica.
func (q *Queue) Len(ctx context.Context) (int, error) {
	items, err := q.items(ctx)
	return len(items), err
}

// TryTake takes the first item if there is one.
func (q *Queue) TryTake(ctx context.Context) ([]byte, bool, error) {
	for {
		items, err := q.items(ctx)
		if err != nil || len(items) == 0 {
			return nil, false, err
		}
		data, ok, err := q.takeFirst(ctx, items)
		if err != nil || ok {
			return data, ok, err
		}
		// Every listed item went to another consumer: list again.
	}
}

// takeFirst takes the first of items that no other consumer takes first.
func (q *Queue) takeFirst(ctx context.Context, items []string) ([]byte, bool, error) {
	for _, name := range items {
		p := q.dir + "/" + name
		data, _, err := q.s.Get(ctx, p)
		if errors.Is(err, coord.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		err = q.s.Delete(ctx, p, coord.AnyVersion)
		if errors.Is(err, coord.ErrNoNode) {
			continue // another consumer took it
		}
		if err != nil {
			return nil, false, fmt.Errorf("recipes: taking %s: %w", p, err)
		}
		return data, true, nil
	}
	return nil, false, nil
}

// Take waits until it takes an item or ctx ends. Cancelled, it leaves
// nothing behind (its watch is removed).
func (q *Queue) Take(ctx context.Context) ([]byte, error) {
	for {
		// The watch is set before the listing, so a Put after it wakes us.
		w, err := q.s.Watch(ctx, q.dir, false)
		if err != nil {
			return nil, err
		}
		data, err := q.takeOrWait(ctx, w)
		stopWatch(w)
		if errors.Is(err, coord.ErrWatchOverflow) {
			continue
		}
		return data, err
	}
}

func (q *Queue) takeOrWait(ctx context.Context, w *coord.Watch) ([]byte, error) {
	for {
		data, ok, err := q.TryTake(ctx)
		if err != nil || ok {
			return data, err
		}
		select {
		case ev, ok := <-w.C():
			if !ok {
				return nil, coord.ErrClosed
			}
			if ev.Err != nil {
				return nil, ev.Err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
