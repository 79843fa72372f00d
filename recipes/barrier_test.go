package recipes_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// gate has n workers over nodes wait on the barrier at path while it is
// removed through remover; none may pass before the removal.
func gate(t *testing.T, nodes []*coord.Node, path string, n int, remover *coord.Session, beforeRemove func()) {
	ctx := testCtx(t, 60*time.Second)
	require.NoError(t, recipes.NewBarrier(remover, path).Set(ctx))
	var removed atomic.Bool
	var waiting sync.WaitGroup
	waiting.Add(n)
	go func() {
		waiting.Wait() // every worker is about to wait
		if beforeRemove != nil {
			beforeRemove()
		}
		removed.Store(true)
		if err := recipes.NewBarrier(remover, path).Remove(ctx); err != nil {
			t.Error(err)
		}
	}()
	workers(t, nodes, n, func(i int, s *coord.Session) {
		b := recipes.NewBarrier(s, path)
		waiting.Done()
		if err := b.Wait(ctx); err != nil {
			t.Errorf("worker %d: %v", i, err)
			return
		}
		if !removed.Load() {
			t.Errorf("worker %d passed a raised barrier", i)
		}
	})
}

// TestBarrier: 16 waiters over 3 nodes pass only once the barrier is
// removed; again with the leader crash-stopped before the removal; a
// cancelled Wait leaves no watch.
func TestBarrier(t *testing.T) {
	nodes := cluster(t, 3)
	gate(t, nodes, "/barriers/deploy", 16, workSession(t, nodes[0]), nil)

	old, alive := splitLeader(t, nodes)
	gate(t, alive, "/barriers/deploy", 16, workSession(t, alive[0]), old.Shutdown)

	ctx := testCtx(t, 10*time.Second)
	s := workSession(t, alive[1])
	b := recipes.NewBarrier(s, "/barriers/held")
	require.NoError(t, b.Set(ctx))
	require.NoError(t, b.Set(ctx), "raising twice is fine")
	before := watches(alive)
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Wait(wctx), context.DeadlineExceeded)
	requireWatchesBack(t, alive, before)
	require.NoError(t, b.Remove(ctx))
	require.NoError(t, b.Remove(ctx), "removing twice is fine")
	require.NoError(t, b.Wait(ctx), "a lowered barrier does not block")
}

// together has n participants over nodes go through the double barrier
// under dir. The last participant arrives only once the n-1 others are
// waiting in Enter, and leaves only once they are waiting in Leave: no
// other may pass Enter before it arrived, nor Leave before it left.
func together(t *testing.T, nodes []*coord.Node, dir string, n int, afterArrival func()) {
	ctx := testCtx(t, 60*time.Second)
	var lastArrived, lastLeft atomic.Bool
	var once sync.Once
	count := func(s *coord.Session, want int) bool {
		kids, _, err := s.Children(ctx, dir)
		got := 0
		for _, k := range kids {
			if k != "ready" {
				got++
			}
		}
		return err == nil && got == want
	}
	workers(t, nodes, n, func(i int, s *coord.Session) {
		d := recipes.NewDoubleBarrier(s, dir, fmt.Sprint("p", i), n)
		last := i == n-1
		if last {
			if !assert.Eventually(t, func() bool { return count(s, n-1) }, 20*time.Second, time.Millisecond) {
				return
			}
			lastArrived.Store(true)
		}
		if afterArrival != nil {
			once.Do(afterArrival)
		}
		if err := d.Enter(ctx); err != nil {
			t.Errorf("participant %d: enter: %v", i, err)
			return
		}
		if !lastArrived.Load() {
			t.Errorf("participant %d entered before the last arrived", i)
		}
		if last {
			if !assert.Eventually(t, func() bool { return count(s, 1) }, 20*time.Second, time.Millisecond) {
				return
			}
			lastLeft.Store(true)
		}
		if err := d.Leave(ctx); err != nil {
			t.Errorf("participant %d: leave: %v", i, err)
			return
		}
		if !lastLeft.Load() {
			t.Errorf("participant %d left before the last did", i)
		}
	})
}

// TestDoubleBarrier: 16 participants over 3 nodes enter together and leave
// together, twice on the same directory; then across a leader crash; a
// cancelled Enter leaves nothing behind.
func TestDoubleBarrier(t *testing.T) {
	nodes := cluster(t, 3)
	together(t, nodes, "/barriers/round", 16, nil)
	together(t, nodes, "/barriers/round", 16, nil)

	old, alive := splitLeader(t, nodes)
	together(t, alive, "/barriers/round", 16, old.Shutdown)

	ctx := testCtx(t, 10*time.Second)
	s := workSession(t, alive[0])
	before := watches(alive)
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	d := recipes.NewDoubleBarrier(s, "/barriers/pair", "alone", 2)
	require.ErrorIs(t, d.Enter(wctx), context.DeadlineExceeded)
	requireWatchesBack(t, alive, before)
	kids, _, err := s.Children(ctx, "/barriers/pair")
	if err == nil {
		require.Empty(t, kids, "the cancelled participant left")
	} else {
		require.ErrorIs(t, err, coord.ErrNoNode)
	}
	require.ErrorIs(t, recipes.NewDoubleBarrier(s, "/b", "ready", 2).Enter(ctx), coord.ErrBadArguments)
}
