package coord

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/internal/gossip"
	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/tcp"
)

// Node is a member of a coordination cluster: it holds a replica of the
// znode tree, takes part in elections and replication (as a voter or an
// observer), serves reads locally and sends writes through the leader. Its
// methods act through the node's default session; use Session for more.
//
// Goroutines: the zab driver (zab.Node), the gossip's own, membership (feeds
// gossip events to the transport), maintenance (steps the session core,
// session.Replica: heartbeats, acknowledgements, on the leader session
// expiry and the reaper; see replica.go), one pump per persistent watch,
// and proposers of expiries and reaps. Close stops them all.
type Node struct {
	cfg  Config
	log  *slog.Logger
	tree *tree.Tree
	fsm  *fsm
	zab  *zab.Node
	// finished holds this node's writes applied by their only attempt,
	// for its next requests to tell every replica to forget
	// (proposal.Request.Forget).
	finished proposal.Finished
	tr       *tcp.Transport
	gossip   *gossip.Gossip
	// start is when the node was made, with its monotonic clock reading:
	// heartbeats carry their send time as an offset from it (the session
	// core's origin), so leases live on the monotonic clock.
	start time.Time

	sessMu   sync.Mutex
	sessions map[int64]*Session

	defMu sync.Mutex
	def   *Session // the default session, replaced when it is lost

	// The session core (see replica.go): stepped only by the maintenance
	// goroutine, under coreMu (which Session.Remaining takes to read it).
	// Its inputs from other goroutines wait in the inbox.
	coreMu sync.Mutex
	core   *session.Replica
	inMu   sync.Mutex
	inbox  []coreInput
	wake   chan struct{}

	ap autopilot // see autopilot.go

	div divergence // see digest.go
	// resyncHook, set by tests only, runs before a resync starts.
	resyncHook atomic.Pointer[func()]

	events    chan ClusterEvent
	closing   chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool
	wg        sync.WaitGroup

	// done closes when the node stops: by Close or Shutdown, or at a
	// fail-stop, when failErr is set first (see fail).
	done     chan struct{}
	doneOnce sync.Once
	failErr  atomic.Pointer[error]
	// dupErr: watchDuplicates found a live process with this id that
	// passed its own check (Join fails with it).
	dupErr atomic.Pointer[error]
	// joinedAll: Join has returned the node (n.zab is set).
	joinedAll atomic.Bool
}

// Join starts a node with cfg and returns once it has synchronised with an
// established leader, or fails when cfg.JoinTimeout passes, saying what is
// missing. See JoinContext.
func Join(cfg Config) (*Node, error) {
	c := cfg.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), c.JoinTimeout)
	defer cancel()
	return JoinContext(ctx, cfg)
}

// JoinContext is Join bounded by ctx instead of cfg.JoinTimeout.
func JoinContext(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.DataDir != "" {
		// Before anything joins: a wrong directory fails fast and says why.
		if err := zab.CheckDataDir(cfg.DataDir, cfg.Cluster, zab.PeerID(cfg.NodeID)); err != nil {
			return nil, fmt.Errorf("coord: %w", err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)
	// Without a SecretKey the gossip layer warns once (and the transport
	// accepts any peer): not repeated here.
	n := &Node{
		cfg:      cfg,
		log:      logger,
		tree:     tree.New(tree.Options{}),
		sessions: make(map[int64]*Session),
		events:   make(chan ClusterEvent, 64),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		start:    time.Now(),
		wake:     make(chan struct{}, 1),
	}
	if n.core, err = session.NewReplica(session.ReplicaConfig{Self: cfg.NodeID, Tick: cfg.TickInterval,
		Origin: n.start, Table: treeTable{n.tree}, ReapEvery: max(time.Second, cfg.TickInterval)}); err != nil {
		return nil, err
	}
	n.ap.stats.Enabled, n.ap.stats.Target = cfg.autopilotOn(), cfg.autopilotTarget()
	n.fsm = newFSM(n.tree)
	n.fsm.onApply = n.onApply
	defer func() {
		if err != nil {
			n.shutdown()
		}
	}()

	tcfg := tcp.DefaultConfig(zab.PeerID(cfg.NodeID))
	tcfg.BindAddr, tcfg.Cluster, tcfg.SecretKey, tcfg.Logger = cfg.ReplicationBindAddr, cfg.Cluster, cfg.SecretKey, logger
	if n.tr, err = tcp.New(tcfg); err != nil {
		return nil, fmt.Errorf("coord: replication transport: %w", err)
	}
	// An unspecified replication bind advertises the gossip IP (and gossip
	// fills in its own advertise IP when that is unspecified too).
	gaddr := cfg.GossipAdvertiseAddr
	if gaddr == "" {
		gaddr = cfg.GossipBindAddr
	}
	replAddr, err := cfg.replicationAdvertiseAddr(n.tr.Addr().String(), gaddr)
	if err != nil {
		return nil, err
	}
	gcfg := cfg.gossipConfig(replAddr)
	gcfg.Logger = logger
	if n.gossip, err = gossip.New(gcfg); err != nil {
		return nil, fmt.Errorf("coord: gossip: %w", err)
	}
	if err := n.gossip.Join(ctx); err != nil {
		return nil, fmt.Errorf("coord: join: %w", err)
	}
	// Peers that know this id at another address answered in the state
	// exchange Join just made: a live process there is refused as us
	// before zab starts, whether or not it has talked to anyone.
	if err := n.checkDuplicates(ctx); err != nil {
		return nil, err
	}
	n.tr.SetJoined()
	n.wg.Add(1)
	go n.watchDuplicates()
	n.wg.Add(1)
	go n.membership()

	voters, observers, err := n.ensemble(ctx)
	if err != nil {
		return nil, err
	}
	n.zab, err = zab.StartNode(zab.NodeConfig{
		Core: zab.Config{
			ID: zab.PeerID(cfg.NodeID), Voters: voters, Observers: observers, Logger: logger,
			Seed:           cfg.NodeID ^ uint64(time.Now().UnixNano()),
			HeartbeatTicks: cfg.ticks(cfg.HeartbeatInterval),
			SyncLimit:      cfg.ticks(cfg.SyncLimit),
			ElectionTicks:  cfg.ticks(cfg.ElectionTimeout),
			InitLimit:      2 * cfg.ticks(cfg.SyncLimit),
			Stamp:          newStamper(time.Now),
		},
		Transport:      n.tr,
		StateMachine:   n.fsm,
		DataDir:        cfg.DataDir,
		Cluster:        cfg.Cluster,
		TickInterval:   cfg.TickInterval,
		SnapshotEvery:  cfg.SnapshotEvery,
		SnapshotRetain: cfg.SnapshotRetain,
		Logger:         logger,
		OnApp:          n.onApp,
		OnLeaderConfirmed: func(epoch uint32, at time.Time) {
			n.push(coreInput{kind: inConfirmed, epoch: epoch, sent: at})
		},
	})
	if err != nil {
		return nil, fmt.Errorf("coord: replication: %w", err)
	}
	if err := n.waitServing(ctx); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go n.maintain()
	if _, err = n.defaultSession(ctx); err != nil {
		return nil, fmt.Errorf("coord: default session: %w", err)
	}
	if cfg.ExpvarName != "" {
		if err := n.publishExpvar(cfg.ExpvarName); err != nil {
			return nil, err
		}
	}
	n.joinedAll.Store(true)
	if p := n.dupErr.Load(); p != nil {
		return nil, *p
	}
	n.log.Info("coord: joined", "voters", n.zab.Status().Voters, "leader", n.zab.Status().SoftState.Leader)
	return n, nil
}

// ensemble returns the voters (from the config, or the first
// BootstrapExpect voters seen in gossip) and the observers seen so far.
func (n *Node) ensemble(ctx context.Context) (voters, observers []zab.PeerID, err error) {
	for _, v := range n.cfg.Voters {
		voters = append(voters, zab.PeerID(v))
	}
	for {
		seen := map[uint64]gossip.Role{n.cfg.NodeID: roleOf(n.cfg.Role)}
		for _, m := range n.gossip.Members() {
			if m.State == gossip.StateAlive || m.State == gossip.StateSuspect {
				seen[m.NodeID] = m.Role
			}
		}
		var seenVoters []zab.PeerID
		observers = observers[:0]
		for id, r := range seen {
			if r == gossip.RoleObserver {
				observers = append(observers, zab.PeerID(id))
			} else {
				seenVoters = append(seenVoters, zab.PeerID(id))
			}
		}
		slices.Sort(seenVoters)
		slices.Sort(observers)
		if n.cfg.BootstrapExpect == 0 {
			return voters, observers, nil
		}
		if len(seenVoters) >= n.cfg.BootstrapExpect {
			return seenVoters[:n.cfg.BootstrapExpect], observers, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("coord: join: %d of %d voters seen in gossip (BootstrapExpect): %w",
				len(seenVoters), n.cfg.BootstrapExpect, ctx.Err())
		case <-time.After(n.cfg.TickInterval):
		}
	}
}

func roleOf(r Role) gossip.Role {
	if r == RoleObserver {
		return gossip.RoleObserver
	}
	return gossip.RoleVoter
}

// waitServing waits until the node follows (or is) an established leader.
func (n *Node) waitServing(ctx context.Context) error {
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	for {
		if n.zab.Status().SoftState.Serving {
			return nil
		}
		if p := n.dupErr.Load(); p != nil {
			return *p
		}
		if err := n.tr.DuplicateID(); err != nil {
			// The process that had this id first goes on; this one stops
			// (Join shuts it down) before it can vote as that node.
			return fmt.Errorf("coord: join: node id %d: %w", n.cfg.NodeID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: join: %s: %w", ErrNoQuorum, n.votersSeen(), ctx.Err())
		case <-n.zab.Done():
			return fmt.Errorf("coord: replication stopped: %w", n.zab.Err())
		case <-t.C:
		}
	}
}

// votersSeen says, for a join that found no leader, which voters this node
// acts on, where they come from and how many of them gossip sees alive. The
// voters are the replication core's: the committed configuration once the
// node holds one (from its DataDir or a leader's synchronisation), else the
// configured Voters or the BootstrapExpect guess, which no leader confirmed.
func (n *Node) votersSeen() string {
	st := n.zab.Status()
	alive := map[uint64]bool{n.cfg.NodeID: true}
	for _, m := range n.gossip.Members() {
		if m.State == gossip.StateAlive {
			alive[m.NodeID] = true
		}
	}
	seen := 0
	for _, v := range st.Voters {
		if alive[uint64(v)] {
			seen++
		}
	}
	from := fmt.Sprintf("the configuration logged at zxid %v", st.ConfigZxid)
	switch {
	case st.ConfigZxid != 0:
	case n.cfg.BootstrapExpect > 0:
		from = fmt.Sprintf("the first %d voters seen in gossip (BootstrapExpect), not confirmed by any leader",
			n.cfg.BootstrapExpect)
	default:
		from = "the configured Voters, not confirmed by any leader"
	}
	return fmt.Sprintf("no leader after %d of %d voters %v seen in gossip (a quorum is %d; voters from %s)",
		seen, len(st.Voters), st.Voters, len(st.Voters)/2+1, from)
}

// membership keeps the transport's peer addresses in step with gossip.
func (n *Node) membership() {
	defer n.wg.Done()
	for _, m := range n.gossip.Members() {
		n.learn(m)
	}
	for {
		select {
		case <-n.closing:
			return
		case ev, ok := <-n.gossip.Events():
			if !ok {
				return
			}
			n.learn(ev.Member)
			n.emit(ClusterEvent{Type: memberEventType(ev.Type), Member: memberOf(ev.Member)})
		}
	}
}

func (n *Node) learn(m gossip.Member) {
	if m.NodeID != n.cfg.NodeID && m.ReplicationAddr != "" {
		n.tr.SetPeer(zab.PeerID(m.NodeID), m.ReplicationAddr)
	}
}

// proposeExpiry closes a session the tracker expired, only as the leader
// of epoch, the reign whose clock decided it: a deposed leader's expiry must
// never be forwarded to (and committed by) a successor that has been
// keeping the session alive. Its attempts follow proposal.Retry made
// AsLeader (one request id; it ends as soon as this node no longer leads in
// epoch: a new reign rebuilds its tracker and decides afresh).
func (n *Node) proposeExpiry(id int64, epoch uint32) {
	n.proposeHousekeeping(request{Op: tree.Op{Type: tree.OpCloseSession, Session: id}}, epoch)
}

// proposeHousekeeping proposes req (a leader's housekeeping: an expiry, a
// reap, a digest check) without blocking the caller, through the retry
// rule every write follows (attempt), as the leader of epoch only if it is
// not 0, for at most housekeepingContext.
func (n *Node) proposeHousekeeping(req request, epoch uint32) {
	req.Origin, req.ReqID, req.Time = n.cfg.NodeID, newReqID(), time.Now().UnixMilli()
	rt, err := n.newRetry(req, max(n.tree.LastZxid(), 1))
	if err != nil {
		n.log.Error("coord: encoding a housekeeping op", "op", req.Op.Type, "err", err)
		return
	}
	rt.AsLeader(epoch)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := n.housekeepingContext()
		defer cancel()
		st := n.attempt(ctx, rt)
		n.finished.Done(rt, st)
		if st.Err != nil {
			n.log.Debug("coord: housekeeping op failed", "op", req.Op.Type, "path", req.Op.Path,
				"session", req.Op.Session, "epoch", epoch, "err", st.Err)
		}
	}()
}

// housekeepingContext bounds one housekeeping proposal: 10 sync limits,
// and no longer than the node is open.
func (n *Node) housekeepingContext() (context.Context, context.CancelFunc) {
	return n.closingContext(10 * n.cfg.SyncLimit)
}

// closingContext ends after d or when the node closes, whichever is first.
func (n *Node) closingContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-n.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// proposeAsync proposes a leader housekeeping op (a reap) without blocking
// the caller (proposeHousekeeping).
func (n *Node) proposeAsync(op tree.Op) { n.proposeHousekeeping(request{Op: op}, 0) }

// usable reports whether the node is open and has not failed.
func (n *Node) usable() error {
	if err := n.Err(); err != nil {
		return err
	}
	if n.closed.Load() {
		return ErrClosed
	}
	return n.diverged()
}

// Done returns a channel that is closed when the node stops: when Close or
// Shutdown is called, or when the node fail-stops because its replication
// stopped (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns why the node fail-stopped, or nil while it runs or after a
// plain Close or Shutdown. A node fail-stops when its replication stops on
// its own (a disk that is full or failing, a log record it cannot write):
// it cannot take part in the cluster any more, so rather than serve a
// frozen tree it stops serving. A replica whose tree the leader's digest
// check finds different resynchronises (see ErrDiverged); it fail-stops,
// with ErrDiverged, only as a leader or when its resyncs keep differing.
// Then Done is closed, an EventNodeFailed
// ClusterEvent is emitted, every session of the node is Lost (event
// SessionLost, Suspended channels closed, watches ended with this error),
// every read and write fails with this error, and Close returns it. The
// error wraps ErrFailed and the cause.
func (n *Node) Err() error {
	if p := n.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail fail-stops the node because its replication stopped with cause. It
// runs on the maintenance goroutine, once.
func (n *Node) fail(cause error) {
	if cause == nil {
		cause = zab.ErrNodeClosed // stopped without saying why
	}
	err := fmt.Errorf("%w: replication stopped: %w", ErrFailed, cause)
	if !n.failErr.CompareAndSwap(nil, &err) {
		return
	}
	n.log.Error("coord: node failed, no longer serving", "err", cause)
	n.coreMu.Lock()
	n.core.Stop(time.Now())
	rd := n.core.Ready()
	n.deliver(rd)
	n.coreMu.Unlock()
	for _, s := range n.liveSessions() {
		s.finish(err)
	}
	n.emit(ClusterEvent{Type: EventNodeFailed, Err: err})
	n.doneOnce.Do(func() { close(n.done) })
}

// liveSessions returns the node's sessions.
func (n *Node) liveSessions() []*Session {
	n.sessMu.Lock()
	defer n.sessMu.Unlock()
	ss := make([]*Session, 0, len(n.sessions))
	for _, s := range n.sessions {
		ss = append(ss, s)
	}
	return ss
}

// Close leaves the cluster: the default session and every other session of
// this node are closed (their ephemerals go at once), the node leaves the
// gossip, and every goroutine stops. Close is idempotent; ctx bounds the
// session closes and the gossip leave.
func (n *Node) Close(ctx context.Context) error {
	if n.closed.Swap(true) {
		<-n.closing
		return n.Err()
	}
	ss := n.liveSessions()
	var ids []int64
	for _, s := range ss {
		ids = append(ids, s.id)
	}
	if len(ids) > 0 && n.zab != nil && n.Err() == nil && n.zab.Status().SoftState.Serving {
		// Without a quorum the sessions cannot be closed; the leader will
		// expire them. Bound the wait so Close does not hang on a dead cluster.
		cctx, cancel := context.WithTimeout(ctx, 2*n.cfg.SyncLimit)
		for _, id := range ids {
			op := tree.Op{Type: tree.OpCloseSession, Session: id}
			if _, err := n.propose(cctx, 0, op); err != nil && !errors.Is(err, ErrSessionExpired) {
				n.log.Warn("coord: closing session on leave", "session", session.ID(id), "err", err)
			}
		}
		cancel()
	}
	for _, s := range ss {
		s.finish(ErrClosed)
	}
	if n.zab != nil {
		if n.Err() == nil {
			n.handoff(ctx)
		}
		// Stop replicating at once: a leader that lingers (the gossip leave
		// below takes a while) would win back the followers it just released.
		n.zab.Close()
	}
	if n.gossip != nil {
		if err := n.gossip.Leave(ctx); err != nil {
			n.log.Debug("coord: gossip leave", "err", err)
		}
	}
	n.shutdown()
	return n.Err()
}

// Shutdown stops the node at once, as if its process had died: its
// sessions are not closed (the leader expires them after their timeout, so
// their ephemerals stay until then), leadership is not handed off (the
// others elect a new leader after SyncLimit) and the gossip is not told
// (the others notice by probing), like memberlist's Shutdown without
// Leave. Close is the way to stop a node; Shutdown is for tests and demos of
// failures. Local sessions and watches end with ErrClosed. It is
// idempotent, and Close after it returns at once.
func (n *Node) Shutdown() {
	if n.closed.Swap(true) {
		<-n.closing
		return
	}
	for _, s := range n.liveSessions() {
		s.finish(ErrClosed)
	}
	n.shutdown()
}

// shutdown stops everything; it is safe on a half-started node.
func (n *Node) shutdown() {
	n.closed.Store(true)
	n.closeOnce.Do(func() { close(n.closing) })
	if n.zab != nil {
		n.zab.Close() // closes the transport
	} else if n.tr != nil {
		n.tr.Close()
	}
	if n.gossip != nil {
		n.gossip.Close()
	}
	n.wg.Wait()
	n.doneOnce.Do(func() { close(n.done) })
}

// ID returns the node's id.
func (n *Node) ID() uint64 { return n.cfg.NodeID }

// DefaultSession returns the session the Node's own methods use. If the
// previous one was lost (its timeout passed without a leader, say), a new
// one is created first: the old one's ephemerals are gone, and Node-level
// ephemerals and watches must be set again. Use your own Sessions to own
// ephemerals whose loss you must notice.
func (n *Node) DefaultSession(ctx context.Context) (*Session, error) {
	return n.defaultSession(ctx)
}

func (n *Node) defaultSession(ctx context.Context) (*Session, error) {
	if err := n.usable(); err != nil {
		return nil, err
	}
	n.defMu.Lock()
	defer n.defMu.Unlock()
	if n.def != nil && n.def.usable() == nil {
		return n.def, nil
	}
	s, err := n.Session(ctx, SessionOptions{})
	if err != nil {
		return nil, err
	}
	if n.def != nil {
		n.log.Info("coord: default session replaced", "old", session.ID(n.def.id), "new", session.ID(s.id))
	}
	n.def = s
	return s, nil
}

// Create creates a node through the default session; see Session.Create.
func (n *Node) Create(ctx context.Context, path string, data []byte, mode CreateMode, opts ...CreateOption) (string, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return "", err
	}
	return s.Create(ctx, path, data, mode, opts...)
}

// Get reads a node from the local replica; see Session.Get. Like Exists
// and Children it reads the tree directly: a local read needs no session,
// so it works while the default session is Suspended or being replaced. The
// watch-setting reads (GetW, ExistsW, ChildrenW, Watch, WatchFrom) register
// their watch under the default session: it ends (Err ErrSessionExpired)
// if that session is lost; read and watch again then.
func (n *Node) Get(ctx context.Context, path string) ([]byte, Stat, error) {
	if err := n.readable(ctx); err != nil {
		return nil, Stat{}, err
	}
	return n.tree.Get(path, nil)
}

// readable checks what a local read needs: an open, working node and a
// live ctx.
func (n *Node) readable(ctx context.Context) error {
	yieldSometimes()
	if err := ctx.Err(); err != nil {
		return err
	}
	return n.usable()
}

// GetW is Get with a one-shot watch; see Session.GetW.
func (n *Node) GetW(ctx context.Context, path string) ([]byte, Stat, <-chan Event, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return nil, Stat{}, nil, err
	}
	return s.GetW(ctx, path)
}

// Exists reports whether a node exists; see Session.Exists. It needs no
// session (see Get).
func (n *Node) Exists(ctx context.Context, path string) (Stat, bool, error) {
	if err := n.readable(ctx); err != nil {
		return Stat{}, false, err
	}
	return n.tree.Exists(path, nil)
}

// ExistsW is Exists with a one-shot watch; see Session.ExistsW.
func (n *Node) ExistsW(ctx context.Context, path string) (Stat, bool, <-chan Event, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return Stat{}, false, nil, err
	}
	return s.ExistsW(ctx, path)
}

// Children lists a node's children; see Session.Children. It needs no
// session (see Get).
func (n *Node) Children(ctx context.Context, path string) ([]string, Stat, error) {
	if err := n.readable(ctx); err != nil {
		return nil, Stat{}, err
	}
	return n.tree.Children(path, nil)
}

// ChildrenW is Children with a one-shot watch; see Session.ChildrenW.
func (n *Node) ChildrenW(ctx context.Context, path string) ([]string, Stat, <-chan Event, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return nil, Stat{}, nil, err
	}
	return s.ChildrenW(ctx, path)
}

// Set replaces a node's data; see Session.Set.
func (n *Node) Set(ctx context.Context, path string, data []byte, version int32) (Stat, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return Stat{}, err
	}
	return s.Set(ctx, path, data, version)
}

// Delete deletes a node; see Session.Delete.
func (n *Node) Delete(ctx context.Context, path string, version int32) error {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, path, version)
}

// Multi applies ops atomically; see Session.Multi.
func (n *Node) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return nil, err
	}
	return s.Multi(ctx, ops...)
}

// Sync makes the next local read linearizable; see Session.Sync. It needs
// no session.
func (n *Node) Sync(ctx context.Context) error {
	if err := n.usable(); err != nil {
		return err
	}
	_, err := n.zab.Sync(ctx)
	return n.mapErr(err)
}

// Watch sets a persistent watch; see Session.Watch.
func (n *Node) Watch(ctx context.Context, path string, recursive bool) (*Watch, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return nil, err
	}
	return s.Watch(ctx, path, recursive)
}

// WatchFrom resumes a persistent watch from a zxid; see Session.WatchFrom.
func (n *Node) WatchFrom(ctx context.Context, path string, recursive bool, zxid int64) (*Watch, error) {
	s, err := n.defaultSession(ctx)
	if err != nil {
		return nil, err
	}
	return s.WatchFrom(ctx, path, recursive, zxid)
}

// publishExpvar publishes Stats under name in the standard library's expvar
// registry (the one global coord touches, and only when asked). expvar
// cannot unpublish: after Close the variable reports {"closed": true}.
func (n *Node) publishExpvar(name string) error {
	if expvar.Get(name) != nil {
		return fmt.Errorf("%w: ExpvarName %q is already published", ErrInvalidConfig, name)
	}
	expvar.Publish(name, expvar.Func(func() any {
		if n.closed.Load() {
			return map[string]bool{"closed": true}
		}
		return n.Stats()
	}))
	return nil
}

// handoff, on the leader, tells the others it is leaving so they elect a
// new leader at once, and waits (briefly) until the transport has written
// that message to every peer it is connected to.
func (n *Node) handoff(ctx context.Context) {
	if n.zab.Status().SoftState.Role != zab.RoleLeading {
		return
	}
	before := map[zab.PeerID]uint64{}
	for _, p := range n.tr.Stats().Peers {
		if p.Connected {
			before[p.ID] = p.Sent + p.Drops
		}
	}
	n.zab.Handoff()
	deadline := time.Now().Add(10 * n.cfg.TickInterval)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, p := range n.tr.Stats().Peers {
			if b, ok := before[p.ID]; ok && p.Sent+p.Drops <= b {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(n.cfg.TickInterval / 4)
	}
}

// yieldSometimes lets other goroutines run on one local read in 64. A
// local read never blocks, so a goroutine reading in a loop keeps its P
// until the runtime preempts it after 10 ms, and the runtime looks at its
// global run queue, where goroutines woken by the network wait, only every
// 61st scheduling round: with dozens of such readers every hop of
// replication and of a session's heartbeat waited most of a second, and
// sessions of 10 s expired (issue 13: examples/bench's 128 local readers;
// TestSessionsSurviveCPUSaturation). Yielding every few dozen reads keeps
// a reader's uninterrupted run to microseconds (BenchmarkLocalGet measures
// the cost).
func yieldSometimes() {
	if rand.Uint32()%64 == 0 {
		runtime.Gosched()
	}
}
