// Package zab replicates an ordered log of opaque transactions across an
// ensemble the way ZooKeeper does: fast leader election, then Zab 1.0
// discovery, synchronisation (DIFF, TRUNC or SNAP) and broadcast.
//
// # The core
//
// Peer is a deterministic state machine in the style of etcd-io/raft's
// RawNode. It starts no goroutine, reads no clock, draws randomness only
// from Config.Rand and does no I/O. A driver owns it on one goroutine and
// loops:
//
//	select: tick → p.Tick(); frame → p.Step(m); write → p.Propose(id, data);
//	        read barrier → p.Sync(id)
//	for p.HasReady() {
//	    rd := p.Ready()
//	    persist rd.Snapshot, rd.Truncate, rd.Entries, rd.HardState (one fsync)
//	    send rd.Messages
//	    restore rd.Snapshot, apply rd.CommittedEntries in order
//	    complete rd.Proposals and rd.Syncs
//	    p.Advance()
//	}
//
// Messages must only leave after the persistence of the same Ready: an ACK
// or a NEWLEADER acknowledgement in Messages promises the entries and
// epochs of that Ready are durable. Persisting a whole Ready in one write is
// the group commit. No Peer method may be called between Ready and Advance.
//
// A Ready marked Async (an established leader's, or a serving learner's,
// that persists nothing but entries) may instead have its entries written
// after Advance, on another goroutine, while the driver goes on stepping:
// its acknowledgements go once the write is durable, its other messages at
// once, and the driver reports the durable end with Peer.Persisted. The
// core counts itself in a quorum and applies entries only up to what it
// knows durable. Every other Ready waits for those writes first. Executor
// and an AsyncLog do this; Node writes its log this way (ZooKeeper's
// SyncRequestProcessor is the model).
//
// If the transport refuses a message for lack of queue space, the driver
// calls ReportUnreachable after Advance: the leader stops streaming to that
// peer until it answers, then resends from its acknowledgement.
//
// Storage is the core's read-only view of the durable state; the driver
// writes it from Ready through a LogWriter, and Executor carries out a
// Ready in the required order for any driver (MemoryStorage is a complete
// in-memory implementation of both). To take a snapshot, the driver records the state
// machine's bytes at an applied zxid in its storage and may then compact the
// log up to it; a leader serves SNAP from the storage's latest snapshot, so
// the core never sees the state machine itself.
//
// # Requests
//
// Propose and Sync take a caller-chosen request id (unique and increasing
// per peer). A learner forwards them to its leader and retransmits until
// answered; the leader deduplicates. Outcomes come back in Ready.Proposals
// and Ready.Syncs once the local state machine has applied what they refer
// to, so a write is readable locally when it completes, and a completed Sync
// makes the next local read linearizable: the leader answers a Sync only
// after a quorum confirmed it still leads. A write whose fate cannot be
// known fails with ErrOutcomeUnknown, never a guess.
//
// # Voters without history
//
// A voter whose current epoch is zero (a new node, one whose data
// directory was lost, one that called Resync) counts for nothing at a
// member, neither its vote nor its acknowledgements, until an established
// leader has synced it: otherwise a stale member and a voter that lost its
// disk could elect a leader without the writes the lost disk had
// acknowledged. A voter that never synced cannot be told from one that
// lost its disk, so while one voter of three is down and another has never
// synced, the ensemble elects nobody until a voter holding the history
// returns. To keep that window short, a leader establishing an epoch waits
// (at most InitLimit/2 after its election) for the voters that may be
// empty to sync before it serves (bootstrapping: every voter), and its
// snapshot streams serve voters before observers.
//
// # Testing
//
// Package zabtest's Sim runs whole ensembles on a seeded, single-threaded
// network with a virtual clock (drops, delays, duplicates, reordering,
// partitions, crashes that keep only persisted state); every run replays
// from its seed. It carries out each Ready with the Executor Node uses,
// over an in-memory LogWriter, so it checks the order that ships.
package zab
