package recipes_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/loopback"
)

// The shared in-process cluster of the recipe tests: n voters on loopback.

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	require.NoError(t, err)
	return addr
}

// cluster joins n voters on loopback; they are closed when the test ends.
func cluster(t *testing.T, n int) []*coord.Node {
	t.Helper()
	var seeds []string
	var voters []uint64
	for i := 1; i <= n; i++ {
		seeds = append(seeds, freeAddr(t))
		voters = append(voters, uint64(i))
	}
	nodes := make([]*coord.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := coord.LocalConfig(uint64(i + 1))
		cfg.Cluster = "recipes"
		cfg.GossipBindAddr, cfg.Seeds, cfg.Voters = seeds[i], seeds, voters
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			nodes[i], errs[i] = coord.JoinContext(ctx, cfg)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Close(context.Background())
			}
		}
	})
	require.NoError(t, errors.Join(errs...))
	return nodes
}

// session opens a session on n with a 3 s timeout.
func session(t *testing.T, n *coord.Node) *coord.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.Session(ctx, coord.SessionOptions{Timeout: 3 * time.Second})
	require.NoError(t, err)
	return s
}

// leader returns the index in nodes of the current leader, waiting for one.
func leader(t *testing.T, nodes []*coord.Node) int {
	t.Helper()
	idx := -1
	require.Eventually(t, func() bool {
		for i, n := range nodes {
			if n.Stats().Role == "LEADING" {
				idx = i
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no leader")
	return idx
}

// watches returns every node's Stats().Watches.
func watches(nodes []*coord.Node) []int {
	out := make([]int, len(nodes))
	for i, n := range nodes {
		out[i] = n.Stats().Watches
	}
	return out
}

// requireWatchesBack waits until every node's watch count is back to
// before: a cancelled recipe call has removed its watches. The count goes
// down asynchronously (a persistent watch's pump removes it), so this polls.
func requireWatchesBack(t *testing.T, nodes []*coord.Node, before []int) {
	t.Helper()
	require.Eventually(t, func() bool {
		now := watches(nodes)
		for i := range now {
			if now[i] != before[i] {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "watches left behind: before %v", before)
}
