package zab

import "errors"

// Sentinel errors of package zab, comparable with errors.Is.
var (
	// ErrQueueFull is returned by Transport.Send when the peer's queue is full.
	ErrQueueFull = errors.New("zab: peer send queue full")
	// ErrUnknownPeer is returned by Transport.Send for a peer with no address,
	// and by Peer.Step for a message from or to a peer outside the ensemble.
	ErrUnknownPeer = errors.New("zab: unknown peer")

	// ErrNoLeader is returned by Propose and Sync when the peer does not
	// currently follow (or is not) an established leader. Nothing was sent:
	// the request certainly had no effect, and the caller may retry later.
	ErrNoLeader = errors.New("zab: no established leader")
	// ErrProposalDropped reports a proposal that certainly never commits: the
	// leader refused it, or the committed history moved past its zxid without
	// it.
	ErrProposalDropped = errors.New("zab: proposal dropped")
	// ErrOutcomeUnknown reports a proposal whose fate the peer cannot learn
	// (it lost its leader before hearing the assigned zxid, or a snapshot
	// covered the zxid). It may or may not have committed.
	ErrOutcomeUnknown = errors.New("zab: proposal outcome unknown")
	// ErrLeaderLost reports a Sync that could not complete because the peer
	// or its leader stopped leading. Retrying is safe.
	ErrLeaderLost = errors.New("zab: leader lost before sync completed")
	// ErrEntryTooLarge is returned by Propose for data above MaxEntrySize.
	// Nothing was sent.
	ErrEntryTooLarge = errors.New("zab: entry too large")
	// ErrBadMessage is returned by Peer.Step for a malformed message.
	ErrBadMessage = errors.New("zab: malformed message")
	// ErrDataDir reports a data directory that is incomplete or
	// inconsistent (history without the epochs or the snapshot it needs,
	// epochs behind the history): the node refuses to start on it.
	ErrDataDir = errors.New("zab: data directory incomplete or inconsistent")
	// ErrDataDirMismatch reports a data directory that belongs to another
	// node or another cluster.
	ErrDataDirMismatch = errors.New("zab: data directory belongs to another node or cluster")
	// ErrUnavailable is returned by Storage.Entries for entries whose data
	// the storage no longer serves itself (MemoryStorage.Release): the core
	// asks its driver to read them back (Ready.Fetch) and goes on with
	// them when they arrive (Peer.Fetched).
	ErrUnavailable = errors.New("zab: entries must be read back")
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("zab: invalid config")
)
