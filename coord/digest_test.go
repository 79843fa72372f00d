package coord

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
)

// digestCluster starts 3 voters with data directories, logging warnings
// into logs, and returns it with its leader and the two followers.
func digestCluster(t *testing.T, logs *syncBuffer) (c *testCluster, l, f, g uint64) {
	dirs := withDataDirs(t)
	c = startCluster(t, 3, func(cfg *Config) {
		dirs(cfg)
		cfg.SnapshotEvery = 50 // the leader's log is compacted: the resync is a SNAP
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	l = c.leader()
	for id := range c.nodes {
		switch {
		case id == l:
		case f == 0:
			f = id
		default:
			g = id
		}
	}
	return c, l, min(f, g), max(f, g)
}

// corrupt changes n's tree behind the replication's back: a znode no txn
// created.
func corrupt(t *testing.T, n *Node, path string) {
	res := n.tree.Apply(tree.Txn{Zxid: 1 << 60, Op: tree.Op{Type: tree.OpCreate, Path: path}})
	require.NoError(t, res.Err)
}

// Replicas prove they agree (issue 10): one follower's tree is corrupted in
// memory; the leader's next digest check finds it, and that follower
// stops serving (reads, writes and sessions fail with ErrDiverged), says so
// loudly, throws its tree and log away and takes the leader's state again
// (a SNAP), then serves again with the leader's digest and every write
// acknowledged before. On the old code the follower fail-stopped instead
// (Err set, never serving again).
func TestDigestCheckResyncsDivergedReplica(t *testing.T) {
	var logs syncBuffer
	c, l, f, g := digestCluster(t, &logs)
	ctx := ctxT(t)
	round := 0
	write := func(k int) {
		round++
		for i := range k {
			_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/n-%d-%d", round, i), nil, Persistent)
			require.NoError(t, err)
		}
	}
	write(2 * digestEvery) // checks pass while the replicas agree
	for id, n := range c.nodes {
		require.NoError(t, n.Err(), "node %d", id)
		require.Zero(t, n.Stats().DigestMismatches, "node %d", id)
	}
	require.NotZero(t, c.nodes[f].Stats().DigestChecks)
	events := c.nodes[f].Events()
	for len(events) > 0 {
		<-events
	}
	fs, err := c.nodes[f].Session(ctx, SessionOptions{})
	require.NoError(t, err)

	// Hold the resync until the test has seen the replica refuse to serve.
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // a failed test must not hang in Close
	held := make(chan struct{}, 1)
	h := func() {
		select {
		case held <- struct{}{}:
		default:
		}
		<-hold
	}
	c.nodes[f].resyncHook.Store(&h)
	corrupt(t, c.nodes[f], "/corrupt")
	write(2 * digestEvery)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatalf("the diverged follower never started resynchronising: %+v", c.nodes[f].Stats())
	}
	st := c.nodes[f].Stats()
	require.True(t, st.Resyncing)
	require.False(t, st.Serving)
	require.NotZero(t, st.DigestMismatches)
	_, _, err = c.nodes[f].Get(ctx, "/corrupt")
	require.ErrorIs(t, err, ErrDiverged, "no read answers from the diverged tree")
	_, _, err = fs.Get(ctx, "/n-1-0")
	require.ErrorIs(t, err, ErrDiverged, "no session read either")
	_, err = c.nodes[f].Create(ctx, "/from-diverged", nil, Persistent)
	require.ErrorIs(t, err, ErrDiverged)
	require.NoError(t, c.nodes[f].Err(), "resynchronising, not failed")
	require.True(t, strings.Contains(logs.String(), "differs from the leader's"), "said loudly")
	var diverged bool
	for !diverged {
		select {
		case ev := <-events:
			diverged = ev.Type == EventDiverged && ev.Err != nil
		case <-time.After(10 * time.Second):
			t.Fatal("no EventDiverged")
		}
	}
	c.nodes[f].resyncHook.Store(nil)
	release.Do(func() { close(hold) })

	require.Eventually(t, func() bool {
		st := c.nodes[f].Stats()
		return !st.Resyncing && st.Resyncs == 1 && st.Serving
	}, 20*time.Second, 10*time.Millisecond, "never serving again: %+v", c.nodes[f].Stats())
	require.NoError(t, c.nodes[f].Err())
	mismatches := c.nodes[f].Stats().DigestMismatches
	write(2 * digestEvery) // more checks: they pass on the resynced tree
	require.NoError(t, c.nodes[f].Sync(ctx))
	_, _, err = c.nodes[f].Get(ctx, "/corrupt")
	require.ErrorIs(t, err, ErrNoNode, "the corruption is gone")
	for r := 1; r <= round; r++ {
		for i := range 2 * digestEvery {
			_, _, err := c.nodes[f].Get(ctx, fmt.Sprintf("/n-%d-%d", r, i))
			require.NoError(t, err, "acknowledged write /n-%d-%d lost", r, i)
		}
	}
	require.Eventually(t, func() bool {
		return c.nodes[f].tree.LastZxid() == c.nodes[l].tree.LastZxid() &&
			c.nodes[f].tree.Digest() == c.nodes[l].tree.Digest()
	}, 10*time.Second, 10*time.Millisecond, "the resynced tree differs from the leader's")
	st = c.nodes[f].Stats()
	require.Equal(t, mismatches, st.DigestMismatches, "no mismatch after the resync")
	_, err = c.nodes[f].Create(ctx, "/from-resynced", nil, Persistent)
	require.NoError(t, err, "it serves writes again")
	for _, id := range []uint64{l, g} {
		require.NoError(t, c.nodes[id].Err(), "node %d", id)
		require.Zero(t, c.nodes[id].Stats().DigestMismatches, "node %d", id)
	}
	require.True(t, strings.Contains(logs.String(), "resynchronised from the leader"))
}

// A replica whose tree differs again after every resync (here its
// digests are skewed: the state it takes from the leader keeps differing)
// gives up after maxResyncs in a row and fail-stops.
func TestDigestCheckFailStopsAfterRepeatedResyncs(t *testing.T) {
	var logs syncBuffer
	c, l, f, _ := digestCluster(t, &logs)
	ctx := ctxT(t)
	c.nodes[f].fsm.skew.Store(1)
	for i := 0; c.nodes[f].Err() == nil; i++ {
		require.Less(t, i, 40*digestEvery, "still not failed: %+v", c.nodes[f].Stats())
		_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/w-%d", i), nil, Persistent)
		require.NoError(t, err)
	}
	require.ErrorIs(t, c.nodes[f].Err(), ErrDiverged)
	require.ErrorIs(t, c.nodes[f].Err(), ErrFailed)
	require.EqualValues(t, maxResyncs, c.nodes[f].Stats().Resyncs)
	require.True(t, strings.Contains(logs.String(), "resynchronisations in a row"))
	_, err := c.nodes[l].Create(ctx, "/after", nil, Persistent)
	require.NoError(t, err, "the others still have a quorum")
}
