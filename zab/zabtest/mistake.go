package zabtest

import (
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/internal/plant"
)

// Mistake is a known protocol or persistence error the simulator plants in
// every peer (SimConfig.Mistake), to show that its checks catch it. It exists
// only here: production code cannot switch one on.
type Mistake = plant.Mistake

// Planted mistakes, one per rule they break.
const (
	// MistakeNone is the correct protocol.
	MistakeNone = plant.None
	// MistakeDiffWithoutTrunc: a leader answers a learner whose last zxid is
	// not in its log (it holds entries of an old epoch the new history
	// dropped) with a DIFF instead of a TRUNC; the learner keeps and later
	// applies the divergent entries.
	MistakeDiffWithoutTrunc = plant.DiffWithoutTrunc
	// MistakeSecondVoterChange: a leader proposes a voter change while the
	// previous one is not committed, so two configurations two voters apart
	// may both be in force and their majorities need not overlap.
	MistakeSecondVoterChange = plant.SecondVoterChange
	// MistakeAckBeforeDurable: a peer's fsync returns before its entries
	// are durable (they become so only at its next write), or an Async
	// Ready's acknowledgements go before its write ends, so it
	// acknowledges entries a crash loses.
	MistakeAckBeforeDurable = plant.AckBeforeDurable
	// MistakeEpochBeforeEntries: a peer writes currentEpoch before the
	// synced entries of the same Ready, so a crash between the two leaves
	// it claiming an epoch whose history it lacks (and its vote wins).
	MistakeEpochBeforeEntries = plant.EpochBeforeEntries
	// MistakeLeaderSelfBeforeFsync: a leader tells its core its write is
	// durable (zab.Peer.Persisted) as soon as it started it, or, with a
	// slow disk, advances a Ready that is not Async before its write is
	// done: the core counts it in the commit quorum while its own write is
	// still in flight, which a crash then loses.
	MistakeLeaderSelfBeforeFsync = plant.LeaderSelfBeforeFsync
	// MistakeTruncateBeforeSnapshot: a peer installing a SNAP empties its
	// log before the snapshot is durable, so a crash between the two loses
	// history it no longer has anywhere.
	MistakeTruncateBeforeSnapshot = plant.TruncateBeforeSnapshot
	// MistakeCountEmptyVoters: a member counts the vote and the
	// acknowledgements of a voter without history (a never-synced voter,
	// or one that lost its disk), as a bootstrapping peer may; with the
	// voter that alone holds some acknowledged writes down, a stale member
	// and a voter that lost its disk then elect a leader without them.
	MistakeCountEmptyVoters = plant.CountEmptyVoters
	// MistakeApplyBeforeDurable: the executor applies committed entries
	// that arrived in the Ready being persisted before the write, so the
	// state machine reflects entries the peer's own log does not hold yet.
	MistakeApplyBeforeDurable = plant.ApplyBeforeDurable
	// MistakeLeaderApplyBeforeDurable: a leader applies entries its
	// followers committed before its own write of them (an Async Ready's)
	// is durable.
	MistakeLeaderApplyBeforeDurable = plant.LeaderApplyBeforeDurable
	// MistakeReproposeForwards: a leader proposes every copy of a
	// forwarded write it receives (the learner's retransmissions, a
	// network's duplicates, a late copy), not once per request, so one
	// Propose call commits twice: what coord's dedup rule must never see
	// after it forgot a write's result (proposal.Finished).
	MistakeReproposeForwards = plant.ReproposeForwards
)

// plantedStorage carries a core mistake into the Peer built on it
// (plant.Carrier).
type plantedStorage struct {
	*zab.MemoryStorage
	m Mistake
}

func (p plantedStorage) PlantedMistake() Mistake { return p.m }
