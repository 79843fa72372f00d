// Sessions, ephemerals, watches and the lock recipe in the simulator.
//
// RunSessions drives one seed, in one goroutine and virtual time (a unit
// is a millisecond of coord's clock): a zabtest.Sim ensemble whose peers each
// feed a real tree.Tree, and beside every peer the session core that
// coord.Node runs, session.Replica, driven as coord's maintenance goroutine
// drives it (inputs queued while that goroutine stalls, a Tick every zab
// tick, the leader's confirmations of its reign from zab's ping rounds,
// expiries proposed only as the deciding leader, reaper scans): clients open sessions with a
// createSession txn (the id is its zxid, the lease starts when it was
// sent), heartbeat through their peer to the leader on an app-message
// network that shares zab's cuts and drop rate, the leader refreshes its
// tracker on arrival and acknowledges once zab reports that a quorum
// answered a ping round sent after the heartbeat arrived, expires
// sessions and proposes the closeSession, and the owner moves Connected,
// Suspended, Lost on its own clock. Faults: zabtest.Sim's (drops, duplicates, delays,
// partitions, one-way cuts, crashes and restarts, which kill a node's
// clients), isolating a client's peer, a stalled maintain loop, and, when
// the simulator offers them, a leader whose zab clock stops (deposed
// without knowing) and whole-process pauses.
//
// Replay a failure with
//
//	go test ./internal/sim -run 'TestSimSessions$' -seed N -v
//	go test ./internal/sim -run 'TestSimLock$' -seed N -v
//
// (the failure prints the schedule's file); soak with -sim.seeds=N
// -sim.base=B; -sim.coordasis plants, around the real core, the two bugs
// SessionConfig.CoordAsIs describes.

package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/zabtest"
)

// SessionConfig shapes one seeded run of RunSessions: sessions, ephemerals,
// watches and (with LockClients) the lock recipe, in virtual time. One
// virtual unit stands for a millisecond of coord's clock; the zab tick is 10.
type SessionConfig struct {
	Seed uint64
	// Voters is 3 or 5; zero picks from the seed.
	Voters int
	// EphClients own sessions and create, change and delete ephemerals and
	// set one-shot watches. LockClients run the lock recipe. Both zero:
	// 4 ephemeral clients.
	EphClients, LockClients int
	// Duration is the virtual time of the fault phase; default 4000.
	Duration int64

	// Test-only mutations; the checker must catch each.

	// AckWithoutQuorum tells the core of a node that believes it leads, at
	// every tick, that its reign is confirmed now, with no quorum behind
	// it, so a deposed leader can extend a lease.
	AckWithoutQuorum bool
	// ExpireEarly tells the core each session's timeout as half what it is
	// (in the session table and applied createSessions), so the leader's
	// tracker expires sessions early.
	ExpireEarly bool
	// NoExpiry makes the leader never propose the expiry of a session.
	NoExpiry bool
	// HolderIgnoresSuspended keeps a lock holder acting until Lost.
	HolderIgnoresSuspended bool
	// CoordAsIs plants, around the real core, two session bugs coord once
	// had:
	//   - a leader's closeSession is retried through proposeAt, so a
	//     leader that was deposed without noticing (its clock stalled) when
	//     it decided re-submits the expiry through its successor, which
	//     commits it although it has been acknowledging the session's
	//     heartbeats (fixed: proposed only while the deciding leader still
	//     leads in the epoch it decided in);
	//   - a createSession retried after an unknown outcome and applied
	//     twice gives the owner the duplicate's zxid as its session id, a
	//     session the tree does not have, and onApply adds that id to the
	//     leader's tracker (fixed: the owner gets the id of the first
	//     apply, onApply ignores duplicates).
	CoordAsIs bool
	// LongMaintainStalls stalls a node's maintain loop for up to 300 units
	// (default: at most maxMaintainStall, a fifth of the shortest timeout). A lease's
	// Done closes only when that loop ticks, so a longer stall lets a lock
	// holder act on after its session expired (see the report).
	LongMaintainStalls bool
	// RestoreDropsWatches installs a snapshot into a fresh tree instead of
	// tree.Restore, so the watches set on the old one are lost.
	RestoreDropsWatches bool
	// Mistake is a protocol mistake every peer makes (see zabtest.Mistake).
	Mistake zabtest.Mistake
	// ForgetRetried is Config.ForgetRetried: a mutation of coord's dedup
	// rule the simulators do not catch.
	ForgetRetried bool
}

// SessionResult is the outcome of one RunSessions run.
type SessionResult struct {
	Seed   uint64
	Voters int
	// Err is the first violation found.
	Err error
	// Schedule is the run's log in virtual time.
	Schedule []string
	Steps    int
	// Counters, for the test's summary.
	Sessions, Expired, Lost, Acquired, Actions, Events, OneShots int
	// Retries counts attempts after a write's first (proposal.Retry),
	// ExpiryRetries those of leaders' expiries.
	Retries, ExpiryRetries int
}

// Failed reports whether the run found a violation.
func (r *SessionResult) Failed() bool { return r.Err != nil }

// String summarises the run.
func (r *SessionResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (%d voters): %d sessions (%d expired by a leader, %d lost), %d lock acquisitions, "+
		"%d fenced actions, %d watch events, %d one-shot watches, %d retries (%d of expiries), %d steps", r.Seed, r.Voters,
		r.Sessions, r.Expired, r.Lost, r.Acquired, r.Actions, r.Events, r.OneShots, r.Retries, r.ExpiryRetries, r.Steps)
	if r.Err != nil {
		fmt.Fprintf(&b, ": %v", r.Err)
	}
	return b.String()
}

// Timing of the coord mirror, in virtual units (ms), as coord's test
// profile: a 10 ms tick, SyncLimit 5 ticks.
const (
	sTick        = 10
	sSyncLimit   = 5 * sTick
	sCallTimeout = 800
	// sReapEvery is coord's max(time.Second, TickInterval).
	sReapEvery = 1000
)

var (
	errNoSession = errors.New("sim: session unusable")
)

// vt turns a virtual time into the time.Time that session.State and
// session.Tracker take.
func vt(v int64) time.Time { return time.Unix(1_000_000, 0).Add(time.Duration(v) * time.Millisecond) }

// untime is vt's inverse.
func untime(t time.Time) int64 { return int64(t.Sub(vt(0)) / time.Millisecond) }

type appEvent struct {
	at, seq  int64
	from, to zab.PeerID
	m        session.Message
}

type appQueue []*appEvent

func (q appQueue) Len() int { return len(q) }
func (q appQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q appQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *appQueue) Push(x any)   { *q = append(*q, x.(*appEvent)) }
func (q *appQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// snode is one coord.Node around a simulated peer: its session core
// (session.Replica) stepped as coord's maintenance goroutine steps it, and
// the owner side of its sessions as the application sees them. A crash
// loses it all; a restart makes a new one.
type snode struct {
	id   zab.PeerID
	inc  int
	core *session.Replica
	// finished is its writes finished with one attempt, to forget
	// (coord: Node.finished).
	finished proposal.Finished
	// inbox holds the core's inputs while the maintenance goroutine is
	// stalled (coord: Node.inbox).
	inbox []func()
	// confEpoch and confAt are the last confirmation of its reign zab
	// reported (coord: zab.NodeConfig.OnLeaderConfirmed).
	confEpoch  uint32
	confAt     int64
	starveEnd  int64 // when the starvation of its process ends
	nextTick   int64
	stallUntil int64 // maintain loop paused (a slow goroutine) until then
	paused     int64 // the whole process paused until then
	sessions   map[int64]*ssession
}

// ssession is the owner side of one session (coord.Session): what the
// application sees of it, as the core last said.
type ssession struct {
	id      int64
	timeout int64
	node    *snode
	// st, lease and leaseEnd are the core's, refreshed after each of its
	// steps (and kept once it ends).
	st              session.Status
	lease, leaseEnd int64
	closing         bool
	closed          bool
	// breaks counts Suspended and Lost transitions: a lease taken when it
	// was n is broken once it is more (coord.Session.Suspended).
	breaks int
	lostAt int64 // -1 until Lost
	client *sclient
	// ephemerals the owner created and has not (tried to) delete.
	ephemerals map[string]bool
	watches    []*oneShot
}

// prop is one proposal retried by coord's own rule (proposal.Retry, which
// coord's Node.attempt steps for every write, expiry and housekeeping
// op): same peer, same request (ReqID), Since once an outcome is unknown,
// only as the leader of its epoch for an expiry (Retry.AsLeader: it ends
// with that reign), again after a tick on the zab verdicts coord retries,
// until its deadline.
type prop struct {
	node *snode
	// rt is the write's retry rule, coord's own (proposal.Retry): every
	// attempt proposes rt.Data().
	rt       *proposal.Retry
	reqID    uint64
	zid      uint64
	waiting  bool
	attempts int
	retryAt  int64
	deadline int64
	done     func(res tree.Result, z zab.Zxid, err error)
	over     bool
}

type srunner struct {
	cfg SessionConfig
	s   *zabtest.Sim
	sc  zabtest.SimConfig
	rng *rand.Rand
	// lateRNG draws the maintain stalls of starved processes as they come
	// back, apart from rng so that they leave every other draw of a seed's
	// schedule as it was.
	lateRNG *rand.Rand
	stalls  *stalls // FaultStall's (zab's links only)
	reps    map[zab.PeerID]*srep
	nodes   map[zab.PeerID]*snode
	incs    map[zab.PeerID]int
	cut     map[[2]zab.PeerID]bool
	drop    float64
	msgs    appQueue
	mseq    int64
	props   []*prop
	// clients run the workloads; dead ones (their peer crashed) are
	// replaced when it restarts.
	clients []*sclient
	nextReq uint64
	log     []string
	leader  zab.PeerID
	steps   int
	err     error
	quiet   bool // heal phase: clients start nothing new
	healAt  int64

	// history, as first applied by any peer
	entries  map[zab.Zxid]zab.Entry
	digests  map[zab.Zxid]uint64
	appliedT map[zab.Zxid]int64
	// gone records the first apply of each node deletion: path -> (zxid, time).
	gone map[string][]goneAt
	// owners maps a session id to its owner; expiredAt to the first time a
	// leader decided to expire it.
	owners    map[int64]*ssession
	expiredAt map[int64]int64
	// sessOf maps the ReqID of a createSession to the session it created.
	sessOf map[uint64]int64
	// returned maps the ReqID of every write whose call returned a result
	// to that result's zxid: no copy of it may be applied later (see
	// cluster.apply).
	returned map[uint64]zab.Zxid
	// expiries maps the ReqID of each leader's closeSession to when it
	// decided.
	expiries map[uint64]int64

	lock *lockState
	res  SessionResult
	// restarting is the peer inside zabtest.Sim.Restart, if any.
	restarting zab.PeerID
}

type goneAt struct {
	z  zab.Zxid
	at int64
}

func (r *srunner) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("[%6d] ", r.s.Now())+fmt.Sprintf(format, args...))
}

func (r *srunner) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("t=%d: "+format, append([]any{r.s.Now()}, args...)...)
		r.logf("VIOLATION: %v", r.err)
	}
}

// RunSessions runs one seed of the session simulation and checks, under
// faults: ephemerals exist iff their session lives (at every peer after
// every txn, and for every live owner after heal); a leader never expires a
// session whose owner is not yet Lost by its own clock; watch events match
// the applied txns exactly, in zxid order; and, with lock clients, that
// successive holders' fencing tokens increase, no two clients hold the lock
// with unsuspended sessions at once, and a fenced resource never sees a
// stale token.
func RunSessions(cfg SessionConfig) *SessionResult {
	if cfg.Voters == 0 {
		cfg.Voters = 3 + 2*int(cfg.Seed%2)
	}
	if cfg.EphClients == 0 && cfg.LockClients == 0 {
		cfg.EphClients = 4
	}
	if cfg.Duration == 0 {
		cfg.Duration = 4000
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5e55))
	sc := zabtest.SimConfig{Seed: cfg.Seed, Voters: cfg.Voters, Observers: rng.IntN(2),
		MaxDelay: []int64{2, 6, 12, 20}[rng.IntN(4)], Reorder: rng.IntN(2) == 0,
		SnapshotEvery: []int{0, 10, 30}[rng.IntN(3)], QueueLimit: []int{0, 0, 4}[rng.IntN(3)],
		Peer:     zab.Config{MaxMsgEntries: []int{0, 8}[rng.IntN(2)], MaxCounter: []uint32{0, 0, 25}[rng.IntN(3)]},
		ReadBack: cfg.Seed%2 == 1, MaxReadBack: 30, Mistake: cfg.Mistake} // odd seeds: applied entries read back, as a Node's
	r := &srunner{cfg: cfg, sc: sc, rng: rng, lateRNG: rand.New(rand.NewPCG(cfg.Seed, 0x1a7e)), stalls: newStalls(cfg.Seed), reps: map[zab.PeerID]*srep{}, nodes: map[zab.PeerID]*snode{},
		incs: map[zab.PeerID]int{}, cut: map[[2]zab.PeerID]bool{}, entries: map[zab.Zxid]zab.Entry{},
		digests: map[zab.Zxid]uint64{}, appliedT: map[zab.Zxid]int64{}, gone: map[string][]goneAt{},
		owners: map[int64]*ssession{}, expiredAt: map[int64]int64{}, expiries: map[uint64]int64{}, sessOf: map[uint64]int64{},
		returned: map[uint64]zab.Zxid{}}
	r.res = SessionResult{Seed: cfg.Seed, Voters: cfg.Voters}
	// Every leader stamps the writes it appends with its clock, as
	// coord's does.
	sc.Stamp = func(zab.PeerID) func([]byte) []byte {
		return proposal.NewStamper(func() time.Time { return time.UnixMilli(r.s.Now()) })
	}
	// Each peer's tree is its state machine: what it returns for an entry
	// is the response zab hands to the entry's proposer.
	sc.Apply = r.response
	s, err := zabtest.NewSim(sc)
	if err != nil {
		r.res.Err = err
		return &r.res
	}
	r.s = s
	r.logf("seed=%d voters=%d observers=%d maxDelay=%d reorder=%v snapshotEvery=%d maxMsgEntries=%d queueLimit=%d "+
		"maxCounter=%d ephClients=%d lockClients=%d", cfg.Seed, cfg.Voters, sc.Observers, sc.MaxDelay, sc.Reorder,
		sc.SnapshotEvery, sc.Peer.MaxMsgEntries, sc.QueueLimit, sc.Peer.MaxCounter, cfg.EphClients, cfg.LockClients)
	for _, id := range s.IDs() {
		r.incs[id] = 1
		r.reps[id] = r.newRep(id)
		r.nodes[id] = r.newNode(id)
	}
	r.run()
	if r.err == nil {
		r.err = s.Err
	}
	r.res.Err, r.res.Schedule, r.res.Steps = r.err, r.log, r.steps
	return &r.res
}

// pickTimeout draws a client's session timeout. Most are long enough for
// the heartbeat round trip (heartbeat, a tick, the quorum round, the ack:
// four message delays and a tick) to fit in the Timeout/6 between
// HeartbeatInterval and SuspendAfter; the others keep flapping between
// Connected and Suspended, legal but harsh on locks.
func (r *srunner) pickTimeout() int64 {
	all := []int64{200, 300, 500, 800, 1000}
	if r.rng.IntN(4) == 0 {
		return all[r.rng.IntN(len(all))]
	}
	var ok []int64
	for _, t := range all {
		if t/6 > 4*r.sc.MaxDelay+2*sTick {
			ok = append(ok, t)
		}
	}
	return ok[r.rng.IntN(len(ok))]
}

func (r *srunner) newNode(id zab.PeerID) *snode {
	n := &snode{id: id, inc: r.incs[id], nextTick: r.s.Now() + 1 + r.rng.Int64N(sTick), sessions: map[int64]*ssession{}}
	core, err := session.NewReplica(session.ReplicaConfig{Self: uint64(id), Tick: sTick * time.Millisecond,
		Origin: vt(0), Table: simTable{r, id}, ReapEvery: sReapEvery * time.Millisecond})
	if err != nil {
		r.fail("session core: %v", err)
	}
	n.core = core
	return n
}

// simTable is a peer's replicated session table as the core reads it
// (coord's treeTable), with ExpireEarly's halved timeouts.
type simTable struct {
	r  *srunner
	id zab.PeerID
}

func (t simTable) Sessions() []session.Entry {
	var out []session.Entry
	for _, s := range t.r.reps[t.id].tree.Sessions() {
		out = append(out, session.Entry{ID: session.ID(s.ID), Timeout: t.r.trackTimeout(s.Timeout)})
	}
	return out
}

func (t simTable) Timeout(id session.ID) (time.Duration, bool) {
	ms, ok := t.r.reps[t.id].tree.Session(int64(id))
	return t.r.trackTimeout(ms), ok
}

func (r *srunner) running(id zab.PeerID) bool { return r.s.Node(id).Peer != nil }

func (r *srunner) alive(n *snode) bool { return r.running(n.id) && r.nodes[n.id] == n }

func (r *srunner) run() {
	s := r.s
	if !r.until(5000, s.Stable) {
		r.fail("setup: no leader")
		return
	}
	ids := s.IDs()
	// The ephemeral parents; /lock is made by the recipe itself.
	ok := false
	r.propose(r.nodes[s.Leader()], 0, tree.Op{Type: tree.OpCreate, Path: "/eph"}, 5000,
		func(res tree.Result, _ zab.Zxid, err error) { ok = err == nil })
	if !r.until(5000, func() bool { return ok }) {
		r.fail("setup: cannot create /eph")
		return
	}
	r.drop = []float64{0, 0.02, 0.05, 0.15}[r.rng.IntN(4)]
	dup := []float64{0, 0.02, 0.1}[r.rng.IntN(3)]
	s.SetFaults(r.drop, dup)
	r.logf("faults: drop=%.2f dup=%.2f", r.drop, dup)
	for i := range r.cfg.EphClients + r.cfg.LockClients {
		cl := &sclient{id: i, home: ids[r.rng.IntN(len(ids))], lock: i >= r.cfg.EphClients}
		cl.inc = r.incs[cl.home]
		cl.timeout = r.pickTimeout()
		cl.nextAt = s.Now() + r.rng.Int64N(50)
		r.clients = append(r.clients, cl)
	}
	if r.cfg.LockClients > 0 {
		r.lock = &lockState{}
	}
	end := s.Now() + r.cfg.Duration
	nextFault := s.Now() + 100 + r.rng.Int64N(300)
	for s.Now() < end && r.err == nil && s.Err == nil {
		if s.Now() >= nextFault {
			r.fault()
			nextFault = s.Now() + 50 + r.rng.Int64N(400)
		}
		r.stalls.due(s, r.logf)
		r.step()
	}
	if r.err != nil || s.Err != nil {
		return
	}
	r.heal()
}

// heal ends the faults, lets every session settle and checks the final
// state: equal trees, live owners Connected, and sessions and ephemerals
// present exactly for live owners.
func (r *srunner) heal() {
	s := r.s
	r.logf("heal: links restored, faults off, every peer restarted; clients start nothing new")
	r.heal1() // stalled links deliver what they held
	clear(r.stalls.at)
	s.SetFaults(0, 0)
	r.drop = 0
	for _, id := range s.IDs() {
		r.restart(id)
	}
	r.quiet = true
	r.healAt = s.Now()
	maxT := int64(1000)
	// Long enough for every dead owner's session to expire and its
	// closeSession to commit, and for live owners to reconnect.
	r.until(3*maxT+1000, func() bool { return false })
	if r.err != nil {
		return
	}
	if !r.until(20000, func() bool { return r.converged() && r.idle() }) {
		var b strings.Builder
		for _, id := range s.IDs() {
			if n := s.Node(id); n.Peer != nil {
				st := n.Peer.Status()
				fmt.Fprintf(&b, " peer %d: %v last %v committed %v applied %v tree %v", id, st.Role, st.LastZxid,
					st.Committed, n.SM.Last, r.reps[id].applied)
				if l := s.Leader(); l != 0 && l != id {
					pr := s.Node(l).Peer.Status().Progress[id]
					fmt.Fprintf(&b, " (leader's view: sent %v acked %v paused %v idle %d)", pr.Sent, pr.Acked, pr.Paused,
						pr.IdleTicks)
				}
				if bl, ok := any(s).(interface{ Blocked(zab.PeerID) bool }); ok && bl.Blocked(id) {
					b.WriteString(" (blocked)")
				}
				b.WriteString(";")
			}
		}
		r.fail("no convergence after heal: leader=%d stable=%v idle=%v:%s", s.Leader(), s.Stable(), r.idle(), b.String())
		return
	}
	// A leader change late in heal (the zxid counter's rollover at
	// MaxCounter forces one) can lose a short-timeout session after
	// healAt; the next leader expires it only a timeout after it was
	// established. Wait for that (checkFinal reports a session never
	// expired).
	r.until(20000, func() bool { return !r.ownerless() && r.converged() && r.idle() })
	if r.err != nil {
		return
	}
	r.checkFinal()
}

// ownerless reports whether the leader's tree holds a session that no live
// owner has (or there is no leader).
func (r *srunner) ownerless() bool {
	l := r.s.Leader()
	if l == 0 {
		return true
	}
	live := map[int64]bool{}
	for _, id := range r.s.IDs() {
		for _, s := range r.nodes[id].sessions {
			live[s.id] = live[s.id] || !s.closed
		}
	}
	for _, si := range r.reps[l].tree.Sessions() {
		if !live[si.ID] {
			return true
		}
	}
	return false
}

func (r *srunner) idle() bool {
	for _, p := range r.props {
		if !p.over {
			return false
		}
	}
	return true
}

func (r *srunner) converged() bool {
	if !r.s.Stable() {
		return false
	}
	last := r.s.Node(r.s.Leader()).Peer.LastZxid()
	for _, id := range r.s.IDs() {
		if !r.running(id) || r.s.Node(id).SM.Last != last || r.reps[id].applied != last {
			return false
		}
	}
	return true
}

func (r *srunner) until(d int64, cond func() bool) bool {
	end := r.s.Now() + d
	for !cond() {
		if r.s.Now() > end || r.err != nil || r.s.Err != nil {
			return false
		}
		r.step()
	}
	return true
}

// step runs one simulator event, then everything due in the coord mirror:
// trees catch up (with their checks and onApply), app messages are
// delivered, maintain loops tick, proposals and clients move on, and the
// lock invariants are checked.
func (r *srunner) step() {
	s := r.s
	s.Step()
	r.steps++
	if s.Err != nil && r.err == nil {
		r.err = s.Err
	}
	for _, id := range s.IDs() {
		r.catchUp(r.reps[id])
	}
	if l := s.Leader(); l != r.leader {
		r.leader = l
		if l != 0 {
			r.logf("leader: %d epoch %d", l, s.Node(l).Peer.SoftState().Epoch)
		} else {
			r.logf("leader: none")
		}
	}
	now := s.Now()
	for len(r.msgs) > 0 && r.msgs[0].at <= now {
		r.deliver(heap.Pop(&r.msgs).(*appEvent))
	}
	for _, id := range s.IDs() {
		n := r.nodes[id]
		if !r.running(id) {
			continue
		}
		r.starved(n)
		r.pollConfirmed(n)
		if now >= n.stallUntil && len(n.inbox) > 0 {
			r.feed(n, nil)
		}
		if now >= n.nextTick {
			n.nextTick = max(n.nextTick+sTick, now+1)
			if now >= n.stallUntil {
				r.maintain(n)
			}
		}
	}
	for i := 0; i < len(r.props); i++ {
		r.pollProp(r.props[i])
	}
	r.props = slices.DeleteFunc(r.props, func(p *prop) bool { return p.over })
	for _, cl := range r.clients {
		r.clientStep(cl)
	}
	if r.lock != nil {
		r.lockTick()
	}
}

// --- the app-message network (heartbeats), beside zab's ---

func (r *srunner) send(from, to zab.PeerID, m session.Message) {
	if from == to {
		panic("sim: local app message")
	}
	if r.cut[[2]zab.PeerID{from, to}] || (r.drop > 0 && r.rng.Float64() < r.drop) {
		return
	}
	r.mseq++
	at := r.s.Now() + 1 + r.rng.Int64N(r.sc.MaxDelay)
	heap.Push(&r.msgs, &appEvent{at: at, seq: r.mseq, from: from, to: to, m: m})
}

func (r *srunner) deliver(e *appEvent) {
	if !r.running(e.to) || r.cut[[2]zab.PeerID{e.from, e.to}] {
		return
	}
	n := r.nodes[e.to]
	if n.paused > r.s.Now() {
		// The process is paused: the frame waits in its socket.
		e.at = n.paused
		heap.Push(&r.msgs, e)
		return
	}
	from, m := uint64(e.from), e.m
	r.feed(n, func() { n.core.Receive(from, m, vt(r.s.Now())) })
}

// --- coord's maintenance goroutine, on virtual time ---

// feed gives the core of n one input (nil: none) and carries out what it
// asks, as coord's maintenance goroutine does; while that goroutine is
// stalled the input waits in the inbox, in order.
func (r *srunner) feed(n *snode, in func()) {
	if in != nil {
		n.inbox = append(n.inbox, in)
	}
	if r.s.Now() < n.stallUntil {
		return
	}
	ins := n.inbox
	n.inbox = nil
	for _, f := range ins {
		f()
	}
	r.step1(n)
}

// maintain is a tick of coord's maintenance goroutine: the queued inputs,
// then a Tick with what zab says.
func (r *srunner) maintain(n *snode) {
	ss := r.s.Node(n.id).Peer.SoftState()
	v := session.View{Leader: uint64(ss.Leader), Epoch: ss.Epoch, Serving: ss.Serving,
		Leading: ss.Role == zab.RoleLeading && ss.Serving}
	r.feed(n, func() { n.core.Tick(vt(r.s.Now()), v) })
	if r.cfg.AckWithoutQuorum && v.Leading {
		r.feed(n, func() { n.core.LeaderConfirmed(v.Epoch, vt(r.s.Now()), vt(r.s.Now())) })
	}
}

// step1 carries out the core's Ready, as coord's step, deliver and act do,
// until the core asks for nothing more.
func (r *srunner) step1(n *snode) {
	for {
		rd := n.core.Ready()
		if rd.IsEmpty() {
			break
		}
		now := r.s.Now()
		for _, oe := range rd.Events {
			r.onEvent(n, oe)
		}
		r.refresh(n)
		for _, ob := range rd.Messages {
			r.send(n.id, zab.PeerID(ob.To), ob.Msg)
		}
		for _, e := range rd.Ended {
			if s := n.sessions[int64(e.Session)]; s != nil {
				r.finish(s, e.ByOwner)
			}
		}
		for _, e := range rd.Expire {
			r.expire(n, int64(e.Session), e.Epoch)
		}
		if rd.Reap {
			for _, p := range r.reps[n.id].tree.ReapCandidates(now) {
				r.propose(n, 0, tree.Op{Type: tree.OpReap, Path: p}, 10*sSyncLimit, nil)
			}
		}
	}
	for _, s := range sortedSessions(n) {
		r.checkNotExpiredEarly(s)
	}
}

// maxMaintainStall bounds a maintain loop's stalls unless
// LongMaintainStalls is set.
const maxMaintainStall = 40

// starved ends the starvation of n's process: when a starved leader's zab
// clock runs again, its maintain loop stalls a while, as a starved process
// does not get all its goroutines back at once.
func (r *srunner) starved(n *snode) {
	if n.starveEnd == 0 || r.s.Now() < n.starveEnd {
		return
	}
	n.starveEnd = 0
	d := r.lateRNG.Int64N(8 * sSyncLimit)
	if !r.cfg.LongMaintainStalls {
		// Within the bound of every other maintain stall (case 15):
		// longer ones let a holder act after its session expired, a
		// known limit that LongMaintainStalls explores on purpose.
		d = min(d, maxMaintainStall)
	}
	n.stallUntil = max(n.stallUntil, r.s.Now()+d)
	r.logf("fault: maintain loop of node %d stalls for %d as its process comes back", n.id, d)
}

// refresh copies the core's view of n's sessions into them.
func (r *srunner) refresh(n *snode) {
	for id, s := range n.sessions {
		if st, ok := n.core.Status(session.ID(id)); ok {
			lease, end, _ := n.core.Lease(session.ID(id))
			s.st, s.lease, s.leaseEnd = st, untime(lease), untime(end)
		}
	}
}

// onEvent delivers one event of the core to its session (coord's
// deliverLocked): a Suspended or Lost breaks its leases.
func (r *srunner) onEvent(n *snode, oe session.OwnerEvent) {
	s := n.sessions[int64(oe.Session)]
	if s == nil || s.closed {
		return
	}
	ev := oe.Event
	r.logf("client %d: session %x %s (%s, at %d)", s.client.id, s.id, ev.Type, ev.Cause, untime(ev.At))
	s.st = ev.Type.Status()
	if ev.Type == session.EventSuspended || ev.Type == session.EventLost {
		s.breaks++
		r.onBreak(s.client, s, ev.Type == session.EventLost)
	}
	if ev.Type == session.EventLost {
		s.lostAt = r.s.Now()
		r.res.Lost++
	}
}

// pollConfirmed passes a newer confirmation of n's reign by zab to its
// core, as coord's OnLeaderConfirmed pushes it from zab's driver: an input
// that waits while the maintain loop stalls.
func (r *srunner) pollConfirmed(n *snode) {
	epoch, at, ok := r.s.LeaderConfirmed(n.id)
	if !ok || (epoch == n.confEpoch && at <= n.confAt) {
		return
	}
	n.confEpoch, n.confAt = epoch, at
	r.feed(n, func() { n.core.LeaderConfirmed(epoch, vt(at), vt(r.s.Now())) })
}

// expire is the leader's decision to expire a session, proposed as coord
// does (only as the leader of the epoch that decided, unless CoordAsIs);
// the decision is checked against the owner's clock if and when the
// closeSession commits (a deposed leader that has not noticed yet decides
// too, but cannot commit).
func (r *srunner) expire(n *snode, sid int64, epoch uint32) {
	r.res.Expired++
	r.logf("node %d: leader expires session %x", n.id, sid)
	if r.cfg.NoExpiry {
		return
	}
	if r.cfg.CoordAsIs {
		epoch = 0
	}
	p := r.proposeGuarded(n, 0, tree.Op{Type: tree.OpCloseSession, Session: sid}, 10*sSyncLimit, epoch, nil)
	r.expiries[p.reqID] = r.s.Now()
}

// expiryCommitted runs at the first apply of a leader's closeSession,
// decided at e.
func (r *srunner) expiryCommitted(sid, e int64) {
	if old, ok := r.expiredAt[sid]; !ok || e < old {
		r.expiredAt[sid] = e
	}
	if o := r.owners[sid]; o != nil {
		r.checkNotExpiredEarly(o)
	}
}

// checkNotExpiredEarly: once a leader's expiry of o's session, decided at
// e, committed, the owner must have been Lost by e on its own clock: its
// lease end (the documented bound Lease+Timeout-DriftMargin) at or before
// e, or an earlier Lost. The owner's lease never moves back, so checking
// after each step of its core covers late acknowledgements too.
func (r *srunner) checkNotExpiredEarly(o *ssession) {
	e, ok := r.expiredAt[o.id]
	if !ok || o.closing || !r.alive(o.node) || (o.lostAt >= 0 && o.lostAt <= e) {
		return
	}
	if o.leaseEnd > e {
		r.fail("session %x (client %d at node %d): a leader decided at %d to expire it (committed) while its owner's "+
			"lease (from %d) runs to %d: the owner is not Lost yet", o.id, o.client.id, o.node.id, e, o.lease, o.leaseEnd)
	}
}

// trackTimeout is the timeout the core is told a session has.
func (r *srunner) trackTimeout(ms int32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	if r.cfg.ExpireEarly {
		d /= 2
	}
	return d
}

func sortedSessions(n *snode) []*ssession {
	out := make([]*ssession, 0, len(n.sessions))
	for _, s := range n.sessions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *ssession) int { return int(a.id - b.id) })
	return out
}

// finish ends a session locally: its watches go, the node (and its core)
// forget it.
func (r *srunner) finish(s *ssession, closedByOwner bool) {
	if s.closed {
		return
	}
	s.closed = true
	if s.lostAt < 0 && !closedByOwner {
		s.lostAt = r.s.Now()
	}
	rep := r.reps[s.node.id]
	for _, w := range s.watches {
		if rep.inc == s.node.inc {
			rep.tree.RemoveWatcher(w)
		}
		w.removed = true
	}
	s.watches = nil
	delete(s.node.sessions, s.id)
	n, id := s.node, session.ID(s.id)
	r.feed(n, func() { n.core.Forget(id) })
	r.logf("client %d: session %x ends (by owner: %v)", s.client.id, s.id, closedByOwner)
}

// onApply is coord's, for node n after its tree applied txn: the session
// txns go to the core.
func (r *srunner) onApply(n *snode, txn tree.Txn, res tree.Result) {
	if res.Err != nil || (res.Duplicate && !r.cfg.CoordAsIs) {
		return
	}
	id := session.ID(txn.Op.Session)
	switch txn.Op.Type {
	case tree.OpCreateSession:
		timeout := r.trackTimeout(txn.Op.Timeout)
		r.feed(n, func() { n.core.Created(id, timeout, vt(r.s.Now())) })
	case tree.OpCloseSession:
		r.feed(n, func() { n.core.Closed(id, vt(r.s.Now())) })
	}
}

// --- proposals, as coord's proposeAt ---

// propose replicates op for session sid (0: none) at node n, retrying as
// coord does until d has passed; done (if any) gets the local result.
func (r *srunner) propose(n *snode, sid int64, op tree.Op, d int64, done func(tree.Result, zab.Zxid, error)) *prop {
	return r.proposeGuarded(n, sid, op, d, 0, done)
}

// proposeGuarded is propose that, with a non-zero epoch, submits only
// while n leads in that epoch and gives up as soon as it does not.
func (r *srunner) proposeGuarded(n *snode, sid int64, op tree.Op, d int64, epoch uint32,
	done func(tree.Result, zab.Zxid, error)) *prop {
	r.nextReq++
	req := proposal.Request{Origin: uint64(n.id), ReqID: r.nextReq, Time: r.s.Now(), Session: sid,
		MaxData: tree.DefaultMaxDataSize, Op: op, Forget: n.finished.Take()}
	var since int64 = 1
	if rep := r.reps[n.id]; rep != nil {
		since = max(rep.tree.LastZxid(), 1)
	}
	p := &prop{node: n, reqID: req.ReqID, deadline: r.s.Now() + d, done: done}
	rt, err := proposal.NewRetry(req, since, nil)
	if err != nil {
		r.fail("encode: %v", err)
		p.over = true
		return p
	}
	p.rt = rt.AsLeader(epoch)
	r.props = append(r.props, p)
	r.attempt(p)
	return p
}

func (r *srunner) attempt(p *prop) {
	p.retryAt = 0
	if id := p.rt.Request().ReqID; id != p.reqID {
		r.fail("node %d: an attempt of req %d (%s) carries req %d: every attempt of a write, expiries "+
			"included, must carry its first ReqID", p.node.id, p.reqID, p.rt.Request().Op.Type, id)
	}
	p.attempts++
	if p.attempts > 1 {
		r.res.Retries++
		if p.rt.Epoch() != 0 {
			r.res.ExpiryRetries++
		}
	}
	var zid uint64
	var err error
	if e := p.rt.Epoch(); e != 0 {
		zid, err = r.s.ProposeAsLeader(p.node.id, e, p.rt.Data())
	} else {
		zid, err = r.s.Propose(p.node.id, p.rt.Data())
	}
	if err != nil {
		r.verdict(p, zab.Applied{}, err, false)
		return
	}
	p.zid, p.waiting = zid, true
}

// verdict takes an attempt's outcome through the write's retry rule:
// another attempt after a tick, or the end of the call with its result or
// error. stop: the call's deadline passed (coord's context ended).
func (r *srunner) verdict(p *prop, a zab.Applied, err error, stop bool) {
	p.waiting = false
	st := p.rt.Next(a, err)
	if st.Again && !stop {
		if at := r.s.Now() + sTick; at < p.deadline {
			p.retryAt = at
			return
		}
	}
	if r.cfg.ForgetRetried {
		st = forgetRetried(st, err)
	}
	p.node.finished.Done(p.rt, st)
	if err == nil && st.Zxid != 0 && !errors.Is(st.Err, zab.ErrOutcomeUnknown) && p.rt.Request().ReqID != 0 {
		r.returned[p.rt.Request().ReqID] = st.Zxid
	}
	r.endProp(p, st.Result, st.Zxid, st.Err)
}

func (r *srunner) endProp(p *prop, res tree.Result, z zab.Zxid, err error) {
	p.over = true
	if p.done != nil {
		p.done(res, z, err)
	}
}

func (r *srunner) pollProp(p *prop) {
	if p.over {
		return
	}
	if !r.alive(p.node) {
		p.over = true // the process died with its call
		return
	}
	now := r.s.Now()
	if !p.waiting {
		if now >= p.retryAt {
			r.attempt(p)
		}
		return
	}
	sn := r.s.Node(p.node.id)
	res, ok := sn.Proposals[p.zid]
	if !ok {
		if now > p.deadline {
			// The context ended while zab still had it: it may commit.
			r.verdict(p, zab.Applied{}, fmt.Errorf("%w: %w", zab.ErrOutcomeUnknown, context.DeadlineExceeded), true)
		}
		return
	}
	delete(sn.Proposals, p.zid)
	// The response is what the proposing peer's state machine returned
	// for the entry (response), as zab hands it to Propose's caller; none
	// (a snapshot covered the entry) is an unknown outcome.
	a := zab.Applied{Zxid: res.Zxid, Response: sn.Responses[p.zid]}
	delete(sn.Responses, p.zid)
	if res.Err == nil && a.Response == nil {
		r.logf("node %d: write done at %v without a response: outcome unknown", p.node.id, res.Zxid)
	}
	r.verdict(p, a, res.Err, false)
}

// --- faults ---

func (r *srunner) heal1() {
	r.s.Heal()
	clear(r.cut)
}

func (r *srunner) cutLink(a, b zab.PeerID) {
	r.s.Cut(a, b)
	r.cut[[2]zab.PeerID{a, b}] = true
}

func (r *srunner) isolate(id zab.PeerID) {
	for _, o := range r.s.IDs() {
		if o != id {
			r.cutLink(id, o)
			r.cutLink(o, id)
		}
	}
}

func (r *srunner) partition(a, b []zab.PeerID) {
	for _, x := range a {
		for _, y := range b {
			r.cutLink(x, y)
			r.cutLink(y, x)
		}
	}
}

func (r *srunner) crash(id zab.PeerID) {
	if !r.running(id) {
		return
	}
	r.s.Crash(id)
	// The process dies with its sessions and clients.
	for _, cl := range r.clients {
		if cl.home == id && !cl.dead {
			r.kill(cl)
		}
	}
}

func (r *srunner) restart(id zab.PeerID) {
	if r.running(id) {
		return
	}
	r.restarting = id
	err := r.s.Restart(id)
	r.restarting = 0
	if err != nil {
		r.fail("peer %d: restart: %v", id, err)
		return
	}
	r.incs[id]++
	r.nodes[id] = r.newNode(id)
	rep := r.newRep(id)
	r.reps[id] = rep
	if z := r.s.Node(id).SM.Last; z != 0 {
		r.restore(rep, z)
	}
	r.catchUp(rep)
	// The clients of the restarted process start afresh.
	for i, cl := range r.clients {
		if cl.home == id && cl.dead {
			ncl := &sclient{id: cl.id, home: id, inc: r.incs[id], lock: cl.lock, timeout: cl.timeout,
				nextAt: r.s.Now() + r.rng.Int64N(50)}
			r.clients[i] = ncl
		}
	}
}

func (r *srunner) fault() {
	r.stalls.maybe(r.s, r.logf)
	s, ids := r.s, r.s.IDs()
	pick := func() zab.PeerID { return ids[r.rng.IntN(len(ids))] }
	switch r.rng.IntN(20) {
	case 0, 1:
		if l := s.Leader(); l != 0 {
			r.isolate(l)
			r.logf("fault: isolate leader %d", l)
		}
	case 2:
		ord := slices.Clone(ids)
		r.rng.Shuffle(len(ord), func(i, j int) { ord[i], ord[j] = ord[j], ord[i] })
		cut := 1 + r.rng.IntN(len(ord)-1)
		r.partition(ord[:cut], ord[cut:])
		r.logf("fault: partition %v | %v", ord[:cut], ord[cut:])
	case 3:
		a, b := pick(), pick()
		if a != b {
			r.cutLink(a, b)
			r.logf("fault: cut %d -> %d (one way)", a, b)
		}
	case 4, 5:
		r.heal1()
		r.logf("fault: heal")
	case 6:
		id := pick()
		if r.running(id) {
			r.crash(id)
			r.logf("fault: crash %d", id)
		}
	case 7:
		if l := s.Leader(); l != 0 {
			r.crash(l)
			r.logf("fault: crash leader %d", l)
		}
	case 8, 9:
		var up []zab.PeerID
		for _, id := range ids {
			if !r.running(id) {
				r.restart(id)
				up = append(up, id)
			}
		}
		if len(up) > 0 {
			r.logf("fault: restart %v", up)
		}
	case 10:
		r.drop = []float64{0, 0.05, 0.2}[r.rng.IntN(3)]
		dup := []float64{0, 0.05, 0.2}[r.rng.IntN(3)]
		s.SetFaults(r.drop, dup)
		r.logf("fault: drop=%.2f dup=%.2f", r.drop, dup)
	case 11, 19:
		// Isolate the peer of a client, the lock holder's if there is one.
		id := pick()
		if r.lock != nil && r.lock.holder != nil {
			id = r.lock.holder.home
		} else if len(r.clients) > 0 {
			id = r.clients[r.rng.IntN(len(r.clients))].home
		}
		r.isolate(id)
		r.logf("fault: isolate client peer %d", id)
	case 12:
		ord := slices.Clone(ids)
		r.rng.Shuffle(len(ord), func(i, j int) { ord[i], ord[j] = ord[j], ord[i] })
		bridge, rest := ord[0], ord[1:]
		a, b := rest[:len(rest)/2], rest[len(rest)/2:]
		r.partition(a, b)
		r.logf("fault: bridge %v - %d - %v", a, bridge, b)
	case 13:
		if l := s.Leader(); l != 0 {
			for _, id := range ids {
				if id != l {
					r.cutLink(l, id)
				}
			}
			r.logf("fault: leader %d can hear but not speak", l)
		}
	case 14:
		if l := s.Leader(); l != 0 {
			for _, id := range ids {
				if id != l {
					r.cutLink(id, l)
				}
			}
			r.logf("fault: leader %d can speak but not hear", l)
		}
	case 15:
		// A slow maintain loop (a busy goroutine): zab runs on.
		id := pick()
		d := []int64{10, 25, maxMaintainStall}[r.rng.IntN(3)]
		if r.cfg.LongMaintainStalls {
			d = []int64{30, 100, 300}[r.rng.IntN(3)]
		}
		r.nodes[id].stallUntil = max(r.nodes[id].stallUntil, s.Now()+d)
		r.logf("fault: maintain loop of node %d stalls for %d", id, d)
	case 16, 18:
		// A leader cut off whose clock stops: it keeps believing it leads
		// while the others elect a successor (the case coord's
		// acknowledgement after a quorum's confirmation exists for).
		if l := s.Leader(); l != 0 {
			d := []int64{150, 300, 600}[r.rng.IntN(3)]
			if st, ok := any(s).(interface{ StallTicks(zab.PeerID, int64) }); ok {
				st.StallTicks(l, d)
				r.isolate(l)
				// Its process is starved; its maintain loop stalls as it
				// comes back.
				r.nodes[l].starveEnd = max(r.nodes[l].starveEnd, s.Now()+d)
				r.logf("fault: isolate leader %d and stop its zab clock for %d", l, d)
			}
		}
	case 17:
		// A whole process pauses (GC, SIGSTOP): zab (if the simulator can)
		// and the coord node with its clients.
		id := pick()
		d := []int64{50, 150, 400}[r.rng.IntN(3)]
		if p, ok := any(s).(interface{ Pause(zab.PeerID, int64) }); ok && r.running(id) {
			p.Pause(id, d)
		}
		n := r.nodes[id]
		n.stallUntil, n.paused = max(n.stallUntil, s.Now()+d), max(n.paused, s.Now()+d)
		// On resume the maintain loop runs before the application acts.
		n.nextTick = max(n.nextTick, n.paused)
		r.logf("fault: process %d pauses for %d", id, d)
	}
}
