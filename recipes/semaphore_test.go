package recipes_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// TestSemaphoreContention: 16 goroutines over 3 nodes share 3 leases; never
// more than 3 are held, and all 3 are used.
func TestSemaphoreContention(t *testing.T) {
	nodes := cluster(t, 3)
	const leases = 3
	var mu sync.Mutex
	var inside, most int
	var n atomic.Int64
	contend(t, nodes, *flagAcquisitions/4,
		func(s *coord.Session, _ int) func(context.Context) (*recipes.Lease, error) {
			return recipes.NewSemaphore(s, "/sem/contended", leases, nil).Acquire
		},
		func(_ int, l *recipes.Lease) error {
			n.Add(1)
			mu.Lock()
			inside++
			most = max(most, inside)
			over := inside > leases
			mu.Unlock()
			time.Sleep(time.Millisecond) // let holders overlap
			mu.Lock()
			inside--
			mu.Unlock()
			if over {
				return fmt.Errorf("more than %d holders", leases)
			}
			return nil
		})
	require.EqualValues(t, *flagAcquisitions/4, n.Load())
	t.Logf("up to %d of %d leases held at once", most, leases)
}

// TestSemaphoreBound: n leases are held together; the next waits until one
// is released.
func TestSemaphoreBound(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 20*time.Second)
	var held []*recipes.Lease
	for i := range 3 {
		l, err := recipes.NewSemaphore(session(t, nodes[i]), "/sem/bound", 3, nil).Acquire(ctx)
		require.NoError(t, err)
		held = append(held, l)
	}
	got := make(chan *recipes.Lease, 1)
	go func() {
		l, err := recipes.NewSemaphore(session(t, nodes[0]), "/sem/bound", 3, nil).Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	requireQueued(t, nodes[0], "/sem/bound", 4)
	select {
	case <-got:
		t.Fatal("a fourth lease of three")
	default:
	}
	requireReleased(t, held[1].Release(ctx))
	l := <-got
	require.NotNil(t, l)
	requireReleased(t, l.Release(ctx))
}

// TestSemaphoreFIFO: leases go in arrival order.
func TestSemaphoreFIFO(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	s := session(t, nodes[0])
	first, err := recipes.NewSemaphore(s, "/sem/fifo", 1, nil).Acquire(ctx)
	require.NoError(t, err)
	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		sem := recipes.NewSemaphore(s, "/sem/fifo", 1, nil)
		requireQueued(t, nodes[0], "/sem/fifo", i+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := sem.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			if err := l.Release(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	requireQueued(t, nodes[0], "/sem/fifo", 4)
	requireReleased(t, first.Release(ctx))
	wg.Wait()
	close(order)
	var got []int
	for i := range order {
		got = append(got, i)
	}
	require.Equal(t, []int{0, 1, 2}, got)
}

// TestSemaphoreAlreadyHeld: a Semaphore value holds one lease; a second
// Acquire fails at once instead of waiting for a lease only it could free.
func TestSemaphoreAlreadyHeld(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 10*time.Second)
	sem := recipes.NewSemaphore(session(t, nodes[0]), "/sem/h", 1, nil)
	l, err := sem.Acquire(ctx)
	require.NoError(t, err)
	_, err = sem.Acquire(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	requireReleased(t, l.Release(ctx))
	_, err = recipes.NewSemaphore(session(t, nodes[0]), "/sem/h", 0, nil).Acquire(ctx)
	require.ErrorIs(t, err, coord.ErrBadArguments)
}

// TestSemaphoreCancelLeavesNothing: a waiter abandoned while every lease is
// held leaves no node and no watch.
func TestSemaphoreCancelLeavesNothing(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	var held []*recipes.Lease
	for i := range 2 {
		l, err := recipes.NewSemaphore(session(t, nodes[i]), "/sem/c", 2, nil).Acquire(ctx)
		require.NoError(t, err)
		held = append(held, l)
	}
	s := session(t, nodes[2])
	before := watches(nodes)
	requireCancelLeavesNothing(t, nodes, before, "/sem/c", 2, func(ctx context.Context) error {
		_, err := recipes.NewSemaphore(s, "/sem/c", 2, nil).Acquire(ctx)
		return err
	})
	for _, l := range held {
		requireReleased(t, l.Release(ctx))
	}
}
