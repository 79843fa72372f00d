package recipes_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// TestMultiLockOverlappingSets: holders of overlapping sets named in
// different orders never deadlock, and each lock keeps one holder at a
// time with increasing tokens.
func TestMultiLockOverlappingSets(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, time.Minute)
	sets := [][]string{{"/ml/a", "/ml/b"}, {"/ml/b", "/ml/c"}, {"/ml/c", "/ml/a"}, {"/ml/c", "/ml/b", "/ml/a"}}
	res := map[string]*fenced{"/ml/a": {}, "/ml/b": {}, "/ml/c": {}}
	var wg sync.WaitGroup
	for w := range 12 {
		set := sets[w%len(sets)]
		m := recipes.NewMultiLock(session(t, nodes[w%3]), set, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				ml, err := m.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				leases := ml.Leases()
				if len(leases) != len(set) {
					t.Errorf("%d leases for %d locks", len(leases), len(set))
				}
				var entered []*fenced
				for _, l := range leases {
					f := res[l.Path()[:len("/ml/a")]]
					inside, err := f.enter(l.Token(), true)
					if err != nil || inside != 1 {
						t.Errorf("%s: %d inside, %v", l.Path(), inside, err)
					}
					if err == nil {
						entered = append(entered, f)
					}
				}
				for _, f := range entered {
					f.leave()
				}
				// ErrLeaseLost: the session was Suspended meanwhile (a
				// loaded machine); the nodes are deleted all the same.
				if err := ml.Release(ctx); err != nil && !errors.Is(err, recipes.ErrLeaseLost) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestMultiLockAllOrNone: when one lock cannot be had before ctx ends, the
// others taken meanwhile are released: no node and no watch is left.
func TestMultiLockAllOrNone(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	b, err := recipes.NewLock(session(t, nodes[0]), "/ml2/b", nil).Acquire(ctx)
	require.NoError(t, err)
	s := session(t, nodes[1])
	before := watches(nodes)
	m := recipes.NewMultiLock(s, []string{"/ml2/c", "/ml2/b", "/ml2/a"}, nil)
	requireCancelLeavesNothing(t, nodes, before, "/ml2/b", 1, func(ctx context.Context) error {
		_, err := m.Acquire(ctx)
		return err
	})
	for _, dir := range []string{"/ml2/a", "/ml2/c"} {
		names, _, err := s.Children(ctx, dir)
		if err == nil {
			require.Empty(t, names, "%s was released", dir)
		} else {
			require.ErrorIs(t, err, coord.ErrNoNode)
		}
	}
	requireReleased(t, b.Release(ctx))

	// Now all three: a Multi guarded by every lease applies; a second
	// Acquire through the value fails at once.
	ml, err := m.Acquire(ctx)
	require.NoError(t, err)
	require.Len(t, ml.Leases(), 3)
	require.Equal(t, "/ml2/a", ml.Leases()[0].Path()[:len("/ml2/a")], "canonical order")
	_, err = s.Multi(ctx, append(ml.Guard(), coord.CreateOp("/ml2-done", nil, coord.Persistent))...)
	require.NoError(t, err)
	_, err = m.Acquire(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	require.Positive(t, ml.Remaining())
	requireReleased(t, ml.Release(ctx))
	_, err = s.Multi(ctx, append(ml.Guard(), coord.CreateOp("/ml2-late", nil, coord.Persistent))...)
	require.ErrorIs(t, err, coord.ErrNoNode, "the guard fails once released")
}
