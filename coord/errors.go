package coord

import (
	"errors"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/tcp"
)

// Errors returned by coord, comparable with errors.Is. The znode errors are
// the tree package's own values, so errors.Is works with either name.
var (
	// ErrNoNode: the node (or a create's parent) does not exist.
	ErrNoNode = tree.ErrNoNode
	// ErrNodeExists: a create named an existing node.
	ErrNodeExists = tree.ErrNodeExists
	// ErrBadVersion: the expected version did not match.
	ErrBadVersion = tree.ErrBadVersion
	// ErrNotEmpty: a delete named a node with children.
	ErrNotEmpty = tree.ErrNotEmpty
	// ErrNoChildrenForEphemerals: a create named an ephemeral as parent.
	ErrNoChildrenForEphemerals = tree.ErrNoChildrenForEphemerals
	// ErrInvalidPath: a path broke ZooKeeper's path rules.
	ErrInvalidPath = tree.ErrInvalidPath
	// ErrDataTooLarge: data exceeded Config.MaxDataSize.
	ErrDataTooLarge = tree.ErrDataTooLarge
	// ErrRequestTooLarge: a request as a whole is too large: its encoding
	// is above MaxRequestSize, or a Multi has more than MaxMultiOps ops. It
	// was refused before it reached the log; nothing was applied.
	ErrRequestTooLarge = tree.ErrRequestTooLarge
	// ErrBadArguments: an operation's arguments are invalid (a bad TTL, a
	// delete of the root, ...).
	ErrBadArguments = tree.ErrBadArguments
	// ErrSessionExpired: the session is gone (closed, expired or lost);
	// writes through it fail and its ephemerals are deleted.
	ErrSessionExpired = tree.ErrSessionExpired
	// ErrRuntimeInconsistency marks the ops of a failed multi after the
	// failing one: they were not attempted.
	ErrRuntimeInconsistency = tree.ErrRuntimeInconsistency
	// ErrHistoryCompacted: WatchFrom asked for events older than the node
	// keeps; read the current state and Watch from now.
	ErrHistoryCompacted = tree.ErrHistoryCompacted
	// ErrOutcomeUnknown: a write may or may not have been applied (its
	// context ended, or the leader was lost, after it was sent). Read to find
	// out; never assume either way.
	ErrOutcomeUnknown = zab.ErrOutcomeUnknown
	// ErrDataDir: Join refused Config.DataDir because it is incomplete or
	// inconsistent (a log without the snapshot or epochs it needs, epochs
	// behind the log, damaged files). The error names the directory and
	// what is wrong.
	ErrDataDir = zab.ErrDataDir
	// ErrDataDirMismatch: Join refused Config.DataDir because it belongs to
	// another node or another cluster; the error says which.
	ErrDataDirMismatch = zab.ErrDataDirMismatch
	// ErrDuplicateID: another live node of the cluster uses this node's
	// NodeID (a peer refused this node's replication connection for it):
	// Join fails with it, and this node takes no part.
	ErrDuplicateID = tcp.ErrDuplicateID
	// ErrNoQuorum: no leader is established (an election is running, or this
	// node cannot reach a quorum), so the write or Sync was not attempted.
	ErrNoQuorum = errors.New("coord: no leader with a quorum")
	// ErrClosed: the Node or Session is closed.
	ErrClosed = errors.New("coord: closed")
	// ErrFailed: the Node fail-stopped because its replication stopped (a
	// disk that is full or failing, say). Node.Err returns it wrapped around
	// the cause; every operation of the node and its sessions then fails
	// with that error. Close the node and start it again once the cause is
	// fixed.
	ErrFailed = errors.New("coord: node failed")
	// ErrReconfigInProgress: another voter change is not committed yet;
	// changes go one at a time.
	ErrReconfigInProgress = errors.New("coord: a voter change is still in progress")
	// ErrReconfigUnsafe: the voter change would leave a voter set without
	// a live quorum, so it was refused.
	ErrReconfigUnsafe = errors.New("coord: voter change would leave no live quorum")
	// ErrNotSynced: AddVoter named a node that is not running as an
	// observer synced with the leader.
	ErrNotSynced = errors.New("coord: node is not a synced observer")
	// ErrInvalidReconfig: the voter change makes no sense (the last voter,
	// node id 0).
	ErrInvalidReconfig = errors.New("coord: invalid voter change")
	// ErrWatchOverflow ends a persistent watch whose consumer fell more than
	// MaxWatchBacklog events behind; re-read and watch again.
	ErrWatchOverflow = errors.New("coord: watch consumer too slow, events dropped")
)
