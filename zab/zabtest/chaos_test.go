package zabtest

import (
	"fmt"
	. "github.com/coord-dev/coord/zab"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// runChaos drives one seeded fault schedule: lossy, duplicating and
// reordering links, crashes with restarts and partitions, while clients
// keep proposing at random peers. At the end the faults stop and every
// running peer must converge on one history that holds every write
// reported committed.
// chaosOpts shapes a fault schedule.
type chaosOpts struct {
	voters, observers int
	fault             float64 // drop and duplication rate
	maxDelay          int64
	snapshotEvery     int
	maxCounter        uint32
	queueLimit        int
	msgBytes          int
}

func (o chaosOpts) String() string {
	return fmt.Sprintf("%dv%do-f%.2f-d%d-s%d-c%d-q%d-b%d", o.voters, o.observers, o.fault, o.maxDelay, o.snapshotEvery,
		o.maxCounter, o.queueLimit, o.msgBytes)
}

func runChaos(t *testing.T, seed uint64, o chaosOpts) {
	s := newSim(t, SimConfig{Seed: seed, Voters: o.voters, Observers: o.observers, DropRate: o.fault, DupRate: o.fault,
		Reorder: true, MaxDelay: o.maxDelay, SnapshotEvery: o.snapshotEvery, QueueLimit: o.queueLimit,
		Peer:     Config{MaxCounter: o.maxCounter, MaxMsgEntries: 8, MaxMsgBytes: o.msgBytes},
		ReadBack: seed%2 == 1, MaxReadBack: 30}) // odd seeds: applied entries read back, as a Node's
	rng := rand.New(rand.NewPCG(seed, 99))
	reqs := map[PeerID][]uint64{}
	ids := s.IDs()
	syncs := 0
	for round := range chaosRounds {
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
		case 6:
			a, b := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
			if a != b {
				s.Cut(a, b)
			}
		case 7:
			if rng.IntN(3) == 0 {
				for _, id := range ids {
					s.Crash(id) // the whole ensemble loses power
				}
			}
		case 8:
			driverChaos(s, rng, ids[rng.IntN(len(ids))])
		case 9:
			// A replica throws its history away (coord's digest check).
			resyncOne(s, ids[rng.IntN(len(ids))])
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
		s.ClearDiskFaults(id)
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
	var l PeerID
	var r uint64
	require.True(t, s.RunUntil(5000, func() bool {
		// An exhausted leader refuses writes until the next epoch.
		l = s.Leader()
		if l == 0 {
			return false
		}
		var err error
		r, err = s.Propose(l, []byte("final"))
		return err == nil
	}), describe(s))
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

// driverChaos hits peer id with one driver fault: a crash in the middle of
// a write (a prefix survives), a failed fsync (fail-stop), slow fsyncs, a
// process pause, or a clock jump. The schedule's restarts bring stopped
// peers back.
func driverChaos(s *Sim, rng *rand.Rand, id PeerID) {
	switch rng.IntN(6) {
	case 0:
		s.CrashInPersist(id, 1+rng.IntN(3))
	case 1:
		s.FailFsync(id, 1)
	case 2:
		s.SlowDisk(id, 10+rng.Int64N(60), s.Now()+200+rng.Int64N(600))
	case 3:
		s.Pause(id, 60+rng.Int64N(400))
	case 4:
		s.TickBurst(id, 5+rng.IntN(40))
	case 5:
		s.StallTicks(id, 60+rng.Int64N(300))
	}
}

// chaosRounds is the length of a fault schedule.
var chaosRounds = 60

var chaosShapes = []chaosOpts{
	{voters: 3, observers: 1, fault: 0.05, maxDelay: 8, snapshotEvery: 40},
	{voters: 5, observers: 1, fault: 0.05, maxDelay: 8, snapshotEvery: 40},
	{voters: 3, observers: 2, fault: 0.25, maxDelay: 30, snapshotEvery: 10, msgBytes: 5},
	{voters: 5, observers: 1, fault: 0.10, maxDelay: 5, snapshotEvery: 25, maxCounter: 15},
	{voters: 3, observers: 1, fault: 0.02, maxDelay: 20, snapshotEvery: 30, queueLimit: 4},
}

func TestSimChaos(t *testing.T) {
	n := 6
	if testing.Short() {
		n = 2
	}
	base := testSeed(t, 1000)
	for i := range n {
		seed := base + uint64(i)
		for _, o := range chaosShapes {
			t.Run(fmt.Sprintf("seed%d/%v", seed, o), func(t *testing.T) {
				t.Logf("seed=%d (replay with -run 'TestSimChaos/seed%d/%v' -seed=%d)", seed, seed, o, seed)
				runChaos(t, seed, o)
			})
		}
	}
}
