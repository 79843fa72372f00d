package coord

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// ErrDiverged: this node's tree differs from the leader's at the same zxid
// (tree.Tree.Digest). A follower or observer then stops serving and
// resynchronises: its reads and writes, and its sessions', fail with an
// error wrapping ErrDiverged while it waits for the leader's permission
// (granted only while the cluster keeps a quorum without it: see
// grantResync; never in a set of two voters), then throws its tree and log
// away and takes the leader's state again (EventDiverged, then
// EventResynced). A
// leader that differs from the digest its predecessor logged, or a replica
// whose resynchronisations keep differing (maxResyncs in a row with no
// check passing between them), fail-stops instead: Node.Err wraps
// ErrDiverged and ErrFailed.
var ErrDiverged = errors.New("coord: replica diverged from the leader")

// Replicas prove they agree, as ZooKeeper 3.6's digest check does: the
// leader puts its tree digest at a zxid it applied into a txn every
// digestEvery applied entries, and every replica compares it with its own
// digest at that zxid when it applies the txn. zab only carries the txn
// (the digest is the state machine's, opaque to it). A replica that
// differs stops serving at once, says so loudly and resynchronises.
const (
	// digestEvery is how many applied entries the leader lets pass between
	// two digest checks.
	digestEvery = 64
	// digestKeep is how many recent (zxid, digest) pairs a replica keeps to
	// compare a check against: more than a check can lag behind its zxid.
	digestKeep = 4096
	// maxResyncs is how many resynchronisations in a row, with no digest
	// check passing between them, a replica tries before it fail-stops:
	// one that differs again right after taking the leader's state is
	// broken in a way a resync does not mend.
	maxResyncs = 3
)

// digestAt is the tree's digest right after applying zxid.
type digestAt struct {
	zxid   int64
	digest uint64
}

// digests is a replica's record of its recent digests. Apply writes it on
// the zab driver goroutine; the leader's maintenance loop reads the last.
type digests struct {
	mu     sync.Mutex
	ring   [digestKeep]digestAt
	next   int
	n      int
	count  uint64 // entries recorded
	sent   uint64 // count when the leader last proposed a check
	failed error  // a mismatch not yet taken (take)
	// passed counts the checks that matched, mismatches those that did
	// not.
	passed, mismatches uint64
}

// record notes the digest after zxid.
func (d *digests) record(zxid int64, digest uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ring[d.next] = digestAt{zxid: zxid, digest: digest}
	d.next = (d.next + 1) % digestKeep
	d.n = min(d.n+1, digestKeep)
	d.count++
}

// at returns the digest recorded right after zxid, if still kept.
func (d *digests) at(zxid int64) (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 1; i <= d.n; i++ {
		e := d.ring[(d.next-i+digestKeep)%digestKeep]
		if e.zxid == zxid {
			return e.digest, true
		}
		if e.zxid < zxid {
			break
		}
	}
	return 0, false
}

// due returns the last digest if a check is due, and marks it sent.
func (d *digests) due() (digestAt, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 || d.count-d.sent < digestEvery {
		return digestAt{}, false
	}
	d.sent = d.count
	return d.ring[(d.next-1+digestKeep)%digestKeep], true
}

// check compares a leader's digest with ours at the same zxid; a mismatch
// is kept (the first) and returned.
func (d *digests) check(zxid int64, leader uint64, self uint64) error {
	mine, ok := d.at(zxid)
	if !ok {
		return nil
	}
	if mine == leader {
		d.mu.Lock()
		d.passed++
		d.mu.Unlock()
		return nil
	}
	err := fmt.Errorf("%w: tree digest at zxid %v is %016x here, %016x at the leader (checked by the txn applied after it; own last %016x)",
		ErrDiverged, zab.Zxid(zxid), mine, leader, self)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mismatches++
	if d.failed == nil {
		d.failed = err
	}
	return err
}

// take returns the mismatch found since the last take, if any.
func (d *digests) take() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.failed
	d.failed = nil
	return err
}

// reset forgets the recorded digests (the tree is being replaced).
func (d *digests) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next, d.n, d.failed = 0, 0, nil
	d.sent = d.count
}

// counts returns how many checks matched and how many did not.
func (d *digests) counts() (passed, mismatches uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed, d.mismatches
}

// maybeProposeDigest, on the leader, proposes a digest check when one is
// due: a no-op txn carrying the leader's digest at the last zxid it applied.
func (n *Node) maybeProposeDigest() {
	at, ok := n.fsm.digests.due()
	if !ok {
		return
	}
	n.proposeHousekeeping(request{Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1},
		DigestAt: at.zxid, Digest: at.digest}, 0)
}

// divergence is a replica's state of repair after a digest mismatch, and
// on a leader the resyncs it granted. The maintenance goroutine owns it;
// err is read by every operation, the inbox written by onApp.
type divergence struct {
	err     atomic.Pointer[error] // set while resynchronising: operations fail with it
	pending bool                  // a resync is due (no grant, or zab refused it so far)
	// granted is when the leader's grant for this replica's resync came
	// (zero: none); asks paces the requests for one.
	granted time.Time
	asks    resyncAsks
	streak  int    // resyncs in a row with no check passing between them
	passed  uint64 // digests.passed when the last resync started
	resets  uint64 // fsm.resets then: it is done once the tree was emptied since
	resyncs atomic.Uint64

	// grants, on a leader, are the resyncs it allows (see grantResync);
	// denied counts the requests it refused.
	grants map[zab.PeerID]*resyncGrant
	denied atomic.Uint64

	inMu  sync.Mutex
	inbox []resyncMsg // asks and grants from peers, for the maintenance goroutine
}

// resyncMsg is a resync request or grant from a peer.
type resyncMsg struct {
	from zab.PeerID
	m    appMsg
}

// queue takes in a resync request or grant (from onApp).
func (d *divergence) queue(from zab.PeerID, m appMsg) {
	d.inMu.Lock()
	defer d.inMu.Unlock()
	if len(d.inbox) < 1024 { // a peer flooding asks hurts nobody
		d.inbox = append(d.inbox, resyncMsg{from: from, m: m})
	}
}

// hasInbox reports whether resync messages are queued.
func (d *divergence) hasInbox() bool {
	d.inMu.Lock()
	defer d.inMu.Unlock()
	return len(d.inbox) > 0
}

// takeInbox returns the queued resync messages.
func (d *divergence) takeInbox() []resyncMsg {
	d.inMu.Lock()
	defer d.inMu.Unlock()
	in := d.inbox
	d.inbox = nil
	return in
}

// A resync happens only with the leader's permission. An emptied voter
// counts for nothing until an established leader synced it (zab's lost-disk
// rule), so if a majority of the voters were emptied at once (every
// follower finds the same mismatch when the leader's own tree is the one
// that differs, or two of three diverge together) the leader would lose
// its quorum and no leader could ever be established to sync them. So a
// diverged replica asks the leader (msgResyncAsk, paced by resyncAsks
// until it is granted) and keeps refusing to serve, while still voting, until it is
// granted (msgResyncGrant, naming the leader's epoch); the leader grants:
//
//   - a voter, only while no other voter holds a grant, no voter change is
//     pending (the configuration logged is committed), and the leader with
//     the voters other than it that are synced and acknowledging (heard
//     from within a sync limit) still make a majority of the voters. In a
//     set of two voters that never holds: the follower stays diverged,
//     refusing to serve and voting, until an operator adds a voter or
//     restarts it with an empty DataDir;
//   - an observer (it counts in no quorum) while fewer than
//     maxObserverResyncs others hold a grant.
//
// A grant lasts until the replica says it serves again (msgResyncDone),
// or grantHold sync limits. The replica acts only on a grant received
// within a sync limit (it asks again otherwise, and a grantee's ask renews
// its grant), so it has emptied itself well before a grant lapses; from
// then on, until it is synced and answering again, it is no synced,
// acknowledging voter in the next grant's count (one stuck restoring a
// large tree falls silent for longer than a sync limit, and the leader
// stops counting it).
const (
	maxObserverResyncs = 2
	grantHold          = 4 // sync limits
)

// maxResyncAskTicks bounds the gap between two requests for a resync
// grant (resyncAsks), in ticks.
const maxResyncAskTicks = 8

// resyncAsks paces a diverged replica's requests for a resync grant
// (msgResyncAsk): the first goes at once, and while none is granted each
// next one after twice the gap before it, from one tick up to
// maxResyncAskTicks ticks (and at most a sync limit, well within a grant's
// hold). A leader that may not grant (a set of two voters never does) does
// not answer, so without the back-off a diverged follower asked every tick
// for as long as it stayed diverged (100 times a second with LocalConfig).
// The maintenance goroutine owns it; sent is read by Stats.
type resyncAsks struct {
	next time.Time
	gap  time.Duration
	sent atomic.Uint64
}

// reset starts the pacing again: the next request goes at once.
func (a *resyncAsks) reset() { a.next, a.gap = time.Time{}, 0 }

// due reports whether a request goes now (and counts it), given the tick
// and the sync limit.
func (a *resyncAsks) due(now time.Time, tick, syncLimit time.Duration) bool {
	if now.Before(a.next) {
		return false
	}
	a.gap = max(min(2*a.gap, maxResyncAskTicks*tick, syncLimit), tick)
	a.next = now.Add(a.gap)
	a.sent.Add(1)
	return true
}

// resyncGrant is a resync the leader allows.
type resyncGrant struct {
	observer bool
	since    time.Time
}

// grantResync is the leader's rule (see above): whether it may grant who a
// resync now, given its status st, the grants it holds and idle, the ticks
// within which a learner counts as acknowledging; why says why not.
func grantResync(st zab.Status, grants map[zab.PeerID]*resyncGrant, who zab.PeerID, idle uint64) (ok bool, why string) {
	if st.SoftState.Role != zab.RoleLeading || !st.SoftState.Serving {
		return false, "not an established leader"
	}
	if who == st.ID {
		return false, "the leader itself"
	}
	if g := grants[who]; g != nil {
		return true, "" // renewed
	}
	if !slices.Contains(st.Voters, who) {
		n := 0
		for _, g := range grants {
			if g.observer {
				n++
			}
		}
		if n >= maxObserverResyncs {
			return false, "other observers resynchronise"
		}
		return true, ""
	}
	for _, g := range grants {
		if !g.observer {
			return false, "another voter resynchronises"
		}
	}
	if st.ConfigZxid > st.Committed {
		return false, "a voter change is pending"
	}
	live := 0
	for _, v := range st.Voters {
		if v == st.ID {
			live++
			continue
		}
		if v == who {
			continue
		}
		if p, ok := st.Progress[v]; ok && !p.Observer && p.Synced && !p.Paused && p.IdleTicks < idle {
			live++
		}
	}
	if live < len(st.Voters)/2+1 {
		return false, fmt.Sprintf("the leader and %d synced voters without it are no majority of %d", live-1, len(st.Voters))
	}
	return true, ""
}

// resyncMessages handles the queued resync requests and grants, and on a
// leader lets the grants that are done or lapsed go.
func (n *Node) resyncMessages(st zab.Status) {
	d := &n.div
	now := time.Now()
	leading := st.SoftState.Role == zab.RoleLeading && st.SoftState.Serving
	idle := uint64(n.cfg.ticks(n.cfg.SyncLimit))
	if !leading {
		d.grants = nil
	}
	for id, g := range d.grants {
		if now.Sub(g.since) > grantHold*n.cfg.SyncLimit {
			delete(d.grants, id)
			n.log.Warn("coord: resync grant lapsed", "peer", id)
		}
	}
	for _, in := range d.takeInbox() {
		switch in.m.Kind {
		case msgResyncGrant:
			if d.pending && in.from == st.SoftState.Leader && in.m.Sent == int64(st.SoftState.Epoch) {
				d.granted = now
				d.asks.reset() // asked again (a resync that waits) at once
			}
		case msgResyncDone:
			if _, ok := d.grants[in.from]; ok {
				delete(d.grants, in.from)
				n.log.Info("coord: resync grant ends: the replica serves again", "peer", in.from)
			}
		case msgResyncAsk:
			if !leading {
				continue
			}
			ok, why := grantResync(st, d.grants, in.from, idle)
			if !ok {
				d.denied.Add(1)
				n.log.Debug("coord: resync not granted", "peer", in.from, "why", why)
				continue
			}
			if g := d.grants[in.from]; g != nil {
				g.since = now
			} else {
				if d.grants == nil {
					d.grants = map[zab.PeerID]*resyncGrant{}
				}
				d.grants[in.from] = &resyncGrant{observer: !slices.Contains(st.Voters, in.from), since: now}
				n.log.Warn("coord: a diverged replica may resynchronise", "peer", in.from)
			}
			b, err := encodeAppMsg(appMsg{Kind: msgResyncGrant, Sent: int64(st.SoftState.Epoch)})
			if err == nil {
				_ = n.zab.SendApp(in.from, b)
			}
		}
	}
}

// diverged returns the error operations fail with while this replica
// resynchronises, or nil.
func (n *Node) diverged() error {
	if p := n.div.err.Load(); p != nil {
		return *p
	}
	return nil
}

// checkDiverged handles a digest mismatch found since the last call: a
// follower or observer stops serving, says so loudly and resynchronises
// from the leader (zab.Node.Resync); a leader, or a replica whose resyncs
// keep differing, fail-stops. It runs on the maintenance goroutine and
// reports whether the node stopped.
func (n *Node) checkDiverged() bool {
	d := &n.div
	if len(d.grants) > 0 || d.hasInbox() {
		n.resyncMessages(n.zab.Status())
	}
	if err := n.fsm.digests.take(); err != nil && d.err.Load() == nil {
		// (One found while a resync is under way is of the tree it
		// replaces.)
		passed, _ := n.fsm.digests.counts()
		if d.resyncs.Load() > 0 && passed == d.passed {
			d.streak++
		} else {
			d.streak = 1
		}
		leading := n.zab.Status().SoftState.Role == zab.RoleLeading
		if leading || d.streak > maxResyncs {
			why := "it leads: nobody to resynchronise from, and its followers must not take its state"
			if !leading {
				why = fmt.Sprintf("it differed again after %d resynchronisations in a row", d.streak-1)
			}
			n.log.Error("coord: this replica's tree differs from the leader's and "+why+": it stops serving and "+
				"leaves the replication; restart it to rebuild its tree (wipe its DataDir if it diverges again)", "err", err)
			n.fail(err)
			n.zab.Close()
			return true
		}
		werr := fmt.Errorf("%w (resynchronising from the leader)", err)
		d.err.Store(&werr)
		d.pending = true
		d.granted = time.Time{}
		d.asks.reset()
		n.log.Error("coord: this replica's tree differs from the leader's: it stops serving and "+
			"resynchronises, throwing its tree and log away, once the leader allows it", "err", err, "attempt", d.streak)
		n.emit(ClusterEvent{Type: EventDiverged, Err: werr})
	}
	if d.pending {
		st := n.zab.Status()
		if now := time.Now(); d.granted.IsZero() || now.Sub(d.granted) > n.cfg.SyncLimit {
			// Not (or no longer) granted: ask the leader, at most once a tick.
			d.granted = time.Time{}
			if l := st.SoftState.Leader; l != 0 && l != st.ID && d.asks.due(now, n.cfg.TickInterval, n.cfg.SyncLimit) {
				if b, err := encodeAppMsg(appMsg{Kind: msgResyncAsk}); err == nil {
					_ = n.zab.SendApp(l, b)
				}
			}
			return false
		}
		if h := n.resyncHook.Load(); h != nil {
			(*h)() // tests hold the resync here
		}
		ctx, cancel := n.closingContext(n.cfg.SyncLimit)
		resets := n.fsm.resets.Load()
		err := n.zab.Resync(ctx)
		cancel()
		switch {
		case err == nil:
			d.pending, d.resets, d.granted = false, resets, time.Time{}
			d.passed, _ = n.fsm.digests.counts()
			d.resyncs.Add(1)
		case errors.Is(err, zab.ErrResyncLeader):
			// Elected meanwhile: its tree is the one that differs.
			cause := *d.err.Load()
			n.log.Error("coord: this replica's tree differs from the leader's and it now leads: it stops serving "+
				"and leaves the replication; restart it to rebuild its tree", "err", cause)
			n.fail(cause)
			n.zab.Close()
			return true
		default:
			n.log.Debug("coord: resync waits for a leader", "err", err)
		}
		return false
	}
	if d.err.Load() != nil {
		st := n.zab.Status()
		// Emptied since the resync started and applying the leader's
		// state since: a status published after the wipe says serving.
		if n.fsm.resets.Load() > d.resets && !n.fsm.emptied.Load() &&
			st.SoftState.Serving && st.Applied > 0 && st.Applied >= st.Committed {
			d.err.Store(nil)
			if b, err := encodeAppMsg(appMsg{Kind: msgResyncDone}); err == nil && st.SoftState.Leader != st.ID {
				_ = n.zab.SendApp(st.SoftState.Leader, b) // the leader may grant the next
			}
			n.log.Warn("coord: resynchronised from the leader: serving again (the next digest check verifies it)",
				"applied", st.Applied, "resyncs", d.resyncs.Load())
			n.emit(ClusterEvent{Type: EventResynced})
		}
	}
	return false
}
