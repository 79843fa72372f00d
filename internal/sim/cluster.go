package sim

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/zabtest"
)

// replica is a node's real znode tree, fed the entries its zab state
// machine applied, in order.
type replica struct {
	id      zab.PeerID
	tree    *tree.Tree
	applied zab.Zxid
	// snapAt is the zxid of the last snapshot the tree was restored from.
	snapAt zab.Zxid
	// last is the result of the entry applied last (at applied): the
	// state machine's response for it (see response).
	last tree.Result
}

// cluster wraps a zabtest.Sim and keeps one tree per peer in step with the
// peer's state machine. zabtest.Sim applies committed entries to a digest; the
// cluster reads the same entries back from the peer's storage right after
// each simulator step and applies them to the tree, so every tree sees
// exactly the entries, in the order, that zab handed to the state machine.
// A zab snapshot holds the Sim's digest, not a tree: when a peer restores
// one (restart or SNAP), its tree is rebuilt at the snapshot's zxid from the
// applied history and goes through the tree's own snapshot and restore.
type cluster struct {
	s    *zabtest.Sim
	reps map[zab.PeerID]*replica
	// digests holds the tree digest right after each zxid, as first seen:
	// trees that apply the same entries must agree.
	digests map[zab.Zxid]uint64
	// reqs records the ReqID of every applied entry, for the lost-write check.
	reqs map[zab.Zxid]uint64
	// returned maps the ReqIDs of calls that returned a result to the zxid
	// of that result: none of them may take effect later.
	returned map[uint64]zab.Zxid
	// outcome is every applied entry's result, as first applied.
	outcome map[zab.Zxid]tree.Result
	// log is the applied history, every entry as first applied by any peer.
	log map[zab.Zxid]zab.Entry
	// skew is each peer's wall clock minus the virtual time: the clock its
	// leader stamp (proposal.NewStamper) reads. A clock fault steps it.
	skew map[zab.PeerID]int64
	// restarting is the peer inside zabtest.Sim.Restart, if any.
	restarting zab.PeerID
	err        error
}

func newCluster(cfg zabtest.SimConfig) (*cluster, error) {
	c := &cluster{reps: map[zab.PeerID]*replica{}, digests: map[zab.Zxid]uint64{}, reqs: map[zab.Zxid]uint64{},
		outcome: map[zab.Zxid]tree.Result{}, returned: map[uint64]zab.Zxid{},
		log: map[zab.Zxid]zab.Entry{}, skew: map[zab.PeerID]int64{}}
	// Every leader stamps the writes it appends with its wall clock, as
	// coord's does.
	cfg.Stamp = func(id zab.PeerID) func([]byte) []byte {
		return proposal.NewStamper(func() time.Time { return c.wall(id) })
	}
	// Each peer's tree is its state machine: what it returns for an entry
	// is the response zab hands to the entry's proposer.
	cfg.Apply = c.response
	s, err := zabtest.NewSim(cfg)
	if err != nil {
		return nil, err
	}
	c.s = s
	for _, id := range s.IDs() {
		c.reps[id] = &replica{id: id, tree: tree.New(treeOptions)}
	}
	// A peer that crashes in the middle of a step (a disk fault) may have
	// applied entries and completed requests earlier in that step: its
	// tree catches up first, as coord's state machine would have.
	s.OnCrash = func(id zab.PeerID) { c.catchUp(c.reps[id]) }
	return c, nil
}

// wall is peer id's wall clock: virtual time (a unit is a millisecond)
// plus its skew.
func (c *cluster) wall(id zab.PeerID) time.Time { return time.UnixMilli(c.s.Now() + c.skew[id]) }

func (c *cluster) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// step runs one simulator event and brings every tree up to its state
// machine.
func (c *cluster) step() {
	c.s.Step()
	for _, id := range c.s.IDs() {
		c.catchUp(c.reps[id])
	}
}

func (c *cluster) catchUp(r *replica) {
	n := c.s.Node(r.id)
	if n.Peer == nil {
		return
	}
	ents, err := appliedEntries(r.id, n, func() zab.Zxid { return r.applied }, func(z zab.Zxid) { c.restore(r, z) })
	if err != nil {
		c.fail("%w", err)
		return
	}
	for _, e := range ents {
		c.apply(r, e)
	}
}

// appliedEntries returns the entries peer id's state machine applied after
// its tree's applied zxid. When the peer installed a SNAP past the tree, it
// first calls restore with the snapshot's zxid. An error is an
// inconsistency between the peer and its tree.
func appliedEntries(id zab.PeerID, n *zabtest.SimNode, applied func() zab.Zxid, restore func(zab.Zxid)) ([]zab.Entry, error) {
	last := n.SM.Last
	switch {
	case last == applied():
		return nil, nil
	case last < applied():
		return nil, fmt.Errorf("peer %d: state machine went back from %v to %v without a restart", id, applied(), last)
	}
	ents, err := n.Storage.Inspect(applied(), last)
	if errors.Is(err, zab.ErrCompacted) {
		// The peer installed a SNAP past what the tree applied.
		snap, _ := n.Storage.Snapshot()
		if snap.Zxid <= applied() || snap.Zxid > last {
			return nil, fmt.Errorf("peer %d: applied %v, tree at %v, but the snapshot is at %v", id, last, applied(), snap.Zxid)
		}
		restore(snap.Zxid)
		if applied() == last {
			return nil, nil
		}
		ents, err = n.Storage.Inspect(applied(), last)
	}
	if err != nil {
		return nil, fmt.Errorf("peer %d: reading applied entries (%v, %v]: %w", id, applied(), last, err)
	}
	if len(ents) == 0 || ents[len(ents)-1].Zxid != last {
		snap, _ := n.Storage.Snapshot()
		lz, _ := n.Storage.LastZxid()
		return nil, fmt.Errorf("peer %d: storage lacks entries it applied in (%v, %v]: got %d entries, snapshot at %v, last %v",
			id, applied(), last, len(ents), snap.Zxid, lz)
	}
	return ents, nil
}

// restore replaces r's tree by the state at zxid z, as a snapshot would: it
// replays the committed history up to z into a fresh tree, writes that
// tree's snapshot and restores r's tree from the bytes (coord's
// Snapshot/Restore path).
func (c *cluster) restore(r *replica, z zab.Zxid) {
	src := tree.New(treeOptions)
	for _, zx := range slices.Sorted(maps.Keys(c.log)) {
		if zx > z {
			break
		}
		txn, _, err := txnOf(c.log[zx])
		if err != nil {
			c.fail("entry %v does not decode: %w", zx, err)
			return
		}
		src.Apply(txn)
	}
	if src.LastZxid() != int64(z) {
		snap, _ := c.s.Node(r.id).Storage.Snapshot()
		c.fail("harness: cannot rebuild the tree at %v for peer %d: history known up to %v (peer's snapshot %v voters %v, sm %v)", z, r.id, zab.Zxid(src.LastZxid()), snap.Zxid, snap.Voters, c.s.Node(r.id).SM.Last)
		return
	}
	if d := c.digests[z]; d != src.Digest() {
		c.fail("harness: tree rebuilt at %v has digest %x, peers had %x", z, src.Digest(), d)
		return
	}
	var buf bytes.Buffer
	if _, err := src.WriteSnapshot(&buf); err != nil {
		c.fail("tree snapshot at %v: %w", z, err)
		return
	}
	t := tree.New(treeOptions)
	if err := t.Restore(&buf); err != nil {
		c.fail("peer %d: tree restore at %v: %w", r.id, z, err)
		return
	}
	if t.Digest() != src.Digest() || t.LastZxid() != int64(z) {
		c.fail("peer %d: tree restored at %v differs from the snapshotted one", r.id, z)
		return
	}
	r.tree, r.applied, r.snapAt = t, z, z
}

// txnOf decodes an entry as coord's state machine does (proposal.Txn:
// the leader's stamp is the time, a createSession's session id is the
// zxid of its txn). A configuration entry, which zab hands to no state
// machine, becomes a no-op so that every tree still applies every zxid and
// the harness's zxid bookkeeping holds. An entry that does not decode is
// an error here (coord would apply it as a no-op).
func txnOf(e zab.Entry) (tree.Txn, proposal.Request, error) {
	if e.IsConfig() {
		noop := proposal.Request{Op: proposal.NoopOp()}
		return tree.Txn{Zxid: int64(e.Zxid), Op: noop.Op}, noop, nil
	}
	return proposal.Txn(e)
}

func sameEntry(a, b zab.Entry) bool {
	return bytes.Equal(a.Data, b.Data) && slices.Equal(a.Voters, b.Voters)
}

// response is peer id's state machine applying e (zabtest.SimConfig.Apply):
// its tree catches up to e, applying it as coord's fsm does (apply), and
// the tree's result for e is the response, which zab's executor hands to
// e's proposer. A peer still starting (inside Restart, whose tree is
// rebuilt afterwards) answers nothing: its callers died with its process.
func (c *cluster) response(id zab.PeerID, e zab.Entry) any {
	r := c.reps[id]
	if r == nil || c.restarting == id {
		return nil
	}
	c.catchUp(r)
	return responseAt(id, e.Zxid, r.applied, r.last, c.fail)
}

// responseAt is the response of peer id's state machine for the entry at
// z once its tree caught up: the result of the entry it applied last,
// which must be z's.
func responseAt(id zab.PeerID, z, applied zab.Zxid, last tree.Result, fail func(string, ...any)) any {
	if applied != z {
		fail("peer %d: its state machine applies %v but its tree is at %v", id, z, applied)
		return nil
	}
	return last
}

// apply applies e to r's tree as coord's state machine does
// (proposal.Apply), checking it against the other peers.
func (c *cluster) apply(r *replica, e zab.Entry) {
	var txn tree.Txn
	var req proposal.Request
	var res tree.Result
	var err error
	if e.IsConfig() {
		// Not the state machine's (txnOf): a no-op here.
		txn, req, _ = txnOf(e)
		res = r.tree.Apply(txn)
	} else {
		txn, req, res, err = proposal.Apply(r.tree, e)
	}
	if err != nil {
		c.fail("peer %d: entry %v does not decode: %w", r.id, e.Zxid, err)
		return
	}
	if errors.Is(res.Err, tree.ErrZxidOrder) {
		c.fail("peer %d: %v", r.id, res.Err)
	}
	r.last = res
	r.applied = e.Zxid
	d := r.tree.Digest()
	if prev, ok := c.log[e.Zxid]; ok && !sameEntry(prev, e) {
		c.fail("peer %d: applied another entry at %v than a peer before it", r.id, e.Zxid)
	}
	if prev, ok := c.digests[e.Zxid]; !ok {
		c.digests[e.Zxid] = d
		c.reqs[e.Zxid] = req.ReqID
		c.outcome[e.Zxid] = res
		if z, ok := c.returned[req.ReqID]; ok && res.Err == nil && !res.Duplicate {
			c.fail("write req %d took effect at %v after its call returned the result of %v", req.ReqID, e.Zxid, z)
		} else if ok && e.Zxid > z {
			// Harmless while the tree remembers the result, but coord
			// forgets it once the call returned a result of its only
			// attempt (proposal.Finished), and keeps a retried write's only
			// for tree.DedupWindow: zab must never commit a copy of an
			// attempt after the one whose result returned (it proposes one
			// Propose call once per reign, a learner's forwards reach the
			// leader in order, and an older reign's copy never commits).
			c.fail("write req %d: a copy of it was applied at %v after its call returned the result of %v (%s)",
				req.ReqID, e.Zxid, z, describeResult(res))
		}
		c.log[e.Zxid] = e
	} else if prev != d {
		c.fail("peer %d: tree after %v differs from another peer's (digest %x, first seen %x)", r.id, e.Zxid, d, prev)
	}
}

// treeOptions keep no watch history: the harness sets no watches.
var treeOptions = tree.Options{WatchHistory: -1}

// crash stops a peer; only its storage survives.
func (c *cluster) crash(id zab.PeerID) { c.s.Crash(id) }

// restart starts a crashed peer from its storage, with an empty tree: its
// state machine starts from the (absent) snapshot and zab hands the
// committed entries out again.
func (c *cluster) restart(id zab.PeerID) {
	n := c.s.Node(id)
	if n.Peer != nil {
		return
	}
	// A lone voter leads, and commits, while it starts, and may snapshot
	// past everything the harness has seen applied: its logged entries
	// beyond the known history are read before the snapshot compacts them.
	known := c.lastKnown()
	var logged []zab.Entry
	if last, err := n.Storage.LastZxid(); err == nil && last > known {
		logged, _ = n.Storage.Inspect(known, last)
	}
	c.restarting = id
	err := c.s.Restart(id)
	c.restarting = 0
	if err != nil {
		c.fail("peer %d: restart: %w", id, err)
		return
	}
	r := &replica{id: id, tree: tree.New(treeOptions)}
	c.reps[id] = r
	// The state machine starts at the snapshot; starting may already have
	// applied more: the tree takes those from the log.
	if snap, _ := n.Storage.Snapshot(); snap.Zxid != 0 {
		if snap.Zxid <= known {
			c.restore(r, snap.Zxid)
		} else {
			// Rebuild what the harness knows, then apply the entries the
			// snapshot proves committed as any peer's first apply.
			if known != 0 {
				c.restore(r, known)
			}
			for _, e := range logged {
				if e.Zxid > snap.Zxid || c.err != nil {
					break
				}
				c.apply(r, e)
			}
		}
	}
	c.catchUp(r)
}

// lastKnown is the newest zxid any tree has applied.
func (c *cluster) lastKnown() zab.Zxid {
	var z zab.Zxid
	for zx := range c.log {
		z = max(z, zx)
	}
	return z
}

func (c *cluster) running(id zab.PeerID) bool { return c.s.Node(id).Peer != nil }

// converged reports whether a leader serves every running peer and every
// tree applied the leader's whole log.
func (c *cluster) converged() bool {
	if !c.s.Stable() {
		return false
	}
	last := c.s.Node(c.s.Leader()).Peer.LastZxid()
	for _, id := range c.s.IDs() {
		if !c.running(id) || c.s.Node(id).SM.Last != last || c.reps[id].applied != last {
			return false
		}
	}
	return true
}

// describe sums up every peer's state, for failure messages.
func (c *cluster) describe() string {
	var parts []string
	for _, id := range c.s.IDs() {
		n := c.s.Node(id)
		if n.Peer == nil {
			parts = append(parts, fmt.Sprintf("peer %d down", id))
			continue
		}
		st := n.Peer.SoftState()
		snap, _ := n.Storage.Snapshot()
		parts = append(parts, fmt.Sprintf("peer %d %v leader=%d epoch=%d serving=%v last=%v committed=%v sm=%v "+
			"tree=%v snapshot=%v blocked=%v", id, st.Role, st.Leader, st.Epoch, st.Serving, n.Peer.LastZxid(),
			n.Peer.Committed(), n.SM.Last, c.reps[id].applied, snap.Zxid, c.s.Blocked(id)))
	}
	return strings.Join(parts, "; ")
}

// checkConverged verifies, once converged, that every peer holds the same
// committed log and every tree the same digest.
func (c *cluster) checkConverged() error {
	l := c.s.Leader()
	want := c.reps[l].tree.Digest()
	for _, id := range c.s.IDs() {
		r := c.reps[id]
		if r.tree.Digest() != want || r.tree.LastZxid() != int64(r.applied) || r.applied != c.reps[l].applied {
			return fmt.Errorf("peer %d: tree digest %x at %v, leader %d has %x at %v", id, r.tree.Digest(),
				r.applied, l, want, c.reps[l].applied)
		}
		// The log the peer kept (after its snapshot) is the common history.
		snap, _ := c.s.Node(id).Storage.Snapshot()
		base := snap.Zxid
		ents, err := c.s.Node(id).Storage.Inspect(base, r.applied)
		if err != nil {
			return fmt.Errorf("peer %d: reading log: %w", id, err)
		}
		var known []zab.Zxid
		for z := range c.log {
			if z > base && z <= r.applied {
				known = append(known, z)
			}
		}
		slices.Sort(known)
		if len(ents) != len(known) {
			return fmt.Errorf("peer %d: %d committed entries after %v, the history has %d", id, len(ents), base, len(known))
		}
		for i, e := range ents {
			if e.Zxid != known[i] || !sameEntry(e, c.log[known[i]]) {
				return fmt.Errorf("peer %d: committed entry %v differs from the history's %v", id, e.Zxid, known[i])
			}
		}
	}
	return nil
}

// since is what coord's proposeAt takes as a write's Since: a zxid peer
// id's tree had applied before the first attempt.
func (c *cluster) since(id zab.PeerID) int64 { return max(c.reps[id].tree.LastZxid(), 1) }

// read is a local get on peer id's tree.
func (c *cluster) read(id zab.PeerID, path string) Output {
	data, st, err := c.reps[id].tree.Get(path, nil)
	if err != nil {
		return Output{Code: codeOf(err), Failed: -1}
	}
	return Output{Code: OK, Data: string(data), Version: st.Version, Failed: -1}
}

func codeOf(err error) Code {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, tree.ErrNoNode):
		return NoNode
	case errors.Is(err, tree.ErrNodeExists):
		return NodeExists
	case errors.Is(err, tree.ErrBadVersion):
		return BadVersion
	case errors.Is(err, tree.ErrNotEmpty):
		return NotEmpty
	}
	return OtherErr
}

// outputOf turns a tree result into what the client saw.
func outputOf(res tree.Result) Output {
	if res.Type == tree.OpMulti {
		if res.Err != nil {
			failed := -1
			for i, r := range res.Results {
				if r.Err != nil && !errors.Is(r.Err, tree.ErrRuntimeInconsistency) {
					failed = i
					break
				}
			}
			return Output{Code: codeOf(res.Err), Failed: failed}
		}
		out := Output{Code: OK, Failed: -1, Results: make([]Output, len(res.Results))}
		for i, r := range res.Results {
			out.Results[i] = outputOf(r)
		}
		return out
	}
	if res.Err != nil {
		return Output{Code: codeOf(res.Err), Failed: -1}
	}
	return Output{Code: OK, Path: res.Path, Version: res.Stat.Version, Failed: -1}
}

// toOp turns a model input into the tree op a client proposes.
func toOp(in Input) tree.Op {
	switch in.Kind {
	case Create:
		return tree.Op{Type: tree.OpCreate, Path: in.Path, Data: []byte(in.Data)}
	case CreateSeq:
		return tree.Op{Type: tree.OpCreate, Path: in.Path, Data: []byte(in.Data), Mode: tree.PersistentSequential}
	case Delete:
		return tree.Op{Type: tree.OpDelete, Path: in.Path, Version: in.Version}
	case Set:
		return tree.Op{Type: tree.OpSetData, Path: in.Path, Data: []byte(in.Data), Version: in.Version}
	case Check:
		return tree.Op{Type: tree.OpCheck, Path: in.Path, Version: in.Version}
	case Multi:
		op := tree.Op{Type: tree.OpMulti}
		for _, sub := range in.Ops {
			op.Ops = append(op.Ops, toOp(sub))
		}
		return op
	}
	panic(fmt.Sprintf("sim: %v is not a write", in.Kind))
}
