package recipes_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/recipes"
)

// TestLockMutualExclusion: contenders on every node; at most one holds the
// lock at any moment and fencing tokens strictly increase.
func TestLockMutualExclusion(t *testing.T) {
	nodes := cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var holders atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		lock := recipes.NewLock(session(t, nodes[w%3]), "/locks/job", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				lease, err := lock.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if holders.Add(1) != 1 {
					t.Error("two holders at once")
				}
				mu.Lock()
				tokens = append(tokens, lease.Token())
				mu.Unlock()
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				if err := lease.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, tokens, 30)
	for i := 1; i < len(tokens); i++ {
		require.Greater(t, tokens[i], tokens[i-1], "fencing tokens increase with each holder")
	}
}

func TestLockHandOverWhenHolderSessionEnds(t *testing.T) {
	nodes := cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s1 := session(t, nodes[0])
	first, err := recipes.NewLock(s1, "/l", nil).Acquire(ctx)
	require.NoError(t, err)
	require.Greater(t, first.Remaining(), time.Duration(0), "a fresh lease may act")
	require.LessOrEqual(t, first.Remaining(), s1.Timeout())

	second := recipes.NewLock(session(t, nodes[1]), "/l", nil)
	_, ok, err := second.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "held")

	got := make(chan *recipes.Lease, 1)
	go func() {
		l, err := second.Acquire(ctx)
		if err == nil {
			got <- l
		}
	}()
	// The holder's session ends: its lease is broken and the waiter gets in.
	require.NoError(t, s1.Close(ctx))
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not broken by the session's end")
	}
	require.Zero(t, first.Remaining(), "a broken lease may not act")
	select {
	case l := <-got:
		require.Greater(t, l.Token(), first.Token())
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never acquired")
	}
	require.ErrorIs(t, first.Release(ctx), recipes.ErrLeaseLost)
}

func TestLockAcquireCancelledLeavesQueue(t *testing.T) {
	nodes := cluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := session(t, nodes[0])
	held, err := recipes.NewLock(s, "/c", nil).Acquire(ctx)
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	_, err = recipes.NewLock(s, "/c", nil).Acquire(wctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	names, _, err := s.Children(ctx, "/c")
	require.NoError(t, err)
	require.Len(t, names, 1, "the cancelled contender left the queue")
	require.NoError(t, held.Release(ctx))
}

func TestElection(t *testing.T) {
	nodes := cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := recipes.NewElection(session(t, nodes[0]), "/election", "a")
	b := recipes.NewElection(session(t, nodes[1]), "/election", "b")
	_, err := a.Leader(ctx)
	require.ErrorIs(t, err, recipes.ErrNoLeader)
	la, err := a.Campaign(ctx)
	require.NoError(t, err)
	won := make(chan *recipes.Lease, 1)
	go func() {
		l, err := b.Campaign(ctx)
		if err == nil {
			won <- l
		}
	}()
	require.Eventually(t, func() bool {
		name, err := b.Leader(ctx)
		return err == nil && name == "a"
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, la.Release(ctx)) // resign
	select {
	case <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("b never led")
	}
	// Leader reads the local replica: Sync it first to see b's win.
	require.NoError(t, nodes[0].Sync(ctx))
	name, err := a.Leader(ctx)
	require.NoError(t, err)
	require.Equal(t, "b", name)
}
