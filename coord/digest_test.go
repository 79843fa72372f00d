package coord

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// digestCluster starts 3 voters with data directories, logging warnings
// into logs, and returns it with its leader and the two followers.
func digestCluster(t *testing.T, logs *syncBuffer, opts ...func(*Config)) (c *testCluster, l, f, g uint64) {
	dirs := withDataDirs(t)
	c = startCluster(t, 3, func(cfg *Config) {
		dirs(cfg)
		cfg.SnapshotEvery = 50 // the leader's log is compacted: the resync is a SNAP
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		for _, o := range opts {
			o(cfg)
		}
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

// Two followers of three diverge at once (ZooKeeper's digest check finds
// the same when the leader's own tree is the corrupted one: every follower
// differs). Had both emptied themselves the leader would lose its quorum
// and no leader could ever be established to sync them. The leader grants
// one resync at a time: the first follower, once emptied, is held (slow
// to take the leader's state, as with a large tree) for longer than its
// grant and than the stagger the old code used, and all the while the second is refused,
// still acknowledging, so writes go on; both end resynced and the leader
// never lost its reign. Granting every request (the old behaviour, planted
// by turning grantResync's answer to true) empties both and fails here.
func TestDigestCheckGrantsOneVoterResyncAtATime(t *testing.T) {
	var logs syncBuffer
	// The test asserts the leader's reign outlives the resyncs: with
	// LocalConfig's 150 ms SyncLimit a starved scheduler alone (-race at
	// load 50) ended it now and then, which says nothing about the grants.
	c, l, f, g := digestCluster(t, &logs, func(cfg *Config) { cfg.SyncLimit = 500 * time.Millisecond })
	ctx := ctxT(t)
	leader := c.nodes[l]
	epoch := leader.zab.Status().SoftState.Epoch
	round := 0
	write := func(k int) {
		round++
		for i := range k {
			_, err := leader.Create(ctx, fmt.Sprintf("/n-%d-%d", round, i), nil, Persistent)
			require.NoError(t, err, "write %d-%d", round, i)
		}
	}
	write(digestEvery)

	syncLimit := c.cfgs[l].SyncLimit
	stop := make(chan struct{})
	var stopOnce sync.Once
	t.Cleanup(func() { stopOnce.Do(func() { close(stop) }) })
	held := make(chan uint64, 2)
	// The other's emptyings counted as the first's hold ends: checked
	// then, not after, since the leader grants the other once the first
	// is done.
	heldEnd := make(chan uint64, 1)
	var first sync.Once
	var overlap sync.Map // a resync started while the other follower was empty
	for _, pair := range [][2]uint64{{f, g}, {g, f}} {
		self := c.nodes[pair[0]]
		id := pair[0]
		otherNode := c.nodes[pair[1]]
		hold := func() {
			first.Do(func() {
				held <- id
				defer func() { heldEnd <- otherNode.fsm.resets.Load() }()
				// A slow restore: longer than a grant and than the old
				// stagger, and until the leader refused the other again
				// after that.
				end := time.Now().Add(6 * syncLimit)
				var denied uint64
				tk := time.NewTicker(syncLimit / 10)
				defer tk.Stop()
				for deadline := time.Now().Add(20 * syncLimit); time.Now().Before(deadline); {
					select {
					case <-stop:
						return
					case <-tk.C:
					}
					if time.Now().Before(end) {
						denied = leader.div.denied.Load()
					} else if leader.div.denied.Load() >= denied+3 {
						return
					}
				}
			})
		}
		self.fsm.restoreHook.Store(&hold)
		otherID := zab.PeerID(pair[1])
		check := func() {
			// The other must count in the leader's quorum: synced by it
			// (an emptied voter is not until then) and answering.
			p, ok := leader.zab.Status().Progress[otherID]
			if !ok || !p.Synced || p.IdleTicks >= uint64(c.cfgs[l].ticks(syncLimit)) {
				overlap.Store(id, fmt.Sprintf("%+v", p))
			}
		}
		self.resyncHook.Store(&check)
	}
	corrupt(t, c.nodes[f], "/corrupt-f")
	corrupt(t, c.nodes[g], "/corrupt-g")
	write(2 * digestEvery)
	var slow uint64
	select {
	case slow = <-held:
	case <-time.After(20 * time.Second):
		t.Fatalf("no follower emptied itself: %+v %+v", c.nodes[f].Stats(), c.nodes[g].Stats())
	}
	other := f + g - slow
	// The other applies the digest entry on its own schedule: on a loaded
	// machine it may see the difference after the first was emptied. The
	// first's restore is held until the leader refused the other, so this
	// happens while it is held.
	require.Eventually(t, func() bool { return errors.Is(c.nodes[other].diverged(), ErrDiverged) },
		20*time.Second, 5*time.Millisecond, "the other diverged too")
	write(20) // the leader keeps its quorum: the other is not emptied
	select {
	case resets := <-heldEnd:
		require.Zero(t, resets, "emptied while the first restores")
	case <-time.After(30 * time.Second):
		t.Fatal("the first restore was never released")
	}

	require.Eventually(t, func() bool {
		for _, id := range []uint64{f, g} {
			st := c.nodes[id].Stats()
			if st.Resyncing || st.Resyncs != 1 || !st.Serving {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "not both resynced: %+v %+v", c.nodes[f].Stats(), c.nodes[g].Stats())
	overlap.Range(func(k, v any) bool {
		t.Errorf("node %v emptied itself while the other did not count in the leader's quorum: %v", k, v)
		return true
	})
	write(2 * digestEvery)
	for _, id := range []uint64{f, g} {
		require.NoError(t, c.nodes[id].Sync(ctx))
		_, _, err := c.nodes[id].Get(ctx, fmt.Sprintf("/corrupt-%c", map[uint64]byte{f: 'f', g: 'g'}[id]))
		require.ErrorIs(t, err, ErrNoNode, "the corruption is gone")
		require.NoError(t, c.nodes[id].Err())
	}
	require.Eventually(t, func() bool {
		return c.nodes[f].tree.Digest() == leader.tree.Digest() && c.nodes[g].tree.Digest() == leader.tree.Digest()
	}, 10*time.Second, 10*time.Millisecond, "a resynced tree differs from the leader's")
	st := leader.zab.Status().SoftState
	require.Equal(t, epoch, st.Epoch, "the leader never lost its reign")
	require.True(t, st.Role == zab.RoleLeading && st.Serving)
	require.NotZero(t, leader.div.denied.Load(), "the second was refused while the first resynchronised")
	require.Zero(t, leader.Stats().DigestMismatches)
}

// In a set of two voters the follower's resync always costs the quorum
// (the leader alone is no majority of two, and an emptied voter counts for
// nothing until a leader synced it). So the leader never grants it: the
// diverged follower keeps refusing to serve with ErrDiverged, is never
// emptied, and keeps voting, so writes go on. Granting it would empty it
// and leave the pair without a leader for good.
func TestDigestCheckTwoVotersFollowerNotGranted(t *testing.T) {
	var logs syncBuffer
	dirs := withDataDirs(t)
	c := startCluster(t, 2, func(cfg *Config) {
		dirs(cfg)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	ctx := ctxT(t)
	l := c.leader()
	f := 3 - l
	leader, fol := c.nodes[l], c.nodes[f]
	epoch := leader.zab.Status().SoftState.Epoch
	corrupt(t, fol, "/corrupt")
	for i := range 2 * digestEvery {
		_, err := leader.Create(ctx, fmt.Sprintf("/a-%d", i), nil, Persistent)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return fol.Stats().Resyncing }, 10*time.Second, 10*time.Millisecond)
	asked, since := fol.Stats().ResyncAsks, time.Now()
	require.Eventually(t, func() bool { return leader.div.denied.Load() >= 10 }, 10*time.Second, 10*time.Millisecond,
		"the follower never asked, or was granted")
	_, _, err := fol.Get(ctx, "/corrupt")
	require.ErrorIs(t, err, ErrDiverged, "it still refuses to serve")
	for i := range 20 { // its votes still count: the pair commits
		_, err := leader.Create(ctx, fmt.Sprintf("/b-%d", i), nil, Persistent)
		require.NoError(t, err)
	}
	// It asks, but backs off (resyncAsks): a slow machine only asks less.
	asks, took := fol.Stats().ResyncAsks-asked, time.Since(since)
	t.Logf("%d resync asks in %v", asks, took)
	require.LessOrEqual(t, asks, uint64(took/(maxResyncAskTicks*fol.cfg.TickInterval))+5)
	require.Zero(t, fol.fsm.resets.Load(), "emptied without a grant")
	require.Zero(t, fol.Stats().Resyncs)
	require.NoError(t, fol.Err())
	require.NoError(t, leader.Err())
	st := leader.zab.Status().SoftState
	require.Equal(t, epoch, st.Epoch)
	require.True(t, st.Role == zab.RoleLeading && st.Serving)
}

// The leader's rule for granting a diverged replica's resync (grantResync).
// TestResyncAsksBackOff: a diverged replica that is never granted asks
// a tick or two apart at first, then once every maxResyncAskTicks ticks (or
// sync limit, if shorter), for as long as it is not granted; it asked every
// tick before (100 times a second with LocalConfig). After a grant it asks
// at once again.
func TestResyncAsksBackOff(t *testing.T) {
	for _, tc := range []struct {
		name            string
		tick, syncLimit time.Duration
		gap             time.Duration // the bound on the gap
	}{
		{"local", 10 * time.Millisecond, 150 * time.Millisecond, 80 * time.Millisecond},
		{"lan", 100 * time.Millisecond, 2 * time.Second, 800 * time.Millisecond},
		{"sync limit below 8 ticks", 10 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a resyncAsks
			start := time.Unix(1000, 0)
			count := func(from, to time.Duration) (n uint64) {
				for at := from; at < to; at += tc.tick { // the maintenance loop runs every tick
					if a.due(start.Add(at), tc.tick, tc.syncLimit) {
						n++
					}
				}
				return n
			}
			first := count(0, 4*tc.tick)
			settle := count(4*tc.tick, 2*time.Second)
			then := count(2*time.Second, 12*time.Second)
			t.Logf("%d asks in the first 4 ticks, %d in the next 10 s", first, then)
			require.GreaterOrEqual(t, first, uint64(2), "the first asks go a tick or two apart")
			bound := uint64(10 * time.Second / tc.gap)
			require.LessOrEqual(t, then, bound+1, "asks more than once every %v", tc.gap)
			require.GreaterOrEqual(t, then, bound-1, "it keeps asking")
			require.Equal(t, first+settle+then, a.sent.Load(), "every ask is counted")
			a.reset()
			require.True(t, a.due(start.Add(12*time.Second), tc.tick, tc.syncLimit), "after a grant it asks at once")
		})
	}
}

func TestGrantResyncRule(t *testing.T) {
	const idle = 15
	up := zab.Progress{Synced: true}
	leading := zab.SoftState{Role: zab.RoleLeading, Leader: 1, Epoch: 3, Serving: true}
	status := func(voters []zab.PeerID, prog map[zab.PeerID]zab.Progress) zab.Status {
		return zab.Status{ID: 1, SoftState: leading, Voters: voters, Progress: prog, Committed: 10, ConfigZxid: 5}
	}
	three := []zab.PeerID{1, 2, 3}
	five := []zab.PeerID{1, 2, 3, 4, 5}
	all3 := map[zab.PeerID]zab.Progress{2: up, 3: up, 9: {Observer: true, Synced: true}}
	voterGrant := map[zab.PeerID]*resyncGrant{2: {}}
	for _, tc := range []struct {
		name   string
		st     zab.Status
		grants map[zab.PeerID]*resyncGrant
		who    zab.PeerID
		ok     bool
	}{
		{"three voters, the others synced", status(three, all3), nil, 2, true},
		{"three voters, the other unsynced (resynchronising)", status(three,
			map[zab.PeerID]zab.Progress{2: up, 3: {}}), nil, 2, false},
		{"three voters, the other silent", status(three,
			map[zab.PeerID]zab.Progress{2: up, 3: {Synced: true, IdleTicks: idle}}), nil, 2, false},
		{"three voters, the other paused", status(three,
			map[zab.PeerID]zab.Progress{2: up, 3: {Synced: true, Paused: true}}), nil, 2, false},
		{"three voters, the other unknown", status(three, map[zab.PeerID]zab.Progress{2: up}), nil, 2, false},
		{"another voter holds a grant", status(three, all3), voterGrant, 3, false},
		{"its own grant is renewed", status(three, all3), voterGrant, 2, true},
		{"two voters: never", status([]zab.PeerID{1, 2}, map[zab.PeerID]zab.Progress{2: up}), nil, 2, false},
		{"five voters, one other down", status(five,
			map[zab.PeerID]zab.Progress{2: up, 3: up, 4: up}), nil, 2, true},
		{"five voters, two others down", status(five,
			map[zab.PeerID]zab.Progress{2: up, 3: up}), nil, 2, false},
		{"a voter change pending", func() zab.Status {
			st := status(three, all3)
			st.ConfigZxid = 11
			return st
		}(), nil, 2, false},
		{"an observer with the voters down", status(three, map[zab.PeerID]zab.Progress{9: {Observer: true}}), nil, 9, true},
		{"an observer while a voter resyncs", status(three, all3), voterGrant, 9, true},
		{"a third observer at once", status(three, all3),
			map[zab.PeerID]*resyncGrant{7: {observer: true}, 8: {observer: true}}, 9, false},
		{"the leader itself", status(three, all3), nil, 1, false},
		{"not leading", func() zab.Status {
			st := status(three, all3)
			st.SoftState = zab.SoftState{Role: zab.RoleFollowing, Leader: 2, Serving: true}
			return st
		}(), nil, 3, false},
		{"not yet established", func() zab.Status {
			st := status(three, all3)
			st.SoftState.Serving = false
			return st
		}(), nil, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := grantResync(tc.st, tc.grants, tc.who, idle)
			require.Equal(t, tc.ok, ok, why)
			require.Equal(t, ok, why == "")
		})
	}
}
