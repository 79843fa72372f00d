package coord

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/internal/gossip"
	"github.com/coord-dev/coord/zab/tcp"
)

// blockFrom keeps the replication listener at addr refusing new
// connections from 127.0.0.1: it holds the transport's per-host bound of
// connections still in the handshake (8, each held HandshakeTimeout)
// with idle connections, and replaces each one the transport closes, until
// the returned function (also run at cleanup) is called.
func blockFrom(t *testing.T, addr string) (unblock func()) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				go func() { <-stop; _ = c.Close() }()
				var b [1]byte
				_, _ = c.Read(b[:]) // returns when the transport gives up on it
				_ = c.Close()
			}
		}()
	}
	var once sync.Once
	unblock = func() { once.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(unblock)
	return unblock
}

// replAddr returns the replication address of id as node sees it.
func (c *testCluster) replAddr(node, id uint64) string {
	for _, m := range c.nodes[node].Members() {
		if m.ID == id {
			return m.ReplicationAddr
		}
	}
	c.t.Fatalf("node %d does not know node %d", node, id)
	return ""
}

// A second live node started with the id of a running one is refused: its
// Join fails with ErrDuplicateID before its replication starts (so it never
// votes or acknowledges, never counts in a quorum), and the first one and
// the cluster go on. The refusal does not depend on any peer having heard
// from the first one recently: "silent peer" reaches only a follower that
// the first one (a follower too) has not talked to for longer than
// HandshakeTimeout; before the gossip check it joined that follower's
// transport, could not reach the leader, and Join ended in ErrNoQuorum.
func TestJoinRefusesDuplicateID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader bool // duplicate the leader's id (else a follower's)
		silent bool // the duplicate reaches only the other follower
	}{
		{name: "leader", leader: true},
		{name: "follower"},
		{name: "silent peer", silent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 3, nil)
			l := c.leader()
			ctx := ctxT(t)
			id, other := l, l
			if !tc.leader {
				id, other = l%3+1, (l+1)%3+1
			}
			for i := range 50 { // running for a while
				_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/before-%d", i), nil, Persistent)
				require.NoError(t, err)
			}
			cfg := c.cfgs[id]
			cfg.GossipBindAddr = freeAddr(t)
			if tc.silent {
				cfg.Seeds = []string{c.cfgs[other].GossipBindAddr}
				blockFrom(t, c.replAddr(other, l))
				// The scenario: the other follower last heard from the first
				// node when it followed, longer than HandshakeTimeout ago.
				time.Sleep(2500 * time.Millisecond)
			}
			start := time.Now()
			jctx, jcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer jcancel()
			dup, err := JoinContext(jctx, cfg)
			if err == nil {
				dup.Shutdown()
			}
			require.ErrorIs(t, err, ErrDuplicateID, "the second node with id %d joined", id)
			require.ErrorContains(t, err, "a live process answers as this id", "refused before replication started")
			t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)

			require.NoError(t, c.nodes[id].Err())
			_, err = c.nodes[l].Create(ctx, "/after", nil, Persistent)
			require.NoError(t, err)
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, c.nodes[id].Sync(sctx))
			_, _, err = c.nodes[id].Get(ctx, "/after")
			require.NoError(t, err, "the first node with id %d still serves", id)
		})
	}
}

// A node that restarts under its id with its DataDir on new gossip and
// replication ports, while its peers' gossip still holds the old address
// as alive, is not refused: nothing answers at the old address.
func TestJoinAfterRestartOnNewPorts(t *testing.T) {
	c := startCluster(t, 3, withDataDirs(t))
	ctx := ctxT(t)
	l := c.leader()
	id := l%3 + 1
	_, err := c.nodes[l].Create(ctx, "/before", nil, Persistent)
	require.NoError(t, err)
	c.nodes[id].Shutdown() // no gossip leave: peers still hold it alive
	cfg := c.cfgs[id]
	cfg.GossipBindAddr = freeAddr(t)
	node, err := JoinContext(ctx, cfg)
	require.NoError(t, err)
	c.nodes[id] = node
	require.NoError(t, node.Sync(ctx))
	_, _, err = node.Get(ctx, "/before")
	require.NoError(t, err)
	_, err = node.Create(ctx, "/after", nil, Persistent)
	require.NoError(t, err)
}

// The process that started first with an id wins even if it has talked to
// no one yet: node 3's process D joined gossip but cannot reach any peer's
// replication listener (blocked) when process O starts with id 3 too. O,
// the later start, is refused at Join before its replication starts; once
// the block lifts, D joins as node 3. Before the gossip check O, unable
// to reach anyone either, waited out its Join with ErrNoQuorum.
func TestJoinRefusesDuplicateOfSilentNode(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	_, err := c.nodes[c.leader()].Create(ctx, "/before", nil, Persistent)
	require.NoError(t, err)
	addrs := []string{c.replAddr(3, 1), c.replAddr(3, 2)}
	c.nodes[3].Shutdown() // the previous process of node 3: gone
	delete(c.nodes, 3)
	var unblock []func()
	for _, a := range addrs {
		unblock = append(unblock, blockFrom(t, a))
	}

	cfgD := c.cfgs[3]
	cfgD.GossipBindAddr = freeAddr(t)
	type res struct {
		n   *Node
		err error
	}
	dres := make(chan res, 1)
	go func() {
		jctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := JoinContext(jctx, cfgD)
		dres <- res{n, err}
	}()
	require.Eventually(t, func() bool { // D is node 3 in the peers' gossip
		for _, m := range c.nodes[1].Members() {
			if m.ID == 3 && m.GossipAddr == cfgD.GossipBindAddr && m.State == MemberAlive {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond)

	cfgO := c.cfgs[3]
	cfgO.GossipBindAddr = freeAddr(t)
	jctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := JoinContext(jctx, cfgO)
	if err == nil {
		o.Shutdown()
	}
	require.ErrorIs(t, err, ErrDuplicateID, "the later process with id 3 joined")
	require.ErrorContains(t, err, "a live process answers as this id", "refused before replication started")
	t.Logf("refused: %v", err)

	for _, u := range unblock {
		u()
	}
	r := <-dres
	require.NoError(t, r.err, "the first process with id 3")
	c.nodes[3] = r.n
	ctx = ctxT(t)
	require.NoError(t, r.n.Sync(ctx))
	_, _, err = r.n.Get(ctx, "/before")
	require.NoError(t, err)
}

// Two processes with node 3's id start at the same moment (the previous
// process is gone): whichever way gossip introduces them (at Join, or
// after both joined, when the later start fail-stops with ErrDuplicateID),
// at most one of them is left running as node 3 and the cluster goes on.
func TestDuplicateIDsStartedTogether(t *testing.T) {
	c := startCluster(t, 3, nil)
	c.nodes[3].Shutdown()
	delete(c.nodes, 3)
	type res struct {
		n   *Node
		err error
	}
	out := make([]res, 2)
	var wg sync.WaitGroup
	for i := range out {
		cfg := c.cfgs[3]
		cfg.GossipBindAddr = freeAddr(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			jctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n, err := JoinContext(jctx, cfg)
			out[i] = res{n, err}
		}()
	}
	wg.Wait()
	var live []*Node
	for i, r := range out {
		if r.err != nil {
			require.ErrorIs(t, r.err, ErrDuplicateID, "process %d", i)
			t.Logf("process %d refused at Join: %v", i, r.err)
			continue
		}
		t.Cleanup(r.n.Shutdown)
		live = append(live, r.n)
	}
	if len(live) == 2 {
		require.Eventually(t, func() bool {
			return live[0].Err() != nil || live[1].Err() != nil
		}, 20*time.Second, 10*time.Millisecond, "two joined processes with one id both kept running")
		for i, n := range live {
			if err := n.Err(); err != nil {
				require.ErrorIs(t, err, ErrDuplicateID)
				t.Logf("joined process %d fail-stopped: %v", i, err)
			}
		}
	}
	running := 0
	for _, n := range live {
		if n.Err() == nil {
			running++
		}
	}
	require.LessOrEqual(t, running, 1, "processes left running as node 3")
	ctx := ctxT(t)
	_, err := c.nodes[c.leader()].Create(ctx, "/after", nil, Persistent)
	require.NoError(t, err)
}

// A claim of this node's id that gossip learns after Join, by a live
// process that passed its own Join check and started first, fail-stops
// this node (watchDuplicates): Err wraps ErrDuplicateID, Done closes and
// EventNodeFailed is emitted. The claimant is a replication transport with
// node 3's id made before node 3's process (so it started first) and marked
// joined, announced by a gossip member with node 3's id at that
// transport's address only once node 3 has joined, as two processes that
// both passed the Join check meet later through gossip (in
// TestDuplicateIDsStartedTogether the tcp acceptor usually refuses one of
// them first, so that path is not reached).
func TestDuplicateIDAfterJoinFailStops(t *testing.T) {
	c := startCluster(t, 3, nil)
	c.nodes[3].Shutdown()
	delete(c.nodes, 3)

	// The other process with id 3: its transport starts now.
	tcfg := tcp.DefaultConfig(3)
	tcfg.Cluster = c.cfgs[3].Cluster
	other, err := tcp.New(tcfg)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	other.SetJoined()

	// This process starts later and passes its Join check: nothing claims
	// id 3 yet but its previous, dead, process.
	cfg := c.cfgs[3]
	cfg.GossipBindAddr = freeAddr(t)
	n, err := Join(cfg)
	require.NoError(t, err)
	t.Cleanup(n.Shutdown)
	events := n.Events()

	// The other process's gossip joins through node 3: node 3 hears its id
	// claimed at the other transport's address and probes it. (Peers that
	// know id 3 at node 3's address refuse the other claim as a conflict
	// and do not pass it on.)
	ocfg := c.cfgs[3]
	ocfg.GossipBindAddr = freeAddr(t)
	ocfg.Seeds = []string{cfg.GossipBindAddr} // straight to node 3
	gcfg := ocfg.withDefaults().gossipConfig(other.Addr().String())
	g, err := gossip.New(gcfg)
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	require.NoError(t, g.Join(ctxT(t)))

	select {
	case <-n.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("node 3 still runs beside a live process with its id that started first")
	}
	require.ErrorIs(t, n.Err(), ErrDuplicateID)
	require.ErrorIs(t, n.Err(), ErrFailed)
	t.Logf("fail-stopped: %v", n.Err())
	for {
		select {
		case ev := <-events:
			if ev.Type != EventNodeFailed {
				continue
			}
			require.ErrorIs(t, ev.Err, ErrDuplicateID)
		case <-time.After(10 * time.Second):
			t.Fatal("no EventNodeFailed")
		}
		break
	}
	_, err = n.Create(ctxT(t), "/from-3", nil, Persistent)
	require.ErrorIs(t, err, ErrDuplicateID, "a fail-stopped node serves nothing")
	// The cluster goes on without it.
	_, err = c.nodes[c.leader()].Create(ctxT(t), "/after", nil, Persistent)
	require.NoError(t, err)
}
