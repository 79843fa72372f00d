package coord

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/internal/loopback"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	require.NoError(t, err)
	return addr
}

type testCluster struct {
	t     *testing.T
	cfgs  map[uint64]Config
	nodes map[uint64]*Node
}

// withDataDirs is a startCluster tweak that gives every node a DataDir of
// its own; c.cfgs[id].DataDir names it.
func withDataDirs(t *testing.T) func(*Config) {
	return func(cfg *Config) { cfg.DataDir = t.TempDir() }
}

// startCluster joins n voters on loopback concurrently and waits for all.
func startCluster(t *testing.T, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: map[uint64]Config{}, nodes: map[uint64]*Node{}}
	var seeds []string
	var voters []uint64
	for i := 1; i <= n; i++ {
		seeds = append(seeds, freeAddr(t))
		voters = append(voters, uint64(i))
	}
	for i := 1; i <= n; i++ {
		cfg := LocalConfig(uint64(i))
		cfg.Cluster = "test"
		cfg.GossipBindAddr = seeds[i-1]
		cfg.Seeds = seeds
		cfg.Voters = voters
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs[uint64(i)] = cfg
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			node, err := JoinContext(ctx, c.cfgs[id])
			mu.Lock()
			defer mu.Unlock()
			errs[id] = err
			if err == nil {
				c.nodes[id] = node
			}
		}(uint64(i))
	}
	wg.Wait()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, node := range c.nodes {
			node.Close(ctx)
		}
	})
	for i := 1; i <= n; i++ {
		require.NoError(t, errs[i], "node %d", i)
	}
	return c
}

func (c *testCluster) leader() uint64 {
	var id uint64
	require.Eventually(c.t, func() bool {
		for nid, n := range c.nodes {
			if l, _ := n.Leader(); l == nid && n.Stats().Role == "LEADING" {
				id = nid
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	return id
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestJoinAndOperate(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	n1, n2, n3 := c.nodes[1], c.nodes[2], c.nodes[3]

	// A write on one node is readable on the others after Sync.
	p, err := n1.Create(ctx, "/app", []byte("v1"), Persistent)
	require.NoError(t, err)
	require.Equal(t, "/app", p)
	require.NoError(t, n2.Sync(ctx))
	data, st, err := n2.Get(ctx, "/app")
	require.NoError(t, err)
	require.Equal(t, "v1", string(data))
	require.Equal(t, int32(0), st.Version)

	// A watch on the third node sees a change made on the second.
	require.NoError(t, n3.Sync(ctx))
	_, _, ch, err := n3.GetW(ctx, "/app")
	require.NoError(t, err)
	_, err = n2.Set(ctx, "/app", []byte("v2"), 0)
	require.NoError(t, err)
	select {
	case ev := <-ch:
		require.Equal(t, EventNodeDataChanged, ev.Type)
		require.Equal(t, "/app", ev.Path)
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
	_, ok := <-ch
	require.False(t, ok, "one-shot channel closes")

	// Errors.
	_, err = n1.Set(ctx, "/app", nil, 0)
	require.ErrorIs(t, err, ErrBadVersion)
	_, err = n1.Create(ctx, "/app", nil, Persistent)
	require.ErrorIs(t, err, ErrNodeExists)
	_, err = n1.Create(ctx, "/no/parent", nil, Persistent)
	require.ErrorIs(t, err, ErrNoNode)
	_, err = n1.Create(ctx, "bad", nil, Persistent)
	require.ErrorIs(t, err, ErrInvalidPath)
	_, err = n1.Create(ctx, "/big", make([]byte, 2<<20), Persistent)
	require.ErrorIs(t, err, ErrDataTooLarge)
	_, err = n1.Create(ctx, "/app/x", nil, Persistent)
	require.NoError(t, err)
	require.ErrorIs(t, n1.Delete(ctx, "/app", AnyVersion), ErrNotEmpty)
	_, _, err = n1.Get(ctx, "/nope")
	require.ErrorIs(t, err, ErrNoNode)

	// Multi: all or nothing.
	res, err := n3.Multi(ctx, CreateOp("/m", nil, Persistent), CheckOp("/app", 99))
	require.ErrorIs(t, err, ErrBadVersion)
	require.Len(t, res, 2)
	_, ok, err = n3.Exists(ctx, "/m")
	require.NoError(t, err)
	require.False(t, ok)
	res, err = n3.Multi(ctx, CreateOp("/m", nil, Persistent), CreateOp("/m/s-", nil, PersistentSequential))
	require.NoError(t, err)
	require.Equal(t, "/m/s-0000000000", res[1].Path)

	// Sequential names and children.
	for i := 0; i < 3; i++ {
		_, err := n2.Create(ctx, "/m/s-", nil, PersistentSequential)
		require.NoError(t, err)
	}
	require.NoError(t, n1.Sync(ctx))
	names, _, err := n1.Children(ctx, "/m")
	require.NoError(t, err)
	require.Equal(t, []string{"s-0000000000", "s-0000000001", "s-0000000002", "s-0000000003"}, names)

	require.Len(t, n1.Members(), 3)
}

func TestEphemeralsGoWithTheirSession(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	n1, n2 := c.nodes[1], c.nodes[2]

	// Timeouts in these tests leave room for a loaded CI machine.
	s, err := n2.Session(ctx, SessionOptions{Timeout: 1500 * time.Millisecond})
	require.NoError(t, err)
	_, err = s.Create(ctx, "/e", nil, Ephemeral)
	require.NoError(t, err)
	require.NoError(t, n1.Sync(ctx))
	st, ok, err := n1.Exists(ctx, "/e")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, s.ID(), st.EphemeralOwner)

	// Heartbeats keep it alive well past its timeout.
	time.Sleep(3 * time.Second)
	require.NoError(t, n1.Sync(ctx))
	_, ok, _ = n1.Exists(ctx, "/e")
	require.True(t, ok, "a heartbeating session stays")

	require.NoError(t, s.Close(ctx))
	require.NoError(t, n1.Sync(ctx))
	_, ok, _ = n1.Exists(ctx, "/e")
	require.False(t, ok, "closing the session deletes its ephemerals")
	_, err = s.Create(ctx, "/e2", nil, Ephemeral)
	require.ErrorIs(t, err, ErrClosed)
}

func TestKilledNodeEphemeralsExpire(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	leader := c.leader()
	var victim, other uint64
	for id := range c.nodes {
		if id != leader && victim == 0 {
			victim = id
		} else if id != leader {
			other = id
		}
	}
	s, err := c.nodes[victim].Session(ctx, SessionOptions{Timeout: time.Second})
	require.NoError(t, err)
	_, err = s.Create(ctx, "/victim", nil, Ephemeral)
	require.NoError(t, err)

	// Kill: no Close, no session close; heartbeats just stop.
	killed := c.nodes[victim]
	killed.Shutdown()
	delete(c.nodes, victim)
	killed.Shutdown() // idempotent
	require.NoError(t, killed.Close(ctx), "Close after Shutdown returns at once")
	_, err = s.Create(ctx, "/after", nil, Ephemeral)
	require.ErrorIs(t, err, ErrClosed)
	start := time.Now()
	require.Eventually(t, func() bool {
		_, ok, err := c.nodes[other].Exists(ctx, "/victim")
		return err == nil && !ok
	}, 5*time.Second, 10*time.Millisecond)
	t.Logf("ephemeral of the killed node gone after %v (timeout 1s)", time.Since(start))
}

func TestLeaderKilledWritesResume(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	leader := c.leader()
	var acked []string
	var follower uint64
	for id := range c.nodes {
		if id != leader {
			follower = id
		}
	}
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("/k%d", i)
		_, err := c.nodes[follower].Create(ctx, p, nil, Persistent)
		require.NoError(t, err)
		acked = append(acked, p)
	}
	c.nodes[leader].Shutdown()
	delete(c.nodes, leader)
	start := time.Now()
	for {
		_, err := c.nodes[follower].Create(ctx, "/after", nil, Persistent)
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "writes never resumed: %v", err)
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("writes resumed %v after the leader was killed", time.Since(start))
	for id, n := range c.nodes {
		require.NoError(t, n.Sync(ctx))
		for _, p := range acked {
			_, ok, err := n.Exists(ctx, p)
			require.NoError(t, err)
			require.True(t, ok, "node %d lost acknowledged %s", id, p)
		}
	}
}

// TestNoOrphansAcrossFailover: sequential creates in flight while the leader
// dies are retried under their request ids, so every created node is one a
// writer was told about: no orphans, no duplicates.
func TestNoOrphansAcrossFailover(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	leader := c.leader()
	var followers []*Node
	for id, n := range c.nodes {
		if id != leader {
			followers = append(followers, n)
		}
	}
	_, err := followers[0].Create(ctx, "/q", nil, Persistent)
	require.NoError(t, err)

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		n := followers[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := n.Create(ctx, "/q/item-", nil, PersistentSequential)
				if err != nil {
					t.Errorf("create: %v", err) // retried until ctx ends: should not fail
					return
				}
				mu.Lock()
				require.False(t, acked[p], "%s acknowledged twice", p)
				acked[p] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	c.nodes[leader].Shutdown()
	delete(c.nodes, leader)
	time.Sleep(600 * time.Millisecond)
	close(stop)
	wg.Wait()

	require.NoError(t, followers[0].Sync(ctx))
	names, _, err := followers[0].Children(ctx, "/q")
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, len(acked), len(names), "every created node was acknowledged exactly once")
	for _, name := range names {
		require.True(t, acked["/q/"+name], "orphan %s", name)
	}
	t.Logf("%d sequential creates across a leader kill, no orphans", len(acked))
}

// TestSessionSurvivesFailover: a session on a follower outlives the
// leader's crash: a fail-over shorter than the session timeout expires
// nothing, and the session is Connected under the new leader for longer
// than its timeout with its ephemeral in place. Whether it went Suspended in
// between depends on whether a maintenance tick saw the node without a
// leader (a fast fail-over can fall between two ticks, which is safe: the
// new leader gives every session a full timeout); if it did, it must be
// Reconnected.
func TestSessionSurvivesFailover(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	leader := c.leader()
	var follower *Node
	for id, n := range c.nodes {
		if id != leader {
			follower = n
		}
	}
	const timeout = 4 * time.Second
	s, err := follower.Session(ctx, SessionOptions{Timeout: timeout})
	require.NoError(t, err)
	require.Equal(t, SessionConnected, (<-s.Events()).Type)
	_, err = s.Create(ctx, "/owned", nil, Ephemeral)
	require.NoError(t, err)

	c.nodes[leader].Shutdown()
	delete(c.nodes, leader)
	// A write through the session under the new leader.
	_, err = s.Create(ctx, "/after", nil, Ephemeral)
	require.NoError(t, err)
	newLeader, _ := follower.Leader()
	require.NotEqual(t, leader, newLeader)

	var seen []SessionEventType
	over := time.After(timeout + time.Second) // past any expiry the old reign could have decided
	for waiting := true; waiting; {
		select {
		case ev := <-s.Events():
			require.NotEqual(t, SessionLost, ev.Type, "lost across a fail-over")
			seen = append(seen, ev.Type)
		case <-over:
			waiting = false
		}
	}
	if slices.Contains(seen, SessionSuspended) {
		require.Equal(t, SessionReconnected, seen[len(seen)-1], "events %v", seen)
	}
	require.Equal(t, SessionStateConnected, s.State(), "events %v", seen)
	require.NoError(t, follower.Sync(ctx))
	for _, p := range []string{"/owned", "/after"} {
		_, ok, err := follower.Exists(ctx, p)
		require.NoError(t, err)
		require.True(t, ok, p)
	}
	t.Logf("session events across the fail-over: %v", seen)
}

// TestDefaultSessionRenewedAfterLoss: when the quorum is gone for longer than
// the default session's timeout, the session is Lost; once a leader is back,
// the Node's methods work again on a new default session.
func TestDefaultSessionRenewedAfterLoss(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.DataDir = t.TempDir()
		cfg.DefaultSessionTimeout = 500 * time.Millisecond
	})
	ctx := ctxT(t)
	survivor := c.nodes[1]
	old, err := survivor.DefaultSession(ctx)
	require.NoError(t, err)
	for _, id := range []uint64{2, 3} {
		c.nodes[id].Shutdown()
		delete(c.nodes, id)
	}
	require.Eventually(t, func() bool { return old.usable() != nil }, 5*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, old.usable(), ErrSessionExpired, "a lost session says expired, not closed")

	for _, id := range []uint64{2, 3} {
		n, err := JoinContext(ctx, c.cfgs[id])
		require.NoError(t, err)
		c.nodes[id] = n
	}
	_, err = survivor.Create(ctx, "/after-loss", nil, Persistent)
	require.NoError(t, err)
	cur, err := survivor.DefaultSession(ctx)
	require.NoError(t, err)
	require.NotEqual(t, old.ID(), cur.ID())
}

// TestLeaderCloseHandsOff: a leader that closes tells the others, who elect
// a new leader at once instead of waiting out SyncLimit.
func TestLeaderCloseHandsOff(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.SyncLimit = 2 * time.Second })
	ctx := ctxT(t)
	leader := c.leader()
	var survivor *Node
	for id, n := range c.nodes {
		if id != leader {
			survivor = n
		}
	}
	require.NoError(t, c.nodes[leader].Close(ctx))
	delete(c.nodes, leader)
	start := time.Now()
	for {
		_, err := survivor.Create(ctx, "/after-handoff", nil, Persistent)
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "no new leader: %v", err)
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("writes resumed %v after the leader closed (SyncLimit 2s)", took)
	require.Less(t, took, 2*time.Second, "the followers did not wait out SyncLimit")
}
