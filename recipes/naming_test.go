package recipes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// names has n workers over nodes each take k ids and checks that each
// worker's ids increase; it returns every id handed out.
func names(t *testing.T, nodes []*coord.Node, path string, n, k int, afterFirst func()) []int64 {
	ctx := testCtx(t, 60*time.Second)
	var mu sync.Mutex
	var all []int64
	var once sync.Once
	workers(t, nodes, n, func(i int, s *coord.Session) {
		ids := recipes.NewNaming(s, path)
		last := int64(0)
		for range k {
			id, err := ids.Next(ctx)
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if id <= last {
				t.Errorf("worker %d: id %d after %d", i, id, last)
			}
			last = id
			mu.Lock()
			all = append(all, id)
			mu.Unlock()
			if afterFirst != nil {
				once.Do(afterFirst)
			}
		}
	})
	return all
}

// TestNamingUniqueIncreasing: 16 workers over 3 nodes take ids; every id is
// unique and each worker's increase; then again across a leader crash.
func TestNamingUniqueIncreasing(t *testing.T) {
	nodes := cluster(t, 3)
	all := names(t, nodes, "/ids/job", 16, 10, nil)
	require.Len(t, all, 160)
	seen := map[int64]bool{}
	for _, id := range all {
		require.False(t, seen[id], "id %d handed out twice", id)
		seen[id] = true
	}
	for id := int64(1); id <= 160; id++ {
		require.True(t, seen[id], "dense: id %d missing", id)
	}

	old, alive := splitLeader(t, nodes)
	more := names(t, alive, "/ids/job", 16, 5, old.Shutdown)
	require.Len(t, more, 80)
	for _, id := range more {
		require.False(t, seen[id], "id %d handed out twice", id)
		require.Greater(t, id, int64(160))
		seen[id] = true
	}

	ctx := testCtx(t, 10*time.Second)
	before := watches(alive)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := recipes.NewNaming(workSession(t, alive[0]), "/ids/other").Next(cctx)
	require.ErrorIs(t, err, context.Canceled)
	_, ok, err := alive[0].Exists(ctx, "/ids/other")
	require.NoError(t, err)
	require.False(t, ok)
	requireWatchesBack(t, alive, before)
}
