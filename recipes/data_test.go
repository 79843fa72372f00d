package recipes_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// Helpers of the data recipes' tests (config, cache, membership, barrier,
// queue, counter, naming).

// workTimeout is the session timeout of the data recipes' test sessions.
// These tests check the recipes, not session liveness, and a machine loaded
// far past its cores (load 40 on 2 cores was seen) stalls the processes for
// seconds, after which the leader expires every 3 s session at once.
const workTimeout = 15 * time.Second

// workSession opens a session on n with workTimeout.
func workSession(t *testing.T, n *coord.Node) *coord.Session { return sessionWith(t, n, workTimeout) }

// testCtx returns a context bounded by d, cancelled when the test ends.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// workers runs fn(i, s) for n goroutines, worker i on nodes[i%len(nodes)]
// with a session of its own, and waits for them all.
func workers(t *testing.T, nodes []*coord.Node, n int, fn func(i int, s *coord.Session)) {
	t.Helper()
	sessions := make([]*coord.Session, n)
	for i := range sessions {
		sessions[i] = workSession(t, nodes[i%len(nodes)])
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, sessions[i])
		}()
	}
	wg.Wait()
}

// splitLeader returns the leader and the other nodes: workers of a
// fail-over test run on the others while the leader is crash-stopped.
func splitLeader(t *testing.T, nodes []*coord.Node) (*coord.Node, []*coord.Node) {
	t.Helper()
	l := leader(t, nodes)
	var alive []*coord.Node
	for i, n := range nodes {
		if i != l {
			alive = append(alive, n)
		}
	}
	return nodes[l], alive
}

// TestDataRecipesLeaveNoGoroutine: once closed (or left), the recipes that
// run in the background (Cache, Config, Group, Member) leave no goroutine
// and no watch behind.
func TestDataRecipesLeaveNoGoroutine(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	ctx := testCtx(t, 20*time.Second)
	s := workSession(t, n)
	_, err := n.Create(ctx, "/bg", nil, coord.Persistent)
	require.NoError(t, err)
	before := watches(nodes)
	require.Empty(t, recipeGoroutines())

	cache := recipes.NewCache(recipes.NodeSessions(n), "/bg", recipes.CacheOptions{})
	require.NoError(t, cache.Start(ctx))
	cfg, err := recipes.NewConfig(ctx, recipes.FixedSession(s), "/bg/cfg", recipes.ConfigOptions[int]{})
	require.NoError(t, err)
	_, stop := cfg.Subscribe()
	defer stop()
	_, _, err = cfg.Update(ctx, func(old int) (int, error) { return old + 1, nil })
	require.NoError(t, err)
	group := recipes.NewGroup(recipes.FixedSession(s), "/bg/group")
	require.NoError(t, group.Start(ctx))
	member, err := recipes.JoinGroup(ctx, recipes.NodeSessions(n), "/bg/group", "m", nil)
	require.NoError(t, err)
	require.NotEmpty(t, recipeGoroutines())

	require.NoError(t, member.Leave(ctx))
	require.NoError(t, group.Close())
	require.NoError(t, cfg.Close())
	require.NoError(t, cache.Close())
	requireWatchesBack(t, nodes, before)
	require.Eventually(t, func() bool { return len(recipeGoroutines()) == 0 }, 5*time.Second, time.Millisecond,
		"goroutines of package recipes left behind")
}

// recipeGoroutines returns the stacks of the goroutines running code of
// package recipes (not its tests).
func recipeGoroutines() []string {
	buf := make([]byte, 1<<22)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "coord-dev/coord/recipes.") {
			out = append(out, g)
		}
	}
	return out
}
