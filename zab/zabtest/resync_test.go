package zabtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	. "github.com/coord-dev/coord/zab"
)

// A follower that throws its history away (Peer.Resync, as coord does on a
// digest mismatch) synchronises again from nothing and ends with the
// leader's state; until an established leader has synced it, it counts for
// nothing: with the leader down, it and the other follower (which lacks
// nothing) cannot elect anyone, so no write it had acknowledged can be lost.
func TestSimResyncFollower(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot int
		want     SyncMode
	}{{"diff-from-zero", 0, SyncDiff}, {"snap", 40, SyncSnap}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 23), Voters: 3, SnapshotEvery: tc.snapshot})
			l := waitStable(t, s, 2000)
			reqs := submit(t, s, 200, 20)
			settleAndConverge(t, s, reqs, 3000)
			f := other(s, l)
			g := other(s, l, f)
			modes := syncModes(s)

			require.NoError(t, s.Resync(f))
			require.ErrorIs(t, s.Resync(l), ErrResyncLeader)
			s.RunFor(1)
			hs, _ := s.Node(f).Storage.InitialState()
			require.Zero(t, hs.CurrentEpoch, "currentEpoch zero is durable")
			require.True(t, hs.Member)
			settleAndConverge(t, s, nil, 3000)
			require.EqualValues(t, 200, s.Node(f).SM.N, "resynced from nothing")
			require.Contains(t, modes[f], tc.want)

			// Throw it away again, and lose the leader before f is synced.
			s.Isolate(f)
			require.NoError(t, s.Resync(f))
			s.RunFor(5)
			s.Crash(l)
			s.Heal()
			s.RunFor(1500)
			for _, id := range []PeerID{f, g} {
				require.False(t, s.Node(id).Peer.SoftState().Serving,
					"peer %d serves: the emptied voter counted (%s)", id, describe(s))
			}
			require.NoError(t, s.Restart(l))
			require.True(t, s.RunUntil(3000, func() bool { return s.Stable() }), describe(s))
			more := submit(t, s, 50, 10)
			settleAndConverge(t, s, more, 3000)
			require.EqualValues(t, 250, s.Node(f).SM.N)
			require.Equal(t, 200, requireAllCommitted(t, s, reqs))
		})
	}
}

// resyncOne has id throw its history away (Peer.Resync, refused unless it
// serves an established leader) when no other peer is empty (a voter
// without a current epoch, after a resync or before it ever joined) and at
// least three voters are configured: an empty voter counts for nothing
// until synced, so emptying one while another is empty, or in a voter set
// of two, can leave no quorum that may elect (see Peer.Resync). The
// reconfiguration chaos does not use it: a voter set that shrinks while a
// voter is empty wedges the same way.
func resyncOne(s *Sim, id PeerID) {
	n := s.Node(id)
	if n.Peer == nil || len(n.Peer.Voters()) < 3 {
		return
	}
	for _, o := range s.IDs() {
		if hs, _ := s.Node(o).Storage.InitialState(); o != id && hs.CurrentEpoch == 0 {
			return
		}
	}
	_ = s.Resync(id)
}
