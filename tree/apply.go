package tree

import (
	"fmt"
	"sort"
	"strings"
)

// Apply applies one committed txn and returns its result. Txns must come in
// strictly increasing zxid order from a single goroutine; a txn whose zxid is
// not above LastZxid is refused with ErrZxidOrder and changes nothing. Every
// other txn, failed or not, advances LastZxid, as in ZooKeeper where a failed
// request still consumes its zxid.
//
// A txn's time is raised to the largest time applied before it, so node
// times never go back although the proposers' clocks disagree.
//
// Watches triggered by the txn are notified before Apply returns and before
// any read can observe the new state.
func (t *Tree) Apply(txn Txn) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	if txn.Zxid <= t.lastZxid {
		return Result{Type: txn.Op.Type, Err: fmt.Errorf("%w: %d after %d", ErrZxidOrder, txn.Zxid, t.lastZxid)}
	}
	t.lastZxid = txn.Zxid
	// Proposers' clocks differ; keep ctime/mtime and TTL checks monotonic.
	txn.Time = max(txn.Time, t.lastTime)
	t.lastTime = txn.Time
	t.events = t.events[:0]
	if len(txn.Forget) > 0 {
		t.forget(txn.Forget)
	}
	if txn.ReqID != 0 {
		t.expireDedup(txn.Time)
		if e, ok := t.dedup[txn.ReqID]; ok {
			r := decodeResult(e, &txn.Op)
			r.Duplicate = true
			return r
		}
	}
	var res Result
	if txn.ReqID != 0 && txn.Since > 0 && t.dedupFloor > txn.Since {
		// The first attempt may lie in (Since, dedupFloor], applied and
		// forgotten: its outcome cannot be known, so do nothing.
		res = Result{Type: txn.Op.Type, Err: fmt.Errorf("%w: results up to zxid %d forgotten, first attempt after %d",
			ErrRetryForgotten, t.dedupFloor, txn.Since)}
	} else {
		res = t.apply(&txn)
	}
	if txn.ReqID != 0 {
		// Failures too: a retry racing a slow first attempt must not fail
		// and then see the first attempt succeed after it.
		t.remember(&txn, res)
	}
	if len(t.events) > 0 {
		t.history.add(t.events)
		t.watches.fire(t.events)
		clear(t.events) // drop path references
	}
	return res
}

func (t *Tree) apply(txn *Txn) Result {
	op := &txn.Op
	if txn.Session != 0 && op.Type != OpCreateSession && op.Type != OpCloseSession {
		if _, ok := t.sessions[txn.Session]; !ok {
			return Result{Type: op.Type, Err: fmt.Errorf("%w: session 0x%x", ErrSessionExpired, txn.Session)}
		}
	}
	switch op.Type {
	case OpCreate, OpDelete, OpSetData, OpCheck:
		return t.applyOne(txn, op)
	case OpMulti:
		return t.applyMulti(txn)
	case OpCreateSession:
		r := Result{Type: op.Type, Err: t.createSession(op.Session, op.Timeout)}
		if r.Err == nil {
			r.Session = op.Session
		}
		return r
	case OpCloseSession:
		return Result{Type: op.Type, Err: t.closeSession(op.Session, txn.Zxid)}
	case OpReap:
		return Result{Type: op.Type, Err: t.reap(op.Path, txn)}
	}
	return Result{Type: op.Type, Err: fmt.Errorf("%w: unknown op type %d", ErrBadArguments, op.Type)}
}

func (t *Tree) applyOne(txn *Txn, op *Op) Result {
	r := Result{Type: op.Type}
	switch op.Type {
	case OpCreate:
		r.Path, r.Stat, r.Err = t.create(txn, op)
	case OpDelete:
		r.Err = t.delete(op.Path, op.Version, txn.Zxid)
	case OpSetData:
		r.Stat, r.Err = t.setData(op.Path, op.Data, op.Version, txn)
	case OpCheck:
		r.Err = t.check(op.Path, op.Version)
	default:
		r.Err = fmt.Errorf("%w: op type %s not allowed in a multi", ErrBadArguments, op.Type)
	}
	return r
}

// applyMulti applies the ops in order and rolls every change back if one
// fails, reporting per-op results the way ZooKeeper does.
func (t *Tree) applyMulti(txn *Txn) Result {
	ops := txn.Op.Ops
	if len(ops) > MaxMultiOps {
		return Result{Type: OpMulti, Err: fmt.Errorf("%w: %d ops in a multi, limit %d", ErrRequestTooLarge, len(ops), MaxMultiOps)}
	}
	res := Result{Type: OpMulti, Results: make([]Result, len(ops))}
	digest, count, nEvents := t.digest, t.count, len(t.events)
	t.inTxn, t.undo = true, t.undo[:0]
	failed := -1
	for i := range ops {
		res.Results[i] = t.applyOne(txn, &ops[i])
		if res.Results[i].Err != nil {
			failed = i
			break
		}
	}
	if failed >= 0 {
		t.rollback()
		t.digest, t.count, t.events = digest, count, t.events[:nEvents]
		res.Err = res.Results[failed].Err
		for i := range ops {
			switch {
			case i < failed:
				res.Results[i] = Result{Type: ops[i].Type}
			case i > failed:
				res.Results[i] = Result{Type: ops[i].Type, Err: ErrRuntimeInconsistency}
			}
		}
	}
	t.inTxn = false
	clear(t.undo)
	t.undo = t.undo[:0]
	return res
}

func (t *Tree) create(txn *Txn, op *Op) (string, Stat, error) {
	mode := op.Mode
	if !mode.Valid() {
		return "", Stat{}, fmt.Errorf("%w: unknown create mode %d", ErrBadArguments, mode)
	}
	if err := validateCreatePath(op.Path, mode.IsSequential()); err != nil {
		return "", Stat{}, err
	}
	if limit := txn.dataLimit(); len(op.Data) > limit {
		return "", Stat{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDataTooLarge, len(op.Data), limit)
	}
	var owner int64
	switch {
	case mode.IsTTL():
		if op.TTL <= 0 || op.TTL > MaxTTL {
			return "", Stat{}, fmt.Errorf("%w: TTL %d ms out of range (1..%d)", ErrBadArguments, op.TTL, MaxTTL)
		}
		owner = ttlMarker | op.TTL
	case op.TTL != 0:
		return "", Stat{}, fmt.Errorf("%w: TTL given for %s node", ErrBadArguments, mode)
	case mode == Container:
		owner = ownerContainer
	case mode.IsEphemeral():
		if txn.Session <= 0 {
			return "", Stat{}, fmt.Errorf("%w: ephemeral create without a session", ErrSessionExpired)
		}
		owner = txn.Session
	}
	path := op.Path
	parentPath, _ := splitPath(path + "x") // "x" stands for a sequence suffix to come
	if !mode.IsSequential() {
		parentPath, _ = splitPath(path)
	}
	if path == "/" {
		return "", Stat{}, fmt.Errorf("%w: /", ErrNodeExists)
	}
	parent := t.lookup(parentPath)
	if parent == nil {
		return "", Stat{}, fmt.Errorf("%w: parent %s", ErrNoNode, parentPath)
	}
	if mode.IsSequential() {
		path = fmt.Sprintf("%s%010d", path, parent.cversion)
	}
	_, name := splitPath(path)
	if parent.child(name) != nil {
		return "", Stat{}, fmt.Errorf("%w: %s", ErrNodeExists, path)
	}
	if parent.isEphemeral() {
		return "", Stat{}, fmt.Errorf("%w: parent %s", ErrNoChildrenForEphemerals, parentPath)
	}
	n := &node{
		name:  strings.Clone(name), // not a slice of the txn's path: keep only the name alive
		czxid: txn.Zxid, mzxid: txn.Zxid, pzxid: txn.Zxid,
		ctime: txn.Time, mtime: txn.Time,
		owner: owner,
		data:  string(op.Data),
	}
	if t.inTxn {
		t.undo = append(t.undo, undoRec{kind: undoCreate, n: n, parent: parent, name: name, path: path,
			cversion: parent.cversion, pzxid: parent.pzxid})
	}
	t.insert(parent, parentPath, name, path, n, txn.Zxid)
	return path, n.stat(), nil
}

// deletable finds a node a delete or reap may remove, with its parent.
func (t *Tree) deletable(path string) (parent *node, parentPath, name string, n *node, err error) {
	if err := ValidatePath(path); err != nil {
		return nil, "", "", nil, err
	}
	if path == "/" {
		return nil, "", "", nil, fmt.Errorf("%w: the root cannot be deleted", ErrBadArguments)
	}
	parentPath, name = splitPath(path)
	if parent = t.lookup(parentPath); parent != nil {
		n = parent.child(name)
	}
	if n == nil {
		return nil, "", "", nil, fmt.Errorf("%w: %s", ErrNoNode, path)
	}
	return parent, parentPath, name, n, nil
}

func (t *Tree) delete(path string, version int32, zxid int64) error {
	parent, parentPath, name, n, err := t.deletable(path)
	if err != nil {
		return err
	}
	if version != -1 && version != n.version {
		return fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, path, n.version, version)
	}
	if len(n.children()) > 0 {
		return fmt.Errorf("%w: %s has %d", ErrNotEmpty, path, len(n.children()))
	}
	t.remove(parent, parentPath, name, path, n, zxid)
	return nil
}

func (t *Tree) setData(path string, data []byte, version int32, txn *Txn) (Stat, error) {
	if err := ValidatePath(path); err != nil {
		return Stat{}, err
	}
	if limit := txn.dataLimit(); len(data) > limit {
		return Stat{}, fmt.Errorf("%w: %d bytes, limit %d", ErrDataTooLarge, len(data), limit)
	}
	n := t.lookup(path)
	if n == nil {
		return Stat{}, fmt.Errorf("%w: %s", ErrNoNode, path)
	}
	if version != -1 && version != n.version {
		return Stat{}, fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, path, n.version, version)
	}
	if t.inTxn {
		t.undo = append(t.undo, undoRec{kind: undoSet, n: n, path: path,
			data: n.data, mzxid: n.mzxid, mtime: n.mtime, version: n.version})
	}
	t.preserve(n)
	t.digest -= nodeHash(path, n)
	n.data = string(data)
	n.mzxid, n.mtime = txn.Zxid, txn.Time
	n.version++
	t.digest += nodeHash(path, n)
	t.events = append(t.events, Event{Type: EventNodeDataChanged, Path: path, Zxid: txn.Zxid})
	return n.stat(), nil
}

func (t *Tree) check(path string, version int32) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	n := t.lookup(path)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrNoNode, path)
	}
	if version != -1 && version != n.version {
		return fmt.Errorf("%w: %s is at version %d, expected %d", ErrBadVersion, path, n.version, version)
	}
	return nil
}

func (t *Tree) createSession(id int64, timeout int32) error {
	if id <= 0 {
		return fmt.Errorf("%w: session id %d must be positive", ErrBadArguments, id)
	}
	if timeout <= 0 {
		return fmt.Errorf("%w: session timeout %d ms must be positive", ErrBadArguments, timeout)
	}
	if s, ok := t.sessions[id]; ok {
		t.digest -= sessionHash(id, s.timeout)
		s.timeout = timeout
	} else {
		t.sessions[id] = &sessionState{timeout: timeout, ephemerals: make(map[string]struct{})}
	}
	t.digest += sessionHash(id, timeout)
	return nil
}

// closeSession removes a session and deletes all its ephemerals, in path
// order so every replica emits the same events.
func (t *Tree) closeSession(id int64, zxid int64) error {
	s, ok := t.sessions[id]
	if !ok {
		return fmt.Errorf("%w: session 0x%x", ErrSessionExpired, id)
	}
	paths := make([]string, 0, len(s.ephemerals))
	for p := range s.ephemerals {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		parentPath, name := splitPath(p)
		parent := t.lookup(parentPath)
		t.remove(parent, parentPath, name, p, parent.child(name), zxid)
	}
	t.digest -= sessionHash(id, s.timeout)
	delete(t.sessions, id)
	return nil
}

func (t *Tree) reap(path string, txn *Txn) error {
	parent, parentPath, name, n, err := t.deletable(path)
	if err != nil {
		return err
	}
	if !reapable(n, txn.Time) {
		return fmt.Errorf("%w: %s", ErrNotEligible, path)
	}
	t.remove(parent, parentPath, name, path, n, txn.Zxid)
	return nil
}

// insert links a new node under parent and keeps every index, the digest and
// the watch events in step.
func (t *Tree) insert(parent *node, parentPath, name, path string, n *node, zxid int64) {
	t.preserve(parent)
	t.digest -= nodeHash(parentPath, parent)
	parent.addChild(n)
	parent.cversion++
	parent.pzxid = zxid
	t.digest += nodeHash(parentPath, parent) + nodeHash(path, n)
	t.count++
	t.index(path, n)
	t.events = append(t.events,
		Event{Type: EventNodeCreated, Path: path, Zxid: zxid},
		Event{Type: EventNodeChildrenChanged, Path: parentPath, Zxid: zxid})
}

// remove unlinks a childless node from parent.
func (t *Tree) remove(parent *node, parentPath, name, path string, n *node, zxid int64) {
	if t.inTxn {
		t.undo = append(t.undo, undoRec{kind: undoDelete, n: n, parent: parent, name: name, path: path,
			cversion: parent.cversion, pzxid: parent.pzxid})
	}
	t.preserve(parent)
	t.preserve(n)
	t.digest -= nodeHash(parentPath, parent) + nodeHash(path, n)
	parent.removeChild(name)
	parent.cversion++
	parent.pzxid = zxid
	t.digest += nodeHash(parentPath, parent)
	t.count--
	t.unindex(path, n)
	t.events = append(t.events,
		Event{Type: EventNodeDeleted, Path: path, Zxid: zxid},
		Event{Type: EventNodeChildrenChanged, Path: parentPath, Zxid: zxid})
}

func (t *Tree) index(path string, n *node) {
	switch {
	case n.isEphemeral():
		if s := t.sessions[n.owner]; s != nil {
			s.ephemerals[path] = struct{}{}
		}
	case n.isContainer(), n.isTTL():
		t.reapable[path] = struct{}{}
	}
}

func (t *Tree) unindex(path string, n *node) {
	switch {
	case n.isEphemeral():
		if s := t.sessions[n.owner]; s != nil {
			delete(s.ephemerals, path)
		}
	case n.isContainer(), n.isTTL():
		delete(t.reapable, path)
	}
}

type undoKind uint8

const (
	undoCreate undoKind = iota + 1
	undoDelete
	undoSet
)

// undoRec records how to reverse one change made inside a multi. The digest,
// the node count and the events are restored wholesale by applyMulti.
type undoRec struct {
	kind     undoKind
	n        *node
	parent   *node
	name     string
	path     string
	data     string
	mzxid    int64
	mtime    int64
	pzxid    int64
	version  int32
	cversion int32
}

func (t *Tree) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := &t.undo[i]
		switch u.kind {
		case undoCreate:
			u.parent.removeChild(u.name)
			u.parent.cversion, u.parent.pzxid = u.cversion, u.pzxid
			t.unindex(u.path, u.n)
		case undoDelete:
			u.parent.addChild(u.n)
			u.parent.cversion, u.parent.pzxid = u.cversion, u.pzxid
			t.index(u.path, u.n)
		case undoSet:
			u.n.data, u.n.mzxid, u.n.mtime, u.n.version = u.data, u.mzxid, u.mtime, u.version
		}
	}
}
