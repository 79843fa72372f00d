package zab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/zab/wal"
)

// StateMachine is what a Node replicates into. Apply and Restore are called
// only from the Node's goroutine; Snapshot runs on another goroutine while
// Apply goes on, so it must produce a point-in-time image without blocking
// Apply for long (tree.Tree.WriteSnapshot does).
type StateMachine interface {
	// Apply applies a committed entry and returns its response, which
	// Propose hands to the entry's proposer if it waits on this node (as
	// hashicorp/raft's FSM.Apply feeds ApplyFuture.Response). Entries come
	// in zxid order, each once. Configuration entries are zab's own and are
	// not passed on.
	Apply(e Entry) any
	// Snapshot writes an image of the state to w and returns the zxid of the
	// last entry it reflects.
	Snapshot(w io.Writer) (Zxid, error)
	// Restore replaces the whole state with a snapshot.
	Restore(s Snapshot) error
}

// NodeConfig configures a Node.
type NodeConfig struct {
	// Core configures the protocol core; its Storage is set by the Node.
	Core Config
	// Transport carries messages to the other peers; the Node closes it.
	Transport Transport
	// StateMachine receives committed entries.
	StateMachine StateMachine
	// DataDir holds the log, epochs and snapshots; empty means in memory,
	// which is not durable.
	DataDir string
	// Cluster names the cluster. The data directory records it with the
	// node id (and the cluster id, once chosen) and is refused if opened
	// for another node or cluster.
	Cluster string
	// TickInterval is the real time of one core tick. Default 50ms.
	TickInterval time.Duration
	// SnapshotEvery is how many applied entries trigger a background
	// snapshot (and log compaction). Default 10,000.
	SnapshotEvery int
	// SnapshotRetain is how many snapshots the data dir keeps. Default 3.
	SnapshotRetain int
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnApp, if set, receives MsgApp payloads from other peers. It runs on
	// the driver goroutine and must not block.
	OnApp func(from PeerID, payload []byte)
	// OnLeaderConfirmed, if set, is told on an established leader each
	// time a quorum confirmed its reign later than before (see
	// Peer.LeaderConfirmed): no leader of a later epoch was established
	// before at, a reading of time.Now taken before the confirming pings
	// were sent. It runs on the driver goroutine and must not block.
	OnLeaderConfirmed func(epoch uint32, at time.Time)
}

// Status is a snapshot of a Node's state for routing and observability.
type Status struct {
	ID        PeerID
	SoftState SoftState
	LastZxid  Zxid // last entry in the log
	Committed Zxid // last entry known committed
	Applied   Zxid // last entry applied to the state machine
	// Snapshots counts snapshots taken by this node since it started.
	Snapshots int
	// FsyncP50 and FsyncP99 are recent durable-write latencies (zero in memory).
	FsyncP50, FsyncP99 time.Duration
	// LoopBusy is the fraction of recent wall time the driver loop spent working.
	LoopBusy float64
	// Progress is, on a leader, what it knows of each learner (nil otherwise).
	Progress map[PeerID]Progress
	// Voters is the configuration in force on this node (shared: never
	// modify it), logged at ConfigZxid.
	Voters     []PeerID
	ConfigZxid Zxid
	// ClusterID is the cluster's id as this node knows it (zero until it
	// learned one), and ClusterIDFixed whether an established epoch fixed
	// it (HardState.Fixed).
	ClusterID      uint64
	ClusterIDFixed bool
	// SnapStreams is the node's snapshot streaming, as leader and as
	// learner.
	SnapStreams SnapStreamStatus
}

// MaxEntrySize bounds the data of one entry: it must fit one log record
// (wal.DefaultMaxRecordSize, 8 MiB) and, with a message's header, one
// transport frame (zab/tcp's default MaxFrameSize, 16 MiB), with room to
// spare. Propose refuses larger data with ErrEntryTooLarge before it
// reaches the log, and a leader refuses a larger forwarded write.
const MaxEntrySize = wal.DefaultMaxRecordSize - 64<<10

// ErrNodeClosed is returned by a Node's methods after Close or a fatal error.
var ErrNodeClosed = errors.New("zab: node closed")

// Node runs a Peer: it owns the core on one goroutine that ticks it, steps it
// with inbound messages and requests, persists each Ready (one durable write
// per Ready: the group commit), sends messages only after that, applies
// committed entries and completes requests.
//
// Goroutines: run (the driver loop; stopped by Close or a fatal storage
// error) and at most one snapshotter at a time (started by run, waited for
// by run before it returns).
type Node struct {
	cfg     NodeConfig
	log     *slog.Logger
	peer    *Peer
	mem     *MemoryStorage
	disk    *diskLog   // nil in memory
	app     *appender  // writes Async Readys' entries off the driver; nil in memory
	spool   *fileSpool // in DataDir; nil in memory
	propc   chan *request
	syncc   chan *request
	resyncc chan chan error
	snapc   chan snapDone
	fetchc  chan fetchDone // read-backs (Ready.Fetch), one at a time
	stopc   chan struct{}
	done    chan struct{}
	stopped sync.Once
	err     error // fatal error, set before done closes

	status  atomic.Pointer[Status]
	leaving atomic.Bool // Handoff was called: inbound messages are dropped

	// Owned by run.
	nextID    uint64
	pending   map[uint64]*request
	exec      *Executor
	snapFrom  uint64 // exec.Entries() when the last snapshot started
	snapping  bool
	snapshots int
	snapBytes int // size of the last snapshot taken
	prevSnap  Zxid
	snapWG    sync.WaitGroup
	busy      busyMeter
	// tickAt[t%len] is when tick t began (read before Peer.Tick), for
	// OnLeaderConfirmed; confEpoch and confTick are the last confirmation
	// reported.
	tickAt    [confirmTicks]time.Time
	confEpoch uint32
	confTick  uint64
}

// confirmTicks is how many ticks back a leadership confirmation is placed
// in time; an older one is not reported (a newer one follows, or the
// leader steps down at its SyncLimit).
const confirmTicks = 64

type request struct {
	ctx context.Context
	// state is reqQueued until the driver takes the request in
	// (reqTaken) or its caller withdraws it first (reqWithdrawn): a
	// request whose context ended before the core saw it is never sent.
	state atomic.Uint32
	data  []byte
	cc    *ConfChange // a configuration change instead of data
	// leaderEpoch, if set, allows the write (or the read barrier) only
	// while this node leads in that epoch (ProposeAsLeader, SyncAsLeader).
	leaderEpoch uint32
	res         chan result
}

// Request states.
const (
	reqQueued uint32 = iota
	reqTaken
	reqWithdrawn
)

type result struct {
	zxid Zxid
	resp any // what StateMachine.Apply returned for the entry
	err  error
}

// Applied is the outcome of a write that committed: its zxid and the
// response StateMachine.Apply returned for it.
type Applied struct {
	Zxid     Zxid
	Response any
}

type snapDone struct {
	zxid Zxid
	data []byte
	err  error
}

// StartNode recovers the node's state (from DataDir if set), restores the
// state machine and starts the driver loop.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.Transport == nil || cfg.StateMachine == nil {
		return nil, fmt.Errorf("%w: NodeConfig needs a Transport and a StateMachine", ErrInvalidConfig)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 50 * time.Millisecond
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = 10000
	}
	if cfg.SnapshotRetain <= 0 {
		cfg.SnapshotRetain = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger,
		mem:     NewMemoryStorage(),
		propc:   make(chan *request, 256),
		syncc:   make(chan *request, 256),
		resyncc: make(chan chan error),
		snapc:   make(chan snapDone, 1),
		fetchc:  make(chan fetchDone, 1),
		stopc:   make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[uint64]*request),
	}
	var applied Zxid
	if cfg.DataDir != "" {
		d, err := openDiskLog(cfg.DataDir, cfg.Cluster, cfg.Core.ID, cfg.SnapshotRetain, n.log)
		if err != nil {
			return nil, err
		}
		snap, err := d.recover(n.mem)
		if err != nil {
			d.close()
			return nil, err
		}
		if snap.Zxid != 0 {
			if err := cfg.StateMachine.Restore(snap); err != nil {
				d.close()
				return nil, fmt.Errorf("zab: restoring snapshot %v: %w", snap.Zxid, err)
			}
		}
		n.disk = d
		// What is durable and applied keeps its data only on disk, but
		// for the newest (see heldEntryBytes).
		n.mem.EnableRelease(true)
		applied, n.prevSnap = snap.Zxid, snap.Zxid
		// A snapshot streamed to us is spooled in the data directory, not
		// in memory; what a crash left of one is dropped.
		path := filepath.Join(cfg.DataDir, spoolFile)
		if err := removeSpool(path); err != nil {
			d.close()
			return nil, err
		}
		n.spool = newFileSpool(path)
	} else {
		n.log.Warn("zab: no DataDir: running in memory, nothing survives a restart")
	}
	core := cfg.Core
	core.Storage = n.mem
	if n.spool != nil && core.SnapSpool == nil {
		core.SnapSpool = n.spool
	}
	for core.Incarnation == 0 {
		// Request ids count from 1 in every run: the incarnation, not
		// the clock, keeps them apart from an earlier run's.
		core.Incarnation = mrand.Uint64()
	}
	core.Applied = applied
	p, err := NewPeer(core)
	if err != nil {
		if n.disk != nil {
			n.disk.close()
		}
		return nil, err
	}
	n.peer = p
	nl := nodeLog{disk: n.disk, mem: n.mem}
	var log LogWriter = nl
	if n.disk != nil {
		n.app = newAppender(nl, n.send)
		log = n.app
	}
	n.exec = NewExecutor(ExecutorConfig{
		Peer: p, Log: log, Send: n.send, StateMachine: cfg.StateMachine,
		OnProposal: func(r ProposalResult, resp any) {
			n.complete(r.ID, result{zxid: r.Zxid, resp: resp, err: r.Err})
		},
		OnSync:  func(r SyncResult) { n.complete(r.ID, result{zxid: r.Zxid, err: r.Err}) },
		Applied: applied,
	})
	n.tickAt[0] = time.Now()
	n.publish()
	go n.run()
	return n, nil
}

// Propose replicates data and returns, once the local state machine has
// applied it, its zxid and the response of StateMachine.Apply. A ctx that
// ends before the request reached the core returns ctx's error and nothing
// is sent; once the request reached the core, an ended ctx wraps
// ErrOutcomeUnknown: the entry may still commit. If the entry committed but
// its response is not known here (it was applied before this node learned
// the entry was its request's, or reached through a snapshot), the error
// wraps ErrOutcomeUnknown too.
func (n *Node) Propose(ctx context.Context, data []byte) (Applied, error) {
	if len(data) > MaxEntrySize {
		return Applied{}, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(data), MaxEntrySize)
	}
	r, err := n.request(ctx, n.propc, &request{data: data})
	return Applied{Zxid: r.zxid, Response: r.resp}, err
}

// ProposeAsLeader is Propose for decisions only one reign may take (such
// as expiring a session by the leader's own clock): it is refused with
// ErrNoLeader, never forwarded, unless this node leads in epoch when the
// core takes it in. The entry then carries a zxid of that epoch, so once a
// later epoch is established it can only commit if that epoch's history
// already held it.
func (n *Node) ProposeAsLeader(ctx context.Context, epoch uint32, data []byte) (Applied, error) {
	if len(data) > MaxEntrySize {
		return Applied{}, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(data), MaxEntrySize)
	}
	r, err := n.request(ctx, n.propc, &request{data: data, leaderEpoch: epoch})
	return Applied{Zxid: r.zxid, Response: r.resp}, err
}

// ProposeConfig changes the voters by one (see Peer.ProposeConfig) and
// returns the configuration entry's zxid once the local node has applied
// it. A refusal wraps ErrReconfigInProgress, ErrReconfigUnsafe,
// ErrNotSynced or ErrBadConfChange; as with Propose, an ended ctx wraps
// ErrOutcomeUnknown.
func (n *Node) ProposeConfig(ctx context.Context, cc ConfChange) (Zxid, error) {
	r, err := n.request(ctx, n.propc, &request{cc: &cc})
	return r.zxid, err
}

// Sync returns once the local state machine has applied everything the
// leader had committed when it received the request, the leader having
// confirmed with a quorum that it still leads.
func (n *Node) Sync(ctx context.Context) (Zxid, error) {
	r, err := n.request(ctx, n.syncc, &request{})
	return r.zxid, err
}

// Resync throws away this node's history and synchronises it again from
// nothing with the leader (see Peer.Resync): for a replica whose state was
// found to differ from its leader's. It returns once the core has taken it
// in (the wipe is durable before the node counts again; its progress shows
// in Status); a leader refuses with ErrResyncLeader. A snapshot being
// taken is waited for and dropped first, so no image of the old state is
// saved after the wipe. The state machine is emptied (Restore of the zero
// Snapshot) before anything of the new history is applied.
func (n *Node) Resync(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case n.resyncc <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.closedErr()
	}
	select {
	case err := <-reply:
		return err
	case <-n.done:
		return n.closedErr()
	}
}

// resync carries out Resync on the driver goroutine.
func (n *Node) resync() error {
	if n.peer.SoftState().Role == RoleLeading {
		return ErrResyncLeader
	}
	if n.snapping {
		n.snapWG.Wait()
		<-n.snapc // the old state's image: dropped
		n.snapping = false
	}
	if err := n.peer.Resync(); err != nil {
		return err
	}
	n.prevSnap, n.snapFrom = 0, n.exec.Entries()
	return nil
}

// SyncAsLeader is Sync for a leader that must prove it still leads in
// epoch, the reign that asked (coord acknowledges session heartbeats only
// after such a round): it is refused with ErrNoLeader, never forwarded,
// unless this node leads in epoch when the core takes the request in. A
// plain Sync queued while its node led in one epoch could otherwise be taken
// in, and confirmed, after the node lost that reign and won a later one, so
// its success would vouch for the old reign across its successor's.
func (n *Node) SyncAsLeader(ctx context.Context, epoch uint32) (Zxid, error) {
	r, err := n.request(ctx, n.syncc, &request{leaderEpoch: epoch})
	return r.zxid, err
}

// request queues req for the driver and waits for its result. A request
// whose ctx ended before the driver took it in is withdrawn, never sent:
// ctx is checked first (a select between a free queue slot and a done ctx
// picks at random), and the driver skips a request withdrawn while queued.
func (n *Node) request(ctx context.Context, c chan *request, req *request) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	req.ctx = ctx
	req.res = make(chan result, 1)
	select {
	case c <- req:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-n.done:
		return result{}, n.closedErr()
	}
	select {
	case r := <-req.res:
		return r, r.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return result{}, ctx.Err() // the core never saw it
		}
		if c == n.propc {
			return result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
		}
		return result{}, ctx.Err()
	case <-n.done:
		if req.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return result{}, n.closedErr()
		}
		if c == n.propc {
			return result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, n.closedErr())
		}
		return result{}, n.closedErr()
	}
}

func (n *Node) closedErr() error {
	if n.err != nil {
		return fmt.Errorf("%w: %w", ErrNodeClosed, n.err)
	}
	return ErrNodeClosed
}

// Status returns the node's latest published status. The fsync
// percentiles are computed here, when asked, not on every loop turn: the
// driver publishes a status per turn, and sorting the recent fsync times
// there cost some 9% of a busy node's CPU (issue 13).
func (n *Node) Status() Status {
	st := *n.status.Load()
	if n.disk != nil {
		st.FsyncP50, st.FsyncP99 = n.disk.fsyncPercentiles()
	}
	return st
}

// Done is closed when the node has stopped, by Close or a fatal error.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns the fatal error that stopped the node, or nil.
func (n *Node) Err() error {
	select {
	case <-n.done:
		return n.err
	default:
		return nil
	}
}

// Close stops the driver loop, waits for it and closes the transport and
// the log. It is idempotent.
func (n *Node) Close() error {
	n.stopped.Do(func() { close(n.stopc) })
	<-n.done
	return nil
}

func (n *Node) run() {
	var fatal error
	defer func() {
		n.snapWG.Wait()
		for id, req := range n.pending {
			req.res <- result{err: fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrNodeClosed)}
			delete(n.pending, id)
		}
		n.cfg.Transport.Close()
		if n.spool != nil {
			if err := n.spool.Close(); err != nil {
				n.log.Warn("zab: snapshot spool", "err", err)
			}
		}
		if n.app != nil {
			n.app.stop()
		}
		if n.disk != nil {
			n.disk.close()
		}
		n.err = fatal
		close(n.done)
	}()
	defer func() {
		// The core panics on storage failures it cannot handle.
		if r := recover(); r != nil {
			fatal = fmt.Errorf("zab: node stopped: %v", r)
			n.log.Error("zab: fatal", "err", fatal)
		}
	}()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	recv := n.cfg.Transport.Receive()
	var written <-chan struct{} // the appender wrote (Ready.Async)
	if n.app != nil {
		written = n.app.notify
	}
	for {
		n.busy.idle()
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			n.busy.work()
			at := time.Now()
			n.peer.Tick()
			n.tickAt[n.peer.Ticks()%confirmTicks] = at
		case m, ok := <-recv:
			n.busy.work()
			if !ok {
				fatal = errors.New("zab: transport closed")
				return
			}
			n.step(m)
		case req := <-n.propc:
			n.busy.work()
			n.submit(req, n.proposeCall)
		case req := <-n.syncc:
			n.busy.work()
			n.submit(req, n.syncCall)
		case sd := <-n.snapc:
			n.busy.work()
			n.snapshotTaken(sd)
		case f := <-n.fetchc:
			n.busy.work()
			if f.err != nil {
				n.log.Warn("zab: reading entries back from the log", "after", f.req.After, "err", f.err)
			}
			n.peer.Fetched(f.req, f.ents)
		case reply := <-n.resyncc:
			n.busy.work()
			reply <- n.resync()
		case <-written:
			n.busy.work()
			z, err := n.app.state()
			if err != nil {
				fatal = err
				n.log.Error("zab: fatal error writing the log", "err", err)
				return
			}
			n.peer.Persisted(z)
		}
		// Take in whatever else is already waiting, so one Ready (one
		// fsync, one batch of messages) covers it all: the group commit.
		for i := 0; i < maxBatch; i++ {
			select {
			case m, ok := <-recv:
				if !ok {
					fatal = errors.New("zab: transport closed")
					return
				}
				n.step(m)
				continue
			case req := <-n.propc:
				n.submit(req, n.proposeCall)
				continue
			case req := <-n.syncc:
				n.submit(req, n.syncCall)
				continue
			default:
			}
			break
		}
		for n.peer.HasReady() {
			rd := n.peer.Ready()
			if err := n.exec.Execute(rd); err != nil {
				fatal = err
				n.log.Error("zab: fatal error carrying out a Ready", "err", err)
				return
			}
			if rd.Fetch != nil {
				n.readBack(*rd.Fetch)
			}
		}
		n.mem.Release(n.exec.Applied(), heldEntryBytes)
		n.reportConfirmed()
		n.maybeSnapshot()
		n.publish()
	}
}

// reportConfirmed tells OnLeaderConfirmed of a newer confirmation of this
// node's reign, once the Ready that sent its pings was carried out.
func (n *Node) reportConfirmed() {
	if n.cfg.OnLeaderConfirmed == nil {
		return
	}
	epoch, tick, ok := n.peer.LeaderConfirmed()
	if !ok || (epoch == n.confEpoch && tick <= n.confTick) || n.peer.Ticks()-tick >= confirmTicks {
		return
	}
	n.confEpoch, n.confTick = epoch, tick
	n.cfg.OnLeaderConfirmed(epoch, n.tickAt[tick%confirmTicks])
}

// heldEntryBytes is how much entry data a Node with a data directory keeps
// in memory once it is durable and applied: about one message's worth
// (Config.MaxMsgBytes), for the learners a little behind. Older entries
// are read back from the log when a learner needs them (Ready.Fetch), as
// ZooKeeper serves a DIFF beyond its committedLog from its txn log.
const heldEntryBytes = 1 << 20

// readBackBytes is about how much entry data one read-back returns: a few
// messages' worth, then the next is asked for.
const readBackBytes = 4 << 20

// fetchDone is the result of a read-back.
type fetchDone struct {
	req  FetchRequest
	ents []Entry
	err  error
}

// readBack reads the entries r asks for from the log on its own goroutine
// (the driver goes on meanwhile: a leader reading megabytes for a learner
// far behind still serves the others) and hands them to the driver
// through fetchc.
func (n *Node) readBack(r FetchRequest) {
	if n.disk == nil {
		n.peer.Fetched(r, nil) // nothing is released in memory
		return
	}
	n.snapWG.Add(1)
	go func() {
		defer n.snapWG.Done()
		ents, err := n.disk.readBack(r.After, readBackBytes)
		select {
		case n.fetchc <- fetchDone{req: r, ents: ents, err: err}:
		case <-n.stopc:
		}
	}()
}

// maxBatch bounds how many waiting inputs one loop turn takes in before it
// persists and sends, so ticks are not starved.
const maxBatch = 1024

// step hands one inbound message to the core (or MsgApp to OnApp).
func (n *Node) step(m Message) {
	if n.leaving.Load() {
		return // handed off: deaf until Close
	}
	switch m.Type {
	case MsgApp:
		if n.cfg.OnApp != nil && m.To == n.peer.ID() {
			n.cfg.OnApp(m.From, m.Snap)
		}
		return
	case MsgLeaving:
		if m.To == n.peer.ID() {
			n.peer.LeaderLeaving(m.From)
		}
		return
	}
	if err := n.peer.Step(m); err != nil {
		n.log.Debug("zab: step", "from", m.From, "type", m.Type, "err", err)
	}
}

// send hands m to the transport (the executor notes the peers whose queue
// is full).
func (n *Node) send(m Message) error {
	err := n.cfg.Transport.Send(m)
	if err != nil {
		n.log.Debug("zab: send", "to", m.To, "type", m.Type, "err", err)
	}
	return err
}

// syncCall adapts Peer.Sync to submit's shape.
func (n *Node) syncCall(id uint64, req *request) error {
	if !n.leadsIn(req.leaderEpoch) {
		return ErrNoLeader
	}
	return n.peer.Sync(id)
}

// leadsIn reports whether a request limited to the reign of epoch (0: none)
// may go ahead: this node leads, established, in epoch.
func (n *Node) leadsIn(epoch uint32) bool { return n.peer.SoftState().LeadsIn(epoch) }

// proposeCall hands a write or a configuration change to the core.
func (n *Node) proposeCall(id uint64, req *request) error {
	if !n.leadsIn(req.leaderEpoch) {
		return ErrNoLeader
	}
	if req.cc != nil {
		return n.peer.ProposeConfig(id, *req.cc)
	}
	return n.peer.Propose(id, req.data)
}

// submit hands a request to the core (Propose, or Sync which ignores the
// data) and remembers it until the core completes it.
func (n *Node) submit(req *request, call func(uint64, *request) error) {
	if !req.state.CompareAndSwap(reqQueued, reqTaken) {
		return // withdrawn by its caller: never sent
	}
	if err := req.ctx.Err(); err != nil {
		req.res <- result{err: err} // ended while queued: never sent
		return
	}
	n.nextID++
	id := n.nextID
	if err := call(id, req); err != nil {
		req.res <- result{err: err}
		return
	}
	n.pending[id] = req
}

func (n *Node) complete(id uint64, r result) {
	if req, ok := n.pending[id]; ok {
		if req.cc != nil {
			// The caller of a configuration change reads the voters from
			// Status next: publish them first. (Under load a PROPOSAL and
			// its COMMIT come in one loop turn, whose publish would follow
			// the answer: coord's AddVoter then saw the old voters.)
			n.publish()
		}
		req.res <- r
		delete(n.pending, id)
	}
}

// maybeSnapshot starts a background snapshot every SnapshotEvery entries.
func (n *Node) maybeSnapshot() {
	if n.snapping || n.exec.Entries()-n.snapFrom < uint64(n.cfg.SnapshotEvery) {
		return
	}
	n.snapping, n.snapFrom = true, n.exec.Entries()
	n.snapWG.Add(1)
	// Room for an image a little larger than the last one: a buffer
	// grown by doubling copies (and clears) the whole state over and over
	// while it is written (issue 12: a large part of a voter's CPU while
	// observers joined and it snapshotted 100,000 znodes). The last one is
	// the newest this node took, or the snapshot it recovered from disk or
	// installed from its leader (an observer's first snapshot after its
	// SNAP, every node's first after a restart).
	last := n.snapBytes
	if s, err := n.mem.Snapshot(); err == nil {
		last = max(last, len(s.Data))
	}
	size := last + last/16
	go func() {
		defer n.snapWG.Done()
		var buf bytes.Buffer
		buf.Grow(size)
		z, err := n.cfg.StateMachine.Snapshot(&buf)
		if err == nil && n.disk != nil {
			var voters []PeerID
			if voters, err = n.mem.VotersAt(z); err == nil {
				err = n.disk.saveSnapshot(z, voters, buf.Bytes())
			}
		}
		n.snapc <- snapDone{zxid: z, data: buf.Bytes(), err: err}
	}()
}

// snapshotTaken records a finished snapshot in the core's storage (so SNAP
// can serve it) and compacts the in-memory log up to the previous snapshot,
// keeping one interval of entries for DIFFs (and the entries after the
// snapshot a running stream sends: Peer.SnapStreamFloor).
func (n *Node) snapshotTaken(sd snapDone) {
	n.snapping = false
	if sd.err != nil {
		n.log.Warn("zab: snapshot failed", "err", sd.err)
		return
	}
	n.snapBytes = len(sd.data)
	data := sd.data
	if cap(data)-len(data) > len(data)/8 {
		data = slices.Clone(data) // do not keep much unused room for long
	}
	// The buffer is ours alone and never written again: kept as it is,
	// not copied once more.
	if err := n.mem.adoptCreatedSnapshot(sd.zxid, data); err != nil {
		n.log.Debug("zab: snapshot not recorded", "zxid", sd.zxid, "err", err)
		return
	}
	if upTo := n.prevSnap; upTo > 0 {
		if f := n.peer.SnapStreamFloor(); f > 0 && f < upTo {
			upTo = f // a snapshot stream goes on from there
		}
		if err := n.mem.Compact(upTo); err != nil {
			n.log.Debug("zab: compact", "zxid", upTo, "err", err)
		}
	}
	n.prevSnap = sd.zxid
	n.snapshots++
	n.log.Debug("zab: snapshot taken", "zxid", sd.zxid, "bytes", len(sd.data))
}

func (n *Node) publish() {
	ps := n.peer.Status()
	st := &Status{
		ID:         n.peer.ID(),
		SoftState:  ps.SoftState,
		LastZxid:   ps.LastZxid,
		Committed:  ps.Committed,
		Applied:    n.exec.Applied(),
		Snapshots:  n.snapshots,
		LoopBusy:   n.busy.fraction(),
		Progress:   ps.Progress,
		Voters:     ps.Voters,
		ConfigZxid: ps.ConfigZxid,

		ClusterID:      ps.HardState.ClusterID,
		ClusterIDFixed: ps.HardState.Fixed,
		SnapStreams:    ps.SnapStreams,
	}
	n.status.Store(st)
}

// busyMeter measures the share of wall time the loop spends working, over
// a decaying window (hashicorp/raft's saturation metric, simplified).
type busyMeter struct {
	start      time.Time
	working    bool
	busy, span float64
}

func (b *busyMeter) work() { b.mark(true) }
func (b *busyMeter) idle() { b.mark(false) }

func (b *busyMeter) mark(working bool) {
	now := time.Now()
	if !b.start.IsZero() {
		d := now.Sub(b.start).Seconds()
		b.span += d
		if b.working {
			b.busy += d
		}
	}
	b.start, b.working = now, working
	if b.span > 10 { // decay: halve the window every ~10s of wall time
		b.busy, b.span = b.busy/2, b.span/2
	}
}

func (b *busyMeter) fraction() float64 {
	if b.span == 0 {
		return 0
	}
	return b.busy / b.span
}
