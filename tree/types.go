package tree

import "fmt"

// Stat is a znode's metadata, field for field ZooKeeper's Stat.
type Stat struct {
	Czxid          int64 `msgpack:"cz"` // zxid of the create
	Mzxid          int64 `msgpack:"mz"` // zxid of the last data change
	Pzxid          int64 `msgpack:"pz"` // zxid of the last child create or delete
	Ctime          int64 `msgpack:"ct"` // create time, ms since the Unix epoch (leader's clock)
	Mtime          int64 `msgpack:"mt"` // last data change time, ms since the Unix epoch
	Version        int32 `msgpack:"v"`  // number of data changes
	Cversion       int32 `msgpack:"cv"` // number of child creates and deletes
	Aversion       int32 `msgpack:"av"` // number of ACL changes (always 0: coord has no ACLs)
	EphemeralOwner int64 `msgpack:"eo"` // owning session of an ephemeral node, else 0
	DataLength     int32 `msgpack:"dl"` // length of the data in bytes
	NumChildren    int32 `msgpack:"nc"` // number of children
}

// CreateMode is the kind of node a create makes.
type CreateMode uint8

// The create modes of ZooKeeper.
const (
	// Persistent nodes live until deleted.
	Persistent CreateMode = iota
	// Ephemeral nodes are deleted when their session ends; they cannot have children.
	Ephemeral
	// PersistentSequential is Persistent with a %010d suffix from the parent's cversion.
	PersistentSequential
	// EphemeralSequential is Ephemeral with a %010d suffix.
	EphemeralSequential
	// Container nodes are removed by the reaper once their last child is gone.
	Container
	// PersistentWithTTL nodes are removed by the reaper when childless and
	// unmodified for longer than their TTL.
	PersistentWithTTL
	// PersistentSequentialWithTTL is PersistentWithTTL with a %010d suffix.
	PersistentSequentialWithTTL
)

var modeNames = [...]string{"persistent", "ephemeral", "persistent-sequential", "ephemeral-sequential", "container", "persistent-ttl", "persistent-sequential-ttl"}

// String returns the mode's name.
func (m CreateMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("CreateMode(%d)", uint8(m))
}

// Valid reports whether m is a known mode.
func (m CreateMode) Valid() bool { return int(m) < len(modeNames) }

// IsSequential reports whether nodes of mode m get a sequence suffix.
func (m CreateMode) IsSequential() bool {
	return m == PersistentSequential || m == EphemeralSequential || m == PersistentSequentialWithTTL
}

// IsEphemeral reports whether nodes of mode m belong to a session.
func (m CreateMode) IsEphemeral() bool { return m == Ephemeral || m == EphemeralSequential }

// IsTTL reports whether nodes of mode m expire after a TTL.
func (m CreateMode) IsTTL() bool { return m == PersistentWithTTL || m == PersistentSequentialWithTTL }

// MaxTTL is the longest TTL accepted, in milliseconds (ZooKeeper's limit).
const MaxTTL = int64(0xFFFFFFFFFF)

// OpType says what an Op does.
type OpType uint8

// Op types. Create, Delete, SetData and Check may appear inside a Multi.
const (
	OpCreate OpType = iota + 1
	OpDelete
	OpSetData
	OpCheck
	OpMulti
	OpCreateSession
	OpCloseSession
	// OpReap deletes a container or TTL node only if it is still eligible
	// at the txn's time; the leader's reaper proposes it.
	OpReap
)

var opNames = [...]string{"", "create", "delete", "setData", "check", "multi", "createSession", "closeSession", "reap"}

// String returns the op type's name.
func (t OpType) String() string {
	if int(t) < len(opNames) && t != 0 {
		return opNames[t]
	}
	return fmt.Sprintf("OpType(%d)", uint8(t))
}

// Op is one operation on the tree. Which fields matter depends on Type:
//
//	OpCreate:        Path, Data, Mode, TTL (ms, TTL modes only)
//	OpDelete:        Path, Version (-1 = any)
//	OpSetData:       Path, Data, Version (-1 = any)
//	OpCheck:         Path, Version (-1 = any: only existence is checked)
//	OpMulti:         Ops (Create, Delete, SetData, Check only), all or nothing
//	OpCreateSession: Session, Timeout (ms)
//	OpCloseSession:  Session (its ephemerals are deleted in the same txn)
//	OpReap:          Path
type Op struct {
	Type    OpType     `msgpack:"t"`
	Path    string     `msgpack:"p,omitempty"`
	Data    []byte     `msgpack:"d,omitempty"`
	Mode    CreateMode `msgpack:"m,omitempty"`
	TTL     int64      `msgpack:"l,omitempty"`
	Version int32      `msgpack:"v,omitempty"`
	Session int64      `msgpack:"s,omitempty"`
	Timeout int32      `msgpack:"o,omitempty"`
	Ops     []Op       `msgpack:"x,omitempty"`
}

// Txn is one committed transaction: an op with the zxid, time and session the
// leader gave it. Applying the same txns in zxid order to equal trees yields
// equal trees: every check (versions, existence, sessions) is made at apply
// time from the tree's own state.
//
// A txn with a ReqID is idempotent: if a txn with the same ReqID was
// applied within DedupWindow before it (successfully or not), the op is not
// applied again and the first result is returned (with Duplicate set). Proposers reuse a ReqID only to
// retry a write whose outcome they could not learn, so a sequential create
// never leaves an orphan and no write applies twice.
type Txn struct {
	Zxid    int64  `msgpack:"z"`
	Time    int64  `msgpack:"c"`           // ms since the Unix epoch, the leader's clock
	Session int64  `msgpack:"s,omitempty"` // issuing session (owner of ephemerals); 0 = none
	ReqID   uint64 `msgpack:"r,omitempty"` // proposer's unique request id; 0 = none
	// MaxData is the most data a node may get from this txn, decided by
	// its proposer (the cluster's configured limit) and carried here so
	// every replica applies the same rule whatever its own configuration.
	// Zero, or anything above MaxDataLimit, means MaxDataLimit.
	MaxData int32 `msgpack:"m,omitempty"`
	// Since is set on a retry of a write whose first attempt's outcome
	// its proposer could not learn: a zxid the proposer had applied
	// before that first attempt, so the first attempt, if it was applied
	// at all, was applied after Since. If dedup has since forgotten a
	// result above Since, the retry cannot tell whether its first attempt
	// was applied: it fails with ErrRetryForgotten instead of applying a
	// second time. Zero on a first attempt (zab's zxids start above 1<<32,
	// so a proposer that had applied nothing passes 1).
	Since int64 `msgpack:"si,omitempty"`
	Op    Op    `msgpack:"o"`
	// Forget lists ReqIDs whose results the proposer will never ask for
	// again: writes applied by their only attempt, whose result reached
	// it (see proposal.Request.Forget). Their remembered results are
	// dropped before the txn is applied, on every replica alike (the
	// digest follows), so dedup holds only writes a retry may still
	// reach, rather than every write of DedupWindow. Forgetting an id
	// not remembered does nothing.
	Forget []uint64 `msgpack:"fg,omitempty"`
}

// dataLimit is the limit on node data that applies to txn.
func (txn *Txn) dataLimit() int {
	if txn.MaxData <= 0 || txn.MaxData > MaxDataLimit {
		return MaxDataLimit
	}
	return int(txn.MaxData)
}

// Result is the outcome of applying one op. For a multi, Results holds one
// entry per op as ZooKeeper reports them: if the multi failed, Err is the first
// failing op's error, ops before it report a nil Err (they were rolled back),
// the failing op its error, and ops after it ErrRuntimeInconsistency.
type Result struct {
	Type    OpType
	Err     error
	Path    string // created path (with its sequence suffix)
	Stat    Stat   // the node's stat after a create or setData
	Results []Result
	// Session is the session a successful createSession created, so that a
	// retried one (Duplicate) still names it.
	Session int64
	// Duplicate is set when the txn's ReqID had already been applied: this
	// is that first result and nothing was applied now.
	Duplicate bool
}

// EventType is the kind of change a watch event reports.
type EventType uint8

// Event types, as ZooKeeper's.
const (
	EventNodeCreated EventType = iota + 1
	EventNodeDeleted
	EventNodeDataChanged
	EventNodeChildrenChanged
)

var eventNames = [...]string{"", "NodeCreated", "NodeDeleted", "NodeDataChanged", "NodeChildrenChanged"}

// String returns the event type's name.
func (e EventType) String() string {
	if int(e) < len(eventNames) && e != 0 {
		return eventNames[e]
	}
	return fmt.Sprintf("EventType(%d)", uint8(e))
}

// Event is one watch notification.
type Event struct {
	Type EventType
	Path string
	Zxid int64
}
