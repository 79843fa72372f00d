package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/coord-dev/coord/internal/lockcore"
	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
)

// The lock clients run recipes.Lock: each acquisition is a
// lockcore.Core, the queue protocol the recipes ship (an ephemeral
// sequential node under /lock, a container; the lowest holds; each waiter
// watches its predecessor with ExistsW; the fencing token is the node's
// czxid; a suspension while waiting is waited out; a contender that gave up
// is deleted), driven here as recipes' queue.run drives it through a
// coord.Session: writes are proposed under the client's session, reads and
// watches go to its home replica's tree, and the lease's Done is the end of
// the session's Connected period. A holder acts on a fenced resource: its
// requests travel for a while, and the resource refuses a token lower than
// the highest it has seen. The lease (acting, releasing) is recipes.Lease's.

const (
	lockDir        = "/lock"
	lockNodePrefix = "lock-"
	acquireTimeout = 3000
)

type lockPhase uint8

const (
	lkIdle      lockPhase = iota
	lkAcquiring           // the core's action is in flight, or pending (Connect, Block)
	lkReleasing           // the holder's delete is in flight
	lkHolding
)

// lockClient is one contender's state (recipes.Lock.Acquire and the Lease).
type lockClient struct {
	phase lockPhase
	core  *lockcore.Core
	// pending is the core's Connect or Block the driver polls each step.
	pending  lockcore.Kind
	breaks0  int // the session's breaks when the period began (Suspended())
	w        *oneShot
	deadline int64
	path     string
	token    int64
	holding  bool // believes it holds the lock and acts on it
	holdEnd  int64
	nextAct  int64
	// inflight is the holder's request to the resource, not yet answered:
	// it acts again, and releases, only after the answer (the work in
	// flight at a Suspended is what SuspendAfter leaves time for).
	inflight  bool
	releasing bool // wants to release once the answer is in
}

// lockState is the shared view the checks need.
type lockState struct {
	holder    *sclient
	lastToken int64
	// the fenced resource
	maxToken int64
	inflight []action
}

type action struct {
	at, token int64
	cl        *sclient
	sent      int64
	path      string
}

func (r *srunner) lockStep(cl *sclient) {
	lk := &cl.lk
	now := r.s.Now()
	switch lk.phase {
	case lkIdle:
		if cl.busy || now < cl.nextAt || r.quiet {
			return
		}
		if cl.sess == nil || cl.sess.closed {
			r.openSession(cl)
			return
		}
		if cl.sess.st != session.Connected {
			cl.nextAt = now + sTick // wait for Reconnected
			return
		}
		lk.deadline = now + acquireTimeout
		lk.path, lk.w, lk.pending = "", nil, 0
		lk.core = lockcore.New(lockcore.Config{Dir: lockDir, Prefix: lockNodePrefix,
			Prefixes: []string{lockNodePrefix}, Rule: lockcore.Mutex, Mode: lockcore.Wait})
		lk.phase = lkAcquiring
		r.logf("client %d: acquire", cl.id)
		r.lockDrive(cl, lockcore.Answer{})
	case lkAcquiring:
		if lk.pending == 0 {
			return
		}
		if a, ok := r.lockPoll(cl); ok {
			lk.pending = 0
			r.lockDrive(cl, a)
		}
	case lkHolding:
		switch {
		case lk.inflight:
		case lk.releasing || now >= lk.holdEnd:
			r.release(cl)
		case lk.holding && now >= lk.nextAct:
			r.act(cl)
		}
	}
}

// leaseBroken is isClosed(done) for the period the acquisition rests on.
func (r *srunner) leaseBroken(cl *sclient) bool {
	return cl.sess.closed || cl.sess.breaks > cl.lk.breaks0
}

// lockPoll answers a pending Connect (recipes' connected: the session is
// Connected, or lost or closed, or the caller's deadline passed) or Block
// (the watch fired, the period ended, or the deadline passed), if it can
// be answered now.
func (r *srunner) lockPoll(cl *sclient) (lockcore.Answer, bool) {
	lk := &cl.lk
	s := cl.sess
	over := r.s.Now() > lk.deadline
	if lk.pending == lockcore.Connect {
		switch {
		case !s.usable():
			return lockcore.Answer{Err: errNoSession}, true
		case s.st == session.Connected:
			lk.breaks0 = s.breaks
			return lockcore.Answer{}, true
		case over:
			return lockcore.Answer{Err: context.DeadlineExceeded}, true
		}
		return lockcore.Answer{}, false
	}
	switch {
	case len(lk.w.got) > 0:
		lk.w = nil
		return lockcore.Answer{Woke: lockcore.Fired}, true
	case r.leaseBroken(cl):
		r.logf("client %d: lease period ended while waiting", cl.id)
		return lockcore.Answer{Woke: lockcore.Broken}, true
	case over:
		r.logf("client %d: acquire timed out", cl.id)
		return lockcore.Answer{Woke: lockcore.Cancelled, Err: context.DeadlineExceeded}, true
	}
	return lockcore.Answer{}, false
}

// lockDrive is recipes' queue.run over the simulation: it steps the core
// with a, executes its actions (the local ones at once, the writes through
// zab, whose outcome comes back here) until one must wait.
func (r *srunner) lockDrive(cl *sclient, a lockcore.Answer) {
	lk := &cl.lk
	s := cl.sess
	rep := r.reps[cl.home]
	for {
		a.Broken = r.leaseBroken(cl)
		if r.s.Now() > lk.deadline {
			a.CtxErr = context.DeadlineExceeded
		}
		act := lk.core.Step(a)
		if act.Unwatch && lk.w != nil {
			r.unwatch(cl, lk.w)
			lk.w = nil
		}
		a = lockcore.Answer{}
		// The caller's context bounds the calls that take it.
		d := max(lk.deadline-r.s.Now(), 1)
		switch act.Kind {
		case lockcore.Connect, lockcore.Block:
			lk.pending = act.Kind
			if ans, ok := r.lockPoll(cl); ok {
				lk.pending, a = 0, ans
				continue
			}
			return
		case lockcore.Create:
			// It runs to its outcome whatever the deadline (defaultCleanup).
			r.write(cl, tree.Op{Type: tree.OpCreate, Path: act.Path, Mode: tree.EphemeralSequential},
				5*cl.timeout/2, func(res tree.Result, err error) {
					if err == nil {
						s.ephemerals[res.Path] = true
						lk.path = res.Path
					}
					// An unknown outcome may leave a node the recipe does not
					// know (it is its session's until it ends).
					r.lockDrive(cl, lockcore.Answer{Path: res.Path, Err: err})
				})
			return
		case lockcore.CreateDir:
			r.write(cl, tree.Op{Type: tree.OpCreate, Path: act.Path, Mode: tree.Container}, d,
				func(_ tree.Result, err error) { r.lockDrive(cl, lockcore.Answer{Err: err}) })
			return
		case lockcore.List:
			if !s.usable() {
				a.Err = errNoSession
				continue
			}
			a.Names, _, a.Err = rep.tree.Children(act.Path, nil)
		case lockcore.ExistsW:
			w, ok := r.watch(cl, act.Path, tree.WatchData, true)
			if w == nil {
				a.Err = errNoSession
				continue
			}
			lk.w, a.Exists = w, ok
		case lockcore.Exists:
			if !s.usable() {
				a.Err = errNoSession
				continue
			}
			var st tree.Stat
			st, a.Exists, a.Err = rep.tree.Exists(act.Path, nil)
			a.Czxid = st.Czxid
		case lockcore.Delete:
			lk.path = ""
			r.deleteNode(cl, act.Path, func() { r.lockDrive(cl, lockcore.Answer{}) })
			return
		case lockcore.Held:
			lk.path = act.Path
			r.acquired(cl, act.Token)
			return
		default: // lockcore.Failed
			r.logf("client %d: acquire failed: %v", cl.id, act.Err)
			lk.phase, lk.core = lkIdle, nil
			cl.nextAt = r.s.Now() + r.rng.Int64N(150)
			return
		}
	}
}

// unwatch is Session.RemoveWatch of a one-shot watch the wait set.
func (r *srunner) unwatch(cl *sclient, w *oneShot) {
	s := cl.sess
	if rep := r.reps[s.node.id]; rep.inc == s.node.inc {
		rep.tree.RemoveWatcher(w)
	}
	w.removed = true
	s.watches = slices.DeleteFunc(s.watches, func(x *oneShot) bool { return x == w })
}

// deleteNode deletes one of the client's lock nodes (recipes' leave and
// Lease.Release, with defaultCleanup as its deadline) and then calls done.
func (r *srunner) deleteNode(cl *sclient, p string, done func()) {
	s := cl.sess
	if s == nil {
		done()
		return
	}
	delete(s.ephemerals, p)
	r.write(cl, tree.Op{Type: tree.OpDelete, Path: p, Version: -1}, 5*cl.timeout/2, func(tree.Result, error) { done() })
}

// acquired: Acquire returned a lease. The application acts only if the
// lease is not already Done.
func (r *srunner) acquired(cl *sclient, token int64) {
	lk := &cl.lk
	now := r.s.Now()
	lk.token, lk.phase = token, lkHolding
	lk.inflight, lk.releasing = false, false
	// Some work outlasts the session timeout: a holder then depends on
	// its session staying alive, and must stop when it may not be.
	lk.holdEnd = now + 30 + r.rng.Int64N(2*cl.timeout)
	lk.nextAct = now
	if cl.sess.breaks > lk.breaks0 || cl.sess.closed {
		r.logf("client %d: acquired %s (token %d) but the lease is already broken", cl.id, lk.path, token)
		r.release(cl)
		return
	}
	lk.holding = true
	r.res.Acquired++
	r.logf("client %d: holds the lock: %s token %d", cl.id, lk.path, token)
	if token <= r.lock.lastToken {
		r.fail("client %d acquired the lock with token %d, not above the previous holder's %d", cl.id, token,
			r.lock.lastToken)
	}
	r.lock.lastToken = token
	r.lock.holder = cl
	r.checkExclusive()
}

// act sends one fenced request to the resource.
func (r *srunner) act(cl *sclient) {
	lk := &cl.lk
	now := r.s.Now()
	for _, g := range r.gone[lk.path] {
		if int64(g.z) > lk.token && g.at <= now {
			r.fail("client %d acts with token %d, but its lock node %s was deleted at %v (time %d)", cl.id, lk.token,
				lk.path, g.z, g.at)
			return
		}
	}
	// Work may take almost half the timeout: a holder that stops at
	// Suspended (half the timeout before Lost, noticed within a tick or a
	// short maintain stall) still finishes it before the session can expire.
	d := 1 + r.rng.Int64N(max(1, cl.timeout/2-6*sTick))
	r.lock.inflight = append(r.lock.inflight, action{at: now + d, token: lk.token, cl: cl, sent: now, path: lk.path})
	lk.inflight = true
	lk.nextAct = now + d + r.rng.Int64N(40)
	r.res.Actions++
}

// release is Lease.Release: stop acting, let the request in flight
// finish, then delete the node.
func (r *srunner) release(cl *sclient) {
	lk := &cl.lk
	if lk.inflight {
		lk.holding, lk.releasing = false, true
		if r.lock.holder == cl {
			r.lock.holder = nil
		}
		return
	}
	lk.releasing = false
	if lk.holding {
		r.logf("client %d: releases %s (token %d)", cl.id, lk.path, lk.token)
	}
	lk.holding = false
	if r.lock.holder == cl {
		r.lock.holder = nil
	}
	r.cleanup(cl)
}

// cleanup deletes the holder's node and goes idle.
func (r *srunner) cleanup(cl *sclient) {
	lk := &cl.lk
	lk.phase = lkReleasing
	done := func() {
		lk.phase = lkIdle
		cl.nextAt = r.s.Now() + r.rng.Int64N(150)
	}
	if lk.path == "" {
		done()
		return
	}
	p := lk.path
	lk.path = ""
	r.deleteNode(cl, p, done)
}

// onBreak runs when a session drains a Suspended or Lost: the lease's Done
// closes, and a holder stops acting at once.
func (r *srunner) onBreak(cl *sclient, s *ssession, lost bool) {
	if !cl.lock || cl.sess != s || cl.lk.phase != lkHolding || !cl.lk.holding {
		return
	}
	if !lost && r.cfg.HolderIgnoresSuspended {
		return
	}
	r.logf("client %d: lease of %s (token %d) broken", cl.id, cl.lk.path, cl.lk.token)
	r.release(cl)
}

// lockTick delivers the resource's requests and checks mutual exclusion.
func (r *srunner) lockTick() {
	now := r.s.Now()
	l := r.lock
	keep := l.inflight[:0]
	for _, a := range l.inflight {
		if a.at > now {
			keep = append(keep, a)
			continue
		}
		// The work must land while the lock is still the holder's: before
		// its node is deleted (by the holder or its session's expiry).
		for _, g := range r.gone[a.path] {
			if int64(g.z) > a.token && g.at < now {
				r.fail("work of client %d under token %d (sent at %d) lands at %d, after its lock node %s was deleted "+
					"at %v (time %d)", a.cl.id, a.token, a.sent, now, a.path, g.z, g.at)
			}
		}
		if a.token < l.maxToken {
			r.fail("the fenced resource got token %d from client %d (sent at %d) after token %d: two holders' "+
				"work interleaved", a.token, a.cl.id, a.sent, l.maxToken)
		}
		// The answer goes back at once (its delay is in the request's).
		if a.cl.lk.token == a.token {
			a.cl.lk.inflight = false
		}
		l.maxToken = max(l.maxToken, a.token)
	}
	l.inflight = keep
	r.checkExclusive()
}

// checkExclusive: no two clients believe they hold the lock at once. A
// client whose process is paused cannot act, and on resume its maintain
// loop runs first.
func (r *srunner) checkExclusive() {
	var hs []*sclient
	for _, cl := range r.clients {
		if !cl.dead && cl.lk.holding && r.s.Now() >= r.nodes[cl.home].paused {
			hs = append(hs, cl)
		}
	}
	if len(hs) > 1 {
		var b strings.Builder
		for _, cl := range hs {
			fmt.Fprintf(&b, " client %d (token %d, session %v)", cl.id, cl.lk.token, cl.sess.st)
		}
		r.fail("two clients hold the lock at once:%s", b.String())
	}
}
