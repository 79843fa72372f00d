package recipes_test

import (
	"bufio"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/faultproxy"
	"github.com/coord-dev/coord/internal/loopback"
	"github.com/coord-dev/coord/zab/tcp"
)

// The shared in-process cluster of the recipe tests: n voters on loopback.

// testCluster is n voters; nodes[i] has id i+1. Peers reach each node's
// replication port through a fault proxy, so a test can partition a node
// (gossip is not proxied: it is not the quorum).
type testCluster struct {
	t     *testing.T
	nodes []*coord.Node
	proxy *faultproxy.Proxy
}

// cluster joins n voters on loopback; they are closed when the test ends.
func cluster(t *testing.T, n int) []*coord.Node { return newCluster(t, n).nodes }

// freeAddrs returns n distinct loopback addresses free right now.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		addr, err := loopback.FreeAddr()
		require.NoError(t, err)
		if !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}

// newCluster joins n voters on loopback behind a fault proxy.
func newCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, nodes: make([]*coord.Node, n)}
	c.proxy = faultproxy.New(faultproxy.Config{Identify: func(r *bufio.Reader) (int, error) {
		id, err := tcp.PeekHello(r)
		return int(id), err
	}})
	t.Cleanup(func() { c.proxy.Close() })
	addrs := freeAddrs(t, 3*n)
	gossip, bind, adv := addrs[:n], addrs[n:2*n], addrs[2*n:]
	voters := make([]uint64, n)
	for i := range n {
		voters[i] = uint64(i + 1)
		_, err := c.proxy.Listen(i+1, adv[i], bind[i])
		require.NoError(t, err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := coord.LocalConfig(uint64(i + 1))
		cfg.Cluster = "recipes"
		cfg.GossipBindAddr, cfg.Seeds, cfg.Voters = gossip[i], gossip, voters
		cfg.ReplicationBindAddr, cfg.ReplicationAdvertiseAddr = bind[i], adv[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c.nodes[i], errs[i] = coord.JoinContext(ctx, cfg)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range c.nodes {
			if n != nil {
				n.Close(ctx)
			}
		}
	})
	require.NoError(t, errors.Join(errs...))
	return c
}

// follower returns the index of a node that does not lead.
func (c *testCluster) follower() int { return (leader(c.t, c.nodes) + 1) % len(c.nodes) }

// partition cuts node i's replication links to every other node: its
// sessions are Suspended once it loses its leader (or quorum).
func (c *testCluster) partition(i int) {
	for j := range c.nodes {
		if j != i {
			c.proxy.Cut(i+1, j+1)
		}
	}
}

// heal removes every fault.
func (c *testCluster) heal() { c.proxy.HealAll() }

// sessionTimeout is the timeout of the sessions session opens.
const sessionTimeout = 3 * time.Second

// session opens a session on n with sessionTimeout.
func session(t *testing.T, n *coord.Node) *coord.Session { return sessionWith(t, n, sessionTimeout) }

// sessionWith opens a session on n with the given timeout.
func sessionWith(t *testing.T, n *coord.Node, timeout time.Duration) *coord.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.Session(ctx, coord.SessionOptions{Timeout: timeout})
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
