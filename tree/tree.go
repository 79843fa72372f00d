// Package tree is coord's znode data model: ZooKeeper's hierarchical
// namespace of nodes with data and Stat, node kinds (persistent, ephemeral,
// sequential, container, TTL), watches, all-or-nothing multi, sessions'
// ephemerals, point-in-time snapshots and an incremental digest.
//
// A Tree changes only through Apply, called by one goroutine with txns in
// strictly increasing zxid order; every check an op makes (versions,
// existence, sessions) is made at apply time from the tree's own state, so
// applying the same txns to equal trees yields equal trees and equal digests.
// Reads may run concurrently with Apply and with each other. The tree knows
// nothing of networks, disks or clocks: time comes in with each txn.
package tree

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
)

// DefaultMaxDataSize is the default limit on a node's data, 1 MiB as in ZooKeeper.
const DefaultMaxDataSize = 1 << 20

// MaxDataLimit is the most data a node may ever hold, whatever a txn
// allows (see Txn.MaxData). It bounds every snapshot frame, so any replica
// can read back any snapshot.
const MaxDataLimit = 7 << 20

// MaxMultiOps is the most ops one Multi may hold; a larger one fails as a
// whole with ErrRequestTooLarge.
const MaxMultiOps = 1024

// Options configure a Tree. The zero value is usable. There is no limit on
// data here: each txn carries the one its proposer decided (Txn.MaxData),
// so replicas configured differently still apply the same results.
type Options struct {
	// WatchHistory is how many recent events the tree keeps so a persistent
	// watch can resume from a zxid (AddWatchFrom); 0 means
	// DefaultWatchHistory, negative keeps none.
	WatchHistory int
}

// DefaultWatchHistory is the default number of recent events kept.
const DefaultWatchHistory = 16384

// Tree is an in-memory znode tree. See the package documentation for the
// concurrency contract.
type Tree struct {
	mu       sync.RWMutex
	root     *node
	count    int   // nodes, the root included
	lastZxid int64 // zxid of the last applied txn
	lastTime int64 // largest txn time applied: txn times never go back
	digest   uint64
	sessions map[int64]*sessionState
	// reapable holds the paths of container and TTL nodes, the only nodes
	// the reaper has to look at.
	reapable map[string]struct{}
	// limits bound snapshot frames, written and read (tests lower them).
	limits frameLimits
	// dedup remembers the results of recent successful txns with a ReqID,
	// oldest first in dedupOrder, for DedupWindow of txn time.
	// An entry forgotten before it expired (Txn.Forget) is dead: out of
	// dedup but still in dedupOrder, counted by dedupDead.
	dedup      map[uint64]*dedupEntry
	dedupOrder []*dedupEntry
	dedupDead  int
	resEnc     resultEncoder // encodes what dedup keeps
	// dedupFloor is the largest zxid of a result dedup has forgotten: a
	// retry whose first attempt may lie at or below it cannot be told
	// from a new request (see Txn.Since).
	dedupFloor int64

	// Per-apply scratch, guarded by mu (write).
	events []Event
	undo   []undoRec
	inTxn  bool // recording undo records (inside a multi)

	watches watchTable
	history eventRing  // recent events, guarded by mu
	snap    *snapState // non-nil while a snapshot runs; guarded by mu
	snapMu  sync.Mutex // one snapshot at a time
}

// node is one znode. Its path is not stored (it is known while walking), only
// its name; children are kept sorted by name, which makes Children a copy
// and costs less memory per znode than a map. Kind is encoded in owner, as
// ZooKeeper encodes it in ephemeralOwner. The children hang off a pointer,
// nil for a leaf (most znodes), so the layout is 96 bytes, not 112 with
// the slice in place (issue 13: 1.6 MB per 100k znodes).
type node struct {
	name                string // last path segment, "" for the root
	czxid, mzxid, pzxid int64
	ctime, mtime        int64
	owner               int64 // >0 ephemeral session; 0 persistent; ownerContainer; ttlMarker|ttl
	version, cversion   int32
	data                string   // replaced on change, never modified in place
	kids                *[]*node // sorted by name; nil when there are none
}

// children returns the node's children, sorted by name (nil for a leaf).
// Callers never modify the slice.
func (n *node) children() []*node {
	if n.kids == nil {
		return nil
	}
	return *n.kids
}

// setChildren makes kids the node's children (nil if empty).
func (n *node) setChildren(kids []*node) {
	switch {
	case len(kids) == 0:
		n.kids = nil
	case n.kids == nil:
		// A new cell only here: taking kids' address would move the
		// parameter to the heap on every call (a restore of 100,000
		// znodes made 100,000 of them).
		n.kids = new([]*node)
		*n.kids = kids
	default:
		*n.kids = kids
	}
}

// find returns the index of the child called name, or where it would go.
func (n *node) find(name string) (int, bool) {
	return slices.BinarySearchFunc(n.children(), name, func(c *node, name string) int {
		return strings.Compare(c.name, name)
	})
}

func (n *node) child(name string) *node {
	if i, ok := n.find(name); ok {
		return n.children()[i]
	}
	return nil
}

// addChild links c under n; it reports false if the name is taken.
func (n *node) addChild(c *node) bool {
	i, ok := n.find(c.name)
	if ok {
		return false
	}
	n.setChildren(slices.Insert(n.children(), i, c))
	return true
}

func (n *node) removeChild(name string) {
	if i, ok := n.find(name); ok {
		n.setChildren(slices.Delete(n.children(), i, i+1))
	}
}

const (
	ownerContainer = math.MinInt64
	ttlMarker      = int64(-1) << 56 // 0xFF in the top byte, as ZooKeeper's TTL ephemeral type
	ttlMask        = int64(1)<<56 - 1
)

func (n *node) isEphemeral() bool { return n.owner > 0 }
func (n *node) isContainer() bool { return n.owner == ownerContainer }
func (n *node) isTTL() bool       { return n.owner != ownerContainer && n.owner&ttlMarker == ttlMarker }
func (n *node) ttl() int64        { return n.owner & ttlMask }

// lastChange is the zxid of the newest change to the node's data, stat or
// children; every mutation sets mzxid or pzxid to the mutating txn's zxid.
func (n *node) lastChange() int64 { return max(n.mzxid, n.pzxid) }

func (n *node) stat() Stat {
	s := Stat{
		Czxid: n.czxid, Mzxid: n.mzxid, Pzxid: n.pzxid,
		Ctime: n.ctime, Mtime: n.mtime,
		Version: n.version, Cversion: n.cversion,
		DataLength:  int32(len(n.data)),
		NumChildren: int32(len(n.children())),
	}
	if n.isEphemeral() {
		s.EphemeralOwner = n.owner
	}
	return s
}

type sessionState struct {
	timeout    int32
	ephemerals map[string]struct{}
}

// SessionInfo describes a session known to the tree.
type SessionInfo struct {
	ID      int64 `msgpack:"i"`
	Timeout int32 `msgpack:"t"` // negotiated timeout in ms
}

// New returns a tree holding only the root node "/".
func New(opts Options) *Tree {
	t := &Tree{
		root:     &node{},
		count:    1,
		sessions: make(map[int64]*sessionState),
		reapable: make(map[string]struct{}),
		dedup:    make(map[uint64]*dedupEntry),
		limits:   defaultFrameLimits,
	}
	t.watches.init()
	t.history.init(opts.WatchHistory)
	t.digest = nodeHash("/", t.root)
	return t
}

// LastZxid returns the zxid of the last applied txn (0 before any).
func (t *Tree) LastZxid() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lastZxid
}

// Digest returns a hash of the whole tree (every node's path, stat and data,
// and the session table), maintained incrementally. Equal trees have equal
// digests.
func (t *Tree) Digest() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.digest
}

// NodeCount returns the number of nodes, the root included.
func (t *Tree) NodeCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// lookup returns the node at a valid path, or nil.
func (t *Tree) lookup(p string) *node { return lookupFrom(t.root, p) }

// lookupFrom walks from root down a valid path.
func lookupFrom(root *node, p string) *node {
	n := root
	for i := 1; i < len(p) && n != nil; {
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		n = n.child(p[i:j])
		i = j + 1
	}
	return n
}

// readNode runs read on the node at path under the read lock, after setting
// a one-shot watch of kind for w (if not nil) in the same atomic step. It
// fails with ErrNoNode, setting no watch, if the node does not exist.
func (t *Tree) readNode(path string, w Watcher, kind WatchKind, read func(*node)) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := t.lookup(path)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrNoNode, path)
	}
	if w != nil {
		t.watches.add(path, w, kind)
	}
	read(n)
	return nil
}

// Get returns a copy of the data and the stat of the node at path (nil data
// if it has none). If w is not nil and the node exists, a one-shot data watch
// is set for w in the same atomic step.
func (t *Tree) Get(path string, w Watcher) ([]byte, Stat, error) {
	var data string
	var st Stat
	if err := t.readNode(path, w, WatchData, func(n *node) { data, st = n.data, n.stat() }); err != nil {
		return nil, Stat{}, err
	}
	if data == "" {
		return nil, st, nil
	}
	return []byte(data), st, nil // copied outside the lock
}

// Exists returns the stat of the node at path and whether it exists. If w is
// not nil a one-shot watch is set whether or not the node exists: it fires on
// the node's creation, data change or deletion.
func (t *Tree) Exists(path string, w Watcher) (Stat, bool, error) {
	if err := ValidatePath(path); err != nil {
		return Stat{}, false, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if w != nil {
		t.watches.add(path, w, WatchData)
	}
	n := t.lookup(path)
	if n == nil {
		return Stat{}, false, nil
	}
	return n.stat(), true, nil
}

// Children returns the sorted names of the children of the node at path and
// its stat. If w is not nil and the node exists, a one-shot child watch is set.
func (t *Tree) Children(path string, w Watcher) ([]string, Stat, error) {
	var names []string
	var st Stat
	err := t.readNode(path, w, WatchChildren, func(n *node) {
		names = make([]string, len(n.children()))
		for i, c := range n.children() {
			names[i] = c.name
		}
		st = n.stat()
	})
	if err != nil {
		return nil, Stat{}, err
	}
	return names, st, nil
}

// CountDescendants returns the number of nodes below path (ZooKeeper's
// getAllChildrenNumber).
func (t *Tree) CountDescendants(path string) (int, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := t.lookup(path)
	if n == nil {
		return 0, fmt.Errorf("%w: %s", ErrNoNode, path)
	}
	return countBelow(n), nil
}

func countBelow(n *node) int {
	c := len(n.children())
	for _, ch := range n.children() {
		if len(ch.children()) > 0 {
			c += countBelow(ch)
		}
	}
	return c
}

// Ephemerals returns the sorted paths of the ephemeral nodes owned by session.
func (t *Tree) Ephemerals(session int64) []string {
	t.mu.RLock()
	s := t.sessions[session]
	var out []string
	if s != nil {
		out = make([]string, 0, len(s.ephemerals))
		for p := range s.ephemerals {
			out = append(out, p)
		}
	}
	t.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Session returns the timeout (ms) of a session the tree knows.
func (t *Tree) Session(id int64) (timeout int32, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.sessions[id]
	if !ok {
		return 0, false
	}
	return s.timeout, true
}

// SessionCount returns the number of sessions the tree knows.
func (t *Tree) SessionCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.sessions)
}

// Sessions returns the sessions known to the tree, sorted by id.
func (t *Tree) Sessions() []SessionInfo {
	t.mu.RLock()
	out := make([]SessionInfo, 0, len(t.sessions))
	for id, s := range t.sessions {
		out = append(out, SessionInfo{ID: id, Timeout: s.timeout})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmpInt64(a.ID, b.ID) })
	return out
}

// ReapCandidates returns, sorted, the paths of container nodes that are empty
// after having had children and of TTL nodes that are childless and were last
// modified more than their TTL before now (ms). The leader proposes an OpReap
// for each; the op re-checks eligibility when applied.
func (t *Tree) ReapCandidates(now int64) []string {
	t.mu.RLock()
	var out []string
	for p := range t.reapable {
		if n := t.lookup(p); n != nil && reapable(n, now) {
			out = append(out, p)
		}
	}
	t.mu.RUnlock()
	sort.Strings(out)
	return out
}

func reapable(n *node, now int64) bool {
	if len(n.children()) > 0 {
		return false
	}
	switch {
	case n.isContainer():
		return n.cversion > 0
	case n.isTTL():
		return now-n.mtime > n.ttl()
	}
	return false
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
