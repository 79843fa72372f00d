package zab

import (
	"errors"
	"fmt"
	"slices"

	"github.com/coord-dev/coord/zab/internal/plant"
)

// LogWriter is the durable side of a peer's storage: what a driver writes
// while it carries out a Ready, and what survives a crash. Node writes it to
// its data directory (and to the MemoryStorage the core reads); the
// simulator (zab/zabtest) writes an in-memory one that keeps, when a peer
// crashes, exactly what was durable. MemoryStorage implements it.
//
// Every method returns once its write is durable. A crash in the middle of
// one may keep a prefix of its records (for Append, a prefix of the
// entries; for SetHardState, acceptedEpoch without currentEpoch), never
// anything out of order.
type LogWriter interface {
	// SaveSnapshot stores a snapshot received from a leader (SNAP) and leaves
	// the log alone: ResetLog follows. A crash between the two leaves a
	// snapshot newer than the log's last entry, which recovery resolves by
	// dropping the log.
	SaveSnapshot(s Snapshot) error
	// ResetLog drops every entry: the log goes on after base, the zxid of
	// the snapshot just saved.
	ResetLog(base Zxid) error
	// TruncateAfter drops every entry after z (TRUNC).
	TruncateAfter(z Zxid) error
	// Append writes ents after the last entry, all in one durable write (the
	// group commit).
	Append(ents []Entry) error
	// SetHardState records the epochs, acceptedEpoch before currentEpoch.
	SetHardState(hs HardState) error
	// Wipe drops every entry and every snapshot: the log starts again from
	// zero, as a new node's (Ready.Reset; the zeroed currentEpoch is durable
	// before it).
	Wipe() error
}

// AsyncLog is a LogWriter that writes an Async Ready's entries after
// Advance, so that the driver goes on stepping while its log is written.
// The driver reports the durable end with Peer.Persisted as each write
// completes, but never a write that Flush waited for.
type AsyncLog interface {
	LogWriter
	// StartAppend makes ents readable at once in the storage the core
	// reads and durable later, after every earlier append (one durable
	// write may cover several), and then sends then (the Ready's
	// acknowledgements), in order; with nothing started and ents empty,
	// at once. A crash may keep a prefix of what was started and not yet
	// durable, and sends none of what follows it.
	StartAppend(ents []Entry, then []Message) error
	// Flush returns once everything started is durable and what followed
	// it sent, or with the error that stopped a write (the driver must
	// stop: its durable state is unknown).
	Flush() error
}

// Applier is what a Ready's snapshot and committed entries go to: the state
// machine as the executor sees it.
type Applier interface {
	// Apply applies a committed entry (never a configuration entry) and
	// returns its response for the entry's proposer.
	Apply(e Entry) any
	// Restore replaces the whole state with a snapshot. The zero Snapshot
	// (Ready.Reset) empties the state.
	Restore(s Snapshot) error
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// Peer is the core whose Readys are carried out.
	Peer *Peer
	// Log receives what a Ready persists.
	Log LogWriter
	// Send queues a message. ErrQueueFull marks its peer unreachable: the
	// executor reports it to the core after Advance. Other errors are the
	// transport's business (messages may be lost).
	Send func(Message) error
	// StateMachine receives snapshots and committed entries.
	StateMachine Applier
	// OnProposal receives completed writes, each with the response Apply
	// returned for its entry (see Executor.Finish); OnSync completed
	// Syncs. Nil ignores them.
	OnProposal func(r ProposalResult, resp any)
	OnSync     func(SyncResult)
	// Applied is the last zxid the state machine reflects at start.
	Applied Zxid
}

// Executor carries out a Peer's Readys in the one order zab defines (see
// Ready), for every driver: Node and the simulator (zab/zabtest) share it,
// so the simulator checks the order that ships. Execute does it all at
// once; a driver that models a slow disk calls Early, then later Persist
// and Finish, or ExecuteAsync for an Async Ready. The order below is a
// Ready's that is not Async; Persist first waits for the writes of earlier
// Async Readys (AsyncLog.Flush).
//
// The order: the leader's PROPOSALs and INFORMs first (they promise nothing
// about its own log: the core counts the leader in a quorum only once its
// copy is durable, at Advance), so followers write while the leader does;
// then, when the Ready only appends entries, the committed entries that
// were durable here before it (they come before the appended ones) are
// applied and their requests completed, so a write's caller does not wait
// for the fsync of the writes proposed after it; then the persistence,
// each step durable before the next: a SNAP's snapshot, then the emptied
// log; a TRUNC; the entries (one write); the epochs; then every other
// message, which may acknowledge what was just persisted; then the
// snapshot restored and the rest of the committed entries applied; then
// the rest of the completed requests; then Advance. The state machine
// never reflects an entry that is not durable in this peer's log.
type Executor struct {
	cfg         ExecutorConfig
	applied     Zxid
	entries     uint64
	early       bool          // Early ran for the Ready being executed
	nEarly      int           // committed entries of that Ready Early applied
	earlyLast   Zxid          // the last of them (0: none)
	resps       []appliedResp // responses of the entries the current Ready applied
	written     Zxid          // the end of an Async Ready's entries written durably here (0: none)
	unreachable []PeerID
	mistake     plant.Mistake // planted by the simulator only (plant.Carrier)
}

// appliedResp is the response of one entry applied in the current Ready.
type appliedResp struct {
	zxid Zxid
	resp any
}

// NewExecutor returns an executor for cfg.
func NewExecutor(cfg ExecutorConfig) *Executor {
	x := &Executor{cfg: cfg, applied: cfg.Applied}
	if c, ok := cfg.Log.(plant.Carrier); ok {
		x.mistake = c.PlantedMistake()
	}
	return x
}

// Applied returns the last zxid handed to the state machine (or the
// snapshot restored).
func (x *Executor) Applied() Zxid { return x.applied }

// Entries returns how many committed entries (configuration entries
// included) were handed out since the executor started.
func (x *Executor) Entries() uint64 { return x.entries }

// Execute carries out rd completely: Early, Persist, Finish, or for an
// Async Ready ExecuteAsync. On a persistence error it returns at once,
// without Advance: the driver must stop the peer (its durable state is
// unknown).
func (x *Executor) Execute(rd Ready) error {
	if rd.Async {
		return x.ExecuteAsync(rd)
	}
	x.Early(rd)
	if err := x.Persist(rd); err != nil {
		return err
	}
	return x.Finish(rd)
}

// ExecuteAsync carries out an Async Ready without waiting for its entries
// to be durable: its messages go but for its acknowledgements, its entries
// and acknowledgements go to the log (AsyncLog.StartAppend; a LogWriter
// that is not an AsyncLog writes them here, the acknowledgements follow,
// and the executor reports them durable after Advance), the committed
// entries are applied (the core hands out only what the log holds
// durably) and the completed requests answered, then Advance.
func (x *Executor) ExecuteAsync(rd Ready) error {
	var acks []Message
	for _, m := range rd.Messages {
		if m.Type == MsgAck {
			acks = append(acks, m)
		} else {
			x.send(m)
		}
	}
	if a, ok := x.cfg.Log.(AsyncLog); ok {
		if len(rd.Entries) > 0 || len(acks) > 0 {
			if err := a.StartAppend(rd.Entries, acks); err != nil {
				return err
			}
		}
	} else {
		if len(rd.Entries) > 0 {
			if err := x.cfg.Log.Append(rd.Entries); err != nil {
				return err
			}
			x.written = rd.Entries[len(rd.Entries)-1].Zxid
		}
		for _, m := range acks {
			x.send(m)
		}
	}
	rd.Messages = nil // sent above or handed to the log: Finish sends none
	return x.Finish(rd)
}

// flush waits for the appends of earlier Async Readys: every other Ready is
// carried out on a log that holds them durably.
func (x *Executor) flush() error {
	if a, ok := x.cfg.Log.(AsyncLog); ok {
		return a.Flush()
	}
	return nil
}

// Early does what may precede rd's persistence: it sends rd's PROPOSALs and
// INFORMs, which may leave before the leader's own write, and, when rd only
// appends entries (no reset, snapshot, truncation or epochs), applies the
// committed entries before the first appended one (durable here already,
// written by an earlier Ready) up to the first configuration entry, and
// completes the requests they answer.
func (x *Executor) Early(rd Ready) {
	for _, m := range rd.Messages {
		if early(m) {
			x.send(m)
		}
	}
	x.early = true
	if !appendsOnly(rd) {
		return
	}
	first := rd.Entries[0].Zxid
	for _, e := range rd.CommittedEntries {
		if e.Zxid >= first && x.mistake != plant.ApplyBeforeDurable || e.IsConfig() || e.Zxid <= x.applied {
			break
		}
		x.apply(e)
		x.nEarly++
		x.earlyLast = e.Zxid
	}
	if x.nEarly == 0 || x.cfg.OnProposal == nil {
		return
	}
	for _, r := range rd.Proposals {
		if x.earlyDone(r) {
			resp, _ := x.responseOf(r.Zxid)
			x.cfg.OnProposal(r, resp)
		}
	}
}

// appendsOnly reports whether rd's persistence is an append of entries and
// nothing else: the case where Early applies what was durable before it.
func appendsOnly(rd Ready) bool {
	return len(rd.Entries) > 0 && !rd.Reset && rd.Snapshot == nil && !rd.Truncate && rd.HardState.IsEmpty()
}

// earlyDone reports whether Early completes r: a write whose entry Early
// applied in the current Ready.
func (x *Executor) earlyDone(r ProposalResult) bool {
	if r.Err != nil || r.Zxid == 0 || r.Zxid > x.earlyLast {
		return false
	}
	_, err := x.responseOf(r.Zxid)
	return err == nil
}

// apply hands e to the state machine (a configuration entry only moves the
// applied zxid) and keeps its response for the Ready's proposals.
func (x *Executor) apply(e Entry) {
	var resp any
	if !e.IsConfig() {
		resp = x.cfg.StateMachine.Apply(e)
	}
	x.resps = append(x.resps, appliedResp{zxid: e.Zxid, resp: resp})
	x.applied = e.Zxid
	x.entries++
}

func early(m Message) bool { return m.Type == MsgProposal || m.Type == MsgInform }

func (x *Executor) send(m Message) {
	if err := x.cfg.Send(m); errors.Is(err, ErrQueueFull) && !slices.Contains(x.unreachable, m.To) {
		x.unreachable = append(x.unreachable, m.To)
	}
}

// Persist writes what rd persists, each step durable before the next: a
// SNAP's snapshot, then the emptied log; the truncation; the entries; the
// epochs.
func (x *Executor) Persist(rd Ready) error {
	if err := x.flush(); err != nil {
		return err
	}
	l := x.cfg.Log
	if rd.Reset {
		// currentEpoch zero is durable before anything is dropped: from
		// then on this peer counts as an empty voter (Peer.Resync).
		if err := l.SetHardState(rd.HardState); err != nil {
			return err
		}
		if err := l.Wipe(); err != nil {
			return err
		}
	}
	if s := rd.Snapshot; s != nil {
		if err := l.SaveSnapshot(*s); err != nil {
			return err
		}
		if err := l.ResetLog(s.Zxid); err != nil {
			return err
		}
	}
	if rd.Truncate {
		if err := l.TruncateAfter(rd.TruncateAfter); err != nil {
			return err
		}
	}
	if len(rd.Entries) > 0 {
		if err := l.Append(rd.Entries); err != nil {
			return err
		}
		if rd.Async {
			x.written = rd.Entries[len(rd.Entries)-1].Zxid
		}
	}
	if !rd.HardState.IsEmpty() {
		if err := l.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	return nil
}

// Finish carries out rd after Persist: the messages Early did not send
// (all of them if it did not run), the snapshot and the committed entries
// Early did not apply, the completed requests it did not complete (a write
// with the response of its entry), Advance, and the peers found
// unreachable. An
// error (the state machine refused a snapshot, or the core handed out an
// entry out of order) is returned after Advance: the driver must stop.
func (x *Executor) Finish(rd Ready) error {
	for _, m := range rd.Messages {
		if !x.early || !early(m) {
			x.send(m)
		}
	}
	var err error
	if rd.Reset {
		if rerr := x.cfg.StateMachine.Restore(Snapshot{}); rerr != nil {
			err = fmt.Errorf("zab: emptying the state machine: %w", rerr)
		}
		x.applied = 0
	}
	if s := rd.Snapshot; s != nil {
		if rerr := x.cfg.StateMachine.Restore(*s); rerr != nil {
			err = fmt.Errorf("zab: restoring snapshot %v: %w", s.Zxid, rerr)
		}
		x.applied = s.Zxid
	}
	ents := rd.CommittedEntries
	if x.early {
		ents = ents[x.nEarly:]
	}
	for _, e := range ents {
		if e.Zxid <= x.applied {
			if err == nil {
				err = fmt.Errorf("zab: entry %v handed out after %v was applied", e.Zxid, x.applied)
			}
			continue
		}
		x.apply(e)
	}
	if x.cfg.OnProposal != nil {
		for _, r := range rd.Proposals {
			if x.early && x.earlyDone(r) {
				continue // completed by Early
			}
			var resp any
			if r.Err == nil {
				resp, r.Err = x.responseOf(r.Zxid)
			}
			x.cfg.OnProposal(r, resp)
		}
	}
	x.early, x.nEarly, x.earlyLast = false, 0, 0
	clear(x.resps) // hold no response past its Ready
	x.resps = x.resps[:0]
	if x.cfg.OnSync != nil {
		for _, r := range rd.Syncs {
			x.cfg.OnSync(r)
		}
	}
	x.cfg.Peer.Advance()
	if x.written != 0 {
		// An Async Ready's entries written here, durably.
		x.cfg.Peer.Persisted(x.written)
		x.written = 0
	}
	// A full queue pauses streaming to that peer until it answers.
	for _, id := range x.unreachable {
		x.cfg.Peer.ReportUnreachable(id)
	}
	x.unreachable = x.unreachable[:0]
	return err
}

// responseOf returns the response of the entry at z, applied in the
// current Ready (the core completes a proposal in the Ready that hands its
// entry out). An entry applied earlier, which the core reports only when a
// learner learns its request's zxid after the commit, has no response here:
// its outcome is unknown to this caller.
func (x *Executor) responseOf(z Zxid) (any, error) {
	i, ok := slices.BinarySearchFunc(x.resps, z, func(a appliedResp, z Zxid) int { return cmpZxid(a.zxid, z) })
	if !ok {
		return nil, fmt.Errorf("%w: %v was applied before its result was awaited", ErrOutcomeUnknown, z)
	}
	return x.resps[i].resp, nil
}

// nodeLog is a Node's LogWriter: the data directory (nil in memory) first,
// then the MemoryStorage the core reads.
type nodeLog struct {
	disk *diskLog
	mem  *MemoryStorage
}

func (l nodeLog) SaveSnapshot(s Snapshot) error {
	if l.disk != nil {
		if err := l.disk.saveSNAP(s); err != nil {
			return err
		}
	}
	l.mem.adoptSnapshot(s) // the core's, from the leader: never modified
	return nil
}

func (l nodeLog) ResetLog(base Zxid) error {
	if l.disk != nil {
		if err := l.disk.resetLog(base); err != nil {
			return err
		}
	}
	return l.mem.ResetLog(base)
}

func (l nodeLog) TruncateAfter(z Zxid) error {
	if l.disk != nil {
		if err := l.disk.truncateAfter(z); err != nil {
			return err
		}
	}
	return l.mem.TruncateAfter(z)
}

func (l nodeLog) Append(ents []Entry) error {
	if l.disk != nil {
		if err := l.disk.persist(ents, HardState{}); err != nil {
			return err
		}
	}
	return l.mem.Append(ents)
}

func (l nodeLog) Wipe() error {
	if l.disk != nil {
		if err := l.disk.wipe(); err != nil {
			return err
		}
	}
	return l.mem.Wipe()
}

func (l nodeLog) SetHardState(hs HardState) error {
	if l.disk != nil {
		if err := l.disk.persist(nil, hs); err != nil {
			return err
		}
	}
	return l.mem.SetHardState(hs)
}
