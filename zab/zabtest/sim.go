package zabtest

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/coord-dev/coord/zab"
	"hash/fnv"
	"math/rand/v2"
	"slices"
)

// SimConfig configures a simulated ensemble. Times are virtual units.
type SimConfig struct {
	Seed      uint64
	Voters    int // ids 1..Voters
	Observers int // ids after the voters
	// Peer is the template for every peer's zab.Config (ID, Voters, Observers,
	// Storage and Seed are filled in).
	Peer zab.Config
	// TickInterval is the virtual time between two ticks of a peer.
	// Default 10.
	TickInterval int64
	// MinDelay and MaxDelay bound a message's delivery delay. Default 1..3.
	MinDelay, MaxDelay int64
	// DropRate and DupRate are the probabilities that a message is lost or
	// delivered twice.
	DropRate, DupRate float64
	// Reorder lets messages between two peers overtake each other; without
	// it each pair is FIFO, like a TCP connection.
	Reorder bool
	// QueueLimit bounds the messages in flight on each link, like a
	// transport's send queue: beyond it a message is refused and the driver
	// calls ReportUnreachable. Zero means unbounded.
	QueueLimit int
	// SnapshotEvery makes each peer snapshot its state machine every that
	// many applied entries and compact its log up to the previous snapshot
	// (so peers further behind need a SNAP). Zero disables snapshots.
	SnapshotEvery int
	// Mistake plants a known protocol or persistence error in every peer
	// (see Mistake), to show that the simulator's checks catch it.
	Mistake Mistake
	// Storage, if set, returns the durable state peer id starts from (a
	// fresh storage each call); nil means an empty one. Tests use it to
	// start an ensemble with a history, e.g. with zxids near the top of
	// their ranges.
	Storage func(id zab.PeerID) *zab.MemoryStorage
	// Stamp, if set, gives each start of peer id (the first and every
	// restart) its zab.Config.Stamp, as an application makes one per
	// process (coord's proposal.NewStamper); it overrides Peer.Stamp.
	Stamp func(id zab.PeerID) func(data []byte) []byte
	// Apply, if set, is the application's state machine of peer id: it
	// gets every entry the peer's state machine applies (not the
	// configuration entries), after the simulator's own checks, and what it
	// returns is the entry's response, which the shared executor hands to
	// the entry's proposer as zab.Node.Propose returns it in
	// zab.Applied.Response (see SimNode.Responses).
	Apply func(id zab.PeerID, e zab.Entry) any
	// ReadBack makes every peer's storage serve the entries it applied
	// only through the driver's read-back, as a zab.Node with a data
	// directory does beyond its newest megabyte (zab.MemoryStorage.Release,
	// zab.Ready.Fetch): each read-back returns a few entries, after a
	// random delay of up to MaxReadBack, handed to the peer between its
	// other events.
	ReadBack    bool
	MaxReadBack int64
}

// Sim is a deterministic, single-threaded simulation of an ensemble of
// Peers on an in-memory network with a virtual clock: every delivery, drop,
// duplication, delay, partition and tick follows from the seed, so a run
// replays exactly. A crash keeps only what the peer persisted (its
// zab.MemoryStorage); the state machine is rebuilt from the snapshot.
type Sim struct {
	cfg    SimConfig
	rng    *rand.Rand
	now    int64
	seq    uint64
	events eventQueue
	nodes  map[zab.PeerID]*SimNode
	ids    []zab.PeerID
	cut    map[[2]zab.PeerID]bool
	fifo   map[[2]zab.PeerID]int64 // last delivery time per pair
	queued map[[2]zab.PeerID]int   // messages in flight per pair (held ones too)
	// stalled links hold their messages, in order, in held until
	// Unstall or Heal delivers them (see Stall).
	stalled map[[2]zab.PeerID]bool
	held    map[[2]zab.PeerID][]zab.Message
	// history maps each applied zxid to the state-machine digest right
	// after it, as first seen: a peer that applies in another order or
	// twice diverges from it.
	history map[zab.Zxid]uint64
	// prev maps each applied zxid to the one applied just before it, as
	// first seen: walking it back from a peer's last zxid lists the history
	// that peer holds (InHistory).
	prev map[zab.Zxid]zab.Zxid
	// leaders records who established each epoch: two leaders of one epoch
	// would break zxid uniqueness.
	leaders map[uint32]zab.PeerID
	// maxApplied is the newest zxid any peer applied; a Sync started
	// afterwards must cover it (linearizability of Sync + read).
	maxApplied zab.Zxid
	// Err records the first invariant violation seen by the driver.
	Err error
	// instant counts the events run at the current virtual time.
	instant int
	// Delivered counts messages handed to peers.
	Delivered int
	// OnDeliver, if set, sees every message just before it is stepped.
	OnDeliver func(zab.Message)
	// dirty peers got requests whose zab.Ready is not processed yet: like a
	// driver loop, the simulator batches them into one zab.Ready (group commit).
	dirty map[zab.PeerID]bool
	// OnFault, if set, hears about the faults the simulator decides itself
	// (what a torn write kept, a failed fsync's fail-stop), for the
	// caller's schedule log.
	OnFault func(id zab.PeerID, what string)
	// OnCrash, if set, sees a peer just before it crashes, while its state
	// machine and storage are still as its last completed zab.Ready left them
	// (a crash may come in the middle of a Step, after earlier Readies of
	// that Step applied entries and completed requests).
	OnCrash func(id zab.PeerID)
}

// SimNode is one simulated peer with its driver state.
type SimNode struct {
	ID      zab.PeerID
	Peer    *zab.Peer // nil while crashed
	Storage *zab.MemoryStorage
	SM      SimStateMachine
	// Proposals and Syncs collect the results reported by zab.Ready.
	Proposals map[uint64]zab.ProposalResult
	// Responses holds, by request id, the response SimConfig.Apply
	// returned for a completed proposal's entry, when the executor had one
	// (its entry was applied in the zab.Ready that completed it).
	Responses map[uint64]any
	Syncs     map[uint64]zab.SyncResult
	nextReq   uint64
	syncFloor map[uint64]zab.Zxid
	lastSnap  int
	prevSnap  zab.Zxid
	cfg       zab.Config

	// Driver faults (see SlowDisk, CrashInPersist, FailFsync, Pause,
	// StallTicks). While the driver is blocked (a zab.Ready's fsync in flight,
	// or the process paused) it takes in nothing: messages that reach it
	// wait in backlog, requests in deferred, and of the ticks that fire
	// only one is kept (like a time.Ticker's channel).
	inflight    *zab.Ready
	exec        *zab.Executor // this incarnation's (the shared zab.Ready executor)
	confs       []zab.Zxid    // configuration entries of the Ready being finished
	lastChecked zab.Zxid      // the last zxid check saw this peer apply
	disk        simDisk
	pausedUntil int64
	backlog     []zab.Message
	deferred    []simRequest
	tickDue     bool
	// tickAt[t%len] is the virtual time of tick t of this incarnation's
	// peer (see LeaderConfirmed).
	tickAt     [confirmTicks]int64
	slowUntil  int64 // until then every persisting zab.Ready takes fsyncDelay
	fsyncDelay int64
	writtenAt  int64         // when the last Async Ready's write is durable
	held       []zab.Message // acknowledgements waiting for Async Readys' writes, in order
	stallUntil int64         // no ticks until then (a stopped clock)
	armed      diskFault     // what happens to the next persisting zab.Ready
	armedMin   int           // ... that has at least this many records
	armedSnap  bool          // ... that installs a SNAP
	armedKeep  int           // ... keeping this many records (negative: drawn from the seed)
	inc        uint64        // incarnation: bumped by every crash
}

// simRequest is a Propose or Sync submitted while the driver was blocked.
type simRequest struct {
	id   uint64
	data []byte
	sync bool
}

// diskFault is what goes wrong with a peer's next persisting zab.Ready.
type diskFault uint8

const (
	diskOK diskFault = iota
	// diskCrash: the process dies in the middle of the write.
	diskCrash
	// diskError: the fsync fails and the driver stops the node.
	diskError
)

// SimStateMachine is the replicated state of the simulation: a count and a
// running digest of every applied entry, in order.
type SimStateMachine struct {
	N      uint64
	Digest uint64
	Last   zab.Zxid
}

func (s *SimStateMachine) apply(e zab.Entry) {
	h := fnv.New64a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.Digest)
	binary.BigEndian.PutUint64(b[8:], uint64(e.Zxid))
	h.Write(b[:])
	h.Write(e.Data)
	s.N++
	s.Digest = h.Sum64()
	s.Last = e.Zxid
}

func (s SimStateMachine) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, s.N)
	binary.BigEndian.PutUint64(b[8:], s.Digest)
	binary.BigEndian.PutUint64(b[16:], uint64(s.Last))
	return b
}

func decodeSM(b []byte) SimStateMachine {
	if len(b) != 24 {
		return SimStateMachine{}
	}
	return SimStateMachine{N: binary.BigEndian.Uint64(b), Digest: binary.BigEndian.Uint64(b[8:]),
		Last: zab.Zxid(binary.BigEndian.Uint64(b[16:]))}
}

type event struct {
	at   int64
	seq  uint64
	tick zab.PeerID // non-zero: a tick of this peer
	msg  zab.Message
	// wake, if non-zero, is a driver event of this peer's incarnation inc:
	// an fsync completes (kind wakeFsync) or a pause ends (wakeResume).
	wake  zab.PeerID
	kind  wakeKind
	inc   uint64
	fetch zab.FetchRequest // wakeFetch: the read-back that completes
	zxid  zab.Zxid         // wakeDurable: an Async Ready's write ends here (0: none)
	gen   uint64           // wakeDurable: simDisk.gen when the write started
	then  int              // wakeDurable: how many held acknowledgements follow it (with zxid 0: the planted early write)
}

type wakeKind uint8

const (
	wakeFsync wakeKind = iota + 1
	wakeResume
	wakeDurable // an Async Ready's write, or a planted early write, becomes durable
	wakeFetch   // a read-back (zab.Ready.Fetch) completes
)

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// NewSim builds and starts a simulated ensemble.
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 10
	}
	if cfg.MaxDelay == 0 {
		cfg.MinDelay, cfg.MaxDelay = 1, 3
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), nodes: map[zab.PeerID]*SimNode{},
		cut: map[[2]zab.PeerID]bool{}, fifo: map[[2]zab.PeerID]int64{}, history: map[zab.Zxid]uint64{},
		prev: map[zab.Zxid]zab.Zxid{}, dirty: map[zab.PeerID]bool{},
		queued: map[[2]zab.PeerID]int{}, leaders: map[uint32]zab.PeerID{},
		stalled: map[[2]zab.PeerID]bool{}, held: map[[2]zab.PeerID][]zab.Message{}}
	var voters, observers []zab.PeerID
	for i := 1; i <= cfg.Voters; i++ {
		voters = append(voters, zab.PeerID(i))
	}
	for i := 1; i <= cfg.Observers; i++ {
		observers = append(observers, zab.PeerID(cfg.Voters+i))
	}
	for _, id := range append(slices.Clone(voters), observers...) {
		pc := cfg.Peer
		pc.ID, pc.Voters, pc.Observers, pc.Seed, pc.Rand = id, voters, observers, cfg.Seed, nil
		n := &SimNode{ID: id, Storage: zab.NewMemoryStorage(), cfg: pc, armedKeep: -1}
		if cfg.Storage != nil {
			if st := cfg.Storage(id); st != nil {
				n.Storage = st
			}
		}
		s.nodes[id] = n
		s.ids = append(s.ids, id)
		if err := s.start(n); err != nil {
			return nil, err
		}
		// Spread the ticks so peers do not act in lockstep.
		s.push(event{at: s.now + 1 + s.rng.Int64N(cfg.TickInterval), tick: id})
	}
	return s, nil
}

func (s *Sim) start(n *SimNode) error {
	// A crash between a SNAP's two steps is resolved as the data
	// directory's recovery does.
	if n.Storage.RecoverSnapshot() {
		s.fault(n.ID, "restart: snapshot newer than the log (crash inside a SNAP install): log dropped")
	}
	snap, _ := n.Storage.Snapshot()
	if _, err := n.Storage.Floor(snap.Zxid); err != nil {
		// The data directory's recovery refuses such a log too.
		err = fmt.Errorf("peer %d: restart refused: the log starts after the snapshot at %v (history lost): %w",
			n.ID, snap.Zxid, err)
		s.fail(err)
		return err
	}
	n.SM = decodeSM(snap.Data)
	n.lastChecked = snap.Zxid
	n.prevSnap = snap.Zxid
	n.lastSnap = int(n.SM.N)
	if n.Proposals == nil {
		// Results outlive crashes: a write reported committed before one
		// must still be in the history after it.
		n.Proposals = map[uint64]zab.ProposalResult{}
		n.Responses = map[uint64]any{}
		n.Syncs = map[uint64]zab.SyncResult{}
	}
	n.syncFloor = map[uint64]zab.Zxid{}
	cfg := n.cfg
	if s.cfg.ReadBack {
		n.Storage.EnableRelease(false) // what it applied is read back
	}
	cfg.Storage = n.Storage
	if s.cfg.Mistake != MistakeNone {
		cfg.Storage = plantedStorage{MemoryStorage: n.Storage, m: s.cfg.Mistake}
	}
	cfg.Seed = s.rng.Uint64() // a restarted peer draws new jitter
	if s.cfg.Stamp != nil {
		cfg.Stamp = s.cfg.Stamp(n.ID)
	}
	p, err := zab.NewPeer(cfg)
	if err != nil {
		return err
	}
	n.Peer = p
	n.tickAt = [confirmTicks]int64{}
	n.tickAt[0] = s.now
	n.disk = simDisk{st: n.Storage, budget: -1, keep: -1, mistake: s.cfg.Mistake, rng: s.rng,
		flushed: func() { s.sendHeld(n, len(n.held)) }}
	n.held, n.writtenAt = nil, 0
	n.exec = zab.NewExecutor(zab.ExecutorConfig{
		Peer: p, Log: &n.disk, Send: s.sendErr, StateMachine: simApplier{s: s, n: n},
		OnProposal: func(r zab.ProposalResult, resp any) {
			n.Proposals[r.ID] = r
			if resp != nil {
				n.Responses[r.ID] = resp
			}
		},
		OnSync:  func(r zab.SyncResult) { s.syncDone(n, r) },
		Applied: snap.Zxid,
	})
	s.process(n)
	return nil
}

func (s *Sim) push(e event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.events, &e)
}

// Now returns the virtual time.
func (s *Sim) Now() int64 { return s.now }

// Node returns the simulated peer id.
func (s *Sim) Node(id zab.PeerID) *SimNode { return s.nodes[id] }

// IDs returns every peer id, voters first.
func (s *Sim) IDs() []zab.PeerID { return s.ids }

// send queues m; it reports false when the link's queue is full.
func (s *Sim) send(m zab.Message) bool {
	k := [2]zab.PeerID{m.From, m.To}
	if s.cfg.QueueLimit > 0 && s.queued[k] >= s.cfg.QueueLimit {
		return false
	}
	if s.cut[k] || s.nodes[m.To] == nil {
		return true
	}
	if s.stalled[k] {
		if s.nodes[m.To].Peer == nil {
			return true // its connection died with it
		}
		s.queued[k]++
		s.held[k] = append(s.held[k], m)
		return true
	}
	copies := 1
	if s.cfg.DropRate > 0 && s.rng.Float64() < s.cfg.DropRate {
		copies = 0
	}
	if s.cfg.DupRate > 0 && s.rng.Float64() < s.cfg.DupRate {
		copies++
	}
	for range copies {
		at := s.now + s.cfg.MinDelay + s.rng.Int64N(s.cfg.MaxDelay-s.cfg.MinDelay+1)
		if !s.cfg.Reorder {
			at = max(at, s.fifo[k])
			s.fifo[k] = at
		}
		s.queued[k]++
		s.push(event{at: at, msg: m})
	}
	return true
}

// sendErr is send for the executor: a full link queue is zab.ErrQueueFull.
func (s *Sim) sendErr(m zab.Message) error {
	if !s.send(m) {
		return zab.ErrQueueFull
	}
	return nil
}

// process runs the driver loop of n until its zab.Ready is empty (or the driver
// blocks on a slow fsync).
func (s *Sim) process(n *SimNode) {
	for loops := 0; n.Peer != nil && !s.blocked(n) && n.Peer.HasReady(); loops++ {
		if loops > maxInstantEvents || s.events == nil && s.Err != nil {
			// A core that never runs out of work without input.
			s.fail(fmt.Errorf("livelock: peer %d keeps producing Readies at t=%d", n.ID, s.now))
			s.events = nil
			return
		}
		rd := n.Peer.Ready()
		if st := rd.SoftState; st.Role == zab.RoleLeading && st.Serving {
			if l, ok := s.leaders[st.Epoch]; ok && l != n.ID {
				s.fail(fmt.Errorf("peers %d and %d both established epoch %d", l, n.ID, st.Epoch))
			}
			s.leaders[st.Epoch] = n.ID
		}
		// The shared executor's order: the leader's PROPOSALs and what was
		// durable before rd applied first, then the write, then the rest.
		if rd.Async && !(n.armed != diskOK && persists(rd)) {
			s.executeAsync(n, rd)
			continue
		}
		n.exec.Early(rd)
		if persists(rd) {
			if f := n.armed; f != diskOK && s.records(n, rd) >= n.armedMin && (!n.armedSnap || rd.Snapshot != nil) {
				n.armed = diskOK
				s.tear(n, rd, f)
				return
			}
			if s.now < n.slowUntil && n.fsyncDelay > 0 && s.cfg.Mistake == MistakeLeaderSelfBeforeFsync &&
				rd.SoftState.Role == zab.RoleLeading {
				// Planted: the leader goes on as if its write were done;
				// the write becomes durable only when the fsync ends.
				n.disk.lagging = true
				s.finish(n, rd)
				n.disk.lagging = false
				s.push(event{at: s.now + n.fsyncDelay, wake: n.ID, kind: wakeDurable, inc: n.inc})
				continue
			}
			if s.now < n.slowUntil && n.fsyncDelay > 0 {
				// A slow fsync: everything else waits for the write, and
				// the driver takes in nothing meanwhile.
				n.inflight = &rd
				s.push(event{at: s.now + n.fsyncDelay, wake: n.ID, kind: wakeFsync, inc: n.inc})
				return
			}
		}
		s.finish(n, rd)
	}
}

// executeAsync carries out an Async Ready as a Node does: its entries are
// written at once to the storage the core reads, and become durable after
// a delay (the slow disk's, or drawn up to MaxDelay, in order), which a
// crash before it may lose a suffix of; then zab.Peer.Persisted.
func (s *Sim) executeAsync(n *SimNode, rd zab.Ready) {
	s.noteConfs(n, rd)
	n.disk.then = nil
	if err := n.exec.ExecuteAsync(rd); err != nil {
		s.fail(fmt.Errorf("peer %d: %w", n.ID, err))
	}
	then := n.disk.then
	n.disk.then = nil
	if s.cfg.Mistake == MistakeAckBeforeDurable {
		// Planted: the acknowledgements go before the write is durable.
		for _, m := range then {
			s.send(m)
		}
		then = nil
	}
	if k := len(rd.Entries); k > 0 {
		last := rd.Entries[k-1].Zxid
		delay := s.rng.Int64N(s.cfg.MaxDelay + 1)
		if s.now < n.slowUntil && n.fsyncDelay > 0 {
			delay = n.fsyncDelay
		}
		n.writtenAt = max(n.writtenAt, s.now+delay)
		s.push(event{at: n.writtenAt, wake: n.ID, kind: wakeDurable, inc: n.inc, zxid: last, gen: n.disk.gen, then: len(then)})
		n.held = append(n.held, then...)
		if s.cfg.Mistake == MistakeLeaderSelfBeforeFsync && rd.SoftState.Role == zab.RoleLeading {
			// Planted: the leader counts its copy before the write is durable.
			n.Peer.Persisted(last)
		}
	} else if len(then) > 0 {
		if len(n.held) > 0 || n.disk.pending {
			// After the writes under way, and the acknowledgements before.
			s.push(event{at: max(n.writtenAt, s.now), wake: n.ID, kind: wakeDurable, inc: n.inc, gen: n.disk.gen, then: len(then)})
			n.held = append(n.held, then...)
		} else {
			for _, m := range then {
				s.send(m)
			}
		}
	}
	s.afterReady(n, rd)
}

// noteConfs records the configuration entries rd hands out. Configuration
// entries (zab's own: the executor does not apply them) move the applied
// zxid too, and every peer must hold them at the same point of the
// history: simApplier checks each before the next entry.
func (s *Sim) noteConfs(n *SimNode, rd zab.Ready) {
	n.confs = n.confs[:0]
	for _, e := range rd.CommittedEntries {
		if e.IsConfig() {
			n.confs = append(n.confs, e.Zxid)
		}
	}
}

// afterReady is the driver's work once rd is carried out: the last
// configuration check, the read-back rd asks for, releasing applied
// entries' data, the snapshot.
func (s *Sim) afterReady(n *SimNode, rd zab.Ready) {
	s.checkConfs(n, ^zab.Zxid(0))
	n.SM.Last = n.exec.Applied()
	s.readBack(n, rd)
	if s.cfg.ReadBack {
		n.Storage.Release(n.exec.Applied(), 0)
	}
	s.maybeSnapshot(n)
}

// sendHeld sends the first k acknowledgements held for Async Readys'
// writes.
func (s *Sim) sendHeld(n *SimNode, k int) {
	k = min(k, len(n.held))
	for _, m := range n.held[:k] {
		s.send(m)
	}
	n.held = n.held[k:]
}

// readBack models the driver's read-back of rd.Fetch: its result arrives
// after a random delay, as another goroutine's would.
func (s *Sim) readBack(n *SimNode, rd zab.Ready) {
	if rd.Fetch == nil {
		return
	}
	s.push(event{at: s.now + s.rng.Int64N(s.cfg.MaxReadBack+1), wake: n.ID, kind: wakeFetch, inc: n.inc, fetch: *rd.Fetch})
}

// persists reports whether rd writes anything durable (an fsync).
func persists(rd zab.Ready) bool {
	return rd.Reset || rd.Snapshot != nil || rd.Truncate || len(rd.Entries) > 0 || !rd.HardState.IsEmpty()
}

// finish carries out rd after Early: the write, then the rest
// (zab.Executor.Persist and Finish), then the driver's snapshot.
func (s *Sim) finish(n *SimNode, rd zab.Ready) {
	n.disk.next = &rd
	err := n.exec.Persist(rd)
	n.disk.next = nil
	if err != nil {
		s.fail(fmt.Errorf("peer %d: persist: %w", n.ID, err))
	}
	s.noteConfs(n, rd)
	if err := n.exec.Finish(rd); err != nil {
		s.fail(fmt.Errorf("peer %d: %w", n.ID, err))
	}
	s.afterReady(n, rd)
}

// simApplier is a simulated peer's state machine as the executor sees it:
// it checks that every peer reaches the same state after each zxid.
type simApplier struct {
	s *Sim
	n *SimNode
}

func (a simApplier) Apply(e zab.Entry) any {
	s, n := a.s, a.n
	if last, _ := n.Storage.LastZxid(); e.Zxid > last {
		// The executor applies only what its log writes returned for.
		s.fail(fmt.Errorf("peer %d: applied %v before it was written to its log (written to %v)", n.ID, e.Zxid, last))
	} else if d := n.disk.durableEnd(); e.Zxid > d {
		s.fail(fmt.Errorf("peer %d: applied %v before it was durable in its log (durable to %v)", n.ID, e.Zxid, d))
	}
	s.checkConfs(n, e.Zxid)
	n.SM.apply(e)
	s.check(n, e.Zxid, n.SM.Digest)
	if s.cfg.Apply != nil {
		return s.cfg.Apply(n.ID, e)
	}
	return nil
}

func (a simApplier) Restore(snap zab.Snapshot) error {
	if snap.Zxid == 0 && len(snap.Data) == 0 {
		// Emptied (zab.Ready.Reset): the history is applied again from nothing.
		a.n.SM, a.n.lastChecked, a.n.prevSnap, a.n.lastSnap = SimStateMachine{}, 0, 0, 0
		return nil
	}
	a.n.SM = decodeSM(snap.Data)
	a.s.check(a.n, snap.Zxid, a.n.SM.Digest)
	return nil
}

// checkConfs checks the configuration entries of the zab.Ready being finished
// that come before z: the state after each is the state now.
func (s *Sim) checkConfs(n *SimNode, z zab.Zxid) {
	for len(n.confs) > 0 && n.confs[0] < z {
		s.check(n, n.confs[0], n.SM.Digest)
		n.confs = n.confs[1:]
	}
}

// check records the state digest d of peer n right after zxid z, or
// compares it with the one first seen there.
func (s *Sim) check(n *SimNode, z zab.Zxid, d uint64) {
	s.maxApplied = max(s.maxApplied, z)
	if h, ok := s.history[z]; !ok {
		s.history[z] = d
		s.prev[z] = n.lastChecked
	} else if h != d {
		s.fail(fmt.Errorf("peer %d: state after %v diverges", n.ID, z))
	}
	n.lastChecked = z
}

// InHistory reports whether z is in the history peer id has applied: a
// write reported committed that is not was lost.
func (s *Sim) InHistory(id zab.PeerID, z zab.Zxid) bool {
	for at := s.nodes[id].lastChecked; at >= z; {
		if at == z {
			return true
		}
		p, ok := s.prev[at]
		if !ok || p >= at {
			return false
		}
		at = p
	}
	return false
}

// syncDone records a completed Sync and checks it covers what it must.
func (s *Sim) syncDone(n *SimNode, r zab.SyncResult) {
	if r.Err == nil && r.Zxid > n.exec.Applied() {
		s.fail(fmt.Errorf("peer %d: sync %d done at %v before applying it (at %v)", n.ID, r.ID, r.Zxid, n.exec.Applied()))
	}
	if f, ok := n.syncFloor[r.ID]; ok && r.Err == nil && r.Zxid < f {
		s.fail(fmt.Errorf("peer %d: sync %d done at %v, missing %v applied before it started", n.ID, r.ID, r.Zxid, f))
	}
	delete(n.syncFloor, r.ID)
	n.Syncs[r.ID] = r
}

// tear ends n in the middle of persisting rd: a crash (f == diskCrash) or
// a failed fsync after which the driver stops the node (diskError). The
// executor writes rd's records in its order (zab.Executor.Persist) and a torn
// log tail is cut on recovery, so what survives is a prefix of them, drawn
// from the seed: nothing (the fsync never happened), a part, or all of it
// (the write completed but no message left). Either way none of rd's
// messages but the PROPOSALs went out, and nothing was applied.
func (s *Sim) tear(n *SimNode, rd zab.Ready, f diskFault) {
	if s.OnCrash != nil {
		s.OnCrash(n.ID)
	}
	recs := s.records(n, rd)
	var keep int
	switch {
	case n.armedKeep >= 0:
		keep = min(n.armedKeep, recs)
	default:
		switch s.rng.IntN(3) {
		case 0: // nothing reached the disk
		case 1:
			keep = recs
		default:
			keep = s.rng.IntN(recs + 1)
		}
	}
	n.armedKeep, n.armedSnap = -1, false
	n.disk.budget, n.disk.next = keep, &rd
	err := n.exec.Persist(rd)
	n.disk.budget, n.disk.next = -1, nil
	if err != nil && !errors.Is(err, errSimCrash) {
		s.fail(fmt.Errorf("peer %d: persist: %w", n.ID, err))
	}
	what := "crashed while persisting"
	if f == diskError {
		what = "fsync failed, node stopped,"
	}
	s.fault(n.ID, fmt.Sprintf("%s: %d of %d records durable (snapshot=%v truncate=%v entries=%d hardstate=%+v)",
		what, keep, recs, rd.Snapshot != nil, rd.Truncate, len(rd.Entries), rd.HardState))
	s.Crash(n.ID)
}

// records counts the records persisting rd writes, in the executor's order:
// for a reset the epochs then the wipe; snapshot, emptied log, truncation,
// each entry, acceptedEpoch, currentEpoch.
func (s *Sim) records(n *SimNode, rd zab.Ready) int {
	old, _ := n.Storage.InitialState()
	hs := rd.HardState
	recs := len(rd.Entries)
	if rd.Reset {
		recs++ // the wipe, after the epochs (counted below: written once)
	}
	if rd.Snapshot != nil {
		recs += 2 // the snapshot, then the emptied log
	}
	if rd.Truncate {
		recs++
	}
	if !hs.IsEmpty() && hs.AcceptedEpoch != old.AcceptedEpoch {
		recs++
	}
	if !hs.IsEmpty() && hs.CurrentEpoch != old.CurrentEpoch {
		recs++
	}
	return recs
}

func (s *Sim) fault(id zab.PeerID, what string) {
	if s.OnFault != nil {
		s.OnFault(id, what)
	}
}

// blocked reports whether n's driver takes in nothing now.
func (s *Sim) blocked(n *SimNode) bool { return n.inflight != nil || s.now < n.pausedUntil }

// release lets a driver that is no longer blocked take in what waited, in
// order (each followed by its zab.Ready, which may block the driver again):
// the requests, the messages in arrival order, then the kept tick.
func (s *Sim) release(n *SimNode) {
	if n.Peer == nil || s.blocked(n) {
		return
	}
	reqs := n.deferred
	n.deferred = nil
	for _, r := range reqs {
		if r.sync {
			if err := n.Peer.Sync(r.id); err != nil {
				delete(n.syncFloor, r.id)
				n.Syncs[r.id] = zab.SyncResult{ID: r.id, Err: err}
			}
		} else if err := n.Peer.Propose(r.id, r.data); err != nil {
			n.Proposals[r.id] = zab.ProposalResult{ID: r.id, Err: err}
		}
	}
	s.process(n)
	for len(n.backlog) > 0 && n.Peer != nil && !s.blocked(n) {
		m := n.backlog[0]
		n.backlog = n.backlog[1:]
		s.deliver(n, m)
	}
	if n.tickDue && n.Peer != nil && !s.blocked(n) {
		n.tickDue = false
		if s.now >= n.stallUntil {
			s.tick(n)
			s.process(n)
		}
	}
}

// deliver hands m to n's peer and runs its driver loop.
func (s *Sim) deliver(n *SimNode, m zab.Message) {
	s.Delivered++
	if s.OnDeliver != nil {
		s.OnDeliver(m)
	}
	if err := n.Peer.Step(m); err != nil {
		s.fail(fmt.Errorf("peer %d: step: %w", n.ID, err))
	}
	s.process(n)
}

// SlowDisk makes every zab.Ready of peer id that writes something take delay
// units of virtual time to become durable, until virtual time until: its
// messages (but a leader's PROPOSALs) and applies wait for the write, and
// the driver takes in nothing meanwhile.
func (s *Sim) SlowDisk(id zab.PeerID, delay, until int64) {
	n := s.nodes[id]
	n.fsyncDelay, n.slowUntil = delay, until
}

// CrashInPersist makes peer id crash in the middle of persisting its next
// zab.Ready that writes at least minRecords records (at once if a write is in
// flight): a prefix of that zab.Ready's records survives (see tear). Restart
// it as after Crash.
func (s *Sim) CrashInPersist(id zab.PeerID, minRecords int) { s.armDisk(id, diskCrash, minRecords) }

// FailFsync makes the fsync of peer id's next zab.Ready that writes at least
// minRecords records fail: the driver stops the node, as a real one must
// (the page cache may have dropped the dirty pages: what survives is a
// prefix, as for a crash). Restart it later as after Crash.
func (s *Sim) FailFsync(id zab.PeerID, minRecords int) { s.armDisk(id, diskError, minRecords) }

// armDisk makes peer id's next write of at least minRecords records end
// with f, or the write in flight at once.
func (s *Sim) armDisk(id zab.PeerID, f diskFault, minRecords int) {
	n := s.nodes[id]
	if n.Peer == nil {
		return
	}
	if n.inflight != nil {
		rd := *n.inflight
		n.inflight = nil
		s.tear(n, rd, f)
		return
	}
	n.armed, n.armedMin, n.armedSnap, n.armedKeep = f, minRecords, false, -1
}

// CrashInPersistKeeping is CrashInPersist with the number of that Ready's
// records that survive chosen by the caller (in the executor's order, see
// records) instead of drawn from the seed.
func (s *Sim) CrashInPersistKeeping(id zab.PeerID, minRecords, keep int) {
	s.armDisk(id, diskCrash, minRecords)
	s.nodes[id].armedKeep = keep
}

// CrashKeeping is Crash with keep records of the write not yet durable
// surviving (of a slow fsync in flight, see tear, or of the entries a
// planted mistake had not made durable), instead of a number drawn from
// the seed; 0 loses all of it.
func (s *Sim) CrashKeeping(id zab.PeerID, keep int) {
	n := s.nodes[id]
	if n.Peer != nil && n.inflight != nil {
		n.armedKeep = keep // tear uses it, then disarms it
	}
	n.disk.keep = keep
	s.Crash(id)
	n.disk.keep = -1
}

// CrashInSnapInstall makes peer id crash while it persists the next SNAP
// it receives, with keep of that zab.Ready's records durable (see records: 1
// keeps the snapshot without emptying the log, the state a crash between
// the two steps of the install leaves). Restart it as after Crash.
func (s *Sim) CrashInSnapInstall(id zab.PeerID, keep int) {
	n := s.nodes[id]
	n.armed, n.armedMin, n.armedSnap, n.armedKeep = diskCrash, 0, true, keep
}

// confirmTicks is how many ticks back LeaderConfirmed places a
// confirmation in time, as zab.Node does.
const confirmTicks = 64

// tick ticks n's peer, noting when (for LeaderConfirmed).
func (s *Sim) tick(n *SimNode) {
	n.Peer.Tick()
	n.tickAt[n.Peer.Ticks()%confirmTicks] = s.now
}

// LeaderConfirmed is zab.Node's OnLeaderConfirmed for peer id, polled:
// while id is an established leader whose reign a quorum confirmed (see
// zab.Peer.LeaderConfirmed), its epoch and the virtual time at which the
// confirming ping round's tick began; ok is false otherwise, or when that
// tick is further back than zab.Node reports.
func (s *Sim) LeaderConfirmed(id zab.PeerID) (epoch uint32, at int64, ok bool) {
	n := s.nodes[id]
	if n == nil || n.Peer == nil {
		return 0, 0, false
	}
	epoch, tick, ok := n.Peer.LeaderConfirmed()
	if !ok || n.Peer.Ticks()-tick >= confirmTicks {
		return 0, 0, false
	}
	return epoch, n.tickAt[tick%confirmTicks], true
}

// Pause stops peer id's process for d units of virtual time (a long GC or
// VM pause, SIGSTOP): it gets no ticks and takes in no message or request;
// those that reach it wait and are taken in when it resumes with its old
// state, unlike after a crash.
func (s *Sim) Pause(id zab.PeerID, d int64) {
	n := s.nodes[id]
	if n.Peer == nil {
		return
	}
	n.pausedUntil = max(n.pausedUntil, s.now+d)
	s.push(event{at: n.pausedUntil, wake: id, kind: wakeResume, inc: n.inc})
}

// StallTicks stops peer id's clock for d units of virtual time: it still
// takes in messages and requests, but gets no tick.
func (s *Sim) StallTicks(id zab.PeerID, d int64) {
	n := s.nodes[id]
	n.stallUntil = max(n.stallUntil, s.now+d)
}

// TickBurst makes peer id's clock jump: it gets k ticks at once (each
// followed by its zab.Ready, as a driver that catches up with the wall clock).
// A blocked driver keeps one tick.
func (s *Sim) TickBurst(id zab.PeerID, k int) {
	n := s.nodes[id]
	for range k {
		if n.Peer == nil {
			return
		}
		if s.blocked(n) {
			n.tickDue = true
			return
		}
		s.tick(n)
		s.process(n)
	}
}

// ClearDiskFaults ends peer id's slow disk and disarms a pending crash in
// the middle of a write or fsync failure.
func (s *Sim) ClearDiskFaults(id zab.PeerID) {
	n := s.nodes[id]
	n.slowUntil, n.fsyncDelay, n.armed, n.armedSnap = 0, 0, diskOK, false
}

// Blocked reports whether peer id's driver is blocked (a slow fsync in
// flight or the process paused).
func (s *Sim) Blocked(id zab.PeerID) bool { return s.blocked(s.nodes[id]) }

func (s *Sim) maybeSnapshot(n *SimNode) {
	every := s.cfg.SnapshotEvery
	if every <= 0 || int(n.SM.N)-n.lastSnap < every || n.SM.Last == 0 {
		return
	}
	if err := n.Storage.CreateSnapshot(n.SM.Last, n.SM.encode()); err != nil {
		s.fail(fmt.Errorf("peer %d: snapshot: %w", n.ID, err))
		return
	}
	upTo := n.prevSnap
	if f := n.Peer.SnapStreamFloor(); f > 0 && f < upTo {
		upTo = f // as Node does: a snapshot stream goes on from there
	}
	if err := n.Storage.Compact(upTo); err != nil {
		s.fail(fmt.Errorf("peer %d: compact: %w", n.ID, err))
	}
	n.prevSnap = n.SM.Last
	n.lastSnap = int(n.SM.N)
}

func (s *Sim) fail(err error) {
	if s.Err == nil {
		s.Err = err
	}
}

func (s *Sim) flushDirty() {
	if len(s.dirty) == 0 {
		return
	}
	for _, id := range s.ids {
		if s.dirty[id] {
			s.process(s.nodes[id])
		}
	}
	clear(s.dirty)
}

// maxInstantEvents bounds the events of one virtual instant (see Step).
const maxInstantEvents = 1_000_000

// Step runs the next event; it returns false when none is left. Requests
// submitted since the last event are processed first.
func (s *Sim) Step() bool {
	s.flushDirty()
	if len(s.events) == 0 {
		return false
	}
	e := heap.Pop(&s.events).(*event)
	if e.at == s.now {
		s.instant++
	} else {
		s.instant = 0
	}
	s.now = e.at
	if s.instant > maxInstantEvents {
		// Peers that answer each other without end at one virtual
		// instant (a protocol livelock): the run cannot go on.
		s.fail(fmt.Errorf("livelock: more than %d events at t=%d", maxInstantEvents, s.now))
		s.events = nil
		return false
	}
	if e.wake != 0 {
		n := s.nodes[e.wake]
		if n.Peer == nil || e.inc != n.inc {
			return true // the incarnation that waited crashed
		}
		if e.kind == wakeDurable && e.zxid == 0 && e.then == 0 {
			n.disk.durable() // the planted early write
			return true
		}
		if e.kind == wakeDurable {
			// An Async Ready's write is durable: its acknowledgements go,
			// and the driver hears of it once it takes input again; a
			// Flush since then did both.
			if e.gen != n.disk.gen {
				return true
			}
			n.disk.durableThrough(e.zxid)
			s.sendHeld(n, e.then)
			if e.zxid == 0 {
				return true
			}
			if s.blocked(n) {
				e.then = 0
				e.at = s.now + 1
				s.push(*e)
				return true
			}
			n.Peer.Persisted(e.zxid)
			s.process(n)
			return true
		}
		if e.kind == wakeFetch {
			if s.blocked(n) {
				// Between a Ready and its Advance: the driver takes the
				// result in once it is back.
				e.at = s.now + 1
				s.push(*e)
				return true
			}
			n.Peer.Fetched(e.fetch, n.Storage.Released(e.fetch.After, 1+s.rng.IntN(64)))
			s.process(n)
			return true
		}
		if e.kind == wakeFsync && n.inflight != nil {
			rd := *n.inflight
			n.inflight = nil
			s.finish(n, rd)
		}
		s.release(n)
		return true
	}
	if e.tick != 0 {
		s.push(event{at: s.now + s.cfg.TickInterval, tick: e.tick})
		n := s.nodes[e.tick]
		switch {
		case n.Peer == nil || s.now < n.stallUntil:
		case s.blocked(n):
			n.tickDue = true
		default:
			s.tick(n)
			s.process(n)
		}
		return true
	}
	n := s.nodes[e.msg.To]
	s.queued[[2]zab.PeerID{e.msg.From, e.msg.To}]--
	if n.Peer == nil || s.cut[[2]zab.PeerID{e.msg.From, e.msg.To}] {
		return true
	}
	if s.blocked(n) {
		// The driver's inbound queue holds it until the driver is back.
		n.backlog = append(n.backlog, e.msg)
		return true
	}
	s.deliver(n, e.msg)
	return true
}

// RunFor runs the simulation for d units of virtual time.
func (s *Sim) RunFor(d int64) {
	s.flushDirty()
	end := s.now + d
	for len(s.events) > 0 && s.events[0].at <= end {
		s.Step()
	}
	s.now = end
}

// RunUntil runs until cond holds (checked after every event) or d units of
// virtual time passed; it reports whether cond held.
func (s *Sim) RunUntil(d int64, cond func() bool) bool {
	end := s.now + d
	for !cond() {
		if len(s.events) == 0 || s.events[0].at > end {
			s.now = end
			return false
		}
		s.Step()
	}
	return true
}

// Leader returns the serving leader with the highest epoch among running
// peers, or zero.
func (s *Sim) Leader() zab.PeerID {
	var best zab.PeerID
	var epoch uint32
	for _, id := range s.ids {
		n := s.nodes[id]
		if n.Peer == nil {
			continue
		}
		if st := n.Peer.SoftState(); st.Role == zab.RoleLeading && st.Serving && (best == 0 || st.Epoch > epoch) {
			best, epoch = id, st.Epoch
		}
	}
	return best
}

// Stable reports whether there is a serving leader that every running peer
// other than it follows and serves.
func (s *Sim) Stable() bool {
	l := s.Leader()
	if l == 0 {
		return false
	}
	epoch := s.nodes[l].Peer.SoftState().Epoch
	for _, id := range s.ids {
		n := s.nodes[id]
		if n.Peer == nil || id == l {
			continue
		}
		if st := n.Peer.SoftState(); !st.Serving || st.Leader != l || st.Epoch != epoch {
			return false
		}
	}
	return true
}

// Propose submits data at peer id under a fresh request id, which it
// returns with the immediate error.
func (s *Sim) Propose(id zab.PeerID, data []byte) (uint64, error) {
	n := s.nodes[id]
	if n.Peer == nil {
		return 0, zab.ErrNoLeader
	}
	n.nextReq++
	if s.blocked(n) {
		// The driver takes the request in once it is no longer blocked.
		n.deferred = append(n.deferred, simRequest{id: n.nextReq, data: data})
		return n.nextReq, nil
	}
	err := n.Peer.Propose(n.nextReq, data)
	s.dirty[id] = true
	return n.nextReq, err
}

// ProposeAsLeader is Propose for a decision only the leader of epoch may
// take, as zab.Node.ProposeAsLeader: refused with zab.ErrNoLeader (nothing
// is submitted) unless peer id leads, established, in epoch.
func (s *Sim) ProposeAsLeader(id zab.PeerID, epoch uint32, data []byte) (uint64, error) {
	if n := s.nodes[id]; n.Peer == nil || !n.Peer.SoftState().LeadsIn(epoch) {
		return 0, zab.ErrNoLeader
	}
	return s.Propose(id, data)
}

// Sync starts a Sync at peer id under a fresh request id.
func (s *Sim) Sync(id zab.PeerID) (uint64, error) {
	n := s.nodes[id]
	if n.Peer == nil {
		return 0, zab.ErrNoLeader
	}
	n.nextReq++
	n.syncFloor[n.nextReq] = s.maxApplied
	if s.blocked(n) {
		n.deferred = append(n.deferred, simRequest{id: n.nextReq, sync: true})
		return n.nextReq, nil
	}
	err := n.Peer.Sync(n.nextReq)
	s.dirty[id] = true
	return n.nextReq, err
}

// Resync has peer id throw away its history and synchronise again from
// nothing (zab.Peer.Resync), as a replica whose state was found to differ
// from its leader's does.
func (s *Sim) Resync(id zab.PeerID) error {
	n := s.nodes[id]
	if n.Peer == nil {
		return zab.ErrNoLeader
	}
	if s.blocked(n) {
		return fmt.Errorf("zabtest: peer %d is blocked", id)
	}
	err := n.Peer.Resync()
	s.dirty[id] = true
	return err
}

// Crash stops peer id, keeping only its persisted storage. A crash while a
// slow fsync is in flight tears that write (see CrashInPersist).
func (s *Sim) Crash(id zab.PeerID) {
	n := s.nodes[id]
	if n.inflight != nil && n.Peer != nil {
		rd := *n.inflight
		n.inflight = nil
		s.tear(n, rd, diskCrash) // calls Crash again
		return
	}
	if n.Peer != nil && s.OnCrash != nil {
		s.OnCrash(id)
	}
	if n.Peer != nil {
		if lost := n.disk.crash(); lost > 0 {
			s.fault(id, fmt.Sprintf("crash lost %d entries not yet durable", lost))
		}
	}
	for _, from := range s.ids {
		// Its connections are gone: what they held is lost.
		k := [2]zab.PeerID{from, id}
		s.queued[k] -= len(s.held[k])
		delete(s.held, k)
	}
	n.Peer = nil
	n.inc++
	n.inflight, n.exec, n.backlog, n.deferred, n.tickDue = nil, nil, nil, nil, false
	n.held = nil // acknowledgements of writes the crash cut: never sent
	n.pausedUntil = 0
	if !n.armedSnap {
		n.armed = diskOK // a crash armed for the next SNAP outlives restarts
	}
	delete(s.dirty, id)
}

// LoseDisk crashes peer id and throws away its storage: Restart then
// starts it with an empty one under the same id, as a node whose data
// directory was lost or replaced.
func (s *Sim) LoseDisk(id zab.PeerID) {
	s.Crash(id)
	n := s.nodes[id]
	n.Storage = zab.NewMemoryStorage()
	n.armed, n.armedSnap = diskOK, false
}

// AddPeer starts a new peer id with empty storage that was configured with
// voters (for example its own guess from gossip, as a node bootstrapped
// with BootstrapExpect makes) and the template's other settings, as a node
// that joins a running ensemble.
func (s *Sim) AddPeer(id zab.PeerID, voters []zab.PeerID) error {
	if id == 0 || s.nodes[id] != nil {
		return fmt.Errorf("%w: peer %d exists", zab.ErrInvalidConfig, id)
	}
	pc := s.cfg.Peer
	pc.ID, pc.Voters, pc.Observers, pc.Seed, pc.Rand = id, slices.Clone(voters), nil, s.cfg.Seed, nil
	n := &SimNode{ID: id, Storage: zab.NewMemoryStorage(), cfg: pc, armedKeep: -1}
	s.nodes[id] = n
	s.ids = append(s.ids, id)
	if err := s.start(n); err != nil {
		return err
	}
	s.push(event{at: s.now + 1 + s.rng.Int64N(s.cfg.TickInterval), tick: id})
	return nil
}

// Restart starts a crashed peer again from its storage.
func (s *Sim) Restart(id zab.PeerID) error {
	n := s.nodes[id]
	if n.Peer != nil {
		return nil
	}
	req := n.nextReq
	err := s.start(n)
	n.nextReq = req
	return err
}

// Partition cuts every link between peers of different groups; peers in no
// group keep their links.
func (s *Sim) Partition(groups ...[]zab.PeerID) {
	group := map[zab.PeerID]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i + 1
		}
	}
	for _, a := range s.ids {
		for _, b := range s.ids {
			ga, gb := group[a], group[b]
			if ga != 0 && gb != 0 && ga != gb {
				s.cut[[2]zab.PeerID{a, b}] = true
			}
		}
	}
}

// Isolate cuts every link of id.
func (s *Sim) Isolate(id zab.PeerID) {
	for _, o := range s.ids {
		if o != id {
			s.cut[[2]zab.PeerID{id, o}] = true
			s.cut[[2]zab.PeerID{o, id}] = true
		}
	}
}

// Cut drops every message from one peer to another (one direction only).
func (s *Sim) Cut(from, to zab.PeerID) { s.cut[[2]zab.PeerID{from, to}] = true }

// Heal restores every link: cut ones, and stalled ones, which deliver
// what they held (see Unstall).
func (s *Sim) Heal() {
	clear(s.cut)
	for _, a := range s.ids {
		for _, b := range s.ids {
			if s.stalled[[2]zab.PeerID{a, b}] {
				s.Unstall(a, b)
			}
		}
	}
}

// Stall holds every message from one peer to another (one direction),
// those in flight included, until Unstall or Heal delivers them in the
// order they were sent: a TCP connection whose packets stop getting
// through but which is not broken (the sender's queue and socket buffer
// keep what it writes, as zab/tcp's writer does while a write blocks for
// up to its WriteTimeout or a dial backs off), so they arrive late, after
// whatever the peers did meanwhile, and never out of order. Held messages
// count against QueueLimit; a crash of the receiver loses them (its
// connection is gone: so are messages sent to it while it is down), a
// crash of the sender does not (they were in the kernel's buffers).
func (s *Sim) Stall(from, to zab.PeerID) {
	k := [2]zab.PeerID{from, to}
	if s.stalled[k] {
		return
	}
	s.stalled[k] = true
	// What is in flight on the link is held too, ahead of what is sent
	// from now on, in delivery order.
	var inflight []*event
	keep := s.events[:0]
	for _, e := range s.events {
		if e.tick == 0 && e.wake == 0 && e.msg.From == from && e.msg.To == to {
			inflight = append(inflight, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(s.events[len(keep):])
	s.events = keep
	heap.Init(&s.events)
	slices.SortFunc(inflight, func(a, b *event) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for _, e := range inflight {
		s.held[k] = append(s.held[k], e.msg)
	}
}

// Unstall ends a Stall: what the link held is delivered, each after a
// delivery delay, in order and before anything sent later (unless
// SimConfig.Reorder lets messages overtake each other, as on every link).
func (s *Sim) Unstall(from, to zab.PeerID) {
	k := [2]zab.PeerID{from, to}
	delete(s.stalled, k)
	msgs := s.held[k]
	delete(s.held, k)
	for _, m := range msgs {
		at := s.now + s.cfg.MinDelay + s.rng.Int64N(s.cfg.MaxDelay-s.cfg.MinDelay+1)
		if !s.cfg.Reorder {
			at = max(at, s.fifo[k])
			s.fifo[k] = at
		}
		s.push(event{at: at, msg: m})
	}
}

// Held returns the messages the link from one peer to another holds, in
// order.
func (s *Sim) Held(from, to zab.PeerID) []zab.Message {
	return slices.Clone(s.held[[2]zab.PeerID{from, to}])
}

// SetFaults changes the drop and duplication rates.
func (s *Sim) SetFaults(drop, dup float64) { s.cfg.DropRate, s.cfg.DupRate = drop, dup }

// ProposeConfig submits a configuration change at peer id under a fresh
// request id, which it returns with the immediate error (zab.ErrNoLeader while
// the peer is down or blocked).
func (s *Sim) ProposeConfig(id zab.PeerID, cc zab.ConfChange) (uint64, error) {
	n := s.nodes[id]
	if n.Peer == nil || s.blocked(n) {
		return 0, zab.ErrNoLeader
	}
	n.nextReq++
	err := n.Peer.ProposeConfig(n.nextReq, cc)
	s.dirty[id] = true
	return n.nextReq, err
}

// errSimCrash ends a write the simulator tears (see Sim.tear).
var errSimCrash = errors.New("zab: simulated crash in the middle of a write")

// simDisk is a simulated peer's LogWriter: its MemoryStorage, which is what
// survives a crash, and a budget of records after which the write in
// progress is cut (a crash or failed fsync in its middle). Records, as the
// data directory writes them: a SNAP's snapshot, the emptied log, a
// truncation, each entry, acceptedEpoch, currentEpoch. It also plants the
// persistence mistakes: entries written but not yet durable (pending, lost
// by a crash), currentEpoch written before the entries, the log emptied
// before the SNAP's snapshot is saved.
type simDisk struct {
	st      *zab.MemoryStorage
	budget  int // records left before the cut; negative: none planned
	mistake Mistake
	rng     interface{ IntN(int) int }
	keep    int        // entries a crash keeps of the pending ones; negative: drawn
	next    *zab.Ready // the Ready being persisted
	lagging bool       // appends stay pending until durable is called
	// pending: entries after pendingFrom are written but not durable.
	pending     bool
	pendingFrom zab.Zxid
	started     bool          // some pending entries came from StartAppend (zab.AsyncLog)
	then        []zab.Message // the acknowledgements of the last StartAppend
	gen         uint64        // Flush calls: a durability event of an older gen is not reported
	flushed     func()        // sends what started writes hold (the simulator's)
	snap        *zab.Snapshot // a SNAP's snapshot held back (TruncateBeforeSnapshot)
}

// take returns how many of n records are written before the cut.
func (d *simDisk) take(n int) int {
	if d.budget < 0 {
		return n
	}
	k := min(n, d.budget)
	d.budget -= k
	return k
}

// epochFirst plants MistakeEpochBeforeEntries: the Ready's epochs are
// written before anything else of it (the snapshot, the truncation, the
// entries) instead of after.
func (d *simDisk) epochFirst() error {
	if d.mistake != MistakeEpochBeforeEntries || d.next == nil || d.next.HardState.IsEmpty() {
		return nil
	}
	return d.SetHardState(d.next.HardState)
}

// PlantedMistake carries the planted mistake into the executor writing to
// d (plant.Carrier).
func (d *simDisk) PlantedMistake() Mistake { return d.mistake }

// durable makes the pending entries durable (a late fsync).
func (d *simDisk) durable() { d.pending, d.started = false, false }

// durableThrough makes the pending entries up to z durable: an Async
// Ready's write ended.
func (d *simDisk) durableThrough(z zab.Zxid) {
	if !d.pending {
		return
	}
	if last, _ := d.st.LastZxid(); z >= last {
		d.durable()
		return
	}
	d.pendingFrom = max(d.pendingFrom, z)
}

// StartAppend writes ents now; they stay pending (a crash may lose a
// suffix of them) until the simulator's write of them ends (wakeDurable),
// which then sends then (the simulator takes them from d.then).
func (d *simDisk) StartAppend(ents []zab.Entry, then []zab.Message) error {
	d.then = then
	if len(ents) == 0 {
		return nil
	}
	last, _ := d.st.LastZxid()
	if err := d.st.Append(ents); err != nil {
		return err
	}
	if !d.pending {
		d.pending, d.pendingFrom = true, last
	}
	d.started = true
	return nil
}

// Flush makes every started write durable at once (the driver waits for
// them: in virtual time, no wait) and sends what follows them; their
// durability events then change nothing (gen moved).
func (d *simDisk) Flush() error {
	if d.started {
		d.durable()
	}
	d.gen++
	if d.flushed != nil {
		d.flushed()
	}
	return nil
}

// durableEnd returns the last zxid of the log that is durable.
func (d *simDisk) durableEnd() zab.Zxid {
	if d.pending {
		return d.pendingFrom
	}
	last, _ := d.st.LastZxid()
	return last
}

// crash drops a random suffix of the pending entries, as a crash before
// their fsync may, and returns how many it dropped.
func (d *simDisk) crash() int {
	if !d.pending {
		return 0
	}
	d.pending = false
	last, _ := d.st.LastZxid()
	ents, err := d.st.Entries(d.pendingFrom, last, 0)
	if err != nil || len(ents) == 0 {
		return 0
	}
	keep := min(d.keep, len(ents))
	if keep < 0 {
		keep = d.rng.IntN(len(ents) + 1)
	}
	to := d.pendingFrom
	if keep > 0 {
		to = ents[keep-1].Zxid
	}
	if d.st.TruncateAfter(to) != nil {
		return 0 // a snapshot covers them now
	}
	return len(ents) - keep
}

func (d *simDisk) SaveSnapshot(s zab.Snapshot) error {
	d.durable() // a write of its own: what came before is on disk by now
	if err := d.epochFirst(); err != nil {
		return err
	}
	if d.mistake == MistakeTruncateBeforeSnapshot {
		d.snap = &s // planted: saved only after the log is emptied
		return nil
	}
	if d.take(1) < 1 {
		return errSimCrash
	}
	return d.st.SaveSnapshot(s)
}

func (d *simDisk) ResetLog(base zab.Zxid) error {
	if d.take(1) < 1 {
		return errSimCrash
	}
	if err := d.st.ResetLog(base); err != nil {
		return err
	}
	if s := d.snap; s != nil {
		d.snap = nil
		if d.take(1) < 1 {
			return errSimCrash
		}
		return d.st.SaveSnapshot(*s)
	}
	return nil
}

func (d *simDisk) Wipe() error {
	d.durable()
	if d.take(1) < 1 {
		return errSimCrash
	}
	return d.st.Wipe()
}

func (d *simDisk) TruncateAfter(z zab.Zxid) error {
	d.durable()
	if err := d.epochFirst(); err != nil {
		return err
	}
	if d.take(1) < 1 {
		return errSimCrash
	}
	return d.st.TruncateAfter(z)
}

func (d *simDisk) Append(ents []zab.Entry) error {
	if d.mistake == MistakeAckBeforeDurable {
		d.durable() // the previous Ready's entries reach the disk now
	}
	if err := d.epochFirst(); err != nil {
		return err
	}
	last, _ := d.st.LastZxid()
	k := d.take(len(ents))
	if err := d.st.Append(ents[:k]); err != nil {
		return err
	}
	if k < len(ents) {
		return errSimCrash
	}
	if (d.mistake == MistakeAckBeforeDurable || d.lagging) && !d.pending {
		d.pending, d.pendingFrom = true, last
	}
	return nil
}

func (d *simDisk) SetHardState(hs zab.HardState) error {
	old, _ := d.st.InitialState()
	n := 0
	if hs.AcceptedEpoch != old.AcceptedEpoch {
		n++
	}
	if hs.CurrentEpoch != old.CurrentEpoch {
		n++
	}
	k := d.take(n)
	if k == n {
		return d.st.SetHardState(hs)
	}
	if k > 0 { // acceptedEpoch first, as the data directory writes them
		w := hs
		w.CurrentEpoch = old.CurrentEpoch
		_ = d.st.SetHardState(w)
	}
	return errSimCrash
}
