package zab

import (
	"errors"
	"fmt"
	"github.com/coord-dev/coord/zab/internal/plant"
	"log/slog"
	"math/rand/v2"
	"slices"
)

// Role is what a peer currently does in the ensemble.
type Role uint8

// Roles, numbered from one so that the zero value means "unknown".
const (
	RoleLooking Role = iota + 1
	RoleFollowing
	RoleLeading
	RoleObserving
)

// String returns ZooKeeper's name for r.
func (r Role) String() string {
	switch r {
	case RoleLooking:
		return "LOOKING"
	case RoleFollowing:
		return "FOLLOWING"
	case RoleLeading:
		return "LEADING"
	case RoleObserving:
		return "OBSERVING"
	}
	return "UNKNOWN"
}

// phase is the Zab phase a leader or learner is in.
type phase uint8

const (
	phaseDiscovery phase = iota
	phaseSync
	phaseBroadcast
)

// SoftState is volatile information about a peer, for the driver's logs
// and for routing client requests.
type SoftState struct {
	Role   Role
	Leader PeerID // zero while looking
	Epoch  uint32 // epoch being established or served, zero while looking
	// Serving is true once the peer can take Propose and Sync: an
	// established leader, or a learner its leader told it is up to date.
	Serving bool
}

// LeadsIn reports whether a request limited to the reign of epoch (0: none,
// any request may go ahead) may go ahead on a peer in state s: it leads,
// established, in epoch (Node.ProposeAsLeader, Node.SyncAsLeader).
func (s SoftState) LeadsIn(epoch uint32) bool {
	return epoch == 0 || (s.Role == RoleLeading && s.Serving && s.Epoch == epoch)
}

// ProposalResult is the outcome of a Propose: Err is nil once the entry
// Zxid has been handed out in CommittedEntries (of this or an earlier Ready).
type ProposalResult struct {
	ID   uint64
	Zxid Zxid
	Err  error
}

// SyncResult is the outcome of a Sync: Err is nil once every entry up to
// Zxid (the leader's commit when it received the request, confirmed by a
// quorum) has been handed out in CommittedEntries.
type SyncResult struct {
	ID   uint64
	Zxid Zxid
	Err  error
}

// Ready is the work a Peer hands to its driver. The driver must, in order:
//
//  1. persist, in one durable write (the group commit): if Reset, HardState
//     then the whole log and every snapshot dropped; Snapshot (replace the
//     log), then Truncate (drop entries after TruncateAfter), then append
//     Entries, then HardState if not empty;
//  2. send Messages (only now: they may acknowledge what step 1 persisted);
//  3. empty the state machine if Reset, restore it from Snapshot if set,
//     then apply CommittedEntries in order;
//  4. report Proposals and Syncs to their callers (they refer to entries
//     applied in step 3 or earlier);
//  5. call Advance.
//
// The driver must not call Step, Tick, Propose or Sync between Ready and
// Advance.
type Ready struct {
	SoftState SoftState
	// HardState is the epochs to persist; zero if unchanged.
	HardState HardState
	// Reset (Peer.Resync) asks to drop the whole durable history and the
	// state machine's state: HardState (currentEpoch zero) is durable
	// first, then every entry and snapshot goes (LogWriter.Wipe) and the
	// state machine restores the zero Snapshot.
	Reset bool
	// Snapshot, if set, replaces the whole log and state machine (SNAP).
	Snapshot *Snapshot
	// Truncate asks to drop every log entry after TruncateAfter (TRUNC).
	Truncate      bool
	TruncateAfter Zxid
	// Entries are to be appended to the log, in zxid order.
	Entries []Entry
	// Messages are to be sent after the persistence above (but see Async).
	Messages []Message
	// CommittedEntries are to be applied, in order, exactly once.
	CommittedEntries []Entry
	// Proposals and Syncs are completed requests.
	Proposals []ProposalResult
	Syncs     []SyncResult
	// Fetch, if set, asks the driver to read back the entries after
	// Fetch.After whose data the storage no longer serves (ErrUnavailable;
	// MemoryStorage.Release) and to hand them to Peer.Fetched. The read
	// must not hold up the driver (Node reads its data directory's log on
	// another goroutine); meanwhile the learners that need them wait. At
	// most one is outstanding.
	Fetch *FetchRequest
	// Async marks a Ready of an established leader, or of a learner
	// serving one, that persists nothing but Entries (possibly none): it
	// may be carried out without waiting for Entries to be durable (see
	// Executor.ExecuteAsync and AsyncLog). Its acknowledgements (MsgAck)
	// go once Entries and every earlier write are durable, its other
	// messages at once (they never vouch for this peer's log), and Advance
	// may follow before; the driver then reports the durable end with
	// Peer.Persisted. Until then the peer does not count itself in a
	// quorum for the entries, nor apply them. ZooKeeper logs proposals on
	// a thread of its own (SyncRequestProcessor) the same way.
	Async bool
}

// FetchRequest asks a driver for the entries after After (Ready.Fetch).
type FetchRequest struct {
	Seq   uint64 // numbers the requests of one Peer
	After Zxid
}

type waitingProp struct {
	zxid Zxid
	id   uint64
}

type readWait struct {
	id    uint64
	index Zxid
}

type fwdProp struct {
	data   []byte
	sent   bool
	sentAt uint64
	tries  uint8 // retransmissions so far: each waits twice as long
}

// maxFwdBackoff caps the doubling of a forward's retransmission interval
// (RetryTicks << maxFwdBackoff at most).
const maxFwdBackoff = 3

// retransmitDue reports whether an unanswered forward is due again: after
// RetryTicks, doubling with each retransmission, so a leader slow to take
// in large writes is not buried under copies of them.
func (p *Peer) retransmitDue(fp *fwdProp) bool {
	return p.now-fp.sentAt >= uint64(p.cfg.RetryTicks)<<min(fp.tries, maxFwdBackoff)
}

// Peer is the deterministic Zab protocol core of one ensemble member:
// ZooKeeper's fast leader election, then Zab 1.0 discovery, synchronisation
// and broadcast. It starts no goroutine, reads no clock and does no I/O: the
// driver feeds it messages (Step), time (Tick) and requests (Propose, Sync),
// and carries out its Ready. A Peer is not safe for concurrent use; one
// goroutine owns it.
type Peer struct {
	id        PeerID
	inc       uint64 // Config.Incarnation
	cfg       Config
	voters    MajorityConfig // the newest configuration in the log
	confs     []confAt       // configurations in the log, the first at its base
	confGuess bool           // confs is only Config.Voters: nothing durable or synced set it
	confDirty bool           // voters changed: checkRole must look at our role
	rand      *rand.Rand
	idRand    *rand.Rand // draws a new cluster's id (apart, so rand's sequence is the election's alone)
	logger    *slog.Logger

	log            zlog
	hs             HardState
	hsDirty        bool
	inAsyncReady   bool   // the Ready being carried out is Async
	persisting     bool   // entries after stableLast may not be durable yet (Async)
	durableCurrent uint32 // currentEpoch known to be persisted
	stableLast     Zxid   // last zxid known to be persisted
	snapApplied    Zxid   // the last snapshot installed from a leader (SNAP)
	// sawHistory: a member of the cluster (HardState.Member) spoke to us.
	// Empty ourselves, we are then not bootstrapping but lost our disk or
	// never joined: see unsynced.
	sawHistory bool
	foreign    map[PeerID]bool // peers of another cluster, logged once

	now    uint64
	role   Role
	leader PeerID
	epoch  uint32
	phase  phase

	el   election
	lead *leaderState
	// refusedBelow is the highest epoch a learner had accepted above the
	// epoch this peer led, making it stand down: the next epoch it decides
	// goes above it (not durable: a higher epoch is always allowed).
	refusedBelow uint32
	lrn          *learnerState

	msgs     []Message
	props    []ProposalResult
	syncs    []SyncResult
	waiting  []waitingProp // proposals with a zxid, sorted by zxid
	readWait []readWait
	fwdProps map[uint64]*fwdProp
	fwdOrder []uint64          // ids of fwdProps (and settled ones) in submission order
	fwdSyncs map[uint64]uint64 // id -> tick sent
	fwdConfs map[uint64]*fwdConf
	inReady  bool
	// snapSent counts the snapshot chunk bytes this peer sent as a
	// leader, snapRecv those it took in as a learner (in order, each once).
	snapSent, snapRecv uint64
	// mistake is a protocol mistake planted by the simulator (zab/zabtest)
	// through its Storage; always plant.None in production.
	mistake plant.Mistake
}

// NewPeer validates and copies cfg and returns a peer that starts looking
// for a leader.
func NewPeer(cfg Config) (*Peer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	hs, err := cfg.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("zab: reading initial state: %w", err)
	}
	p := &Peer{
		id:             cfg.ID,
		inc:            cfg.Incarnation,
		cfg:            cfg,
		voters:         NewMajorityConfig(cfg.Voters...),
		rand:           cfg.Rand,
		idRand:         rand.New(rand.NewPCG(cfg.Seed^0x636c7573746572, uint64(cfg.ID))),
		foreign:        map[PeerID]bool{},
		logger:         cfg.Logger.With("peer", cfg.ID),
		hs:             hs,
		durableCurrent: hs.CurrentEpoch,
		fwdProps:       map[uint64]*fwdProp{},
		fwdSyncs:       map[uint64]uint64{},
		fwdConfs:       map[uint64]*fwdConf{},
	}
	if p.inc == 0 {
		// Its own stream, so the election's jitter keeps its schedule.
		r := rand.New(rand.NewPCG(cfg.Seed^0x696e6361726e, uint64(cfg.ID)))
		for p.inc == 0 {
			p.inc = r.Uint64()
		}
	}
	p.log.storage = cfg.Storage
	if c, ok := cfg.Storage.(plant.Carrier); ok {
		p.mistake = c.PlantedMistake()
	}
	snap, err := cfg.Storage.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("zab: reading snapshot: %w", err)
	}
	p.log.committed = snap.Zxid
	p.log.applied = snap.Zxid
	if cfg.Applied > p.log.applied {
		last, err := cfg.Storage.LastZxid()
		if err != nil {
			return nil, fmt.Errorf("zab: reading last zxid: %w", err)
		}
		if cfg.Applied > last {
			return nil, fmt.Errorf("%w: Applied %v beyond last zxid %v", ErrInvalidConfig, cfg.Applied, last)
		}
		// What the state machine applied was committed.
		p.log.committed, p.log.applied = cfg.Applied, cfg.Applied
	}
	p.stableLast = p.log.last()
	// A member without a current epoch threw its history away (Resync)
	// and restarted before a leader synced it: it still knows the
	// cluster has members.
	p.sawHistory = p.hs.Member && p.empty()
	if err := p.initConfig(snap); err != nil {
		return nil, err
	}
	p.becomeLooking()
	return p, nil
}

// ID returns the peer's id.
func (p *Peer) ID() PeerID { return p.id }

// SoftState returns the peer's current role, leader and epoch.
func (p *Peer) SoftState() SoftState {
	return SoftState{Role: p.role, Leader: p.leader, Epoch: p.epoch, Serving: p.serving()}
}

// HardState returns the epochs as the core currently knows them (possibly
// not yet persisted).
func (p *Peer) HardState() HardState { return p.hs }

// LastZxid returns the zxid of the last entry of the peer's log.
func (p *Peer) LastZxid() Zxid { return p.log.last() }

// Committed returns the highest zxid the peer knows is committed.
func (p *Peer) Committed() Zxid { return p.log.committed }

func (p *Peer) serving() bool {
	switch p.role {
	case RoleLeading:
		return p.lead.established
	case RoleFollowing, RoleObserving:
		return p.lrn.serving
	}
	return false
}

// isObserver reports whether the configuration leaves this peer out of the
// voters: any peer that is not a voter observes.
func (p *Peer) isObserver() bool { return !p.voters.Contains(p.id) }

func (p *Peer) send(m Message) {
	m.From = p.id
	p.msgs = append(p.msgs, m)
}

func (p *Peer) setAccepted(e uint32) {
	if e != p.hs.AcceptedEpoch {
		p.hs.AcceptedEpoch = e
		p.hsDirty = true
	}
}

func (p *Peer) setClusterID(id uint64) {
	if id != p.hs.ClusterID {
		p.hs.ClusterID = id
		p.hsDirty = true
	}
}

func (p *Peer) setFixed() {
	if !p.hs.Fixed {
		p.hs.Fixed = true
		p.hsDirty = true
	}
}

func (p *Peer) setMember() {
	if !p.hs.Member {
		p.hs.Member = true
		p.hsDirty = true
	}
}

// empty reports whether this peer holds no synchronised history (its
// current epoch is zero): a new node, or one whose data directory was lost.
func (p *Peer) empty() bool { return p.hs.CurrentEpoch == 0 }

// unsynced reports whether this peer is empty while members of the
// cluster exist (it heard from one): its disk was lost, or it never
// joined. Counting it could elect a leader without writes it had
// acknowledged before the loss, so it neither stands nor counts for a
// member (members ignore empty voters' votes and acknowledgements: see
// counts and learnerInfo.unsynced) until an established leader has synced
// it.
func (p *Peer) unsynced() bool { return p.empty() && p.sawHistory }

// noteSender learns what a vote or FOLLOWERINFO says of its sender: that
// the cluster has members, and whether the sender belongs to another
// cluster (established epochs fixed both ids, and they differ), in which
// case the message must be ignored (false).
func (p *Peer) noteSender(m Message) bool {
	if m.Fixed && p.hs.Fixed && m.Cluster != p.hs.ClusterID {
		if !p.foreign[m.From] {
			p.foreign[m.From] = true
			p.logger.Error("zab: ignoring a peer of another cluster (same id, other data directory?)",
				"peer", m.From, "its_cluster_id", fmt.Sprintf("%016x", m.Cluster),
				"our_cluster_id", fmt.Sprintf("%016x", p.hs.ClusterID))
		}
		return false
	}
	if m.Member && p.empty() && !p.sawHistory {
		p.sawHistory = true
		if p.voters.Contains(p.id) {
			p.logger.Warn("zab: voter without synchronised history in a cluster that has members "+
				"(lost data directory, or never joined): not voting until an established leader has synced it",
				"member", m.From)
		}
		if p.role == RoleLooking && p.el.candidate {
			p.el.candidate = false
			delete(p.el.recv, p.id)
			p.el.finalizeAt = 0
		}
	}
	return true
}

// ErrResyncLeader is returned by Resync on a leader: it has nobody to
// synchronise from.
var ErrResyncLeader = errors.New("zab: a leader cannot resynchronise")

// Resync throws away this peer's whole history (its log, its snapshot and,
// through Ready.Reset, the state machine's state) and has it synchronise
// again from nothing with an established leader, as a new learner whose
// log cannot be diffed: the leader sends a SNAP, or every entry if its log
// still starts at zero. It is for a replica found to differ from its
// leader (the application's digest check): what it holds cannot be
// trusted, so nothing of it is diffed against.
//
// It is safe for a voter, by the lost-disk rule: currentEpoch becomes zero
// and is durable before anything is dropped, so until an established
// leader has synced it again the peer neither stands nor counts (its votes
// and acknowledgements count for nothing at members, see unsynced and
// counts), and it never vouches for zxids it no longer holds. Requests
// waiting here fail (writes with ErrOutcomeUnknown). The peer starts
// looking for the leader at once, under a new incarnation (Config.
// Incarnation + 1) so that its acknowledgements from before cannot be
// taken for new ones. A leader refuses with ErrResyncLeader, a peer that
// does not serve an established leader with ErrNoLeader.
//
// Like lost disks, resynchronisations must not overlap on a quorum: an
// empty voter counts for nothing, so while a majority of the voters is
// empty (resyncing, or never synced), no leader can be established to sync
// them, and an operator must bring back a voter that still holds the
// history.
func (p *Peer) Resync() error {
	p.mustNotBeInReady()
	if p.role == RoleLeading {
		return ErrResyncLeader
	}
	if p.lrn == nil || !p.lrn.serving {
		// Only with an established leader to sync from at hand: an empty
		// voter counts for nothing until one has synced it.
		return ErrNoLeader
	}
	p.logger.Warn("zab: throwing away this peer's history to resynchronise from the leader",
		"last", p.log.last(), "current_epoch", p.hs.CurrentEpoch)
	p.failForwarded()
	for _, w := range p.waiting {
		p.props = append(p.props, ProposalResult{ID: w.id, Zxid: w.zxid, Err: ErrOutcomeUnknown})
	}
	p.waiting = nil
	for _, r := range p.readWait {
		p.syncs = append(p.syncs, SyncResult{ID: r.id, Err: ErrLeaderLost})
	}
	p.readWait = nil
	p.log.wipe()
	p.snapApplied, p.stableLast = 0, 0
	p.setCurrent(0)
	p.hsDirty = true // Ready.Reset persists HardState first, changed or not
	p.sawHistory = true
	// The configuration in force stays this peer's guess until a leader's
	// synchronisation says which one it is.
	p.confs = []confAt{{zxid: 0, voters: sortedIDs(p.voters.IDs())}}
	p.confGuess = true
	p.inc++
	if p.inc == 0 {
		p.inc = 1
	}
	p.becomeLooking()
	return nil
}

// counts reports whether a vote or acknowledgement from a voter whose
// current epoch is current counts here: an empty voter's counts only while
// we are no member either (the cluster may be bootstrapping).
func (p *Peer) counts(current uint32) bool {
	return current > 0 || !p.hs.Member || p.mistake == plant.CountEmptyVoters // planted by zab/zabtest only
}

func (p *Peer) setCurrent(e uint32) {
	if e != p.hs.CurrentEpoch {
		p.hs.CurrentEpoch = e
		p.hsDirty = true
	}
}

// Tick advances the peer's clock by one tick: it re-sends votes, pings and
// stalled requests, and gives up on silent leaders or followers.
func (p *Peer) Tick() {
	p.mustNotBeInReady()
	p.now++
	defer p.checkRole()
	switch p.role {
	case RoleLooking:
		p.tickLooking()
	case RoleLeading:
		p.tickLeader()
	case RoleFollowing, RoleObserving:
		p.tickLearner()
	}
}

// Step feeds the peer one message from the network. It returns
// ErrUnknownPeer for a message not addressed to this peer or without a
// valid sender, and ErrBadMessage for a malformed one; such messages change
// nothing. Stale, duplicated or unexpected messages are ignored. Any sender
// the transport authenticated may talk to the peer: one outside the voters
// is treated as an observer (only voters' votes and acknowledgements count).
func (p *Peer) Step(m Message) error {
	p.mustNotBeInReady()
	if m.To != p.id || m.From == p.id || m.From == 0 {
		return fmt.Errorf("%w: message %v from %d to %d", ErrUnknownPeer, m.Type, m.From, m.To)
	}
	for i, e := range m.Entries {
		if m.Type == MsgPropose || m.Type == MsgProposeResp {
			break // not a log: entries pair with ReqIDs
		}
		if (i == 0 && e.Zxid <= m.Prev) || (i > 0 && e.Zxid <= m.Entries[i-1].Zxid) {
			return fmt.Errorf("%w: %v from %d has entries out of order", ErrBadMessage, m.Type, m.From)
		}
	}
	if (m.Type == MsgPropose || m.Type == MsgProposeResp) && len(m.ReqIDs) != len(m.Entries) {
		return fmt.Errorf("%w: %v from %d pairs %d ids with %d entries", ErrBadMessage, m.Type, m.From,
			len(m.ReqIDs), len(m.Entries))
	}
	if m.Type == MsgReconfig && (m.Change != ConfAddVoter && m.Change != ConfRemoveVoter || m.Target == 0) {
		return fmt.Errorf("%w: %v from %d with change %d of peer %d", ErrBadMessage, m.Type, m.From, m.Change, m.Target)
	}
	if (m.Type == MsgVote || m.Type == MsgFollowerInfo) && !p.noteSender(m) {
		return nil
	}
	defer p.checkRole()
	switch p.role {
	case RoleLooking:
		p.stepLooking(m)
	case RoleLeading:
		p.stepLeader(m)
	case RoleFollowing, RoleObserving:
		p.stepLearner(m)
	}
	return nil
}

// Propose submits data for replication under the caller's request id, which
// must be unique and increasing for this peer in its incarnation
// (Config.Incarnation): the leader deduplicates retransmitted forwards by
// incarnation and id, and drops ids below the lowest one the learner still
// waits for. A counter from 1 per run does; no clock is needed. A leader assigns the zxid at once; a learner
// forwards it (batched with others at the next Ready) to its leader and
// retransmits until answered. The outcome arrives in a later Ready's
// Proposals. Propose returns ErrNoLeader (and nothing is sent) when the peer
// serves no established leader, and ErrEntryTooLarge for data above
// MaxEntrySize.
func (p *Peer) Propose(id uint64, data []byte) error {
	p.mustNotBeInReady()
	if len(data) > MaxEntrySize {
		return ErrEntryTooLarge
	}
	switch p.role {
	case RoleLeading:
		if !p.lead.established || p.lead.exhausted {
			return ErrNoLeader
		}
		z := p.leaderAppend(Entry{Data: p.stamp(data)})
		p.addWaiting(z, id)
		return nil
	case RoleFollowing, RoleObserving:
		if !p.lrn.serving {
			return ErrNoLeader
		}
		// Sent with the other new forwards at the next Ready (batched).
		p.fwdProps[id] = &fwdProp{data: data}
		p.fwdOrder = append(p.fwdOrder, id)
		p.lrn.fwdDue = true
		return nil
	}
	return ErrNoLeader
}

// Sync asks for a linearizable read barrier under the caller's request id:
// its SyncResult arrives once the local state machine has applied
// everything the leader had committed when the request reached it, and the
// leader confirmed with a quorum that it still leads. Sync returns
// ErrNoLeader when the peer serves no established leader.
func (p *Peer) Sync(id uint64) error {
	p.mustNotBeInReady()
	switch p.role {
	case RoleLeading:
		if !p.lead.established {
			return ErrNoLeader
		}
		p.leaderRead(p.id, id)
		return nil
	case RoleFollowing, RoleObserving:
		if !p.lrn.serving {
			return ErrNoLeader
		}
		p.fwdSyncs[id] = p.now
		p.send(Message{Type: MsgSyncReq, To: p.leader, Epoch: p.epoch, ReqID: id})
		return nil
	}
	return ErrNoLeader
}

// stamp applies Config.Stamp to the data of a write this leader appends.
func (p *Peer) stamp(data []byte) []byte {
	if p.cfg.Stamp == nil {
		return data
	}
	return p.cfg.Stamp(data)
}

func (p *Peer) mustNotBeInReady() {
	if p.inReady {
		panic("zab: Peer used between Ready and Advance")
	}
}

// HasReady reports whether Ready has anything to do.
func (p *Peer) HasReady() bool {
	p.flush()
	return p.hsDirty || p.log.hasUnstable() || len(p.msgs) > 0 || p.log.wantFetch ||
		p.applyLimit() > p.log.applied || len(p.props) > 0 || len(p.syncs) > 0
}

// applyLimit is the last committed zxid a Ready may hand out for applying:
// for an Async Ready, or while entries of one may not be durable yet, only
// what is known durable (the state machine never reflects an entry this
// peer's log does not hold durably); otherwise every committed entry,
// since the Ready's own entries are durable before they are applied (the
// executor's order).
func (p *Peer) applyLimit() Zxid {
	if (p.persisting || p.asyncReady()) && p.stableLast < p.log.committed && p.mistake != plant.LeaderApplyBeforeDurable {
		return p.stableLast
	}
	return p.log.committed
}

// asyncReady reports whether the next Ready is Async.
func (p *Peer) asyncReady() bool {
	switch p.role {
	case RoleLeading:
		if !p.lead.established {
			return false
		}
	case RoleFollowing, RoleObserving:
		if !p.lrn.serving {
			return false
		}
	default:
		return false
	}
	return !p.hsDirty && !p.log.wiped && p.log.snap == nil && !p.log.truncated
}

// Ready returns the work accumulated since the last Advance. See Ready for
// the order in which the driver must carry it out. Advance must follow.
func (p *Peer) Ready() Ready {
	p.mustNotBeInReady()
	p.flush()
	rd := Ready{SoftState: p.SoftState(), Entries: p.log.ents, Messages: p.msgs, Reset: p.log.wiped}
	if p.hsDirty {
		rd.HardState = p.hs
	}
	if p.log.snap != nil {
		s := *p.log.snap
		rd.Snapshot = &s
	}
	rd.Truncate, rd.TruncateAfter = p.log.truncated, p.log.truncAt
	p.msgs = nil
	rd.Async = p.asyncReady()
	if limit := p.applyLimit(); limit > p.log.applied {
		ents, err := p.log.entries(p.log.applied, limit, 0)
		if err != nil {
			panic(fmt.Errorf("zab: committed entries after %v unavailable: %w", p.log.applied, err))
		}
		rd.CommittedEntries = ents
		p.applied(ents)
	}
	rd.Fetch = p.log.takeFetch()
	rd.Proposals, rd.Syncs = p.props, p.syncs
	p.props, p.syncs = nil, nil
	p.inReady, p.inAsyncReady = true, rd.Async
	return rd
}

// Advance tells the peer the last Ready has been carried out: its state is
// durable (an Async Ready's entries are only written to the storage the
// peer reads: Persisted says when they are durable), its messages sent and
// its entries applied.
func (p *Peer) Advance() {
	if !p.inReady {
		panic("zab: Advance without Ready")
	}
	p.inReady = false
	p.log.stable()
	if p.inAsyncReady {
		p.inAsyncReady = false
		if p.stableLast < p.log.last() {
			p.persisting = true
		}
		return
	}
	p.persisting = false
	if p.hsDirty {
		p.hsDirty = false
		p.durableCurrent = p.hs.CurrentEpoch
	}
	last, err := p.log.storage.LastZxid()
	mustStorage(err)
	p.stableLast = last
	if p.role == RoleLeading {
		p.leaderDurable()
	}
}

// Persisted tells the peer that its log is durable up to z: the entries of
// Async Readys written after their Advance. A leader may count itself in a
// quorum for them, and any peer apply them once committed. A report of
// what is already known durable, or beyond the log, is ignored. A Ready
// that is not Async is carried out only once every earlier write is
// durable (AsyncLog.Flush), and its Advance covers them: the driver must
// not report the writes it flushed afterwards (the log may have changed
// since).
func (p *Peer) Persisted(z Zxid) {
	p.mustNotBeInReady()
	if z <= p.stableLast || z > p.log.last() {
		return
	}
	p.stableLast = z
	p.persisting = z < p.log.last()
	if p.role == RoleLeading {
		p.leaderDurable()
	}
}

// applied records that ents are handed out for applying and completes the
// requests waiting for them.
func (p *Peer) applied(ents []Entry) {
	for _, e := range ents {
		for len(p.waiting) > 0 && p.waiting[0].zxid <= e.Zxid {
			w := p.waiting[0]
			p.waiting = p.waiting[1:]
			var err error
			if w.zxid != e.Zxid {
				// The committed order moved past w without it.
				err = ErrProposalDropped
			}
			p.props = append(p.props, ProposalResult{ID: w.id, Zxid: w.zxid, Err: err})
		}
	}
	if n := len(ents); n > 0 {
		p.log.applied = ents[n-1].Zxid
	}
	p.resolveReads()
}

func (p *Peer) resolveReads() {
	keep := p.readWait[:0]
	for _, r := range p.readWait {
		if r.index <= p.log.applied {
			p.syncs = append(p.syncs, SyncResult{ID: r.id, Zxid: r.index})
		} else {
			keep = append(keep, r)
		}
	}
	p.readWait = keep
}

// snapshotInstalled completes requests a snapshot jumped over.
func (p *Peer) snapshotInstalled(s Zxid) {
	p.snapApplied = s
	for len(p.waiting) > 0 && p.waiting[0].zxid <= s {
		w := p.waiting[0]
		p.waiting = p.waiting[1:]
		p.props = append(p.props, ProposalResult{ID: w.id, Zxid: w.zxid, Err: ErrOutcomeUnknown})
	}
	p.resolveReads()
}

// dropStaleWaiting fails the proposals of older epochs that the history
// of the epoch now served does not hold: they can never commit. Without it
// they would wait for a later commit to pass them, which may never come.
func (p *Peer) dropStaleWaiting() {
	keep := p.waiting[:0]
	for _, w := range p.waiting {
		if w.zxid.Epoch() < p.epoch && !p.log.contains(w.zxid) {
			p.props = append(p.props, ProposalResult{ID: w.id, Zxid: w.zxid, Err: ErrProposalDropped})
		} else {
			keep = append(keep, w)
		}
	}
	p.waiting = keep
}

// addWaiting registers a proposal whose zxid is known.
func (p *Peer) addWaiting(z Zxid, id uint64) {
	if z <= p.log.applied {
		// Already handed out (the answer raced the commit): look it up.
		var err error
		switch f, ferr := p.log.floor(z); {
		case ferr != nil, z <= p.snapApplied:
			// Compacted, or reached through a snapshot: the entry was never
			// handed out, so its result is not known here.
			err = ErrOutcomeUnknown
		case f != z:
			err = ErrProposalDropped
		}
		p.props = append(p.props, ProposalResult{ID: id, Zxid: z, Err: err})
		return
	}
	i, _ := slices.BinarySearchFunc(p.waiting, z, func(w waitingProp, z Zxid) int { return cmpZxid(w.zxid, z) })
	p.waiting = slices.Insert(p.waiting, i, waitingProp{zxid: z, id: id})
}

func (p *Peer) addReadWait(id uint64, index Zxid) {
	p.readWait = append(p.readWait, readWait{id: id, index: index})
	p.resolveReads()
}

// failForwarded fails the requests a learner forwarded to a leader it lost.
func (p *Peer) failForwarded() {
	for _, id := range sortedKeys(p.fwdProps) {
		p.props = append(p.props, ProposalResult{ID: id, Err: ErrOutcomeUnknown})
	}
	for _, id := range sortedKeys(p.fwdSyncs) {
		p.syncs = append(p.syncs, SyncResult{ID: id, Err: ErrLeaderLost})
	}
	for _, id := range sortedKeys(p.fwdConfs) {
		p.props = append(p.props, ProposalResult{ID: id, Err: ErrOutcomeUnknown})
	}
	clear(p.fwdProps)
	p.fwdOrder = nil
	clear(p.fwdSyncs)
	clear(p.fwdConfs)
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// flush turns pending leader work into messages (batched per Ready).
func (p *Peer) flush() {
	if p.inReady {
		return
	}
	switch p.role {
	case RoleLeading:
		p.leaderFlush()
	case RoleFollowing, RoleObserving:
		p.learnerFlush()
	}
}
