// Package plant lets zab's simulator (zab/zabtest) plant known protocol
// mistakes in a Peer, to show that the simulator's checks catch them. Only
// packages under zab can import it, so production code cannot switch a
// mistake on: a Peer takes one only from a Storage that implements Carrier,
// which needs this package's types.
package plant

// Mistake is a known protocol or persistence error. The zero value is the
// correct protocol.
type Mistake uint8

// Mistakes. The core (package zab) plants DiffWithoutTrunc,
// SecondVoterChange, CountEmptyVoters, LeaderApplyBeforeDurable and
// ReproposeForwards, and its Executor
// ApplyBeforeDurable (taken from a LogWriter that is a Carrier); the others
// are planted by the simulator's driver and disk (zab/zabtest), never by
// the core.
const (
	None Mistake = iota
	// DiffWithoutTrunc: a leader answers a learner whose last zxid is not
	// in its log with a DIFF instead of a TRUNC.
	DiffWithoutTrunc
	// SecondVoterChange: a leader proposes a voter change while the
	// previous one is not committed.
	SecondVoterChange
	// AckBeforeDurable: a driver sends a Ready's acknowledgements before
	// its entries are durable (its fsync returns before the data is safe).
	AckBeforeDurable
	// EpochBeforeEntries: a driver writes currentEpoch before the synced
	// entries of the same Ready.
	EpochBeforeEntries
	// LeaderSelfBeforeFsync: a leader's driver tells the core its own
	// write is durable (Peer.Persisted, or Advance), so that it counts
	// itself in a quorum, before it is.
	LeaderSelfBeforeFsync
	// TruncateBeforeSnapshot: a driver empties the log for a SNAP before
	// the snapshot is durable.
	TruncateBeforeSnapshot
	// CountEmptyVoters: a member counts the votes and acknowledgements of
	// a voter that holds no history (no current epoch), as only a
	// bootstrapping peer may: the lost-disk rule undone.
	CountEmptyVoters
	// ApplyBeforeDurable: the executor applies a Ready's committed entries
	// (and completes their writes) before the Ready's appended entries they
	// include are durable in the peer's own log.
	ApplyBeforeDurable
	// LeaderApplyBeforeDurable: a leader hands out for applying committed
	// entries (committed by its followers alone) that its own log does not
	// hold durably yet (Ready.Async).
	LeaderApplyBeforeDurable
	// ReproposeForwards: a leader proposes every copy of a forwarded write
	// it receives (a retransmission, a duplicate, a late one), not once
	// per request: one Propose call is committed twice.
	ReproposeForwards
)

// Carrier is implemented by a Storage that carries a planted mistake into
// the Peer built on it.
type Carrier interface {
	PlantedMistake() Mistake
}

// String names m.
func (m Mistake) String() string {
	switch m {
	case None:
		return "none"
	case DiffWithoutTrunc:
		return "diff-without-trunc"
	case SecondVoterChange:
		return "second-voter-change"
	case AckBeforeDurable:
		return "ack-before-durable"
	case EpochBeforeEntries:
		return "epoch-before-entries"
	case LeaderSelfBeforeFsync:
		return "leader-self-before-fsync"
	case TruncateBeforeSnapshot:
		return "truncate-before-snapshot"
	case CountEmptyVoters:
		return "count-empty-voters"
	case ApplyBeforeDurable:
		return "apply-before-durable"
	case LeaderApplyBeforeDurable:
		return "leader-apply-before-durable"
	case ReproposeForwards:
		return "repropose-forwards"
	}
	return "unknown"
}
