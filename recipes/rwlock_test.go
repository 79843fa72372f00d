package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// rwState counts readers and writers inside.
type rwState struct {
	mu               sync.Mutex
	readers, writers int
	mostReaders      int
}

func (s *rwState) enter(write bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if write {
		s.writers++
	} else {
		s.readers++
		s.mostReaders = max(s.mostReaders, s.readers)
	}
	if s.writers > 1 || (s.writers == 1 && s.readers > 0) {
		return fmt.Errorf("a writer shares the lock: %d writers, %d readers", s.writers, s.readers)
	}
	return nil
}

func (s *rwState) leave(write bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if write {
		s.writers--
	} else {
		s.readers--
	}
}

// TestRWLockContention: 16 goroutines over 3 nodes, a quarter of them
// writers; a writer never shares the lock, writers' tokens strictly
// increase, and readers do share it.
func TestRWLockContention(t *testing.T) {
	nodes := cluster(t, 3)
	var st rwState
	var writes fenced
	var n atomic.Int64
	contend(t, nodes, *flagAcquisitions/4,
		func(s *coord.Session, w int) func(context.Context) (*recipes.Lease, error) {
			l := recipes.NewRWLock(s, "/locks/rw", nil)
			if w%4 == 0 {
				return l.Lock
			}
			return l.RLock
		},
		func(w int, l *recipes.Lease) error {
			n.Add(1)
			write := w%4 == 0
			if write {
				if _, err := writes.enter(l.Token(), true); err != nil {
					return err
				}
				writes.leave()
			}
			err := st.enter(write)
			if !write {
				time.Sleep(time.Millisecond) // let readers overlap
			}
			st.leave(write)
			return err
		})
	require.EqualValues(t, *flagAcquisitions/4, n.Load())
	t.Logf("%d acquisitions, up to %d readers at once", n.Load(), st.mostReaders)
}

// TestRWLockWriterNotStarved: a reader that queues after a waiting writer
// waits for that writer, so a stream of readers cannot starve it.
func TestRWLockWriterNotStarved(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	r1, err := recipes.NewRWLock(session(t, nodes[0]), "/locks/ws", nil).RLock(ctx)
	require.NoError(t, err)
	r0, err := recipes.NewRWLock(session(t, nodes[1]), "/locks/ws", nil).RLock(ctx)
	require.NoError(t, err, "readers share the lock")
	requireReleased(t, r0.Release(ctx))

	var writing atomic.Bool
	wlock := recipes.NewRWLock(session(t, nodes[1]), "/locks/ws", nil)
	wgot := make(chan *recipes.Lease, 1)
	go func() {
		l, err := wlock.Lock(ctx)
		if err != nil {
			t.Error(err)
			close(wgot)
			return
		}
		writing.Store(true)
		wgot <- l
	}()
	requireQueued(t, nodes[2], "/locks/ws", 2)

	// A later reader queues behind the writer, not beside the first reader.
	rlock := recipes.NewRWLock(session(t, nodes[2]), "/locks/ws", nil)
	rgot := make(chan error, 1)
	go func() {
		l, err := rlock.RLock(ctx)
		if err == nil {
			if writing.Load() {
				err = errors.New("the reader got in while the writer held the lock")
			}
			err = errors.Join(err, l.Release(ctx))
		}
		rgot <- err
	}()
	requireQueued(t, nodes[2], "/locks/ws", 3)
	requireReleased(t, r1.Release(ctx))
	w := <-wgot
	require.NotNil(t, w)
	select {
	case err := <-rgot:
		t.Fatalf("the later reader got in before the writer released: %v", err)
	default:
	}
	writing.Store(false)
	requireReleased(t, w.Release(ctx))
	require.NoError(t, <-rgot)
}

// TestRWLockAlreadyHeld: an RWLock value holds one lease: a read lock
// cannot be upgraded to a write lock by waiting for itself.
func TestRWLockAlreadyHeld(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 10*time.Second)
	l := recipes.NewRWLock(session(t, nodes[0]), "/locks/rwh", nil)
	r, err := l.RLock(ctx)
	require.NoError(t, err)
	_, err = l.Lock(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	_, err = l.RLock(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	requireReleased(t, r.Release(ctx))
	w, err := l.Lock(ctx)
	require.NoError(t, err)
	requireReleased(t, w.Release(ctx))
}

// TestRWLockCancelLeavesNothing: a reader abandoned while it waits for a
// writer leaves no node and no watch.
func TestRWLockCancelLeavesNothing(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	w, err := recipes.NewRWLock(session(t, nodes[0]), "/locks/rwc", nil).Lock(ctx)
	require.NoError(t, err)
	s := session(t, nodes[1])
	before := watches(nodes)
	requireCancelLeavesNothing(t, nodes, before, "/locks/rwc", 1, func(ctx context.Context) error {
		_, err := recipes.NewRWLock(s, "/locks/rwc", nil).RLock(ctx)
		return err
	})
	requireReleased(t, w.Release(ctx))
}

// requireCancelLeavesNothing runs acquire until it waits (dir lists held+1
// contenders and some node has a new watch), cancels it, and checks that
// it returned the cancellation and left no contender and no watch.
func requireCancelLeavesNothing(t *testing.T, nodes []*coord.Node, before []int, dir string, held int, acquire func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- acquire(ctx) }()
	require.Eventually(t, func() bool {
		names, _, err := nodes[0].Children(context.Background(), dir)
		if err != nil || len(names) != held+1 {
			return false
		}
		for i, w := range watches(nodes) {
			if w > before[i] {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "the contender never waited")
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Eventually(t, func() bool {
		names, _, err := nodes[0].Children(context.Background(), dir)
		return err == nil && len(names) == held
	}, 5*time.Second, time.Millisecond, "the cancelled contender's node is left")
	requireWatchesBack(t, nodes, before)
}
