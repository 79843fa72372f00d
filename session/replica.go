package session

import (
	"fmt"
	"slices"
	"time"
)

// MsgType is the kind of a Message.
type MsgType uint8

// Message types.
const (
	// MsgHeartbeat: an owner tells the leader its session lives.
	MsgHeartbeat MsgType = iota + 1
	// MsgAck: the leader's answer to a heartbeat.
	MsgAck
)

// Message is a heartbeat (owner → leader) or its acknowledgement (leader →
// owner). The caller carries it between replicas; Replica.Receive takes it
// in.
type Message struct {
	Type    MsgType
	Session ID
	// Sent is the owner's stamp of the heartbeat: the nanoseconds from its
	// Replica's origin to the send, on the owner's clock (monotonic in
	// production). The leader echoes it in the ack; only its owner reads it.
	Sent int64
	// OK, in an ack, says the session lives; false: it is gone.
	OK bool
}

// Outbound is a Message for another replica.
type Outbound struct {
	To  uint64
	Msg Message
}

// View is what the replication layer says about this replica, given with
// every Tick.
type View struct {
	// Leader is the replica this one follows (or itself); 0 while there is
	// none.
	Leader uint64
	// Epoch is the epoch of Leader.
	Epoch uint32
	// Serving: this replica follows (or is) an established leader.
	Serving bool
	// Leading: this replica is the established leader.
	Leading bool
}

// Table is a read-only view of the replicated session table (the sessions
// whose createSession is applied and closeSession is not). A new leader
// tracks every session in it, and a heartbeat for a session the tracker
// does not know is checked against it.
type Table interface {
	// Sessions returns every session in the table.
	Sessions() []Entry
	// Timeout returns a session's timeout, and false if it is not in the
	// table.
	Timeout(id ID) (time.Duration, bool)
}

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	// Self is this replica's id (zab's peer id).
	Self uint64
	// Tick is the leader's expiry granularity (the tracker's tick) and the
	// expected time between Ticks. Required.
	Tick time.Duration
	// Origin is the instant heartbeat stamps count from. In production it
	// is a time.Now reading taken at start, so stamps (and leases) live on
	// the monotonic clock whatever the wall clock does.
	Origin time.Time
	// Table is the replicated session table. Required.
	Table Table
	// ReapEvery is how often a leader asks for a reaper scan (Ready.Reap);
	// zero never.
	ReapEvery time.Duration
}

// Event of a local session, for the caller to deliver to its owner.
type OwnerEvent struct {
	Session ID
	Event   Event
}

// Ended says a local session is over on this replica: it was Lost (its
// timeout passed, the leader said it is gone, or the replica stopped) or its
// closeSession was applied. ByOwner: the closeSession was its owner's
// (Replica.Closing), so the session was closed, not lost. The Replica has
// forgotten it.
type Ended struct {
	Session ID
	ByOwner bool
}

// Expiry asks the caller to propose a session's closeSession, the leader's
// decision to expire it, only as the leader of Epoch (the reign whose clock
// decided): the proposal must be dropped, never forwarded, once this replica
// no longer leads in Epoch.
type Expiry struct {
	Session ID
	Epoch   uint32
}

// Ready is what a Replica asks of its caller: everything queued since the
// last call of Replica.Ready.
type Ready struct {
	// Messages to send to other replicas (messages to itself are handled
	// inside). They may be dropped, delayed or duplicated: both sides
	// tolerate it.
	Messages []Outbound
	// Events of local sessions, in order, for their owners.
	Events []OwnerEvent
	// Ended local sessions, after their last event.
	Ended []Ended
	// Expire lists the sessions the leader expired.
	Expire []Expiry
	// Reap asks the leader's caller to look for containers and TTL nodes to
	// reap.
	Reap bool
}

// IsEmpty reports whether rd asks for nothing.
func (rd Ready) IsEmpty() bool {
	return len(rd.Messages) == 0 && len(rd.Events) == 0 && len(rd.Ended) == 0 && len(rd.Expire) == 0 &&
		!rd.Reap
}

// Replica is the session logic of one coord replica, deterministic and in
// the shape of zab.Peer: its inputs are Ticks carrying the time and what the
// replication layer says (View), applied session txns (Created, Closed),
// heartbeat Messages, the replication layer's confirmations that this
// replica still leads (LeaderConfirmed) and the owner's own calls (Open,
// Closing, Forget, Stop); its outputs, collected with Ready, are messages,
// events of local sessions, expiry proposals and reaper scans. It reads no clock, starts no
// goroutine and does no I/O, so coord's node and the simulator in
// internal/sim step the same code.
//
// It holds both sides of the session protocol:
//
//   - the owner side, one State per local session: heartbeats every
//     HeartbeatInterval (SuspendedInterval while Suspended) to the leader,
//     Connected → Suspended → Lost on the owner's clock, acks counted from
//     the heartbeat's send time (its stamp, echoed by the leader);
//   - the leader side, while View.Leading: a Tracker reset with every
//     session of the Table at each new reign (a full timeout from the
//     takeover), refreshed by every heartbeat on arrival, expiring sessions
//     into Ready.Expire; and the acknowledgements. A heartbeat is
//     acknowledged only once the replication layer reported that a quorum
//     confirmed this reign at a time after the heartbeat arrived
//     (LeaderConfirmed: zab's leader learns it from the pings it sends a
//     quorum every tick anyway, so acknowledgements cost no round of their
//     own), so a deposed leader that does not know it yet cannot extend a
//     lease past the expiry its successor computes (see the package doc).
//     A heartbeat waits for such a confirmation for as long as an ack can
//     still help (its session's timeout), so a session's life depends on
//     its own timeout, not on how fast one quorum round finishes.
//
// Times must come from one monotonic clock (a smaller time than one seen is
// treated as the largest seen). A Replica is not safe for concurrent use.
type Replica struct {
	cfg ReplicaConfig

	// owner side
	owned map[ID]*owned

	// leader side
	tracker  *Tracker // non-nil while leading
	leading  bool
	epoch    uint32 // of the current reign
	pending  []pendingAck
	nextReap time.Time
	lastNow  time.Time

	// acks holds the round trips of the latest acknowledged heartbeats of
	// local sessions (AckLatency), ackN how many were ever recorded.
	acks [ackSamples]time.Duration
	ackN uint64

	rd Ready
}

// ackSamples is how many recent heartbeat round trips AckLatency reads.
const ackSamples = 1024

type owned struct {
	id      ID
	state   *State
	nextHB  time.Time
	closing bool
}

// pendingAck is a heartbeat waiting for a confirmation of this reign.
type pendingAck struct {
	from    uint64
	ack     Message
	arrived time.Time // when Receive took it in
	dropAt  time.Time // an ack after this helps no one
}

// maxPendingPerSession bounds the waiting acks of one owner and session:
// the oldest (the first a confirmation covers) and the newest (the
// longest lease).
const maxPendingPerSession = 2

// NewReplica returns the session logic of a replica.
func NewReplica(cfg ReplicaConfig) (*Replica, error) {
	if cfg.Tick <= 0 {
		return nil, fmt.Errorf("%w: ReplicaConfig.Tick (%v) must be positive", ErrInvalidConfig, cfg.Tick)
	}
	if cfg.Table == nil {
		return nil, fmt.Errorf("%w: ReplicaConfig.Table is required", ErrInvalidConfig)
	}
	if cfg.ReapEvery < 0 {
		return nil, fmt.Errorf("%w: ReplicaConfig.ReapEvery (%v) must not be negative", ErrInvalidConfig, cfg.ReapEvery)
	}
	return &Replica{cfg: cfg, owned: map[ID]*owned{}, lastNow: cfg.Origin}, nil
}

// Ready returns and clears what the replica asks of its caller.
func (r *Replica) Ready() Ready {
	rd := r.rd
	r.rd = Ready{}
	return rd
}

// Stamp returns the stamp of a heartbeat sent at t: the nanoseconds from
// the origin to t.
func (r *Replica) Stamp(t time.Time) int64 { return int64(t.Sub(r.cfg.Origin)) }

// stampTime is Stamp's inverse; a negative stamp is none of this replica's.
func (r *Replica) stampTime(stamp int64) (time.Time, bool) {
	if stamp < 0 {
		return time.Time{}, false
	}
	return r.cfg.Origin.Add(time.Duration(stamp)), true
}

func (r *Replica) clamp(now time.Time) time.Time {
	if now.Before(r.lastNow) {
		return r.lastNow
	}
	r.lastNow = now
	return now
}

// --- owner side ---

// Open starts the owner side of a local session just created with cfg's
// negotiated timeout: sentAt is when its createSession was sent, now when it
// was applied here. Its first event is Connected.
func (r *Replica) Open(id ID, cfg Config, sentAt, now time.Time) error {
	now = r.clamp(now)
	if !id.Valid() {
		return fmt.Errorf("%w: %s", ErrInvalidID, id)
	}
	if _, ok := r.owned[id]; ok {
		return fmt.Errorf("%w: session %s is already open", ErrInvalidID, id)
	}
	st, err := NewState(cfg, sentAt, now)
	if err != nil {
		return err
	}
	o := &owned{id: id, state: st}
	o.nextHB = st.NextHeartbeat(now)
	r.owned[id] = o
	r.drain(o, now)
	return nil
}

// Closing records that the owner is closing session id: when its
// closeSession is applied, the session ends by its owner (Ended.ByOwner),
// not as expired.
func (r *Replica) Closing(id ID) {
	if o := r.owned[id]; o != nil {
		o.closing = true
	}
}

// Forget drops a local session without an event (its owner ended it
// locally: the node closes, say).
func (r *Replica) Forget(id ID) { delete(r.owned, id) }

// Stop records that this replica stopped at now (its replication failed):
// every local session is Lost (CauseStopped) and ends.
func (r *Replica) Stop(now time.Time) {
	now = r.clamp(now)
	for _, o := range r.sortedOwned() {
		o.state.Stopped(now)
		r.drain(o, now)
	}
	r.tracker, r.leading, r.pending = nil, false, nil
}

// Status returns a local session's status, and false if it is not (or no
// longer) open here.
func (r *Replica) Status(id ID) (Status, bool) {
	o := r.owned[id]
	if o == nil {
		return 0, false
	}
	return o.state.Status(), true
}

// Lease returns a local session's lease (the send time of its newest
// acknowledged heartbeat) and its end (see State.Lease and LeaseEnd).
func (r *Replica) Lease(id ID) (lease, end time.Time, ok bool) {
	o := r.owned[id]
	if o == nil {
		return time.Time{}, time.Time{}, false
	}
	return o.state.Lease(), o.state.LeaseEnd(), true
}

// Remaining returns how long a local session is certain to stay alive as
// seen at now (State.Remaining); zero if it is not open here.
func (r *Replica) Remaining(id ID, now time.Time) time.Duration {
	o := r.owned[id]
	if o == nil {
		return 0
	}
	return o.state.Remaining(now)
}

// AckLatency returns the median and 99th percentile of the round trips
// (send to acknowledgement, on this replica's clock) of the latest 1024
// acknowledged heartbeats of local sessions, and how many were counted;
// zeros before the first.
func (r *Replica) AckLatency() (p50, p99 time.Duration, n int) {
	s := r.AckSamples()
	n = len(s)
	if n == 0 {
		return 0, 0, 0
	}
	slices.Sort(s)
	return s[(n-1)/2], s[(n-1)*99/100], n
}

// AckSamples returns the round trips AckLatency reads, oldest first.
func (r *Replica) AckSamples() []time.Duration {
	n := min(r.ackN, ackSamples)
	out := make([]time.Duration, 0, n)
	for i := r.ackN - n; i < r.ackN; i++ {
		out = append(out, r.acks[i%ackSamples])
	}
	return out
}

// ResetAckLatency forgets the round trips recorded so far.
func (r *Replica) ResetAckLatency() { r.ackN = 0 }

// Owned returns the ids of the local sessions, sorted.
func (r *Replica) Owned() []ID {
	ids := make([]ID, 0, len(r.owned))
	for id := range r.owned {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (r *Replica) sortedOwned() []*owned {
	out := make([]*owned, 0, len(r.owned))
	for _, id := range r.Owned() {
		out = append(out, r.owned[id])
	}
	return out
}

// drain moves o's events to Ready and ends it once Lost.
func (r *Replica) drain(o *owned, now time.Time) {
	for _, ev := range o.state.Events() {
		r.rd.Events = append(r.rd.Events, OwnerEvent{Session: o.id, Event: ev})
	}
	if o.state.Status() == Lost {
		r.end(o, false)
	}
}

func (r *Replica) end(o *owned, byOwner bool) {
	if r.owned[o.id] != o {
		return
	}
	delete(r.owned, o.id)
	r.rd.Ended = append(r.rd.Ended, Ended{Session: o.id, ByOwner: byOwner})
}

// tickOwners applies leader loss and time to every local session and sends
// the heartbeats that are due.
func (r *Replica) tickOwners(now time.Time, v View) {
	for _, o := range r.sortedOwned() {
		if !v.Serving {
			o.state.LeaderLost(now)
		}
		o.state.Tick(now)
		send := v.Serving && v.Leader != 0 && o.state.Status() != Lost && !now.Before(o.nextHB)
		if send {
			o.state.HeartbeatSent(now)
			o.nextHB = o.state.NextHeartbeat(now)
		}
		r.drain(o, now)
		if send && r.owned[o.id] == o {
			r.send(v.Leader, Message{Type: MsgHeartbeat, Session: o.id, Sent: r.Stamp(now)}, now)
		}
	}
}

// send hands m to its replica: itself at once, another through Ready.
func (r *Replica) send(to uint64, m Message, now time.Time) {
	if to == r.cfg.Self {
		r.Receive(r.cfg.Self, m, now)
		return
	}
	r.rd.Messages = append(r.rd.Messages, Outbound{To: to, Msg: m})
}

// onAck is the owner's side of an acknowledgement.
func (r *Replica) onAck(m Message, now time.Time) {
	o := r.owned[m.Session]
	if o == nil {
		return
	}
	if m.OK {
		sent, ok := r.stampTime(m.Sent)
		if !ok {
			return
		}
		o.state.HeartbeatAcked(sent, now)
		r.acks[r.ackN%ackSamples] = max(0, now.Sub(sent))
		r.ackN++
	} else {
		o.state.Expired(now)
	}
	r.drain(o, now)
}

// --- leader side ---

// Tick applies the passage of time up to now and what the replication layer
// says (v): leader loss, Suspended and Lost, heartbeats, on the leader a new
// tracker at each new reign, expiries, and reaper scans. Call it every
// ReplicaConfig.Tick.
func (r *Replica) Tick(now time.Time, v View) {
	now = r.clamp(now)
	r.tickOwners(now, v)
	r.tickLeader(now, v)
}

func (r *Replica) tickLeader(now time.Time, v View) {
	switch {
	case v.Leading && (!r.leading || v.Epoch != r.epoch):
		// A new reign (also a new epoch without a tick in between: the old
		// reign's expiries were dropped and must not leave sessions
		// closing). The leader gives every session a full timeout from
		// now, as ZooKeeper's does, so a fail-over never expires a healthy
		// session.
		tr, err := NewTracker(r.cfg.Tick, now)
		if err != nil {
			panic(err) // Tick was checked by NewReplica
		}
		// Invalid entries cannot be in a replicated table; Reset tracks
		// the valid ones anyway.
		_ = tr.Reset(r.cfg.Table.Sessions(), now)
		r.tracker = tr
		r.pending = nil
	case !v.Leading:
		r.tracker = nil
		r.pending = nil
	}
	r.leading, r.epoch = v.Leading, v.Epoch
	if r.tracker == nil {
		return
	}
	for _, id := range r.tracker.Expired(now) {
		r.rd.Expire = append(r.rd.Expire, Expiry{Session: id, Epoch: r.epoch})
	}
	r.pending = slices.DeleteFunc(r.pending, func(p pendingAck) bool { return !now.Before(p.dropAt) })
	if r.cfg.ReapEvery > 0 && !now.Before(r.nextReap) {
		r.nextReap = now.Add(r.cfg.ReapEvery)
		r.rd.Reap = true
	}
}

// LeaderConfirmed reports that a quorum confirmed, at or after at, that
// this replica led in epoch (zab: Node's OnLeaderConfirmed, from the pings
// its leader sends every tick): no leader of a later epoch was established
// before at, so no successor had started counting the sessions' timeouts.
// Every waiting heartbeat that arrived at or before at is acknowledged:
// its owner sent it earlier still, so the lease the ack grants ends before
// any successor could expire the session. at must be a reading of the
// clock Receive's times come from, taken before the confirming pings were
// sent.
//
// Only a confirmation of the reign the replica knows counts: one of
// another epoch is ignored, even if the replica leads in it by then (its
// next Tick starts that reign, with nothing waiting). Confirmed in a later
// epoch, the heartbeats the deposed reign took in, while a successor was
// already counting those sessions' timeouts from its takeover, would be
// acknowledged, so the owners' leases would outlast the successor's expiry
// (see the package doc). The Replica cannot tell otherwise: until its next
// Tick it does not know its reign ended.
func (r *Replica) LeaderConfirmed(epoch uint32, at, now time.Time) {
	now = r.clamp(now)
	if r.tracker == nil || epoch != r.epoch || len(r.pending) == 0 {
		return
	}
	var acks []pendingAck
	r.pending = slices.DeleteFunc(r.pending, func(p pendingAck) bool {
		if p.arrived.After(at) {
			return false
		}
		if now.Before(p.dropAt) {
			acks = append(acks, p)
		}
		return true
	})
	for _, p := range acks {
		r.send(p.from, p.ack, now)
	}
}

// Receive takes in a message from replica from (a heartbeat on the leader,
// an ack on the owner).
func (r *Replica) Receive(from uint64, m Message, now time.Time) {
	now = r.clamp(now)
	switch m.Type {
	case MsgHeartbeat:
		r.onHeartbeat(from, m, now)
	case MsgAck:
		r.onAck(m, now)
	}
}

// onHeartbeat is the leader's side: refresh the session at once (a leader
// may only ever expire later than the owner thinks, which is safe), and
// queue the ack for the next confirmation of this reign. A session that is gone is
// answered at once: "expired" can only make the owner stop sooner.
func (r *Replica) onHeartbeat(from uint64, m Message, now time.Time) {
	if r.tracker == nil {
		return // only the leader may vouch for a session; the owner retries
	}
	id := m.Session
	alive := r.tracker.Touch(id, now)
	if !alive {
		if info, ok := r.tracker.Lookup(id); !ok || !info.Closing {
			// Not tracked: created just before this reign's tracker was
			// built, say. Trust the replicated table.
			if timeout, ok := r.cfg.Table.Timeout(id); ok && r.tracker.Add(id, timeout, now) == nil {
				alive = true
			}
		}
	}
	if !alive {
		r.send(from, Message{Type: MsgAck, Session: id, Sent: m.Sent, OK: false}, now)
		return
	}
	info, _ := r.tracker.Lookup(id)
	ack := Message{Type: MsgAck, Session: id, Sent: m.Sent, OK: true}
	// At most maxPendingPerSession waiting acks per owner and session:
	// the newest replaces the one after the oldest (the oldest is covered
	// first, the newest gives the longest lease).
	n, last := 0, -1
	for i, p := range r.pending {
		if p.from == from && p.ack.Session == id {
			n, last = n+1, i
		}
	}
	if n >= maxPendingPerSession {
		r.pending = slices.Delete(r.pending, last, last+1)
	}
	r.pending = append(r.pending, pendingAck{from: from, ack: ack, arrived: now, dropAt: now.Add(info.Timeout)})
}

// Created records an applied createSession (on every replica; the leader
// tracks it).
func (r *Replica) Created(id ID, timeout time.Duration, now time.Time) {
	now = r.clamp(now)
	if r.tracker != nil {
		_ = r.tracker.Add(id, timeout, now)
	}
}

// Closed records an applied closeSession: the leader stops tracking the
// session, and if it is local it ends (ByOwner if its owner was closing it;
// otherwise the leader expired it and it is Lost).
func (r *Replica) Closed(id ID, now time.Time) {
	now = r.clamp(now)
	if r.tracker != nil {
		r.tracker.Remove(id)
	}
	o := r.owned[id]
	if o == nil {
		return
	}
	if o.closing {
		r.end(o, true)
		return
	}
	o.state.Expired(now)
	r.drain(o, now)
}
