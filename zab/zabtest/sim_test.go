package zabtest

import (
	"flag"
	"fmt"
	. "github.com/coord-dev/coord/zab"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

var seedFlag = flag.Uint64("seed", 0, "replay the simulation tests with this seed")

// testSeed returns the seed to use and logs it so a failure replays with
// -seed.
func testSeed(t testing.TB, def uint64) uint64 {
	t.Helper()
	s := def
	if *seedFlag != 0 {
		s = *seedFlag
	}
	t.Logf("seed=%d (replay with -seed=%d)", s, s)
	return s
}

func newSim(t testing.TB, cfg SimConfig) *Sim {
	t.Helper()
	s, err := NewSim(cfg)
	require.NoError(t, err)
	return s
}

// waitStable runs s until an established leader has every running peer in
// sync, failing the test after d virtual units.
func waitStable(t testing.TB, s *Sim, d int64) PeerID {
	t.Helper()
	require.True(t, s.RunUntil(d, s.Stable), "no stable leader by t=%d: %s", s.Now(), describe(s))
	require.NoError(t, s.Err)
	return s.Leader()
}

func describe(s *Sim) string {
	out := ""
	for _, id := range s.IDs() {
		n := s.Node(id)
		if n.Peer == nil {
			out += fmt.Sprintf("[%d down] ", id)
			continue
		}
		st := n.Peer.SoftState()
		out += fmt.Sprintf("[%d %v leader=%d epoch=%d serving=%v last=%v commit=%v applied=%d voters=%v] ", id, st.Role,
			st.Leader, st.Epoch, st.Serving, n.Peer.LastZxid(), n.Peer.Committed(), n.SM.N, n.Peer.Voters())
	}
	return out
}

func TestSimElectsLeader(t *testing.T) {
	for _, tc := range []struct{ voters, observers int }{{1, 0}, {3, 0}, {3, 1}, {5, 1}} {
		t.Run(fmt.Sprintf("%dv%do", tc.voters, tc.observers), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 1), Voters: tc.voters, Observers: tc.observers})
			l := waitStable(t, s, 2000)
			require.LessOrEqual(t, int(l), tc.voters, "an observer must never lead")
		})
	}
}

// submit proposes count entries, round-robin over the running peers (so
// learners forward), batch at a time, and returns the request ids per peer.
func submit(t testing.TB, s *Sim, count, batch int) map[PeerID][]uint64 {
	t.Helper()
	reqs := map[PeerID][]uint64{}
	next := 0
	for sent := 0; sent < count; {
		for i := 0; i < batch && sent < count; i++ {
			id := s.IDs()[next%len(s.IDs())]
			next++
			if s.Node(id).Peer == nil {
				continue
			}
			req, err := s.Propose(id, fmt.Appendf(nil, "v%d", sent))
			if err != nil {
				continue
			}
			reqs[id] = append(reqs[id], req)
			sent++
		}
		s.RunFor(3)
		require.NoError(t, s.Err)
	}
	return reqs
}

// settled reports whether every request in reqs has a result.
func settled(s *Sim, reqs map[PeerID][]uint64) bool {
	for id, rs := range reqs {
		for _, r := range rs {
			if _, ok := s.Node(id).Proposals[r]; !ok {
				return false
			}
		}
	}
	return true
}

// converged reports whether every running peer applied the same state.
func converged(s *Sim) bool {
	var ref *SimStateMachine
	for _, id := range s.IDs() {
		n := s.Node(id)
		if n.Peer == nil {
			continue
		}
		if ref == nil {
			ref = &n.SM
		} else if *ref != n.SM {
			return false
		}
	}
	return true
}

func requireAllCommitted(t testing.TB, s *Sim, reqs map[PeerID][]uint64) int {
	t.Helper()
	ok := 0
	for id, rs := range reqs {
		for _, r := range rs {
			res := s.Node(id).Proposals[r]
			require.NoError(t, res.Err, "peer %d request %d", id, r)
			ok++
		}
	}
	return ok
}

func TestSimCommitsInOrder(t *testing.T) {
	for _, tc := range []struct{ voters, observers int }{{3, 1}, {5, 1}} {
		t.Run(fmt.Sprintf("%dv%do", tc.voters, tc.observers), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: testSeed(t, 7), Voters: tc.voters, Observers: tc.observers})
			var badInform error
			s.OnDeliver = func(m Message) {
				if p := s.Node(m.To).Peer; !slices.Contains(p.Voters(), m.To) && m.Type == MsgProposal {
					badInform = fmt.Errorf("observer %d got a PROPOSAL", m.To)
				}
				if m.Type == MsgInform && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Zxid > m.Commit {
					badInform = fmt.Errorf("INFORM to %d carries uncommitted %v", m.To, m.Entries[len(m.Entries)-1].Zxid)
				}
			}
			waitStable(t, s, 2000)
			reqs := submit(t, s, 10000, 50)
			require.True(t, s.RunUntil(5000, func() bool { return settled(s, reqs) && converged(s) }), describe(s))
			require.NoError(t, s.Err)
			require.Equal(t, 10000, requireAllCommitted(t, s, reqs))
			for _, id := range s.IDs() {
				require.EqualValues(t, 10000, s.Node(id).SM.N, "peer %d", id)
			}
			require.NoError(t, badInform, "observers only hear committed transactions")
		})
	}
}

// The same seed replays the same run, message for message.
func TestSimDeterministic(t *testing.T) {
	seed := testSeed(t, 77)
	run := func() (SimStateMachine, int, int64) {
		s := newSim(t, SimConfig{Seed: seed, Voters: 3, Observers: 1, DropRate: 0.1, DupRate: 0.1, Reorder: true, MaxDelay: 9})
		waitStable(t, s, 5000)
		reqs := submit(t, s, 200, 10)
		s.Crash(s.Leader())
		s.SetFaults(0, 0)
		require.True(t, s.RunUntil(5000, s.Stable))
		_ = reqs
		l := s.Leader()
		return s.Node(l).SM, s.Delivered, s.Now()
	}
	sm1, d1, t1 := run()
	sm2, d2, t2 := run()
	require.Equal(t, sm1, sm2)
	require.Equal(t, d1, d2)
	require.Equal(t, t1, t2)
}

// Election terminates under heavy loss, duplication and reordering: votes
// are re-sent on ticks with jitter.
func TestSimElectionUnderLoss(t *testing.T) {
	base := testSeed(t, 300)
	for i := range 10 {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			s := newSim(t, SimConfig{Seed: seed, Voters: 5, Observers: 1, DropRate: 0.3, DupRate: 0.2,
				Reorder: true, MaxDelay: 20})
			waitStable(t, s, 20000)
			// And again after the leader dies.
			s.Crash(s.Leader())
			waitStable(t, s, 20000)
		})
	}
}
