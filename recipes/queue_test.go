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

// produceConsume has n workers over nodes, half producers putting k items
// each, half consumers taking until every item is taken; it returns how
// many times each item was taken.
func produceConsume(t *testing.T, nodes []*coord.Node, dir string, n, k int, afterFirst func()) map[string]int {
	ctx := testCtx(t, 60*time.Second)
	total := int64(n / 2 * k)
	var taken atomic.Int64
	allTaken, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	got := map[string]int{}
	var once sync.Once
	workers(t, nodes, n, func(i int, s *coord.Session) {
		q := recipes.NewQueue(s, dir)
		if i%2 == 0 {
			for j := range k {
				if err := q.PutPriority(ctx, fmt.Appendf(nil, "%d/%d", i, j), int32(j%3)); err != nil {
					t.Errorf("producer %d: %v", i, err)
					return
				}
				if afterFirst != nil {
					once.Do(afterFirst)
				}
			}
			return
		}
		for {
			data, err := q.Take(allTaken)
			if err != nil {
				if allTaken.Err() == nil {
					t.Errorf("consumer %d: %v", i, err)
				}
				return
			}
			mu.Lock()
			got[string(data)]++
			mu.Unlock()
			if taken.Add(1) == total {
				stop()
			}
		}
	})
	return got
}

func requireEachOnce(t *testing.T, got map[string]int, producers, k int) {
	t.Helper()
	for i := 0; i < 2*producers; i += 2 {
		for j := range k {
			require.Equal(t, 1, got[fmt.Sprintf("%d/%d", i, j)], "item %d/%d", i, j)
		}
	}
	require.Len(t, got, producers*k)
}

// TestQueueEachItemOnce: 8 producers and 8 consumers over 3 nodes; every
// item is taken exactly once. Then again while the leader is crash-stopped,
// then a cancelled Take leaves nothing behind.
func TestQueueEachItemOnce(t *testing.T) {
	nodes := cluster(t, 3)
	requireEachOnce(t, produceConsume(t, nodes, "/queues/work", 16, 12, nil), 8, 12)

	old, alive := splitLeader(t, nodes)
	requireEachOnce(t, produceConsume(t, alive, "/queues/work", 16, 6, old.Shutdown), 8, 6)

	ctx := testCtx(t, 10*time.Second)
	s := workSession(t, alive[0])
	before := watches(alive)
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := recipes.NewQueue(s, "/queues/empty").Take(wctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, ok, err := s.Exists(ctx, "/queues/empty")
	require.NoError(t, err)
	require.False(t, ok)
	requireWatchesBack(t, alive, before)
}

func TestQueuePriorityOrder(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	q := recipes.NewQueue(workSession(t, nodes[0]), "/pq")
	_, ok, err := q.TryTake(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	for _, it := range []struct {
		data string
		prio int32
	}{{"b1", 5}, {"a1", -3}, {"c1", 1 << 30}, {"b2", 5}, {"a2", -3}, {"z", -1 << 31}, {"y", 1<<31 - 1}} {
		require.NoError(t, q.PutPriority(ctx, []byte(it.data), it.prio))
	}
	n, err := q.Len(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	var order []string
	for range 7 {
		data, err := q.Take(ctx)
		require.NoError(t, err)
		order = append(order, string(data))
	}
	require.Equal(t, []string{"z", "a1", "a2", "b1", "b2", "c1", "y"}, order)

	// A waiting Take wakes for a later Put.
	got := make(chan string, 1)
	go func() {
		data, err := q.Take(ctx)
		if err == nil {
			got <- string(data)
		}
	}()
	require.NoError(t, q.Put(ctx, []byte("late")))
	require.Equal(t, "late", <-got)
}
