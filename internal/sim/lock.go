package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
)

// The lock clients run recipes/lock.go's protocol over the simulated
// tree: an ephemeral sequential node under /lock (a container), the lowest
// holds, each waiter watches its predecessor with ExistsW, the fencing
// token is the node's czxid, and the lease breaks at the session's next
// Suspended or Lost. A holder acts on a fenced resource: its requests
// travel for a while, and the resource refuses a token lower than the
// highest it has seen.

const (
	lockDir        = "/lock"
	lockNodePrefix = "lock-"
	acquireTimeout = 3000
)

type lockPhase uint8

const (
	lkIdle    lockPhase = iota
	lkBusy              // a write (enqueue, ensureDir, cleanup, release) is in flight
	lkWaiting           // watching the predecessor
	lkHolding
)

// lockClient is one contender's state (recipes.Lock.Acquire and the Lease).
type lockClient struct {
	phase    lockPhase
	path     string
	token    int64
	breaks0  int // the session's breaks when Acquire began (Suspended())
	w        *oneShot
	deadline int64
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
		// Acquire: the lease is watched from before the node exists.
		lk.breaks0 = cl.sess.breaks
		lk.deadline = now + acquireTimeout
		lk.path, lk.w = "", nil
		r.logf("client %d: acquire", cl.id)
		r.enqueue(cl)
	case lkWaiting:
		switch {
		case len(lk.w.got) > 0:
			r.lockQueue(cl)
		case cl.sess.closed || cl.sess.breaks > lk.breaks0:
			r.logf("client %d: lease lost while waiting", cl.id)
			r.cleanup(cl)
		case now > lk.deadline:
			r.logf("client %d: acquire timed out", cl.id)
			r.cleanup(cl)
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

// enqueue creates the contender's node, making /lock (a container) when
// missing, as the recipes' queue.enqueue and ensureDir do.
func (r *srunner) enqueue(cl *sclient) {
	lk := &cl.lk
	lk.phase = lkBusy
	d := max(lk.deadline-r.s.Now(), 1)
	s := cl.sess
	r.write(cl, tree.Op{Type: tree.OpCreate, Path: lockDir + "/" + lockNodePrefix, Mode: tree.EphemeralSequential},
		d, func(res tree.Result, err error) {
			switch {
			case err == nil:
				lk.path = res.Path
				s.ephemerals[res.Path] = true
				r.lockQueue(cl)
			case errors.Is(err, tree.ErrNoNode):
				r.write(cl, tree.Op{Type: tree.OpCreate, Path: lockDir, Mode: tree.Container}, d,
					func(_ tree.Result, err error) {
						if err == nil || errors.Is(err, tree.ErrNodeExists) {
							r.enqueue(cl)
							return
						}
						r.acquireFailed(cl)
					})
			default:
				// Acquire fails; a create of unknown outcome may leave a node
				// the recipe does not know (it is its session's until it ends).
				r.acquireFailed(cl)
			}
		})
}

func (r *srunner) acquireFailed(cl *sclient) {
	cl.lk.phase = lkIdle
	cl.nextAt = r.s.Now() + r.rng.Int64N(100)
}

// lockQueue is the body of the recipes' queue.wait loop (the mutex rule): local reads of the home tree.
func (r *srunner) lockQueue(cl *sclient) {
	lk := &cl.lk
	s := cl.sess
	rep := r.reps[cl.home]
	for {
		if !s.usable() {
			r.cleanup(cl)
			return
		}
		names, _, err := rep.tree.Children(lockDir, nil)
		if err != nil {
			r.cleanup(cl)
			return
		}
		mine := lk.path[strings.LastIndexByte(lk.path, '/')+1:]
		var seqs []string
		for _, n := range names {
			if strings.HasPrefix(n, lockNodePrefix) {
				seqs = append(seqs, n)
			}
		}
		slices.Sort(seqs)
		i, found := slices.BinarySearch(seqs, mine)
		if !found {
			r.logf("client %d: lock node %s vanished", cl.id, lk.path)
			r.cleanup(cl)
			return
		}
		if i == 0 {
			st, ok, _ := rep.tree.Exists(lk.path, nil)
			if !ok {
				r.cleanup(cl)
				return
			}
			r.acquired(cl, st.Czxid)
			return
		}
		w, ok := r.watch(cl, lockDir+"/"+seqs[i-1], tree.WatchData, true)
		if w == nil {
			r.cleanup(cl)
			return
		}
		if !ok {
			continue // the predecessor left between the two reads
		}
		lk.w, lk.phase = w, lkWaiting
		return
	}
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

// cleanup deletes the contender's node (if known) and goes idle.
func (r *srunner) cleanup(cl *sclient) {
	lk := &cl.lk
	lk.phase = lkBusy
	s := cl.sess
	done := func() {
		lk.phase = lkIdle
		cl.nextAt = r.s.Now() + r.rng.Int64N(150)
	}
	if lk.path == "" || s == nil {
		done()
		return
	}
	p := lk.path
	delete(s.ephemerals, p)
	r.write(cl, tree.Op{Type: tree.OpDelete, Path: p, Version: -1}, 5*cl.timeout/2, func(tree.Result, error) { done() })
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
