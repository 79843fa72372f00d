package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrForeignCluster is wrapped when a peer's metadata names another cluster.
var ErrForeignCluster = errors.New("gossip: peer of another cluster")

// State is a member's liveness as this node sees it.
type State uint8

const (
	// StateAlive members answer probes.
	StateAlive State = iota
	// StateSuspect members are alive in gossip, but this node's own direct
	// probes of them have gone unanswered for several probe rounds.
	// memberlist does not expose its internal suspicion, so this is the
	// local view only; it clears with the next answered probe.
	StateSuspect
	// StateDead members failed (gossip declared them dead).
	StateDead
	// StateLeft members left gracefully.
	StateLeft
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node as seen through gossip.
type Member struct {
	Meta
	// Addr is the member's gossip address (IP:port).
	Addr string
	// State is its liveness.
	State State
	// Since is when this node last saw State change between alive, dead and
	// left (suspicion does not move it).
	Since time.Time
}

// EventType says what happened to a member.
type EventType uint8

const (
	// EventJoin: a member became alive (new, or back after dead or left).
	EventJoin EventType = iota
	// EventUpdate: an alive member changed its metadata or address.
	EventUpdate
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFail: a member was declared dead.
	EventFail
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event reports a change of one member (never of the local node).
type Event struct {
	Type   EventType
	Member Member
}

// Stats are counters since New.
type Stats struct {
	// CoalescedEvents counts events merged into a later event of the same
	// member because the consumer had not taken the earlier one yet.
	CoalescedEvents uint64
	// VetoedPeers counts peers refused for bad or foreign metadata.
	VetoedPeers uint64
	// AuthFailures counts gossip traffic refused for a wrong label or key.
	AuthFailures uint64
	// Conflicts counts name conflicts (a node id seen at two addresses).
	Conflicts uint64
	// HealRounds counts heal rounds that had targets; HealJoins counts the
	// state exchanges of those rounds that succeeded.
	HealRounds, HealJoins uint64
}

// record is the local view of one member.
type record struct {
	m       Member
	leaving bool      // its last metadata announced a graceful leave
	lastAck time.Time // last answered direct probe (or state change)
}

// Gossip is a running membership. Its methods are safe for concurrent use.
type Gossip struct {
	cfg    Config
	t      timers
	name   string
	log    *slog.Logger
	ml     *memberlist.Memberlist
	self   string     // advertised gossip address
	advIP  netip.Addr // its IP
	seeds  []string
	events chan Event

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	kick      chan struct{} // asks the heal loop for an early round
	opMu      sync.Mutex    // orders Leave/UpdateMeta against Close (memberlist panics on leave after shutdown)

	mu         sync.Mutex
	meta       Meta
	metaBytes  []byte
	closed     bool
	left       bool
	members    map[uint64]*record
	pending    map[string]time.Time // conflicting addresses to push state to, until
	reannounce time.Time            // until then, push our state to everyone
	selfClaims []string             // replication addresses of other claims to our id (TakeSelfClaims)
	selfSig    chan struct{}        // signalled when selfClaims grows
	logged     map[string]time.Time // rate limit of repeated warnings
	rng        *rand.Rand

	// Events not yet handed to the pump goroutine's send, at most one per
	// member (see emit).
	pendingIDs []uint64
	pendingEv  map[uint64]Event
	evSignal   chan struct{}

	coalesced, vetoed, authFail, conflicts, healRounds, healJoins atomic.Uint64
}

// New starts a memberlist node for cfg; it is alone until Join. It fails
// if cfg is invalid (every problem wrapped in ErrInvalidConfig) or the
// address cannot be bound.
func New(cfg Config) (*Gossip, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	g := &Gossip{
		cfg:       cfg,
		t:         cfg.timers(),
		name:      nodeName(cfg.NodeID),
		log:       lg.With("node", cfg.NodeID, "component", "gossip"),
		events:    make(chan Event, cfg.EventBuffer),
		pendingEv: make(map[uint64]Event),
		evSignal:  make(chan struct{}, 1),
		closing:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		selfSig:   make(chan struct{}, 1),
		meta:      cfg.Meta,
		members:   make(map[uint64]*record),
		pending:   make(map[string]time.Time),
		logged:    make(map[string]time.Time),
		rng:       rand.New(rand.NewPCG(cfg.NodeID, uint64(time.Now().UnixNano()))),
	}
	mlLog := log.New(&logBridge{g: g}, "", 0)

	bind := netip.MustParseAddrPort(cfg.BindAddr) // checked by withDefaults
	nt, err := newNetTransport(bind, mlLog)
	if err != nil {
		return nil, err
	}
	port := nt.GetAutoBindPort()
	var tr memberlist.NodeAwareTransport = nt
	if cfg.wrapTransport != nil {
		tr = cfg.wrapTransport(nt)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = g.name
	mc.Label = cfg.Cluster
	mc.Transport = tr
	mc.BindAddr = bind.Addr().String()
	mc.BindPort = port
	mc.AdvertisePort = port
	if cfg.AdvertiseAddr != "" {
		ap := netip.MustParseAddrPort(cfg.AdvertiseAddr)
		mc.AdvertiseAddr = ap.Addr().String()
		if ap.Port() != 0 {
			mc.AdvertisePort = int(ap.Port())
		}
	}
	// The IP memberlist will advertise (its choice of a private address when
	// bound to all interfaces) also completes a host-less replication address.
	advIP, _, err := nt.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("gossip: advertise address: %w", err)
	}
	g.advIP, _ = netip.AddrFromSlice(advIP)
	if g.advIP = g.advIP.Unmap(); !g.advIP.IsValid() || g.advIP.IsUnspecified() {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("%w: AdvertiseAddr: bound to %s, set an address peers can reach", ErrInvalidConfig, cfg.BindAddr)
	}
	g.meta.ReplicationAddr = withHost(g.meta.ReplicationAddr, g.advIP)
	if g.metaBytes, err = encodeMeta(g.meta, false); err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err)
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = g.t.probeTimeout
	mc.GossipInterval = g.t.gossipInterval
	mc.PushPullInterval = g.t.pushPull
	mc.TCPTimeout = g.t.tcpTimeout
	mc.GossipToTheDeadTime = g.t.toTheDead
	mc.DeadNodeReclaimTime = g.t.reclaim
	if cfg.SecretKey != nil {
		mc.SecretKey = memberlistKey(cfg.SecretKey)
	}
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	d := delegates{g}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Merge = d
	mc.Conflict = d
	mc.Ping = d
	mc.Logger = mlLog

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	g.self = ml.LocalNode().Address()
	for _, s := range cfg.Seeds {
		if normAddr(s) != g.self {
			g.seeds = append(g.seeds, s)
		}
	}
	if len(cfg.SecretKey) == 0 {
		g.log.Warn("gossip is not encrypted: without a SecretKey anyone who can reach " + g.self + " can join the cluster")
	}
	g.wg.Add(2)
	go g.healLoop()
	go g.pumpEvents()
	g.log.Debug("gossip started", "addr", g.self, "cluster", cfg.Cluster)
	return g, nil
}

// newNetTransport binds UDP and TCP at addr; port 0 picks a port free for
// both, retrying like memberlist does because the pick is racy.
func newNetTransport(addr netip.AddrPort, lg *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{addr.Addr().String()},
		BindPort:  int(addr.Port()),
		Logger:    lg,
	}
	tries := 1
	if addr.Port() == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
	}
	return nil, fmt.Errorf("gossip: bind %s: %w", addr, err)
}

// normAddr returns s in the form memberlist prints addresses, if s is an
// IP:port; otherwise s.
func normAddr(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return s
}

// Addr returns the gossip address this node advertises (IP:port), which
// other nodes can use as a seed.
func (g *Gossip) Addr() string { return g.self }

// Events returns the channel of member events. It is closed by Close. A
// slow consumer never blocks gossip: while it lags, the events of one
// member coalesce into the latest (see the package doc).
func (g *Gossip) Events() <-chan Event { return g.events }

// Stats returns the counters.
func (g *Gossip) Stats() Stats {
	return Stats{
		CoalescedEvents: g.coalesced.Load(),
		VetoedPeers:     g.vetoed.Load(),
		AuthFailures:    g.authFail.Load(),
		Conflicts:       g.conflicts.Load(),
		HealRounds:      g.healRounds.Load(),
		HealJoins:       g.healJoins.Load(),
	}
}

// Members returns every member this node knows, itself included, sorted
// by id: alive and suspect ones, and dead or left ones until ForgetAfter.
func (g *Gossip) Members() []Member {
	health := g.ml.GetHealthScore()
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	alivePeers := 0
	for id, r := range g.members {
		if id != g.cfg.NodeID && r.m.State == StateAlive {
			alivePeers++
		}
	}
	// memberlist probes one peer per interval, round robin, slower while
	// it is itself unhealthy: a peer is suspect after three missed rounds.
	suspectAfter := time.Duration(3*max(alivePeers, 1)*(health+1))*g.cfg.ProbeInterval + g.t.probeTimeout
	out := make([]Member, 0, len(g.members))
	for id, r := range g.members {
		m := r.m
		if id != g.cfg.NodeID && m.State == StateAlive && now.Sub(r.lastAck) > suspectAfter {
			m.State = StateSuspect
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.NodeID < b.NodeID:
			return -1
		case a.NodeID > b.NodeID:
			return 1
		}
		return 0
	})
	return out
}

// TakeSelfClaims returns, and forgets, the replication addresses that
// gossip peers reported for another member with this node's id (name
// conflicts about this node), oldest first. Such a claim is this node's
// previous process, gone or about to be declared dead, or another live
// process configured with this id: the caller tells the two apart by
// asking the address (zab/tcp's ProbeSameID). Join returns after the
// first state exchange, so a claim that peers held then is already here.
func (g *Gossip) TakeSelfClaims() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.selfClaims
	g.selfClaims = nil
	return c
}

// SelfClaimed is signalled (capacity one, never closed) when
// TakeSelfClaims has a new address.
func (g *Gossip) SelfClaimed() <-chan struct{} { return g.selfSig }

// Meta returns the metadata this node advertises.
func (g *Gossip) Meta() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.meta
}

// UpdateMeta changes what this node advertises. NodeID and Cluster cannot
// change (zero means unchanged); a replication address without a specific
// host gets the gossip advertise IP, as in Config.Meta. The change is in
// effect locally at once and spreads by gossip; UpdateMeta does not wait
// for it.
func (g *Gossip) UpdateMeta(m Meta) error {
	m.ReplicationAddr = withHost(m.ReplicationAddr, g.advIP)
	if m.NodeID == 0 {
		m.NodeID = g.cfg.NodeID
	}
	if m.Cluster == "" {
		m.Cluster = g.cfg.Cluster
	}
	if m.NodeID != g.cfg.NodeID || m.Cluster != g.cfg.Cluster {
		return fmt.Errorf("%w: node id and cluster cannot change", ErrInvalidMeta)
	}
	if err := m.check(); err != nil {
		return err
	}
	b, err := encodeMeta(m, false)
	if err != nil {
		return err
	}
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	switch {
	case g.closed:
		g.mu.Unlock()
		return ErrClosed
	case g.left:
		g.mu.Unlock()
		return ErrLeft
	}
	g.meta, g.metaBytes = m, b
	g.mu.Unlock()
	// UpdateNode queues the alive broadcast before it waits; its only error
	// is that the wait for the retransmissions timed out, which is fine.
	_ = g.ml.UpdateNode(time.Nanosecond)
	return nil
}

// Join joins the cluster through the seeds, retrying with exponential
// backoff (from ProbeInterval up to HealInterval, jittered) until one seed
// accepts a state exchange or ctx ends. Without seeds other than itself the
// node is the first of its cluster and Join returns nil at once.
func (g *Gossip) Join(ctx context.Context) error {
	g.mu.Lock()
	closed, left := g.closed, g.left
	g.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case left:
		return ErrLeft
	case len(g.seeds) == 0:
		return nil
	}
	backoff := g.cfg.ProbeInterval
	var last error
	for attempt := 1; ; attempt++ {
		n, err := g.joinAddrs(ctx, g.seeds)
		if n > 0 {
			g.log.Info("joined the gossip", "seeds_reached", n, "attempts", attempt)
			return nil
		}
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrLeft) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			last = err
		}
		if attempt == 1 {
			g.log.Warn("gossip join failed, retrying", "seeds", g.seeds, "err", err)
		} else {
			g.log.Debug("gossip join failed", "attempt", attempt, "err", err)
		}
		g.mu.Lock()
		wait := backoff/2 + time.Duration(g.rng.Int64N(int64(backoff)))
		g.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			if last == nil {
				return fmt.Errorf("%w after %d attempts (seeds %v): %w", ErrNoSeedReachable, attempt, g.seeds, ctx.Err())
			}
			return fmt.Errorf("%w after %d attempts (seeds %v): %w; last error: %w",
				ErrNoSeedReachable, attempt, g.seeds, ctx.Err(), last)
		case <-g.closing:
			timer.Stop()
			return ErrClosed
		case <-timer.C:
		}
		backoff = min(2*backoff, g.cfg.HealInterval)
	}
}

// joinAddrs runs one memberlist join (a TCP state exchange with each
// address) in a tracked goroutine, so ctx can end the wait; the goroutine
// itself ends within TCPTimeout per address.
func (g *Gossip) joinAddrs(ctx context.Context, addrs []string) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	if err := g.goTracked(func() {
		n, err := g.ml.Join(addrs)
		ch <- result{n, err}
	}); err != nil {
		return 0, err
	}
	select {
	case r := <-ch:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-g.closing:
		return 0, ErrClosed
	}
}

// goTracked runs f in a goroutine Close waits for, unless closed or left.
func (g *Gossip) goTracked(f func()) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.left {
		return ErrLeft
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return nil
}

// Leave announces a graceful leave: peers report this node as left rather
// than failed. It waits for the announcement to go out, bounded by ctx (and
// by the TCP timeout when ctx has no deadline); healing and joining stop.
// Call Close afterwards. Leave is idempotent.
func (g *Gossip) Leave(ctx context.Context) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	if g.left {
		g.mu.Unlock()
		return nil
	}
	g.left = true
	g.metaBytes, _ = encodeMeta(g.meta, true) // the current meta encoded before
	g.mu.Unlock()

	budget := g.t.tcpTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl)
	}
	if budget <= 0 {
		return ctx.Err()
	}
	// First the "leaving" metadata, fully retransmitted, because the dead
	// message that follows invalidates any alive broadcast still queued.
	start := time.Now()
	if err := g.ml.UpdateNode(budget / 2); err != nil {
		g.log.Debug("leaving metadata not fully broadcast", "err", err)
	}
	if err := g.ml.Leave(budget - time.Since(start)); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	g.log.Info("left the gossip")
	return nil
}

// Close stops gossip without a leave message (peers will declare this node
// dead; call Leave first to leave gracefully), waits for every goroutine the
// package started, and closes Events. It is idempotent. A state exchange in
// flight when Close is called (Join, healing) cannot be interrupted: with a
// peer that accepts the connection but never answers, Close waits up to
// memberlist's TCP timeout (10 probe intervals, at least 1s).
func (g *Gossip) Close() error {
	g.closeOnce.Do(func() {
		g.opMu.Lock()
		g.mu.Lock()
		g.closed = true
		close(g.closing)
		g.mu.Unlock()
		if err := g.ml.Shutdown(); err != nil {
			g.log.Debug("memberlist shutdown", "err", err)
		}
		g.opMu.Unlock()
		g.wg.Wait()
		// Only the pump sends on events, and it has returned. memberlist
		// may still call a delegate (a suspicion timer firing): emit sees
		// closed and queues nothing.
		close(g.events)
		g.log.Debug("gossip closed")
	})
	return nil
}

// emit queues ev for the pump without blocking; g.mu is held. At most one
// event per member waits: a newer one replaces it, keeping "join" over a
// later "update" so the consumer still learns the member is new. The queue
// is thus bounded by the number of members, and the last event a consumer
// gets for a member always carries its latest state.
func (g *Gossip) emit(ev Event) {
	if g.closed {
		return
	}
	id := ev.Member.NodeID
	if old, ok := g.pendingEv[id]; ok {
		if old.Type == EventJoin && ev.Type == EventUpdate {
			ev.Type = EventJoin
		}
		g.pendingEv[id] = ev
		if g.coalesced.Add(1) == 1 {
			g.log.Debug("gossip event consumer is slow, coalescing events")
		}
		return
	}
	g.pendingEv[id] = ev
	g.pendingIDs = append(g.pendingIDs, id)
	select {
	case g.evSignal <- struct{}{}:
	default:
	}
}

// pumpEvents moves queued events to the Events channel, in arrival order
// (per member), blocking only itself on a slow consumer, until Close.
func (g *Gossip) pumpEvents() {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		if len(g.pendingIDs) == 0 {
			g.mu.Unlock()
			select {
			case <-g.evSignal:
				continue
			case <-g.closing:
				return
			}
		}
		id := g.pendingIDs[0]
		g.pendingIDs = g.pendingIDs[1:]
		ev := g.pendingEv[id]
		delete(g.pendingEv, id)
		g.mu.Unlock()
		select {
		case g.events <- ev:
		case <-g.closing:
			return
		}
	}
}

// warnLimited logs at Warn at most once per key per minute; g.mu is held.
func (g *Gossip) warnLimited(key, msg string, args ...any) {
	now := time.Now()
	if t, ok := g.logged[key]; ok && now.Sub(t) < time.Minute {
		return
	}
	if len(g.logged) > 1024 {
		clear(g.logged)
	}
	g.logged[key] = now
	g.log.Warn(msg, args...)
}

// kickHeal asks the heal loop for a round soon, without blocking.
func (g *Gossip) kickHeal() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}
