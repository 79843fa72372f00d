package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/zabtest"
)

// Config shapes one seeded run. The zero value of every field but Seed is a
// sensible default; the fault mix itself is drawn from the seed.
type Config struct {
	Seed uint64
	// Voters is 3 or 5; zero picks from the seed.
	Voters int
	// Clients is the number of concurrent virtual clients; default 5.
	Clients int
	// Duration is the virtual time of the fault phase; default 3000.
	Duration int64
	// CheckTimeout bounds porcupine; default 20s. Unknown is a failure.
	CheckTimeout time.Duration

	// StaleReads is a test-only mutation: "linearizable" reads skip the
	// Sync and answer from the local tree at once. The checker must catch it.
	StaleReads bool
	// FreshRetryIDs is a test-only mutation: a retried write gets a new
	// ReqID, so the tree cannot recognise it and may apply it twice.
	FreshRetryIDs bool
	// RetryWithoutSince is a test-only mutation: a retried write does not
	// carry Since, so once a leader's clock stepped ahead and dedup forgot
	// the first attempt, the retry applies again.
	RetryWithoutSince bool
	// ForgetRetried is a test-only mutation of coord's dedup rule: a
	// write's result is forgotten as soon as its call returns
	// (proposal.Finished) even when the write was proposed more than once
	// (proposal.Step.Once for every applied result that is not a
	// duplicate), so a copy of an earlier attempt committed later would
	// apply it again. The simulators do not catch it, since zab commits no
	// such copy (see the package doc); -sim.forgetretried switches it on.
	ForgetRetried bool
	// Mistake is a test-only protocol mistake every peer makes (see
	// zabtest.Mistake): the simulator's checks must catch it.
	Mistake zabtest.Mistake
	// Disable leaves these fault classes out of the schedule (their
	// actions are still drawn from the seed, then skipped): the shrinker
	// uses it, and -sim.disable replays its result.
	Disable Faults
}

// Result is the outcome of one run.
type Result struct {
	Seed    uint64
	Voters  int
	History []porcupine.Operation
	Pending int // writes with unknown outcome
	// LateAttempts counts forwards of a write's earlier attempt that
	// reached the leader of their reign after a later attempt's result had
	// returned to the client (a stalled link delivered them): the late
	// copies coord's dedup rule keeps retried writes' results for, which
	// zab must not append (see Config.ForgetRetried).
	LateAttempts int
	Check        porcupine.CheckResult
	Info         porcupine.LinearizationInfo
	// Err is the first violation: an invariant of the simulator or the
	// harness, a lost acknowledged write, diverging trees, or a history
	// porcupine does not find linearizable (or cannot decide in time).
	Err error
	// Schedule is the run's log in virtual time: faults, leaders, calls and
	// returns.
	Schedule []string
	Steps    int
}

// Failed reports whether the run found a violation.
func (r *Result) Failed() bool { return r.Err != nil }

const (
	// callTimeout is a call's deadline, like the context of a coord call.
	// A call is retried, at the same peer and under the same ReqID, only
	// when zab reports a verdict (outcome unknown, no leader, dropped), as
	// coord's proposeAt does; at the deadline it gives up.
	callTimeout   = 600
	pendingReturn = 1 << 40 // the return time of a write that never returned
)

var keys = []string{"/k0", "/k1", "/k2", "/k3"}

type call struct {
	in    Input
	start int64
	// rt is the write's retry rule, coord's own (proposal.Retry): every
	// attempt proposes rt.Data().
	rt       *proposal.Retry
	ids      []uint64 // every ReqID its attempts used
	attempts int
	unknown  bool // some attempt may have been applied
	node     zab.PeerID
	zid      uint64 // zab request id of the current attempt
	deadline int64  // the call's
	retryAt  int64  // waiting to retry at this time
}

type client struct {
	id      int
	home    zab.PeerID
	cur     *call
	nextAt  int64
	seq     int
	created []string         // sequential nodes this client created
	version map[string]int32 // last version seen per path, for CAS
	final   bool             // the end-of-run reader: reads only
	// seen is the newest zxid this client's calls observed at its peer
	// (in the peer's incarnation rep): a later plain get there must not
	// show an older tree (read-your-writes, monotonic reads).
	seen    zab.Zxid
	seenRep *replica
	gets    int
}

type runner struct {
	cfg     Config
	c       *cluster
	rng     *rand.Rand
	reconf  *rand.Rand // FaultReconfig's own stream
	stalls  *stalls    // FaultStall's
	clients []*client
	hist    []porcupine.Operation
	acked   map[zab.Zxid]uint64 // acknowledged writes: zxid -> ReqID
	// restartAt holds when peers stopped by a disk fault restart.
	restartAt map[zab.PeerID]int64
	nextReq   uint64
	done      map[zab.PeerID]*proposal.Finished // per peer, see finished
	log       []string
	leader    zab.PeerID
	pending   int
	// won maps the ReqID of every write that returned a result to the
	// zab request id of the attempt that returned it; late counts the
	// earlier attempts' forwards that reached their reign's leader after
	// that (Result.LateAttempts).
	won   map[uint64]uint64
	late  int
	steps int
}

func (r *runner) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("%6d ", r.c.s.Now())+fmt.Sprintf(format, args...))
}

// Run runs one seed: a cluster under the seed's faults with clients whose
// history is checked for linearizability, then heals and checks convergence.
func Run(cfg Config) *Result {
	if cfg.Voters == 0 {
		cfg.Voters = 3 + 2*int(cfg.Seed%2)
	}
	if cfg.Clients == 0 {
		cfg.Clients = 5
	}
	if cfg.Duration == 0 {
		cfg.Duration = 3000
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 20 * time.Second
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc0071))
	sc := zabtest.SimConfig{Seed: cfg.Seed, Voters: cfg.Voters, Observers: rng.IntN(2),
		MaxDelay: []int64{2, 6, 12, 20}[rng.IntN(4)], Reorder: rng.IntN(2) == 0,
		SnapshotEvery: []int{0, 10, 30}[rng.IntN(3)], QueueLimit: []int{0, 0, 4}[rng.IntN(3)],
		Peer:     zab.Config{MaxMsgEntries: []int{0, 8}[rng.IntN(2)], MaxCounter: []uint32{0, 0, 25}[rng.IntN(3)]},
		ReadBack: cfg.Seed%2 == 1, MaxReadBack: 30} // odd seeds: applied entries read back, as a Node's
	sc.Mistake = cfg.Mistake
	res := &Result{Seed: cfg.Seed, Voters: cfg.Voters}
	r := &runner{cfg: cfg, rng: rng, reconf: rand.New(rand.NewPCG(cfg.Seed, 0x7ec0f)), acked: map[zab.Zxid]uint64{},
		restartAt: map[zab.PeerID]int64{}, stalls: newStalls(cfg.Seed)}
	// One seed in four starts from a history near the top of the zxid
	// ranges (see highStart).
	var high *highStart
	if rng.IntN(4) == 0 {
		var ids []zab.PeerID
		for i := 1; i <= sc.Voters+sc.Observers; i++ {
			ids = append(ids, zab.PeerID(i))
		}
		var err error
		if high, err = newHighStart(r, ids); err != nil {
			res.Err = err
			return res
		}
		sc.Storage = high.storage
	}
	c, err := newCluster(sc)
	if err != nil {
		res.Err = err
		return res
	}
	r.c = c
	r.won = map[uint64]uint64{}
	c.s.OnDeliver = r.delivered
	c.s.OnFault = func(id zab.PeerID, what string) { r.logf("disk: peer %d %s", id, what) }
	r.logf("seed=%d voters=%d observers=%d maxDelay=%d reorder=%v snapshotEvery=%d maxMsgEntries=%d "+
		"queueLimit=%d maxCounter=%d clients=%d disabled=%v", cfg.Seed, cfg.Voters, sc.Observers, sc.MaxDelay, sc.Reorder,
		sc.SnapshotEvery, sc.Peer.MaxMsgEntries, sc.QueueLimit, sc.Peer.MaxCounter, cfg.Clients, cfg.Disable)
	if high != nil {
		r.logf("high start: every peer at epoch %d holding a prefix of %d entries %v..%v (kept %v)", high.epoch,
			len(high.ents), high.ents[0].Zxid, high.ents[len(high.ents)-1].Zxid, high.keep)
	}
	res.Err = r.run()
	if res.Err == nil {
		r.resolvePending()
		res.Check, res.Info = porcupine.CheckOperationsVerbose(Model(), r.hist, cfg.CheckTimeout)
		switch res.Check {
		case porcupine.Illegal:
			res.Err = errors.New("history is not linearizable")
		case porcupine.Unknown:
			res.Err = fmt.Errorf("porcupine could not decide within %v (counts as a failure)", cfg.CheckTimeout)
		}
	}
	res.History, res.Pending, res.Schedule, res.Steps = r.hist, r.pending, r.log, r.steps
	res.LateAttempts = r.late
	return res
}

func (r *runner) run() error {
	c := r.c
	// Setup, fault-free: a leader, and /q (the parent of sequential nodes).
	if !r.until(5000, func() bool { return c.s.Stable() }) {
		return r.setupErr("no leader")
	}
	setup := &client{id: -1, home: c.s.Leader(), version: map[string]int32{}}
	r.clients = []*client{setup}
	r.begin(setup, Input{Kind: Create, Path: "/q"})
	if !r.until(5000, func() bool { return setup.cur == nil }) || len(r.hist) != 1 || r.hist[0].Output.(Output).Code != OK {
		return r.setupErr("cannot create /q")
	}
	r.hist = r.hist[:0]
	if !r.until(5000, c.converged) {
		return r.setupErr("no convergence")
	}
	drop := []float64{0, 0.02, 0.05, 0.15}[r.rng.IntN(4)]
	dup := []float64{0, 0.02, 0.1}[r.rng.IntN(3)]
	if !r.on(FaultNet) {
		drop, dup = 0, 0
	}
	c.s.SetFaults(drop, dup)
	r.logf("faults: drop=%.2f dup=%.2f", drop, dup)

	ids := c.s.IDs()
	r.clients = r.clients[:0]
	for i := range r.cfg.Clients {
		r.clients = append(r.clients, &client{id: i, home: ids[r.rng.IntN(len(ids))], nextAt: c.s.Now() + int64(r.rng.IntN(20)),
			version: map[string]int32{}})
	}
	end := c.s.Now() + r.cfg.Duration
	nextFault := c.s.Now() + 50 + r.rng.Int64N(200)
	for c.s.Now() < end && c.err == nil {
		if c.s.Now() >= nextFault {
			r.fault()
			nextFault = c.s.Now() + 50 + r.rng.Int64N(250)
		}
		if len(r.restartAt) > 0 {
			r.restartDue()
		}
		r.stalls.due(c.s, r.logf)
		r.tick(true)
	}
	if c.err != nil {
		return r.wrap(c.err)
	}

	// Heal: no faults, every peer up; the clients finish what they started.
	r.logf("heal: links restored, faults off, every peer restarted")
	c.s.Heal() // stalled links deliver what they held
	c.s.SetFaults(0, 0)
	clear(r.restartAt)
	clear(r.stalls.at)
	for _, id := range ids {
		c.s.ClearDiskFaults(id)
		c.restart(id)
	}
	idle := func() bool {
		for _, cl := range r.clients {
			if cl.cur != nil {
				return false
			}
		}
		return true
	}
	if !r.untilTick(20000, false, func() bool { return idle() && c.converged() }) {
		return r.wrap(fmt.Errorf("no convergence after heal: leader=%d stable=%v; %s", c.s.Leader(), c.s.Stable(),
			c.describe()))
	}
	if err := c.checkConverged(); err != nil {
		return r.wrap(err)
	}
	// No acknowledged write lost: the final log holds every one at its zxid.
	for z, id := range r.acked {
		if got, ok := c.reqs[z]; !ok || got != id || z > c.reps[c.s.Leader()].applied {
			return r.wrap(fmt.Errorf("acknowledged write (req %d at %v) is not in the final history", id, z))
		}
	}
	// Final linearizable reads of every key on every peer go into the history.
	r.clients = r.clients[:0]
	for i, id := range ids {
		r.clients = append(r.clients, &client{id: r.cfg.Clients + i, home: id, nextAt: c.s.Now(), final: true,
			version: map[string]int32{}})
	}
	finals := map[int]int{}
	for _, cl := range r.clients {
		finals[cl.id] = 0
	}
	if !r.untilTick(20000, false, func() bool {
		for _, cl := range r.clients {
			if cl.cur == nil && finals[cl.id] < len(keys)+1 {
				p := "/q"
				if finals[cl.id] < len(keys) {
					p = keys[finals[cl.id]]
				}
				finals[cl.id]++
				r.begin(cl, Input{Kind: Read, Path: p})
			}
		}
		return idle() && allDone(finals, len(keys)+1)
	}) {
		return r.wrap(errors.New("final reads did not finish"))
	}
	return r.wrap(c.err)
}

// setupErr is a failure of the fault-free setup: the first violation seen,
// if any, else what did not happen.
func (r *runner) setupErr(what string) error {
	if err := r.wrap(nil); err != nil {
		return fmt.Errorf("setup: %s: %w", what, err)
	}
	return errors.New("setup: " + what)
}

func allDone(m map[int]int, n int) bool {
	for _, v := range m {
		if v < n {
			return false
		}
	}
	return true
}

// wrap returns the run's first violation: one the harness or the
// simulator recorded (an untilTick that gave up because of it must not
// report its own symptom instead), else err.
func (r *runner) wrap(err error) error {
	switch {
	case r.c.err != nil:
		return r.c.err
	case r.c.s.Err != nil:
		return r.c.s.Err
	}
	return err
}

// until steps the simulation until cond holds or d virtual time passed,
// serving only calls already started.
func (r *runner) until(d int64, cond func() bool) bool {
	return r.untilTick(d, false, cond)
}

func (r *runner) untilTick(d int64, issue bool, cond func() bool) bool {
	end := r.c.s.Now() + d
	for !cond() {
		if r.c.s.Now() > end || r.c.err != nil || r.c.s.Err != nil {
			return false
		}
		r.tick(issue)
	}
	return true
}

// tick runs one simulator event, then lets every client look at its call's
// outcome and, if issue is set, start new calls.
func (r *runner) tick(issue bool) {
	r.c.step()
	r.steps++
	if r.c.s.Err != nil && r.c.err == nil {
		r.c.err = r.c.s.Err
	}
	if l := r.c.s.Leader(); l != r.leader {
		r.leader = l
		if l != 0 {
			r.logf("leader: %d epoch %d", l, r.c.s.Node(l).Peer.SoftState().Epoch)
		} else {
			r.logf("leader: none")
		}
	}
	now := r.c.s.Now()
	for _, cl := range r.clients {
		if cl.cur != nil {
			r.poll(cl)
		}
		if issue && cl.cur == nil && !cl.final && now >= cl.nextAt {
			if r.rng.IntN(10) == 0 {
				r.plainGet(cl)
				continue
			}
			r.begin(cl, r.nextOp(cl))
		}
	}
}

// plainGet is a local read with no Sync: coord promises only sequential
// consistency for it, so it stays out of the linearizability history; it
// must still show the client its own earlier calls' effects.
func (r *runner) plainGet(cl *client) {
	c := r.c
	cl.nextAt = c.s.Now() + r.rng.Int64N(30)
	if !c.running(cl.home) {
		return
	}
	rep := c.reps[cl.home]
	p := keys[r.rng.IntN(len(keys))]
	out := c.read(cl.home, p)
	r.logf("client %d: local get %s at peer %d (tree at %v) -> %s", cl.id, p, cl.home, rep.applied, describeOutput(out))
	if rep == cl.seenRep && rep.applied < cl.seen {
		c.fail("client %d: local get at peer %d sees the tree at %v, older than its own earlier call at %v",
			cl.id, cl.home, rep.applied, cl.seen)
	}
	r.observe(cl, cl.home, rep.applied)
	cl.gets++
}

// observe records that the client's call saw peer id's tree at z.
func (r *runner) observe(cl *client, id zab.PeerID, z zab.Zxid) {
	if id != cl.home {
		return
	}
	rep := r.c.reps[cl.home]
	if rep != cl.seenRep {
		cl.seenRep, cl.seen = rep, 0
	}
	cl.seen = max(cl.seen, z)
}

// fault applies one fault action drawn from the seed.
func (r *runner) fault() {
	r.reconfigure()
	if r.on(FaultStall) {
		r.stalls.maybe(r.c.s, r.logf)
	}
	c, ids := r.c, r.c.s.IDs()
	pick := func() zab.PeerID { return ids[r.rng.IntN(len(ids))] }
	n := r.rng.IntN(22)
	if n >= 15 {
		r.driverFault(n - 15)
		return
	}
	class := FaultPartition
	switch n {
	case 6, 7, 8, 9, 11:
		class = FaultCrash
	case 10:
		class = FaultNet
	}
	if !r.on(class) {
		// Drawn but left out: keep the draws of the seed's schedule.
		switch n {
		case 2:
			r.rng.Shuffle(len(ids), func(int, int) {})
			r.rng.IntN(len(ids) - 1)
		case 3:
			pick()
			pick()
		case 6:
			pick()
		case 10:
			r.rng.IntN(3)
			r.rng.IntN(3)
		case 11:
			r.rng.IntN(3)
		case 12:
			r.rng.Shuffle(len(ids), func(int, int) {})
		}
		return
	}
	switch n {
	case 0, 1:
		if l := c.s.Leader(); l != 0 {
			c.s.Isolate(l)
			r.logf("fault: isolate leader %d", l)
		}
	case 2:
		ord := slices.Clone(ids)
		r.rng.Shuffle(len(ord), func(i, j int) { ord[i], ord[j] = ord[j], ord[i] })
		cut := 1 + r.rng.IntN(len(ord)-1)
		c.s.Partition(ord[:cut], ord[cut:])
		r.logf("fault: partition %v | %v", ord[:cut], ord[cut:])
	case 3:
		a, b := pick(), pick()
		if a != b {
			c.s.Cut(a, b)
			r.logf("fault: cut %d -> %d (one way)", a, b)
		}
	case 4, 5:
		c.s.Heal()
		r.logf("fault: heal")
	case 6:
		id := pick()
		if c.running(id) {
			c.crash(id)
			r.logf("fault: crash %d", id)
		}
	case 7:
		if l := c.s.Leader(); l != 0 {
			c.crash(l)
			r.logf("fault: crash leader %d", l)
		}
	case 8, 9:
		var up []zab.PeerID
		for _, id := range ids {
			if !c.running(id) {
				c.restart(id)
				up = append(up, id)
			}
		}
		if len(up) > 0 {
			r.logf("fault: restart %v", up)
		}
	case 11:
		if r.rng.IntN(3) == 0 {
			for _, id := range ids {
				c.crash(id)
			}
			r.logf("fault: crash every peer (power loss)")
		}
	case 12:
		// Bridge: two halves that only one peer connects.
		ord := slices.Clone(ids)
		r.rng.Shuffle(len(ord), func(i, j int) { ord[i], ord[j] = ord[j], ord[i] })
		bridge, rest := ord[0], ord[1:]
		a, b := rest[:len(rest)/2], rest[len(rest)/2:]
		for _, x := range a {
			for _, y := range b {
				c.s.Cut(x, y)
				c.s.Cut(y, x)
			}
		}
		r.logf("fault: bridge %v - %d - %v", a, bridge, b)
	case 13:
		if l := c.s.Leader(); l != 0 {
			for _, id := range ids {
				if id != l {
					c.s.Cut(l, id)
				}
			}
			r.logf("fault: leader %d can hear but not speak", l)
		}
	case 14:
		if l := c.s.Leader(); l != 0 {
			for _, id := range ids {
				if id != l {
					c.s.Cut(id, l)
				}
			}
			r.logf("fault: leader %d can speak but not hear", l)
		}
	case 10:
		drop := []float64{0, 0.05, 0.2}[r.rng.IntN(3)]
		dup := []float64{0, 0.05, 0.2}[r.rng.IntN(3)]
		c.s.SetFaults(drop, dup)
		r.logf("fault: drop=%.2f dup=%.2f", drop, dup)
	}
}

// nextOp draws a client's next operation.
func (r *runner) nextOp(cl *client) Input {
	cl.seq++
	data := fmt.Sprintf("c%d.%d", cl.id, cl.seq)
	key := func() string { return keys[r.rng.IntN(len(keys))] }
	ver := func(p string) int32 {
		if r.rng.IntN(4) == 0 {
			return int32(r.rng.IntN(3))
		}
		return cl.version[p]
	}
	switch n := r.rng.IntN(100); {
	case n < 12:
		return Input{Kind: Create, Path: key(), Data: data}
	case n < 20:
		return Input{Kind: CreateSeq, Path: "/q/s-", Data: data}
	case n < 28:
		k := key()
		v := int32(-1)
		if r.rng.IntN(2) == 0 {
			v = ver(k)
		}
		return Input{Kind: Delete, Path: k, Version: v}
	case n < 32 && len(cl.created) > 0:
		i := r.rng.IntN(len(cl.created))
		p := cl.created[i]
		cl.created = slices.Delete(cl.created, i, i+1)
		return Input{Kind: Delete, Path: p, Version: -1}
	case n < 44:
		return Input{Kind: Set, Path: key(), Data: data, Version: -1}
	case n < 58:
		k := key()
		return Input{Kind: Set, Path: k, Data: data, Version: ver(k)}
	case n < 66:
		a, b := key(), key()
		ops := []Input{{Kind: Check, Path: a, Version: ver(a)}, {Kind: Set, Path: b, Data: data, Version: -1}}
		switch r.rng.IntN(3) {
		case 0:
			ops = append(ops, Input{Kind: CreateSeq, Path: "/q/m-", Data: data})
		case 1:
			ops = append(ops, Input{Kind: Create, Path: key(), Data: data})
		}
		return Input{Kind: Multi, Ops: ops}
	}
	p := key()
	if len(cl.created) > 0 && r.rng.IntN(8) == 0 {
		p = cl.created[r.rng.IntN(len(cl.created))]
	}
	return Input{Kind: Read, Path: p}
}

// begin starts a call.
func (r *runner) begin(cl *client, in Input) {
	cl.cur = &call{in: in, start: r.c.s.Now(), deadline: r.c.s.Now() + callTimeout}
	r.logf("client %d: call %s", cl.id, describeInput(in))
	if in.Kind != Read && !r.newRetry(cl) {
		return
	}
	r.attempt(cl)
}

// finished is peer p's proposal.Finished: the writes its clients finished
// with one attempt, which its next requests tell every replica to forget
// (coord keeps one per Node).
func (r *runner) finished(p zab.PeerID) *proposal.Finished {
	f := r.done[p]
	if f == nil {
		if r.done == nil {
			r.done = map[zab.PeerID]*proposal.Finished{}
		}
		f = &proposal.Finished{}
		r.done[p] = f
	}
	return f
}

// newRetry makes the current call's write request, as coord's proposeAt
// does: a new ReqID, the proposer's wall clock, the limit on data, the
// Since its retries will carry, the peer's finished writes to forget.
func (r *runner) newRetry(cl *client) bool {
	r.nextReq++
	req := proposal.Request{Origin: uint64(cl.home), ReqID: r.nextReq, Time: r.c.wall(cl.home).UnixMilli(),
		MaxData: tree.DefaultMaxDataSize, Op: toOp(cl.cur.in), Forget: r.finished(cl.home).Take()}
	rt, err := proposal.NewRetry(req, r.c.since(cl.home), nil)
	if err != nil {
		r.c.fail("client %d: encoding %s: %w", cl.id, describeInput(cl.cur.in), err)
		return false
	}
	cl.cur.rt = rt
	return true
}

// attempt sends the current call to the client's peer.
func (r *runner) attempt(cl *client) {
	k, c := cl.cur, r.c
	k.retryAt = 0
	k.node = cl.home
	k.attempts++
	var err error
	if k.in.Kind == Read {
		if r.cfg.StaleReads {
			if c.running(k.node) {
				r.finish(cl, c.read(k.node, k.in.Path))
				return
			}
			err = zab.ErrNoLeader
		} else {
			k.zid, err = c.s.Sync(k.node)
		}
	} else {
		if r.cfg.FreshRetryIDs && k.attempts > 1 && !r.newRetry(cl) {
			return
		}
		if id := k.rt.Request().ReqID; !slices.Contains(k.ids, id) {
			k.ids = append(k.ids, id)
		}
		data := k.rt.Data()
		if r.cfg.RetryWithoutSince {
			req := k.rt.Request()
			req.Since = 0
			if data, err = proposal.Encode(&req); err != nil {
				c.fail("client %d: encoding: %w", cl.id, err)
				return
			}
		}
		if k.zid, err = c.s.Propose(k.node, data); err != nil {
			// Nothing was sent: this attempt certainly had no effect.
			r.verdict(cl, zab.Applied{}, err, false)
		}
		return
	}
	if err != nil {
		// Nothing was sent: this attempt certainly had no effect.
		r.retry(cl, false)
	}
}

// verdict takes the outcome of a write's attempt through the write's
// retry rule: retry, or end the call with its result or error. stop: the
// call's deadline passed, so it retries no more (as coord's proposeAt stops
// when its context ends).
func (r *runner) verdict(cl *client, a zab.Applied, err error, stop bool) {
	k := cl.cur
	st := k.rt.Next(a, err)
	if r.cfg.ForgetRetried {
		st = forgetRetried(st, err)
	}
	if !st.Again || stop {
		r.finished(cl.home).Done(k.rt, st)
	}
	unknown := errors.Is(st.Err, zab.ErrOutcomeUnknown)
	switch {
	case st.Again && !stop:
		r.logf("client %d: attempt %d at peer %d: %v", cl.id, k.attempts, k.node, err)
		r.retry(cl, unknown)
	case err == nil && !unknown:
		c := r.c
		r.observe(cl, k.node, a.Zxid)
		for _, id := range k.ids {
			c.returned[id] = a.Zxid
		}
		r.won[k.rt.Request().ReqID] = k.zid
		if st.Result.Err == nil {
			r.acked[a.Zxid] = c.reqs[a.Zxid]
		}
		r.logf("client %d: attempt %d at peer %d committed at %v (req %d)", cl.id, k.attempts, k.node, a.Zxid,
			c.reqs[a.Zxid])
		r.finish(cl, outputOf(st.Result))
	default:
		r.logf("client %d: attempt %d at peer %d: %v", cl.id, k.attempts, k.node, st.Err)
		r.giveUp(cl, unknown)
	}
}

// delivered counts the forwards of earlier attempts that reach the
// leader of their reign after their write returned (Result.LateAttempts).
func (r *runner) delivered(m zab.Message) {
	if m.Type != zab.MsgPropose {
		return
	}
	if st := r.c.s.Node(m.To).Peer.SoftState(); st.Role != zab.RoleLeading || st.Epoch != m.Epoch {
		return
	}
	for i, e := range m.Entries {
		req, err := proposal.Decode(e.Data)
		if err != nil {
			continue
		}
		if zid, ok := r.won[req.ReqID]; ok && zid != m.ReqIDs[i] {
			r.late++
		}
	}
}

// poll looks for the outcome of a client's current attempt.
func (r *runner) poll(cl *client) {
	k, c := cl.cur, r.c
	now := c.s.Now()
	if k.retryAt > 0 {
		if now >= k.retryAt {
			r.attempt(cl)
		}
		return
	}
	n := c.s.Node(k.node)
	if k.in.Kind == Read {
		if res, ok := n.Syncs[k.zid]; ok {
			delete(n.Syncs, k.zid)
			if res.Err == nil {
				r.logf("client %d: sync at peer %d done at %v, tree at %v", cl.id, k.node, res.Zxid, c.reps[k.node].applied)
				r.observe(cl, k.node, c.reps[k.node].applied)
				r.finish(cl, c.read(k.node, k.in.Path))
			} else {
				r.retry(cl, false)
			}
		} else if now > k.deadline && !cl.final {
			r.giveUp(cl, false)
		}
		return
	}
	res, ok := n.Proposals[k.zid]
	if !ok {
		if now > k.deadline {
			// The call's context ends while zab still has the attempt,
			// as zab.Node.Propose reports it.
			r.logf("client %d: attempt %d at peer %d timed out", cl.id, k.attempts, k.node)
			r.verdict(cl, zab.Applied{}, fmt.Errorf("%w: %w", zab.ErrOutcomeUnknown, context.DeadlineExceeded), true)
		}
		return
	}
	delete(n.Proposals, k.zid)
	// The response is what the proposing peer's state machine returned
	// for the entry (cluster.response), as zab hands it to Propose's
	// caller; none (a snapshot covered the entry, or it was applied
	// before the peer knew it was this request's) is an unknown outcome.
	a := zab.Applied{Zxid: res.Zxid, Response: n.Responses[k.zid]}
	delete(n.Responses, k.zid)
	if res.Err == nil && a.Response == nil {
		r.logf("client %d: attempt %d at peer %d committed at %v without a response: outcome unknown",
			cl.id, k.attempts, k.node, res.Zxid)
	}
	r.verdict(cl, a, res.Err, false)
}

// retry schedules another attempt, or gives the call up: a read or a write
// that certainly never applied leaves no trace; a write that may have
// applied stays pending forever.
func (r *runner) retry(cl *client, unknown bool) {
	k := cl.cur
	k.unknown = k.unknown || unknown
	if at := r.c.s.Now() + 20 + r.rng.Int64N(40); at < k.deadline || cl.final {
		k.retryAt = at
		return
	}
	r.giveUp(cl, unknown)
}

// giveUp ends the current call at its deadline.
func (r *runner) giveUp(cl *client, unknown bool) {
	k := cl.cur
	k.unknown = k.unknown || unknown
	cl.cur = nil
	cl.nextAt = r.c.s.Now() + r.rng.Int64N(30)
	if k.in.Kind == Read || !k.unknown {
		r.logf("client %d: gave up %s (no effect)", cl.id, describeInput(k.in))
		return
	}
	r.pending++
	r.logf("client %d: gave up %s (outcome unknown)", cl.id, describeInput(k.in))
	r.hist = append(r.hist, porcupine.Operation{ClientId: r.clientIndex(cl), Input: k.in, Call: k.start,
		Output: Output{Unknown: true}, Return: pendingReturn, Metadata: k.ids})
}

// resolvePending settles, from the committed history, the writes whose
// clients never learnt their outcome, which makes the check cheaper and no
// weaker: a write whose ReqID never succeeded had no effect and leaves the
// history; one that did keeps an unknown return time but gets its real
// result (the zxid order with real results linearizes a correct run, and a
// second success of the same write stays unexplained by the model).
func (r *runner) resolvePending() {
	zxids := slices.Sorted(maps.Keys(r.c.reqs))
	keep := r.hist[:0]
	for _, op := range r.hist {
		out := op.Output.(Output)
		if !out.Unknown {
			keep = append(keep, op)
			continue
		}
		ids := op.Metadata.([]uint64)
		found := false
		for _, z := range zxids {
			if res := r.c.outcome[z]; slices.Contains(ids, r.c.reqs[z]) && res.Err == nil && !res.Duplicate {
				op.Output = outputOf(res)
				found = true
				break
			}
		}
		if found {
			keep = append(keep, op)
			r.logf("pending %s: took effect: %s", describeInput(op.Input.(Input)), describeOutput(op.Output.(Output)))
		} else {
			r.logf("pending %s: had no effect", describeInput(op.Input.(Input)))
		}
	}
	r.hist = keep
}

// finish records a call's return.
func (r *runner) finish(cl *client, out Output) {
	k := cl.cur
	now := r.c.s.Now()
	cl.cur = nil
	cl.nextAt = now + r.rng.Int64N(30)
	r.logf("client %d: return %s", cl.id, describeOp(k.in, out))
	r.hist = append(r.hist, porcupine.Operation{ClientId: r.clientIndex(cl), Input: k.in, Call: k.start, Output: out,
		Return: now})
	switch {
	case out.Code != OK:
	case k.in.Kind == Read || k.in.Kind == Set:
		cl.version[k.in.Path] = out.Version
	case k.in.Kind == Create:
		cl.version[k.in.Path] = 0
	case k.in.Kind == CreateSeq:
		cl.created = append(cl.created, out.Path)
	}
}

// clientIndex numbers clients from zero for porcupine's visualisation; the
// setup client's one call is dropped before checking.
func (r *runner) clientIndex(cl *client) int { return max(cl.id, 0) }

// String renders a result's summary.
func (res *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (%d voters): %d ops, %d pending, %d steps, check %s", res.Seed, res.Voters,
		len(res.History), res.Pending, res.Steps, res.Check)
	if res.Err != nil {
		fmt.Fprintf(&b, ": %v", res.Err)
	}
	return b.String()
}

// Explain describes why porcupine rejected the history: the longest
// linearizable prefix it found, the model state after it, and the earliest
// returning operation it could not place next.
func (res *Result) Explain() string {
	parts := res.Info.PartialLinearizations()
	if res.Check != porcupine.Illegal || len(parts) == 0 || len(parts[0]) == 0 {
		return ""
	}
	var best []int
	for _, p := range parts[0] {
		if len(p) > len(best) {
			best = p
		}
	}
	m := Model()
	st := m.Init()
	done := map[int]bool{}
	var b strings.Builder
	fmt.Fprintf(&b, "longest linearizable prefix: %d of %d ops; its last ones:\n", len(best), len(res.History))
	for i, id := range best {
		op := res.History[id]
		_, st = m.Step(st, op.Input, op.Output)
		done[id] = true
		if i >= len(best)-8 {
			fmt.Fprintf(&b, "  [%d,%d] client %d: %s\n", op.Call, op.Return, op.ClientId, m.DescribeOperation(op.Input, op.Output))
		}
	}
	fmt.Fprintf(&b, "state then: %s\n", m.DescribeState(st))
	stuck := -1
	for i, op := range res.History {
		if !done[i] && (stuck < 0 || op.Return < res.History[stuck].Return) {
			stuck = i
		}
	}
	if stuck >= 0 {
		op := res.History[stuck]
		fmt.Fprintf(&b, "cannot place next (earliest return): [%d,%d] client %d: %s", op.Call, op.Return, op.ClientId,
			m.DescribeOperation(op.Input, op.Output))
	}
	return b.String()
}
