package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// sclient is an application on one node (the embedded library's process):
// it owns one session at a time and runs the ephemeral workload or the lock
// recipe. It dies with its node's process and is replaced on restart.
type sclient struct {
	id      int
	home    zab.PeerID
	inc     int
	lock    bool
	timeout int64
	dead    bool
	sess    *ssession
	busy    bool // a call is in flight
	nextAt  int64
	seq     int
	lk      lockClient
}

func (r *srunner) kill(cl *sclient) {
	cl.dead = true
	if cl.lk.holding {
		r.logf("client %d: dies holding the lock (token %d)", cl.id, cl.lk.token)
	}
	cl.lk.holding = false
	if r.lock != nil && r.lock.holder == cl {
		r.lock.holder = nil
	}
}

func (r *srunner) clientStep(cl *sclient) {
	if cl.dead || r.incs[cl.home] != cl.inc || !r.running(cl.home) {
		return
	}
	n := r.nodes[cl.home]
	if r.s.Now() < n.paused {
		return // the whole process is paused
	}
	if cl.lock {
		r.lockStep(cl)
		return
	}
	if cl.busy || r.s.Now() < cl.nextAt || r.quiet {
		return
	}
	if cl.sess == nil || cl.sess.closed {
		r.openSession(cl)
		return
	}
	r.ephOp(cl)
}

// openSession is coord's Node.Session: a createSession through zab; the id
// is its zxid and the lease starts when the request was sent.
func (r *srunner) openSession(cl *sclient) {
	n := r.nodes[cl.home]
	sent := r.s.Now()
	cl.busy = true
	r.logf("client %d: opens a session at node %d (timeout %d)", cl.id, n.id, cl.timeout)
	var p *prop
	p = r.propose(n, 0, tree.Op{Type: tree.OpCreateSession, Timeout: int32(cl.timeout)}, sCallTimeout,
		func(res tree.Result, z zab.Zxid, err error) {
			cl.busy = false
			now := r.s.Now()
			cl.nextAt = now + r.rng.Int64N(50)
			if err != nil {
				r.logf("client %d: createSession: %v", cl.id, err)
				return
			}
			id := int64(z)
			if res.Duplicate && !r.cfg.CoordAsIs {
				id = r.sessOf[p.reqID]
			}
			// coord's Node.Session registers the session, then hands it to
			// the core (through the maintenance goroutine) and returns once
			// the core has it.
			s := &ssession{id: id, timeout: cl.timeout, node: n, st: session.Connected, lostAt: -1, client: cl,
				ephemerals: map[string]bool{}}
			n.sessions[s.id] = s
			r.owners[s.id] = s
			cl.busy = true
			cfg := session.Config{Timeout: time.Duration(cl.timeout) * time.Millisecond}
			r.feed(n, func() {
				cl.busy = false
				if err := n.core.Open(session.ID(id), cfg, vt(sent), vt(now)); err != nil {
					r.fail("session core: open %x: %v", id, err)
					return
				}
				cl.sess = s
				r.res.Sessions++
				r.logf("client %d: session %x created", cl.id, s.id)
			})
		})
}

// usable is coord's Session.usable.
func (s *ssession) usable() bool { return !s.closed && s.st != session.Lost }

// write is coord's Session.write: refused once Lost, else proposed under
// the session.
func (r *srunner) write(cl *sclient, op tree.Op, d int64, done func(tree.Result, error)) {
	s := cl.sess
	if s == nil || !s.usable() {
		done(tree.Result{}, errNoSession)
		return
	}
	cl.busy = true
	r.logf("client %d: %s", cl.id, describeTxn(tree.Txn{Op: op}))
	r.propose(s.node, s.id, op, d, func(res tree.Result, _ zab.Zxid, err error) {
		cl.busy = false
		r.logf("client %d: %s -> %s", cl.id, describeTxn(tree.Txn{Op: op}), errOr(res, err))
		done(res, err)
	})
}

func errOr(res tree.Result, err error) string {
	if err != nil {
		return err.Error()
	}
	return describeResult(res)
}

// watch sets a one-shot watch through the session on the home tree, as
// GetW, ExistsW and ChildrenW do; it returns the watch (nil if none was
// set) and whether the node exists.
func (r *srunner) watch(cl *sclient, path string, kind tree.WatchKind, exists bool) (*oneShot, bool) {
	s := cl.sess
	if s == nil || !s.usable() {
		return nil, false
	}
	rep := r.reps[cl.home]
	w := &oneShot{path: path, kind: kind, z0: rep.applied}
	var err error
	ok := true
	switch {
	case exists:
		_, ok, err = rep.tree.Exists(path, w)
	case kind == tree.WatchChildren:
		_, _, err = rep.tree.Children(path, w)
	default:
		_, _, err = rep.tree.Get(path, w)
	}
	if err != nil {
		return nil, false // no node: no watch
	}
	rep.oneShot = append(rep.oneShot, w)
	s.watches = append(s.watches, w)
	r.res.OneShots++
	return w, ok
}

// ephOp runs one step of the ephemeral workload.
func (r *srunner) ephOp(cl *sclient) {
	s := cl.sess
	now := r.s.Now()
	cl.nextAt = now + 5 + r.rng.Int64N(60)
	if !s.usable() {
		return
	}
	own := slices.Sorted(maps.Keys(s.ephemerals))
	cl.seq++
	switch n := r.rng.IntN(100); {
	case n < 30:
		p, mode := fmt.Sprintf("/eph/c%d-%d", cl.id, cl.seq), tree.Ephemeral
		if r.rng.IntN(2) == 0 {
			p, mode = "/eph/s-", tree.EphemeralSequential
		}
		r.write(cl, tree.Op{Type: tree.OpCreate, Path: p, Mode: mode, Data: []byte("x")}, sCallTimeout,
			func(res tree.Result, err error) {
				if err == nil {
					s.ephemerals[res.Path] = true
				}
			})
	case n < 45 && len(own) > 0:
		p := own[r.rng.IntN(len(own))]
		delete(s.ephemerals, p)
		r.write(cl, tree.Op{Type: tree.OpDelete, Path: p, Version: -1}, sCallTimeout, func(tree.Result, error) {})
	case n < 60 && len(own) > 0:
		p := own[r.rng.IntN(len(own))]
		r.write(cl, tree.Op{Type: tree.OpSetData, Path: p, Data: []byte(fmt.Sprint(cl.seq)), Version: -1},
			sCallTimeout, func(tree.Result, error) {})
	case n < 85:
		p := "/eph"
		switch {
		case len(own) > 0 && r.rng.IntN(2) == 0:
			p = own[r.rng.IntN(len(own))]
		case r.rng.IntN(2) == 0:
			p = fmt.Sprintf("/eph/c%d-%d", r.rng.IntN(len(r.clients)), cl.seq-r.rng.IntN(4))
		}
		switch r.rng.IntN(3) {
		case 0:
			r.watch(cl, p, tree.WatchData, true)
		case 1:
			r.watch(cl, p, tree.WatchData, false)
		default:
			r.watch(cl, p, tree.WatchChildren, false)
		}
	case n < 88:
		// Close: coord's Session.Close.
		s.closing = true
		n, id := s.node, session.ID(s.id)
		r.feed(n, func() { n.core.Closing(id) })
		r.write(cl, tree.Op{Type: tree.OpCloseSession, Session: s.id}, sCallTimeout, func(_ tree.Result, err error) {
			if err == nil || errors.Is(err, tree.ErrSessionExpired) {
				r.finish(s, true)
			}
			// Otherwise Close failed: the session lives on (closing); the
			// application starts another.
			cl.sess = nil
		})
	}
}

// checkFinal runs after heal once every peer applied the same history.
func (r *srunner) checkFinal() {
	l := r.s.Leader()
	want := r.reps[l].tree.Digest()
	for _, id := range r.s.IDs() {
		if rep := r.reps[id]; rep.tree.Digest() != want || rep.applied != r.reps[l].applied {
			r.fail("after heal: peer %d's tree (at %v) differs from the leader's (at %v)", id, rep.applied, r.reps[l].applied)
			return
		}
	}
	live := map[int64]*ssession{}
	for _, id := range r.s.IDs() {
		for _, s := range sortedSessions(r.nodes[id]) {
			if s.closed {
				continue
			}
			live[s.id] = s
			// Connected, or at least kept alive since heal (a short timeout
			// may flap to Suspended and back on every heartbeat).
			if st := s.st; st == session.Lost || s.lease <= r.healAt {
				r.fail("after heal: session %x of client %d at node %d is %v, acknowledged last for a heartbeat "+
					"sent at %d", s.id, s.client.id, id, st, s.lease)
				return
			}
		}
	}
	t := r.reps[l].tree
	for _, si := range t.Sessions() {
		if live[si.ID] == nil {
			r.fail("after heal: session %x still exists (with ephemerals %v) but has no live owner", si.ID,
				t.Ephemerals(si.ID))
			return
		}
	}
	for _, s := range live {
		if _, ok := t.Session(s.id); !ok {
			r.fail("after heal: the live session %x of client %d does not exist", s.id, s.client.id)
			return
		}
		for _, p := range slices.Sorted(maps.Keys(s.ephemerals)) {
			for _, id := range r.s.IDs() {
				st, ok, _ := r.reps[id].tree.Exists(p, nil)
				if !ok || st.EphemeralOwner != s.id {
					r.fail("after heal: peer %d lacks ephemeral %s of live session %x (exists %v, owner %x)", id, p,
						s.id, ok, st.EphemeralOwner)
					return
				}
			}
		}
	}
	for _, id := range r.s.IDs() {
		r.checkEphemerals(r.reps[id], r.reps[id].applied)
	}
}
