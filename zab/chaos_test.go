package zab

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// runChaos drives one seeded fault schedule: lossy, duplicating and
// reordering links, crashes with restarts and partitions, while clients
// keep proposing at random peers. At the end the faults stop and every
// running peer must converge on one history that holds every write
// reported committed.
func runChaos(t *testing.T, seed uint64, voters, observers int) {
	runChaosRate(t, seed, voters, observers, 0.05)
}

func runChaosRate(t *testing.T, seed uint64, voters, observers int, drop float64) {
	s := newSim(t, SimConfig{Seed: seed, Voters: voters, Observers: observers, DropRate: drop, DupRate: drop,
		Reorder: true, MaxDelay: 8, SnapshotEvery: 40})
	rng := rand.New(rand.NewPCG(seed, 99))
	reqs := map[PeerID][]uint64{}
	ids := s.IDs()
	syncs := 0
	for round := range 60 {
		switch rng.IntN(10) {
		case 0:
			id := ids[rng.IntN(len(ids))]
			s.Crash(id)
		case 1, 2:
			for _, id := range ids {
				require.NoError(t, s.Restart(id))
			}
		case 3:
			cut := rng.IntN(len(ids))
			s.Partition(ids[:cut], ids[cut:])
		case 4, 5:
			s.Heal()
		}
		for i := range 5 {
			id := ids[rng.IntN(len(ids))]
			if r, err := s.Propose(id, fmt.Appendf(nil, "r%d-%d", round, i)); err == nil {
				reqs[id] = append(reqs[id], r)
			}
			if _, err := s.Sync(ids[rng.IntN(len(ids))]); err == nil {
				syncs++
			}
			s.RunFor(int64(rng.IntN(10)))
		}
		s.RunFor(int64(rng.IntN(60)))
		require.NoError(t, s.Err, "round %d", round)
	}
	s.Heal()
	s.SetFaults(0, 0)
	for _, id := range ids {
		require.NoError(t, s.Restart(id))
	}
	require.True(t, s.RunUntil(20000, func() bool { return s.Stable() && converged(s) }),
		"no convergence: %s", describe(s))
	require.NoError(t, s.Err)
	requireResultsConsistent(t, s)
	// Writes reported committed survive every later leader: all of them
	// are in the final state, which holds exactly the history's entries.
	final := s.Node(s.Leader()).SM
	for _, id := range ids {
		for _, r := range s.Node(id).Proposals {
			if r.Err == nil {
				require.LessOrEqual(t, r.Zxid, final.Last)
			}
		}
	}
	// One more write must commit everywhere.
	l := s.Leader()
	r, err := s.Propose(l, []byte("final"))
	require.NoError(t, err)
	settleAndConverge(t, s, map[PeerID][]uint64{l: {r}}, 5000)
	require.NoError(t, s.Node(l).Proposals[r].Err)
	outcomes := map[string]int{}
	synced := 0
	for _, id := range ids {
		for _, r := range s.Node(id).Proposals {
			outcomes[fmt.Sprint(r.Err)]++
		}
		for _, r := range s.Node(id).Syncs {
			if r.Err == nil {
				synced++
			}
		}
	}
	t.Logf("syncs started=%d succeeded=%d", syncs, synced)
	t.Logf("epoch=%d applied=%d delivered=%d outcomes=%v", s.Node(l).Peer.SoftState().Epoch,
		s.Node(l).SM.N, s.Delivered, outcomes)
}

func TestSimChaos(t *testing.T) {
	n := 12
	if testing.Short() {
		n = 3
	}
	base := testSeed(t, 1000)
	for i := range n {
		seed := base + uint64(i)
		for _, tc := range []struct{ voters, observers int }{{3, 1}, {5, 1}} {
			t.Run(fmt.Sprintf("seed%d/%dv%do", seed, tc.voters, tc.observers), func(t *testing.T) {
				t.Logf("seed=%d (replay with -run 'TestSimChaos' -seed=%d)", seed, seed)
				runChaos(t, seed, tc.voters, tc.observers)
			})
		}
	}
}
