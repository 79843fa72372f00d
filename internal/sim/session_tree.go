package sim

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// ephDirs are the parents of every ephemeral the clients create.
var ephDirs = []string{"/eph", "/lock"}

// srep is one peer's tree with the harness's own watchers on it: a
// persistent recursive watch on "/" and a persistent watch on "/" and each
// ephemeral parent, which must hear exactly the events of the applied txns;
// and the clients' one-shot watches, each of which must fire exactly once,
// at the first txn that changes its node.
type srep struct {
	id      zab.PeerID
	inc     int
	tree    *tree.Tree
	applied zab.Zxid
	last    tree.Result // the result of the entry at applied (see response)
	rec     *recorder   // recursive at "/"
	kids    *recorder   // persistent at "/" and ephDirs
	oneShot []*oneShot
	fired   []*oneShot // settled: each must never hear anything again
}

type recorder struct{ evs []tree.Event }

func (w *recorder) Notify(ev tree.Event) { w.evs = append(w.evs, ev) }

// oneShot is a client's one-shot watch (GetW, ExistsW, ChildrenW).
type oneShot struct {
	path    string
	kind    tree.WatchKind
	z0      zab.Zxid // the tree's zxid when it was set
	got     []tree.Event
	want    *tree.Event // what it must have received, once it is due
	removed bool        // its session ended
}

func (w *oneShot) Notify(ev tree.Event) { w.got = append(w.got, ev) }

func (w *oneShot) matches(ev tree.Event) bool {
	if ev.Path != w.path {
		return false
	}
	switch w.kind {
	case tree.WatchData:
		return ev.Type != tree.EventNodeChildrenChanged
	case tree.WatchChildren:
		return ev.Type == tree.EventNodeChildrenChanged || ev.Type == tree.EventNodeDeleted
	}
	return false
}

func (r *srunner) newRep(id zab.PeerID) *srep {
	rep := &srep{id: id, inc: r.incs[id], tree: tree.New(treeOptions), rec: &recorder{}, kids: &recorder{}}
	r.watchRep(rep)
	return rep
}

func (r *srunner) watchRep(rep *srep) {
	if err := rep.tree.AddWatch("/", rep.rec, true); err != nil {
		r.fail("watch: %v", err)
	}
	for _, p := range append([]string{"/"}, ephDirs...) {
		if err := rep.tree.AddWatch(p, rep.kids, false); err != nil {
			r.fail("watch: %v", err)
		}
	}
}

// response is peer id's state machine applying e, as cluster.response.
func (r *srunner) response(id zab.PeerID, e zab.Entry) any {
	rep := r.reps[id]
	if rep == nil || r.restarting == id || r.err != nil {
		return nil
	}
	r.catchUp(rep)
	return responseAt(id, e.Zxid, rep.applied, rep.last, r.fail)
}

func (r *srunner) catchUp(rep *srep) {
	n := r.s.Node(rep.id)
	if n.Peer == nil || r.reps[rep.id] != rep {
		return
	}
	ents, err := appliedEntries(rep.id, n, func() zab.Zxid { return rep.applied }, func(z zab.Zxid) { r.restore(rep, z) })
	if err != nil {
		r.fail("%v", err)
		return
	}
	for _, e := range ents {
		r.apply(rep, e)
		if r.err != nil {
			return
		}
	}
}

// restore installs the state at z into rep's tree the way coord's fsm does
// (tree snapshot bytes into tree.Restore, which keeps the watches and tells
// each what changed), rebuilt from the applied history.
func (r *srunner) restore(rep *srep, z zab.Zxid) {
	src := tree.New(treeOptions)
	for _, zx := range slices.Sorted(maps.Keys(r.entries)) {
		if zx > z {
			break
		}
		txn, _, err := txnOf(r.entries[zx])
		if err != nil {
			r.fail("entry %v does not decode: %v", zx, err)
			return
		}
		src.Apply(txn)
	}
	if src.LastZxid() != int64(z) || src.Digest() != r.digests[z] {
		r.fail("harness: cannot rebuild the tree at %v for peer %d", z, rep.id)
		return
	}
	var buf bytes.Buffer
	if _, err := src.WriteSnapshot(&buf); err != nil {
		r.fail("tree snapshot at %v: %v", z, err)
		return
	}
	before := walk(rep.tree)
	mark, kmark := len(rep.rec.evs), len(rep.kids.evs)
	if r.cfg.RestoreDropsWatches {
		t := tree.New(treeOptions)
		if err := t.Restore(&buf); err != nil {
			r.fail("peer %d: tree restore at %v: %v", rep.id, z, err)
			return
		}
		rep.tree = t
	} else if err := rep.tree.Restore(&buf); err != nil {
		r.fail("peer %d: tree restore at %v: %v", rep.id, z, err)
		return
	}
	rep.applied = z
	if rep.tree.Digest() != src.Digest() {
		r.fail("peer %d: tree restored at %v differs from the snapshotted one", rep.id, z)
		return
	}
	want := diffEvents(before, walk(rep.tree), int64(z))
	r.logf("peer %d: tree restored from a snapshot at %v (%d changes)", rep.id, z, len(want))
	sortEvs := func(evs []tree.Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, fmt.Sprintf("%s %s@%d", ev.Type, ev.Path, ev.Zxid))
		}
		slices.Sort(out)
		return out
	}
	if got, exp := sortEvs(rep.rec.evs[mark:]), sortEvs(filterRec(want)); !slices.Equal(got, exp) {
		r.fail("peer %d: restore at %v: recursive watch on / heard %v, the change was %v", rep.id, z, got, exp)
		return
	}
	if got, exp := sortEvs(rep.kids.evs[kmark:]), sortEvs(filterKids(want)); !slices.Equal(got, exp) {
		r.fail("peer %d: restore at %v: persistent watches heard %v, the change was %v", rep.id, z, got, exp)
		return
	}
	r.res.Events += len(want)
	r.checkOneShots(rep, want)
}

// walk returns the stat of every node of t.
func walk(t *tree.Tree) map[string]tree.Stat {
	out := map[string]tree.Stat{}
	var visit func(p string)
	visit = func(p string) {
		names, st, err := t.Children(p, nil)
		if err != nil {
			return
		}
		out[p] = st
		for _, n := range names {
			visit(joinChild(p, n))
		}
	}
	visit("/")
	return out
}

func joinChild(p, name string) string {
	if p == "/" {
		return "/" + name
	}
	return p + "/" + name
}

func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// diffEvents is what a watcher of every node hears when a tree goes from
// old to cur at zxid z (tree.Restore's contract).
func diffEvents(old, cur map[string]tree.Stat, z int64) []tree.Event {
	paths := slices.Sorted(maps.Keys(old))
	for p := range cur {
		if _, ok := old[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var out []tree.Event
	for _, p := range paths {
		o, hadO := old[p]
		c, hasC := cur[p]
		switch {
		case !hadO:
			out = append(out, tree.Event{Type: tree.EventNodeCreated, Path: p, Zxid: z})
		case !hasC:
			out = append(out, tree.Event{Type: tree.EventNodeDeleted, Path: p, Zxid: z})
		default:
			if o.Mzxid != c.Mzxid || o.Czxid != c.Czxid {
				out = append(out, tree.Event{Type: tree.EventNodeDataChanged, Path: p, Zxid: z})
			}
			if o.Pzxid != c.Pzxid || o.Cversion != c.Cversion {
				out = append(out, tree.Event{Type: tree.EventNodeChildrenChanged, Path: p, Zxid: z})
			}
		}
	}
	return out
}

func filterRec(evs []tree.Event) []tree.Event {
	var out []tree.Event
	for _, ev := range evs {
		if ev.Type != tree.EventNodeChildrenChanged {
			out = append(out, ev)
		}
	}
	return out
}

func filterKids(evs []tree.Event) []tree.Event {
	var out []tree.Event
	for _, ev := range evs {
		if ev.Path == "/" || slices.Contains(ephDirs, ev.Path) {
			out = append(out, ev)
		}
	}
	return out
}

// expectedEvents derives, from a txn and its result alone, the events the
// tree must emit for it.
func expectedEvents(txn tree.Txn, res tree.Result, ephemerals []string) []tree.Event {
	if res.Err != nil || res.Duplicate {
		return nil
	}
	z := txn.Zxid
	var out []tree.Event
	created := func(p string) {
		out = append(out, tree.Event{Type: tree.EventNodeCreated, Path: p, Zxid: z},
			tree.Event{Type: tree.EventNodeChildrenChanged, Path: parentPath(p), Zxid: z})
	}
	deleted := func(p string) {
		out = append(out, tree.Event{Type: tree.EventNodeDeleted, Path: p, Zxid: z},
			tree.Event{Type: tree.EventNodeChildrenChanged, Path: parentPath(p), Zxid: z})
	}
	var one func(op tree.Op, res tree.Result)
	one = func(op tree.Op, res tree.Result) {
		switch op.Type {
		case tree.OpCreate:
			created(res.Path)
		case tree.OpDelete, tree.OpReap:
			deleted(op.Path)
		case tree.OpSetData:
			out = append(out, tree.Event{Type: tree.EventNodeDataChanged, Path: op.Path, Zxid: z})
		case tree.OpMulti:
			for i, sub := range op.Ops {
				one(sub, res.Results[i])
			}
		case tree.OpCloseSession:
			for _, p := range ephemerals {
				deleted(p)
			}
		}
	}
	one(txn.Op, res)
	return out
}

// apply applies one committed entry to rep's tree and checks it: digests
// agree across peers, watch events are exactly the txn's, every one-shot
// watch fires at the first change of its node, and every ephemeral belongs
// to a session the tree knows. Then it runs coord's onApply.
func (r *srunner) apply(rep *srep, e zab.Entry) {
	txn, _, err := txnOf(e)
	if err != nil {
		r.fail("peer %d: entry %v does not decode: %v", rep.id, e.Zxid, err)
		return
	}
	var ephs []string
	if txn.Op.Type == tree.OpCloseSession {
		ephs = rep.tree.Ephemerals(txn.Op.Session)
	}
	mark, kmark := len(rep.rec.evs), len(rep.kids.evs)
	var res tree.Result
	if e.IsConfig() {
		res = rep.tree.Apply(txn) // not the state machine's (txnOf): a no-op here
	} else {
		_, _, res, _ = proposal.Apply(rep.tree, e) // as coord's state machine does
	}
	if errors.Is(res.Err, tree.ErrZxidOrder) {
		r.fail("peer %d: %v", rep.id, res.Err)
		return
	}
	rep.last = res
	rep.applied = e.Zxid
	d := rep.tree.Digest()
	if prev, ok := r.entries[e.Zxid]; ok && !bytes.Equal(prev.Data, e.Data) {
		r.fail("peer %d: applied another entry at %v than a peer before it", rep.id, e.Zxid)
	}
	if prev, ok := r.digests[e.Zxid]; !ok {
		r.digests[e.Zxid] = d
		r.entries[e.Zxid] = e
		r.appliedT[e.Zxid] = r.s.Now()
		r.logf("peer %d: applies %v: %s -> %s", rep.id, e.Zxid, describeTxn(txn), describeResult(res))
		if txn.Op.Type == tree.OpCreateSession && res.Err == nil && !res.Duplicate {
			r.sessOf[txn.ReqID] = txn.Op.Session
		}
		if at, ok := r.expiries[txn.ReqID]; ok && txn.Op.Type == tree.OpCloseSession && res.Err == nil && !res.Duplicate {
			r.expiryCommitted(txn.Op.Session, at)
		}
		if z, ok := r.returned[txn.ReqID]; ok && e.Zxid > z {
			r.fail("write req %d: a copy of it was applied at %v after its call returned the result of %v (%s)",
				txn.ReqID, e.Zxid, z, describeResult(res))
		}
	} else if prev != d {
		r.fail("peer %d: tree after %v differs from another peer's", rep.id, e.Zxid)
	}

	want := expectedEvents(txn, res, ephs)
	r.res.Events += len(want)
	for _, ev := range want {
		if ev.Type == tree.EventNodeDeleted {
			gs := r.gone[ev.Path]
			if !slices.ContainsFunc(gs, func(g goneAt) bool { return g.z == e.Zxid }) {
				r.gone[ev.Path] = append(gs, goneAt{z: e.Zxid, at: r.s.Now()})
			}
		}
	}
	if got, exp := rep.rec.evs[mark:], filterRec(want); !slices.Equal(got, exp) {
		r.fail("peer %d: txn %v (%s): recursive watch on / heard %v, want %v", rep.id, e.Zxid, describeTxn(txn), got, exp)
		return
	}
	if got, exp := rep.kids.evs[kmark:], filterKids(want); !slices.Equal(got, exp) {
		r.fail("peer %d: txn %v (%s): persistent watches heard %v, want %v", rep.id, e.Zxid, describeTxn(txn), got, exp)
		return
	}
	// Keep the recorders short: everything before is checked.
	rep.rec.evs, rep.kids.evs = rep.rec.evs[:0], rep.kids.evs[:0]
	r.checkOneShots(rep, want)
	r.checkEphemerals(rep, e.Zxid)
	if n := r.nodes[rep.id]; n != nil && n.inc == rep.inc {
		r.onApply(n, txn, res)
	}
}

// checkOneShots settles the one-shot watches of rep after a change whose
// events were evs: a watch fires with the first event matching it, once,
// and not before.
func (r *srunner) checkOneShots(rep *srep, evs []tree.Event) {
	for _, w := range rep.fired {
		if len(w.got) > 1 {
			r.fail("peer %d: one-shot watch on %s (set at %v) fired again: %v", rep.id, w.path, w.z0, w.got)
			return
		}
	}
	keep := rep.oneShot[:0]
	for _, w := range rep.oneShot {
		if w.want == nil {
			for _, ev := range evs {
				if w.matches(ev) {
					ev := ev
					w.want = &ev
					break
				}
			}
		}
		switch {
		case w.removed:
			// Its session ended: the watch is gone; it must not have fired
			// after that (checked while it was registered).
			continue
		case w.want == nil && len(w.got) > 0:
			r.fail("peer %d: one-shot %v watch on %s (set at %v) fired with %v, but no txn changed it",
				rep.id, w.kind, w.path, w.z0, w.got)
		case w.want != nil && (len(w.got) != 1 || w.got[0] != *w.want):
			r.fail("peer %d: one-shot watch on %s (set at %v) heard %v, want exactly %v", rep.id, w.path, w.z0,
				w.got, *w.want)
		case w.want != nil:
			rep.fired = append(rep.fired, w)
		case w.want == nil:
			keep = append(keep, w)
		}
	}
	clear(rep.oneShot[len(keep):])
	rep.oneShot = keep
}

// checkEphemerals: every node under an ephemeral parent is an ephemeral of
// a session the tree knows, and the tree's per-session index agrees.
func (r *srunner) checkEphemerals(rep *srep, z zab.Zxid) {
	t := rep.tree
	for _, dir := range ephDirs {
		names, _, err := t.Children(dir, nil)
		if err != nil {
			continue
		}
		for _, name := range names {
			p := joinChild(dir, name)
			st, ok, _ := t.Exists(p, nil)
			if !ok {
				continue
			}
			if st.EphemeralOwner == 0 {
				r.fail("peer %d after %v: %s is not an ephemeral", rep.id, z, p)
				return
			}
			if _, ok := t.Session(st.EphemeralOwner); !ok {
				r.fail("peer %d after %v: ephemeral %s belongs to session %x, which is closed", rep.id, z, p,
					st.EphemeralOwner)
				return
			}
			if !slices.Contains(t.Ephemerals(st.EphemeralOwner), p) {
				r.fail("peer %d after %v: ephemeral %s is missing from its session's index", rep.id, z, p)
				return
			}
		}
	}
}

func describeTxn(txn tree.Txn) string {
	op := txn.Op
	var b strings.Builder
	fmt.Fprintf(&b, "%s", op.Type)
	if op.Path != "" {
		fmt.Fprintf(&b, " %s", op.Path)
	}
	if op.Type == tree.OpCreate && op.Mode != tree.Persistent {
		fmt.Fprintf(&b, " (%s)", op.Mode)
	}
	if op.Session != 0 {
		fmt.Fprintf(&b, " session %x", op.Session)
	}
	if txn.Session != 0 {
		fmt.Fprintf(&b, " by %x", txn.Session)
	}
	return b.String()
}

func describeResult(res tree.Result) string {
	switch {
	case res.Duplicate:
		return "duplicate"
	case res.Err != nil:
		return res.Err.Error()
	case res.Path != "":
		return "ok " + res.Path
	}
	return "ok"
}
