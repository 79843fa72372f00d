package coord

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// joinObserver joins node id as an observer of cluster c.
func (c *testCluster) joinObserver(id uint64) *Node {
	c.t.Helper()
	cfg := LocalConfig(id)
	cfg.Cluster = "test"
	cfg.GossipBindAddr = freeAddr(c.t)
	cfg.Seeds = c.cfgs[1].Seeds
	cfg.Voters = c.cfgs[1].Voters
	cfg.Role = RoleObserver
	lenient(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := JoinContext(ctx, cfg)
	require.NoError(c.t, err)
	c.cfgs[id], c.nodes[id] = cfg, n
	return n
}

// lenient stretches LocalConfig's timers: with four voters a quorum needs
// two timely followers, which a loaded CI machine under -race may not give
// within 150ms.
func lenient(cfg *Config) {
	cfg.SyncLimit = 600 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
}

func (c *testCluster) requireVoters(want ...uint64) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for _, n := range c.nodes {
			if !slices.Equal(n.Voters(), want) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "voters %v not in force everywhere", want)
}

// A fourth node joins as an observer, serves reads, and is promoted; then
// the leader removes itself and another voter takes over; every write
// stays; and changes that would leave no live quorum are refused.
func TestReconfigFourthNodeJoinsAndIsPromoted(t *testing.T) {
	c := startCluster(t, 3, lenient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.nodes[1].Create(ctx, "/before", []byte("x"), Persistent)
	require.NoError(t, err)

	obs := c.joinObserver(4)
	require.Equal(t, "OBSERVING", obs.Stats().Role)
	require.NoError(t, obs.Sync(ctx))
	data, _, err := obs.Get(ctx, "/before")
	require.NoError(t, err)
	require.Equal(t, "x", string(data))
	require.Equal(t, []uint64{1, 2, 3}, obs.Voters())
	roles := map[uint64]Role{}
	for _, m := range c.nodes[1].Members() {
		roles[m.ID] = m.Role
	}
	require.Equal(t, map[uint64]Role{1: RoleVoter, 2: RoleVoter, 3: RoleVoter, 4: RoleObserver}, roles)

	// Promote it, asked at a node that is not the leader.
	l := c.leader()
	at := uint64(1)
	if at == l {
		at = 2
	}
	require.ErrorIs(t, c.nodes[at].AddVoter(ctx, 9), ErrNotSynced, "a node that is not there")
	require.NoError(t, c.nodes[at].AddVoter(ctx, 4))
	c.requireVoters(1, 2, 3, 4)
	require.Eventually(t, func() bool { return obs.Stats().Role == "FOLLOWING" }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.nodes[at].AddVoter(ctx, 4), "adding a voter again is a no-op")
	_, err = obs.Create(ctx, "/promoted", nil, Persistent)
	require.NoError(t, err)

	// The leader removes itself: it steps down once the change commits.
	require.NoError(t, c.nodes[l].RemoveVoter(ctx, l))
	want := slices.DeleteFunc([]uint64{1, 2, 3, 4}, func(id uint64) bool { return id == l })
	c.requireVoters(want...)
	require.Eventually(t, func() bool {
		nl := c.leader()
		return nl != l && c.nodes[l].Stats().Role == "OBSERVING"
	}, 10*time.Second, 10*time.Millisecond)
	for i := range 5 {
		_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/after-%d", i), nil, Persistent)
		require.NoError(t, err, "the removed node still writes through the new leader")
	}

	// Close one remaining voter: removing another live one would leave one
	// live voter of two: refused. Removing the closed one is fine.
	down := want[0]
	if down == c.leader() {
		down = want[1]
	}
	require.NoError(t, c.nodes[down].Close(ctx))
	delete(c.nodes, down)
	var live uint64
	for _, id := range want {
		if id != down && id != c.leader() {
			live = id
		}
	}
	require.NotZero(t, live)
	// Once the leader has not heard from it for the sync limit, it is dead:
	// removing the other live voter is refused, removing it is fine.
	var leader *Node
	var last Stats
	ok := assert.Eventually(t, func() bool {
		leader = c.nodes[c.leader()]
		last = leader.Stats()
		f, ok := last.Followers[down]
		return last.Role == "LEADING" && (!ok || f.Idle > c.cfgs[1].SyncLimit)
	}, 10*time.Second, 10*time.Millisecond)
	require.True(t, ok, "node %d not seen dead; leader's stats %+v", down, last)
	require.ErrorIs(t, leader.RemoveVoter(ctx, live), ErrReconfigUnsafe)
	require.NoError(t, leader.RemoveVoter(ctx, down))
	rest := slices.DeleteFunc(slices.Clone(want), func(id uint64) bool { return id == down })
	c.requireVoters(rest...)

	// Every write is everywhere.
	for _, n := range c.nodes {
		require.NoError(t, n.Sync(ctx))
		for _, p := range []string{"/before", "/promoted", "/after-4"} {
			_, _, err := n.Get(ctx, p)
			require.NoError(t, err, "%s on node %d", p, n.cfg.NodeID)
		}
	}
}

// Item 11 of issue 10: with voters 10, 20 and 30, a fresh node 5
// bootstrapped with BootstrapExpect 3 guesses the voters [5 10 20] from
// gossip. It used to report itself FOLLOWING with those voters while the
// leader counted it as an observer. It must act on the committed
// configuration: observe, report [10 20 30], and once two voters are gone
// follow no one.
func TestJoinLaterAdoptsCommittedVoters(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.NodeID *= 10
		cfg.Voters = []uint64{10, 20, 30}
	})
	cfg := LocalConfig(5)
	cfg.Cluster = "test"
	cfg.GossipBindAddr = freeAddr(t)
	cfg.Seeds = c.cfgs[1].Seeds
	cfg.BootstrapExpect = 3
	n5, err := JoinContext(ctxT(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { n5.Close(context.Background()) })
	require.Equal(t, []uint64{10, 20, 30}, n5.Voters())
	require.Equal(t, "OBSERVING", n5.Stats().Role)
	for _, m := range n5.Members() {
		if m.ID == 5 {
			require.Equal(t, RoleObserver, m.Role, "node 5 in its own membership view")
		}
	}

	// Voters 10 and 30 stop: 20 alone has no quorum, and 5 must not claim
	// to follow anyone who does not lead.
	c.nodes[1].Shutdown()
	c.nodes[3].Shutdown()
	delete(c.nodes, 1)
	delete(c.nodes, 3)
	require.Eventually(t, func() bool { return c.nodes[2].Stats().Role == "LOOKING" }, 10*time.Second, 10*time.Millisecond)
	require.Never(t, func() bool { return n5.Stats().Role == "FOLLOWING" }, 500*time.Millisecond, 10*time.Millisecond)
	require.Equal(t, []uint64{10, 20, 30}, n5.Voters())
}
