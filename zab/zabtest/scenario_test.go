package zabtest

import (
	"fmt"
	. "github.com/coord-dev/coord/zab"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireResultsConsistent checks every reported outcome against the
// committed history: a success must name a committed zxid.
func requireResultsConsistent(t testing.TB, s *Sim) {
	t.Helper()
	for _, id := range s.IDs() {
		for _, r := range s.Node(id).Proposals {
			if r.Err == nil {
				_, ok := s.history[r.Zxid]
				require.True(t, ok, "peer %d: request %d reported committed at %v, which no peer applied", id, r.ID, r.Zxid)
			}
		}
	}
}

func settleAndConverge(t testing.TB, s *Sim, reqs map[PeerID][]uint64, d int64) {
	t.Helper()
	require.True(t, s.RunUntil(d, func() bool { return s.Stable() && settled(s, reqs) && converged(s) }),
		"no convergence by t=%d: %s", s.Now(), describe(s))
	require.NoError(t, s.Err)
	requireResultsConsistent(t, s)
}

func TestSimLeaderLoss(t *testing.T) {
	for _, tc := range []struct{ voters, observers int }{{3, 1}, {5, 1}} {
		t.Run(fmt.Sprintf("%dv%do", tc.voters, tc.observers), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 11), Voters: tc.voters, Observers: tc.observers})
			old := waitStable(t, s, 2000)
			reqs := submit(t, s, 300, 20)
			settleAndConverge(t, s, reqs, 3000)
			require.Equal(t, 300, requireAllCommitted(t, s, reqs))
			oldEpoch := s.Node(old).Peer.SoftState().Epoch

			s.Crash(old)
			l := waitStable(t, s, 3000)
			require.NotEqual(t, old, l)
			require.Greater(t, s.Node(l).Peer.SoftState().Epoch, oldEpoch)
			// The new leader has every committed transaction.
			require.GreaterOrEqual(t, s.Node(l).SM.N, uint64(300))

			more := submit(t, s, 200, 20)
			settleAndConverge(t, s, more, 3000)
			require.Equal(t, 200, requireAllCommitted(t, s, more))

			require.NoError(t, s.Restart(old))
			settleAndConverge(t, s, nil, 3000)
			require.Equal(t, l, s.Leader(), "a restarted peer must follow the established leader")
			require.EqualValues(t, 500, s.Node(old).SM.N)
		})
	}
}

func TestSimMinorityPartition(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 13), Voters: 5, Observers: 1})
	old := waitStable(t, s, 2000)
	base := submit(t, s, 100, 20)
	settleAndConverge(t, s, base, 3000)

	// The old leader and one follower form the minority.
	other := PeerID(1)
	if other == old {
		other = 2
	}
	minority := []PeerID{old, other}
	var majority []PeerID
	for _, id := range s.IDs() {
		if id != old && id != other {
			majority = append(majority, id)
		}
	}
	s.Partition(minority, majority)
	committedBefore := s.Node(old).Peer.Committed()
	var stale []uint64
	for i := range 10 {
		if r, err := s.Propose(old, fmt.Appendf(nil, "stale%d", i)); err == nil {
			stale = append(stale, r)
		}
	}
	s.RunFor(300)
	for _, id := range minority {
		require.LessOrEqual(t, s.Node(id).Peer.Committed(), committedBefore, "minority peer %d committed", id)
	}
	require.NotEqual(t, RoleLeading, s.Node(old).Peer.SoftState().Role, "a leader without quorum must step down")

	// The majority elects a leader and makes progress.
	require.True(t, s.RunUntil(2000, func() bool { l := s.Leader(); return l != 0 && l != old }), describe(s))
	l := s.Leader()
	var fresh []uint64
	for i := range 50 {
		if r, err := s.Propose(l, fmt.Appendf(nil, "fresh%d", i)); err == nil {
			fresh = append(fresh, r)
		}
		s.RunFor(2)
	}
	require.True(t, s.RunUntil(2000, func() bool { return settled(s, map[PeerID][]uint64{l: fresh}) }))
	requireAllCommitted(t, s, map[PeerID][]uint64{l: fresh})

	s.Heal()
	settleAndConverge(t, s, map[PeerID][]uint64{old: stale}, 3000)
	for _, r := range stale {
		require.Error(t, s.Node(old).Proposals[r].Err, "a write proposed by a leader without quorum was reported committed")
	}
}

// syncModes records the synchronisation modes each peer received.
func syncModes(s *Sim) map[PeerID][]SyncMode {
	got := map[PeerID][]SyncMode{}
	s.OnDeliver = func(m Message) {
		if (m.Type == MsgSync || m.Type == MsgNewLeader) && m.Mode != SyncNone {
			got[m.To] = append(got[m.To], m.Mode)
		}
	}
	return got
}

func TestSimCatchUp(t *testing.T) {
	tests := []struct {
		name     string
		snapshot int
		behind   int
		msgBytes int // small: the snapshot travels in chunks
		want     SyncMode
	}{
		{"diff", 0, 200, 0, SyncDiff},
		{"snap", 100, 1000, 0, SyncSnap},
		{"snap-chunked", 100, 1000, 7, SyncSnap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 17), Voters: 3, Observers: 1, SnapshotEvery: tt.snapshot,
				Peer: Config{MaxMsgBytes: tt.msgBytes}})
			l := waitStable(t, s, 2000)
			reqs := submit(t, s, 50, 10)
			settleAndConverge(t, s, reqs, 2000)
			down := PeerID(1)
			if down == l {
				down = 2
			}
			s.Crash(down)
			more := submit(t, s, tt.behind, 50)
			require.True(t, s.RunUntil(3000, func() bool { return settled(s, more) }))
			modes := syncModes(s)
			chunks := 0
			onDeliver := s.OnDeliver
			s.OnDeliver = func(m Message) {
				onDeliver(m)
				if m.Type == MsgSnapChunk && m.To == down {
					chunks++
				}
			}
			require.NoError(t, s.Restart(down))
			settleAndConverge(t, s, nil, 3000)
			require.Contains(t, modes[down], tt.want, "modes sent to %d: %v", down, modes[down])
			if tt.msgBytes > 0 {
				require.GreaterOrEqual(t, chunks, 4, "a 24-byte snapshot in 7-byte chunks")
			}
			require.EqualValues(t, 50+tt.behind, s.Node(down).SM.N)
		})
	}
}

func TestSimTruncatesOldEpoch(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 19), Voters: 3, Observers: 1})
	old := waitStable(t, s, 2000)
	reqs := submit(t, s, 50, 10)
	settleAndConverge(t, s, reqs, 2000)

	// The leader, cut off, logs proposals no one else sees, then crashes.
	s.Isolate(old)
	for i := range 5 {
		_, err := s.Propose(old, fmt.Appendf(nil, "orphan%d", i))
		require.NoError(t, err)
	}
	s.RunFor(5)
	orphanLast := s.Node(old).Peer.LastZxid()
	persisted, _ := s.Node(old).Storage.LastZxid()
	require.Equal(t, orphanLast, persisted)
	s.Crash(old)
	s.Heal()

	l := waitStable(t, s, 3000)
	more := submit(t, s, 20, 10)
	settleAndConverge(t, s, more, 3000)

	modes := syncModes(s)
	require.NoError(t, s.Restart(old))
	settleAndConverge(t, s, nil, 3000)
	require.Contains(t, modes[old], SyncTrunc)
	require.Equal(t, l, s.Leader())
	require.EqualValues(t, 70, s.Node(old).SM.N, "orphaned proposals must not be applied")
	f, err := s.Node(old).Storage.Floor(orphanLast)
	require.NoError(t, err)
	require.NotEqual(t, orphanLast, f, "the old epoch's uncommitted entries must be truncated")
}

// TestSimOneWayCutReleasesFollower: a follower whose messages no longer
// reach the leader (while the leader's still reach it) must not stay
// "serving" for ever with its requests hanging: the leader stops talking to
// a learner silent for SyncLimit, so the learner looks for a leader again.
func TestSimOneWayCutReleasesFollower(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 74), Voters: 3})
	l := waitStable(t, s, 2000)
	var f PeerID
	for _, id := range s.IDs() {
		if id != l {
			f = id
			break
		}
	}
	s.Cut(f, l)
	released := s.RunUntil(s.Now()+5000, func() bool {
		ss := s.Node(f).Peer.SoftState()
		return !(ss.Role == RoleFollowing && ss.Leader == l && ss.Serving)
	})
	require.True(t, released, "the cut-off follower still follows and serves")
	_, err := s.Propose(f, []byte("x"))
	if err == nil {
		// Accepted only if it found a leader it can reach (it cannot: both
		// other voters are needed), so it must not report serving.
		require.False(t, s.Node(f).Peer.SoftState().Serving)
	}
	s.Heal()
	settleAndConverge(t, s, nil, 5000)
}

// A SNAP is installed in two durable steps, as on disk: the snapshot, then
// the emptied log. A crash between them leaves a snapshot newer than the
// log; the restart drops the log (as the data directory's recovery does)
// and the peer catches up. Crashes keeping 0, 1 and 2 of the records.
func TestSimCrashBetweenSnapSteps(t *testing.T) {
	for keep := range 3 {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 23), Voters: 3, SnapshotEvery: 50})
			l := waitStable(t, s, 2000)
			settleAndConverge(t, s, submit(t, s, 20, 10), 2000)
			down := other(s, l)
			before, err := s.Node(down).Storage.LastZxid()
			require.NoError(t, err)
			s.Crash(down)
			settleAndConverge(t, s, submit(t, s, 400, 50), 4000)
			s.CrashInSnapInstall(down, keep)
			require.NoError(t, s.Restart(down))
			require.True(t, s.RunUntil(3000, func() bool { return s.Node(down).Peer == nil }), "no SNAP reached %d", down)
			st := s.Node(down).Storage
			snap, err := st.Snapshot()
			require.NoError(t, err)
			last, err := st.LastZxid()
			require.NoError(t, err)
			if keep == 1 {
				require.Greater(t, snap.Zxid, last, "the snapshot is durable, the old log still there")
				require.Equal(t, before, last)
			}
			require.NoError(t, s.Restart(down))
			settleAndConverge(t, s, submit(t, s, 10, 10), 4000)
			require.EqualValues(t, 430, s.Node(down).SM.N)
		})
	}
}

// TestSimSnapStreamsLimited starts six observers together, each needing a
// SNAP larger than a message: the leader streams at most MaxSnapSyncs at a
// time with at most SnapWindow chunks in flight each, the others wait their
// turn without restarting their synchronisation, and all catch up, while
// writes go on.
func TestSimSnapStreamsLimited(t *testing.T) {
	const observers, chunk, window, running = 6, 1, 3, 2
	s := newSim(t, SimConfig{Seed: testSeed(t, 23), Voters: 3, Observers: observers, SnapshotEvery: 10,
		Peer: Config{MaxMsgBytes: chunk, SnapWindow: window, MaxSnapSyncs: running}})
	waitStable(t, s, 2000)
	reqs := submit(t, s, 50, 10)
	settleAndConverge(t, s, reqs, 2000)
	obs := s.IDs()[3:]
	for _, id := range obs {
		s.Crash(id)
	}
	more := submit(t, s, 200, 50)
	require.True(t, s.RunUntil(3000, func() bool { return settled(s, more) }))

	maxRunning, maxQueued := 0, 0
	ackEpochs, waits, chunks := countSnapTraffic(s, func(m Message) {
		for _, id := range s.IDs()[:3] {
			n := s.Node(id)
			if n.Peer == nil || n.Peer.SoftState().Role != RoleLeading {
				continue
			}
			run, queue := 0, 0
			st := n.Peer.Status()
			for lid, pr := range st.Progress {
				if pr.SnapRunning {
					run++
				}
				if pr.SnapQueued {
					queue++
				}
				require.LessOrEqual(t, pr.SnapInFlight, uint64(window*chunk), "bytes in flight to %d", lid)
			}
			require.Equal(t, run, st.SnapStreams.Running, "status counts the running streams")
			require.Equal(t, queue, st.SnapStreams.Queued, "status counts the queued learners")
			maxRunning, maxQueued = max(maxRunning, run), max(maxQueued, queue)
			require.LessOrEqual(t, run, running, "snapshots streaming at once")
		}
	})
	for _, id := range obs {
		require.NoError(t, s.Restart(id))
	}
	// Writes go on meanwhile: the leader snapshots and compacts its log
	// several times while it streams, but never past a running stream's
	// image (SnapStreamFloor), or that stream would start over.
	during := submit(t, s, 100, 1)
	settleAndConverge(t, s, during, 5000)
	require.Equal(t, running, maxRunning)
	require.Positive(t, maxQueued, "status showed learners queued")
	queued := 0
	var received uint64
	for _, id := range obs {
		require.EqualValues(t, 350, s.Node(id).SM.N)
		ss := s.Node(id).Peer.Status().SnapStreams
		require.Positive(t, ss.BytesReceived, "observer %d counts the snapshot bytes it received", id)
		require.False(t, ss.Receiving, "observer %d installed its snapshot", id)
		received += ss.BytesReceived
		require.Positive(t, chunks[id], "observer %d got the snapshot streamed", id)
		require.Equal(t, 1, ackEpochs[id], "observer %d restarted its synchronisation (waits %d)", id, waits[id])
		if waits[id] > 0 {
			queued++
		}
	}
	require.GreaterOrEqual(t, queued, observers-running, "observers told to wait: %v", waits)
	var sent uint64
	for _, id := range s.IDs()[:3] {
		sent += s.Node(id).Peer.Status().SnapStreams.BytesSent
	}
	require.GreaterOrEqual(t, sent, received, "the leaders sent at least what the observers received")
}

// TestSimSnapStreamVoterFirst: a voter that needs a snapshot does not wait
// behind observers' streams (an unsynced voter counts toward no quorum):
// with every stream slot taken by observers, a returning voter's stream
// starts at once, pausing an observer's, which goes on afterwards without
// restarting its synchronisation. Before, the voter was told to wait.
func TestSimSnapStreamVoterFirst(t *testing.T) {
	const observers, running = 3, 1
	s := newSim(t, SimConfig{Seed: testSeed(t, 29), Voters: 3, Observers: observers, SnapshotEvery: 10,
		Peer: Config{MaxMsgBytes: 1, SnapWindow: 2, MaxSnapSyncs: running}})
	l := waitStable(t, s, 2000)
	reqs := submit(t, s, 50, 10)
	settleAndConverge(t, s, reqs, 2000)
	v := other(s, append([]PeerID{l}, s.IDs()[3:]...)...)
	obs := s.IDs()[3:]
	for _, id := range append([]PeerID{v}, obs...) {
		s.Crash(id)
	}
	more := submit(t, s, 200, 50)
	require.True(t, s.RunUntil(3000, func() bool { return settled(s, more) }))

	ackEpochs, waits, chunks := countSnapTraffic(s, nil)
	for _, id := range obs {
		require.NoError(t, s.Restart(id))
	}
	require.True(t, s.RunUntil(2000, func() bool { return chunks[obs[0]]+chunks[obs[1]]+chunks[obs[2]] > 0 }),
		"an observer's stream runs")
	require.NoError(t, s.Restart(v))
	require.True(t, s.RunUntil(3000, func() bool { return s.Node(v).Peer.SoftState().Serving }), describe(s))
	require.Zero(t, waits[v], "the voter waited behind observers")
	settleAndConverge(t, s, nil, 5000)
	paused := 0
	for _, id := range obs {
		require.EqualValues(t, 250, s.Node(id).SM.N)
		require.Equal(t, 1, ackEpochs[id], "observer %d restarted its synchronisation (waits %d)", id, waits[id])
		if waits[id] > 0 {
			paused++
		}
	}
	require.EqualValues(t, 250, s.Node(v).SM.N)
	require.Positive(t, chunks[v])
	require.Equal(t, observers, paused, "every observer waited (two queued, one paused for the voter): %v", waits)
}

// countSnapTraffic counts, from now on, the ACKEPOCHs each peer sends and
// the MsgSnapWaits and snapshot chunks each one receives; also, if set,
// sees every delivered message too (it takes s.OnDeliver).
func countSnapTraffic(s *Sim, also func(Message)) (ackEpochs, waits, chunks map[PeerID]int) {
	ackEpochs, waits, chunks = map[PeerID]int{}, map[PeerID]int{}, map[PeerID]int{}
	s.OnDeliver = func(m Message) {
		switch m.Type {
		case MsgAckEpoch:
			ackEpochs[m.From]++
		case MsgSnapWait:
			waits[m.To]++
		case MsgSnapChunk:
			chunks[m.To]++
		}
		if also != nil {
			also(m)
		}
	}
	return ackEpochs, waits, chunks
}

// TestSimSnapStreamSlowLinkNoResendStorm: on a link whose round trip takes
// a few ticks (a loaded machine), with nothing lost, a stream sends each
// chunk about once. Before, the leader sent the window again after every
// tick without an acknowledgement, and every copy's acknowledgement (the
// learner acknowledges each chunk, copies too) sent it again: a learner
// got each byte several times over (4.4-4.7x at seeds 1-15, against
// 1.3-1.8x now).
func TestSimSnapStreamSlowLinkNoResendStorm(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 31), Voters: 3, Observers: 2, SnapshotEvery: 10,
		MinDelay: 10, MaxDelay: 20, Peer: Config{MaxMsgBytes: 1, SnapWindow: 4, MaxSnapSyncs: 2}})
	waitStable(t, s, 2000)
	settleAndConverge(t, s, submit(t, s, 50, 10), 4000)
	obs := s.IDs()[3:]
	for _, id := range obs {
		s.Crash(id)
	}
	more := submit(t, s, 200, 50)
	require.True(t, s.RunUntil(6000, func() bool { return settled(s, more) }))
	var before uint64
	for _, id := range s.IDs()[:3] {
		before += s.Node(id).Peer.Status().SnapStreams.BytesSent
	}
	for _, id := range obs {
		require.NoError(t, s.Restart(id))
	}
	settleAndConverge(t, s, submit(t, s, 20, 1), 20000)
	var sent, received uint64
	for _, id := range s.IDs()[:3] {
		sent += s.Node(id).Peer.Status().SnapStreams.BytesSent
	}
	for _, id := range obs {
		received += s.Node(id).Peer.Status().SnapStreams.BytesReceived
	}
	sent -= before
	require.Positive(t, received, "the observers got the snapshot streamed")
	t.Logf("snapshot bytes sent %d, received %d (%.2fx)", sent, received, float64(sent)/float64(received))
	require.LessOrEqual(t, float64(sent), 2.5*float64(received), "the leader sent the same bytes over and over")
}
