package zabtest

import (
	"flag"
	"fmt"
	. "github.com/coord-dev/coord/zab"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	reconfigSeeds = flag.Int("zab.reconfigseeds", 40, "seeds TestSimReconfigChaos runs (soak: thousands)")
	reconfigBase  = flag.Uint64("zab.reconfigbase", 1000, "first seed of TestSimReconfigChaos")
	debugElection = flag.Bool("zab.debugelection", false, "log every peer's election state at the end of TestSimReconfigChaos")
)

// reconfig proposes cc at peer at and runs until its outcome is known.
func reconfig(t *testing.T, s *Sim, at PeerID, cc ConfChange, d int64) error {
	t.Helper()
	req, err := s.ProposeConfig(at, cc)
	if err != nil {
		return err
	}
	require.True(t, s.RunUntil(d, func() bool { _, ok := s.Node(at).Proposals[req]; return ok }),
		"%v at %d: no outcome by t=%d: %s", cc, at, s.Now(), describe(s))
	require.NoError(t, s.Err)
	return s.Node(at).Proposals[req].Err
}

// requireVoters waits until every running peer has voters in force.
func requireVoters(t *testing.T, s *Sim, voters ...PeerID) {
	t.Helper()
	slices.Sort(voters)
	agree := func() bool {
		for _, id := range s.IDs() {
			if n := s.Node(id); n.Peer != nil && !slices.Equal(voters, n.Peer.Voters()) {
				return false
			}
		}
		return true
	}
	require.True(t, s.RunUntil(1000, agree), "voters %v not in force everywhere by t=%d: %s", voters, s.Now(), describe(s))
}

func other(s *Sim, not ...PeerID) PeerID {
	for _, id := range s.IDs() {
		if !slices.Contains(not, id) {
			return id
		}
	}
	return 0
}

// An observer is promoted, then the old leader is removed: each change
// commits, every peer takes it into force, the roles follow, writes go on
// and the configuration survives crashes of every peer.
func TestSimReconfigPromoteAndRemove(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 41), Voters: 3, Observers: 1})
	l := waitStable(t, s, 2000)
	settleAndConverge(t, s, submit(t, s, 50, 10), 3000)

	// Promote observer 4, asked at a follower (forwarded to the leader).
	require.NoError(t, reconfig(t, s, other(s, l, 4), ConfChange{Type: ConfAddVoter, ID: 4}, 2000))
	require.True(t, s.RunUntil(2000, func() bool {
		return s.Stable() && s.Node(4).Peer.SoftState().Role == RoleFollowing
	}), "peer 4 does not follow after its promotion: %s", describe(s))
	requireVoters(t, s, 1, 2, 3, 4)
	settleAndConverge(t, s, submit(t, s, 50, 10), 3000)

	// Remove the leader itself: it steps down once the change commits.
	require.NoError(t, reconfig(t, s, l, ConfChange{Type: ConfRemoveVoter, ID: l}, 2000))
	nl := waitStable(t, s, 3000)
	require.NotEqual(t, l, nl)
	require.True(t, s.RunUntil(2000, func() bool { return s.Stable() && s.Node(l).Peer.SoftState().Role == RoleObserving }),
		"the removed leader does not observe: %s", describe(s))
	want := slices.DeleteFunc([]PeerID{1, 2, 3, 4}, func(id PeerID) bool { return id == l })
	requireVoters(t, s, want...)
	settleAndConverge(t, s, submit(t, s, 50, 10), 3000)

	// The configuration is durable: crash everyone, restart, still in force.
	for _, id := range s.IDs() {
		s.Crash(id)
	}
	for _, id := range s.IDs() {
		require.NoError(t, s.Restart(id))
	}
	waitStable(t, s, 3000)
	requireVoters(t, s, want...)
	require.NotEqual(t, l, s.Leader())
	settleAndConverge(t, s, submit(t, s, 50, 10), 3000)
}

// Changes go one at a time, make sense, and never leave the voters without
// a live quorum.
func TestSimReconfigRefusals(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 43), Voters: 3, Observers: 2})
	l := waitStable(t, s, 2000)

	// Nonsense.
	require.ErrorIs(t, reconfig(t, s, l, ConfChange{Type: ConfAddVoter, ID: l}, 100), ErrBadConfChange)
	require.ErrorIs(t, reconfig(t, s, l, ConfChange{Type: ConfRemoveVoter, ID: 4}, 100), ErrBadConfChange)
	require.ErrorIs(t, reconfig(t, s, l, ConfChange{Type: ConfAddVoter, ID: 9}, 100), ErrNotSynced,
		"a peer that never connected cannot be promoted")
	// The refusal travels back to a follower that forwarded it.
	f := other(s, l, 4, 5)
	require.ErrorIs(t, reconfig(t, s, f, ConfChange{Type: ConfAddVoter, ID: 9}, 200), ErrNotSynced)

	// With one of three voters down, removing the other live one would
	// leave one of two: refused. Removing the dead one is fine.
	down := other(s, l, 4, 5)
	s.Crash(down)
	s.RunFor(100) // past the sync limit (5 ticks of 10): the leader counts it dead
	live := other(s, l, down, 4, 5)
	require.ErrorIs(t, reconfig(t, s, l, ConfChange{Type: ConfRemoveVoter, ID: live}, 100), ErrReconfigUnsafe)
	require.NoError(t, reconfig(t, s, l, ConfChange{Type: ConfRemoveVoter, ID: down}, 2000))
	requireVoters(t, s, l, live)

	// One at a time: a second change while the first is not committed.
	_, err := s.ProposeConfig(l, ConfChange{Type: ConfAddVoter, ID: 4})
	require.NoError(t, err)
	_, err = s.ProposeConfig(l, ConfChange{Type: ConfAddVoter, ID: 5})
	require.ErrorIs(t, err, ErrReconfigInProgress)
	require.True(t, s.RunUntil(2000, func() bool { return s.Stable() && len(s.Node(l).Peer.Voters()) == 3 }))
	requireVoters(t, s, l, live, 4)

	// The removed peer comes back as an observer and catches up.
	require.NoError(t, s.Restart(down))
	require.True(t, s.RunUntil(3000, func() bool {
		return s.Stable() && s.Node(down).Peer.SoftState().Role == RoleObserving && converged(s)
	}), describe(s))
}

// A voter is added while another is down: the new voter's own vote is
// needed to commit its promotion, so it must learn of it from proposals,
// before the commit.
func TestSimReconfigAddWhileOneDown(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 47), Voters: 3, Observers: 1})
	l := waitStable(t, s, 2000)
	down := other(s, l, 4)
	s.Crash(down)
	s.RunFor(30)
	require.NoError(t, reconfig(t, s, l, ConfChange{Type: ConfAddVoter, ID: 4}, 3000))
	settleAndConverge(t, s, submit(t, s, 30, 10), 3000)
	require.Equal(t, RoleFollowing, s.Node(4).Peer.SoftState().Role)
	require.NoError(t, s.Restart(down))
	settleAndConverge(t, s, nil, 3000)
	requireVoters(t, s, 1, 2, 3, 4)
}

// Configuration changes under message loss, duplication, partitions and
// crashes: the simulator's invariants (one leader per epoch, no divergent
// apply, results consistent with the history) hold, and after healing every
// peer agrees on the voters and the state.
func TestSimReconfigChaos(t *testing.T) {
	seeds := *reconfigSeeds
	if *seedFlag != 0 {
		seeds = 1
	}
	for i := range seeds {
		seed := testSeed(t, *reconfigBase+uint64(i))
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: seed, Voters: 3, Observers: 2, DropRate: 0.05, DupRate: 0.05,
				SnapshotEvery: 40})
			r := rand.New(rand.NewPCG(seed, 7))
			waitStable(t, s, 3000)
			var reqs = map[PeerID][]uint64{}
			for round := 0; round < 30; round++ {
				ids := s.IDs()
				at := ids[r.IntN(len(ids))]
				target := ids[r.IntN(len(ids))]
				typ := ConfAddVoter
				if r.IntN(2) == 0 {
					typ = ConfRemoveVoter
				}
				_, _ = s.ProposeConfig(at, ConfChange{Type: typ, ID: target})
				for k := 0; k < 5; k++ {
					id := ids[r.IntN(len(ids))]
					if req, err := s.Propose(id, fmt.Appendf(nil, "r%d-%d", round, k)); err == nil {
						reqs[id] = append(reqs[id], req)
					}
				}
				switch r.IntN(6) {
				case 0:
					victim := ids[r.IntN(len(ids))]
					s.Crash(victim)
					delete(reqs, victim) // its requests die with it
					s.RunFor(int64(20 + r.IntN(40)))
					require.NoError(t, s.Restart(victim))
				case 1:
					s.Isolate(ids[r.IntN(len(ids))])
					s.RunFor(int64(20 + r.IntN(40)))
					s.Heal()
				}
				s.RunFor(int64(10 + r.IntN(30)))
				require.NoError(t, s.Err)
			}
			s.Heal()
			s.SetFaults(0, 0)
			for _, id := range s.IDs() {
				require.NoError(t, s.Restart(id))
			}
			if *debugElection {
				defer func() {
					for _, id := range s.IDs() {
						p := s.Node(id).Peer
						t.Logf("peer %d %+v", id, p.Status())
					}
				}()
			}
			settleAndConverge(t, s, reqs, 6000)
			// Roles follow the configuration once it is committed.
			rolesMatch := func() bool {
				l := s.Leader()
				if !s.Stable() || l == 0 {
					return false
				}
				ref := s.Node(l).Peer.Voters()
				for _, id := range s.IDs() {
					p := s.Node(id).Peer
					if !slices.Equal(ref, p.Voters()) || slices.Contains(ref, id) == (p.SoftState().Role == RoleObserving) {
						return false
					}
				}
				return true
			}
			require.True(t, s.RunUntil(3000, rolesMatch), "roles do not follow the voters: %s", describe(s))
			settleAndConverge(t, s, nil, 3000)
		})
	}
}
