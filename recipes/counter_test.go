package recipes_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// adds has n workers over nodes each add k deltas to the counter at path,
// even workers with Add, odd ones with a CompareAndSet loop, and returns
// the sum of the deltas that were applied.
func adds(t *testing.T, nodes []*coord.Node, path string, n, k int, afterFirst func()) int64 {
	ctx := testCtx(t, 60*time.Second)
	var sum atomic.Int64
	var first atomic.Bool
	workers(t, nodes, n, func(i int, s *coord.Session) {
		c := recipes.NewCounter(s, path)
		for j := range k {
			delta := int64(i*100 + j)
			if i%2 == 0 {
				if _, err := c.Add(ctx, delta); err != nil {
					t.Errorf("worker %d: %v", i, err)
					return
				}
			} else {
				for {
					v, err := c.Get(ctx)
					if err != nil {
						t.Errorf("worker %d: %v", i, err)
						return
					}
					ok, err := c.CompareAndSet(ctx, v, v+delta)
					if err != nil {
						t.Errorf("worker %d: %v", i, err)
						return
					}
					if ok {
						break
					}
				}
			}
			sum.Add(delta)
			if afterFirst != nil && first.CompareAndSwap(false, true) {
				afterFirst()
			}
		}
	})
	return sum.Load()
}

// TestCounterContention: 16 workers over 3 nodes add concurrently (Add and
// CompareAndSet loops); the final value is the sum of every delta, and a
// watcher on every node sees it without ever seeing the value go down.
// Then again while the leader is crash-stopped.
func TestCounterContention(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	const path = "/counters/hits"
	views := make([]*recipes.Config[int64], len(nodes))
	for i, n := range nodes {
		v, err := recipes.NewCounter(workSession(t, n), path).Watch(ctx, recipes.NodeSessions(n))
		require.NoError(t, err)
		t.Cleanup(func() { v.Close() })
		views[i] = v
		ch, stop := v.Subscribe()
		t.Cleanup(stop)
		go func() {
			last := int64(-1)
			for val := range ch {
				if val.V < last {
					t.Errorf("node %d saw the counter go down: %d after %d", i+1, val.V, last)
				}
				last = val.V
			}
		}()
	}
	sum := adds(t, nodes, path, 16, 6, nil)
	s := workSession(t, nodes[0])
	require.NoError(t, s.Sync(ctx))
	got, err := recipes.NewCounter(s, path).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, sum, got, "no add lost or applied twice")
	for _, v := range views {
		require.Eventually(t, func() bool { return v.Get().V == sum }, 10*time.Second, 5*time.Millisecond)
	}

	old, alive := splitLeader(t, nodes)
	sum += adds(t, alive, path, 16, 3, old.Shutdown)
	s = workSession(t, alive[0])
	require.NoError(t, s.Sync(ctx))
	got, err = recipes.NewCounter(s, path).Get(ctx)
	require.NoError(t, err)
	require.Equal(t, sum, got, "no add lost or applied twice across the fail-over")
}

func TestCounterCompareAndSetAndCancel(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	c := recipes.NewCounter(workSession(t, nodes[0]), "/n")
	v, err := c.Get(ctx)
	require.NoError(t, err)
	require.Zero(t, v, "a missing counter is 0")
	ok, err := c.CompareAndSet(ctx, 1, 5)
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = c.CompareAndSet(ctx, 0, 5)
	require.NoError(t, err)
	require.True(t, ok)
	v, err = c.Add(ctx, -7)
	require.NoError(t, err)
	require.Equal(t, int64(-2), v)

	before := watches(nodes)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Add(cctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = c.CompareAndSet(cctx, -2, 0)
	require.ErrorIs(t, err, context.Canceled)
	_, err = recipes.NewCounter(workSession(t, nodes[0]), "/m").Add(cctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	v, err = c.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(-2), v, "a cancelled add changed nothing")
	_, ok, err = nodes[0].Exists(ctx, "/m")
	require.NoError(t, err)
	require.False(t, ok, "a cancelled first add created nothing")
	requireWatchesBack(t, nodes, before)
}
