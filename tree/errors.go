package tree

import "errors"

// Sentinel errors returned by the tree. Each is comparable with errors.Is; some
// are wrapped with detail (the offending path, the limit that was exceeded).
var (
	// ErrNoNode means the node (or, for a create, its parent) does not exist.
	ErrNoNode = errors.New("tree: node does not exist")
	// ErrNodeExists means a create named a node that already exists.
	ErrNodeExists = errors.New("tree: node already exists")
	// ErrBadVersion means the expected version did not match the node's version.
	ErrBadVersion = errors.New("tree: version does not match")
	// ErrNotEmpty means a delete named a node that still has children.
	ErrNotEmpty = errors.New("tree: node has children")
	// ErrNoChildrenForEphemerals means a create named an ephemeral node as parent.
	ErrNoChildrenForEphemerals = errors.New("tree: ephemeral nodes cannot have children")
	// ErrInvalidPath means a path broke ZooKeeper's path rules; the wrapping
	// error says which rule and where.
	ErrInvalidPath = errors.New("tree: invalid path")
	// ErrDataTooLarge means node data exceeded the configured maximum size.
	ErrDataTooLarge = errors.New("tree: data too large")
	// ErrBadArguments means an operation's arguments are invalid (a bad TTL,
	// a delete of the root, an unknown create mode or op type, ...).
	ErrBadArguments = errors.New("tree: bad arguments")
	// ErrSessionExpired means the txn's session does not exist (never created,
	// closed or expired).
	ErrSessionExpired = errors.New("tree: session expired")
	// ErrRuntimeInconsistency is the result of every op after the failing op
	// of a multi: it was not attempted.
	ErrRuntimeInconsistency = errors.New("tree: not attempted, an earlier op of the multi failed")
	// ErrNoWatcher means RemoveWatches found nothing to remove.
	ErrNoWatcher = errors.New("tree: no such watcher")
	// ErrNotEligible means a reap op found the node no longer eligible for
	// removal (a child appeared, the data changed, ...); nothing was deleted.
	ErrNotEligible = errors.New("tree: node not eligible for reaping")
	// ErrRequestTooLarge means a request exceeded a limit on its whole
	// size: more than MaxMultiOps ops in a multi, or (from coord) an
	// encoded request above what one log record or frame holds.
	ErrRequestTooLarge = errors.New("tree: request too large")
	// ErrRetryForgotten means a retried write (Txn.Since) was not applied
	// because its first attempt may have been applied and its result
	// forgotten since (the dedup table is bounded): its outcome is
	// unknown, and applying it again could apply it twice.
	ErrRetryForgotten = errors.New("tree: retry's first attempt may have been applied and forgotten")
	// ErrZxidOrder means a txn's zxid was not greater than the last applied one.
	ErrZxidOrder = errors.New("tree: txn zxid not increasing")
)
