package zabtest

import (
	. "github.com/coord-dev/coord/zab"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// A fresh ensemble commits its configured voters as its first entry, so the
// voter set is committed state (in the log, then in snapshots) rather than
// each peer's configuration.
func TestLeaderCommitsBootstrapConfig(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 11), Voters: 3, SnapshotEvery: 5})
	l := waitStable(t, s, 2000)
	settleAndConverge(t, s, submit(t, s, 20, 5), 3000)
	for _, id := range s.IDs() {
		snap, err := s.Node(id).Storage.Snapshot()
		require.NoError(t, err)
		require.Equal(t, []PeerID{1, 2, 3}, snap.Voters, "peer %d: the snapshot carries the committed voters", id)
	}
	ents, err := s.Node(l).Storage.Entries(0, NewZxid(1, 1), 1)
	if err == nil && len(ents) > 0 { // not compacted yet
		require.Equal(t, []PeerID{1, 2, 3}, ents[0].Voters, "the first entry is the configuration")
	}
}

// Item 11 of issue 10, first case: in a rolling replacement, a node
// bootstrapped with BootstrapExpect that joins later takes the first ids it
// sees in gossip for the voters ([2 3 4] here, while the ensemble's are
// [1 2 3]). It must act on the committed voters once it synced, whatever
// the synchronisation (a DIFF here: its log is empty, a prefix of any).
func TestSimJoinerAdoptsCommittedVoters(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 12), Voters: 3})
	waitStable(t, s, 2000)
	settleAndConverge(t, s, submit(t, s, 10, 5), 3000)
	require.NoError(t, s.AddPeer(5, []PeerID{2, 3, 4}))
	require.True(t, s.RunUntil(3000, func() bool {
		st := s.Node(5).Peer.SoftState()
		return s.Stable() && st.Serving
	}), "peer 5 does not join: %s", describe(s))
	for _, id := range s.IDs() {
		require.Equal(t, []PeerID{1, 2, 3}, s.Node(id).Peer.Voters(), "peer %d", id)
	}
	require.Equal(t, RoleObserving, s.Node(5).Peer.SoftState().Role, "outside the committed voters: an observer")
	settleAndConverge(t, s, submit(t, s, 10, 5), 3000)
}

// Item 11, second case: with voters 1, 2 and 3, a fresh node 5 that guessed
// the voters [1 2 5] used to report itself FOLLOWING (the leader listed it
// as an observer) and, after 1 and 3 died, FOLLOWING a peer that was
// LOOKING. It must observe, and with no quorum left it must not serve.
func TestSimJoinerWithOwnIDInGuessObserves(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 13), Voters: 3})
	waitStable(t, s, 2000)
	settleAndConverge(t, s, submit(t, s, 10, 5), 3000)
	require.NoError(t, s.AddPeer(5, []PeerID{1, 2, 5}))
	require.True(t, s.RunUntil(3000, func() bool { return s.Stable() && s.Node(5).Peer.SoftState().Serving }),
		"peer 5 does not join: %s", describe(s))
	require.Equal(t, RoleObserving, s.Node(5).Peer.SoftState().Role)
	require.Equal(t, []PeerID{1, 2, 3}, s.Node(5).Peer.Voters())
	l := s.Leader()
	st := s.Node(l).Peer.Status()
	require.True(t, st.Progress[5].Observer, "the leader counts it as an observer")

	s.Crash(1)
	s.Crash(3)
	s.RunFor(1000)
	for _, id := range []PeerID{2, 5} {
		ss := s.Node(id).Peer.SoftState()
		require.False(t, ss.Serving, "peer %d serves without a quorum: %+v", id, ss)
	}
	require.True(t, slices.Contains([]Role{RoleLooking, RoleObserving}, s.Node(5).Peer.SoftState().Role))
	require.NotEqual(t, RoleFollowing, s.Node(5).Peer.SoftState().Role)
	require.NoError(t, s.Err)
}
