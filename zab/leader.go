package zab

import (
	"errors"
	"fmt"
	"github.com/coord-dev/coord/zab/internal/plant"
	"slices"
)

// learnerInfo is what a leader knows about one follower or observer.
type learnerInfo struct {
	id       PeerID
	observer bool

	info     bool   // FOLLOWERINFO received in this reign
	accepted uint32 // its accepted epoch
	current  uint32 // its current epoch, as reported
	cluster  uint64 // its cluster id, as reported
	member   bool   // it is a member, as reported
	fixed    bool   // its cluster id is fixed, as reported
	// unsynced: it reported no synchronised history while we have one (see
	// Peer.unsynced), so it counts toward no quorum until it acknowledged
	// NEWLEADER of our established reign.
	unsynced bool
	ackEpoch bool   // ACKEPOCH for our epoch received
	ackFresh bool   // ... from a learner that newly accepted our epoch
	last     Zxid   // its last zxid, as last reported
	reqSeq   uint64 // its latest synchronisation request

	syncing    bool // synchronisation started: sent is meaningful
	sent       Zxid // last zxid sent to it
	acked      Zxid // highest zxid it durably holds (cumulative ACK)
	nlAcked    bool // it acknowledged NEWLEADER
	commitSent Zxid

	snap *snapStream // its snapshot stream, running or queued
	// tailWait: sending its synchronisation after sent waits for a
	// read-back (Ready.Fetch); tailSeq is the request it answers.
	tailWait bool
	tailSeq  uint64

	lastHeard uint64
	paused    bool   // unreachable: stream nothing until it speaks again
	readAck   uint64 // highest read sequence it echoed
	// fwd is what it forwarded, per incarnation of the learner (request
	// ids increase only within one), most recently heard last.
	fwd []*fwdSession
	// inc is the learner's incarnation as its last FOLLOWERINFO gave it
	// (zero: not sent), and retired the ones it replaced: a learner that
	// restarted or threw its history away (Peer.Resync) vouches for
	// nothing an earlier incarnation acknowledged.
	inc     uint64
	retired []uint64
}

// maxRetired bounds the replaced incarnations a leader remembers per
// learner.
const maxRetired = 4

// newIncarnation takes in the incarnation a FOLLOWERINFO carries. It
// reports false for a retired one (a stale message). An empty learner in a
// new incarnation is counted again only once it acknowledged NEWLEADER.
func (li *learnerInfo) newIncarnation(m Message, history bool) bool {
	if m.Inc == 0 || m.Inc == li.inc {
		return true
	}
	if slices.Contains(li.retired, m.Inc) {
		return false
	}
	if li.inc != 0 {
		if len(li.retired) == maxRetired {
			li.retired = li.retired[1:]
		}
		li.retired = append(li.retired, li.inc)
	}
	li.inc = m.Inc
	if history && m.Current == 0 {
		li.nlAcked, li.acked = false, 0
	}
	return true
}

// staleAck reports whether an acknowledgement comes from an incarnation of
// the learner other than the current one.
func (li *learnerInfo) staleAck(m Message) bool {
	return m.Inc != 0 && li.inc != 0 && m.Inc != li.inc
}

// fwdSession is what a leader remembers of the requests one incarnation
// of a learner forwarded: each is proposed once, whatever its
// retransmissions, and settled ones are forgotten.
type fwdSession struct {
	inc       uint64
	props     map[uint64]Zxid // forwarded request id -> zxid (0: rejected)
	propOrder []uint64        // keys of props in arrival order
	lowWater  uint64          // requests below it are settled
	confs     map[uint64]Zxid // forwarded configuration changes -> zxid
}

// maxFwdSessions bounds the incarnations of one learner a leader
// remembers. Only a restarted learner's stale messages reach an older one.
const maxFwdSessions = 4

// fwdSession returns li's forwarding state for incarnation inc, creating
// it (and forgetting the least recently heard one beyond maxFwdSessions).
func (li *learnerInfo) fwdSession(inc uint64) *fwdSession {
	for i, s := range li.fwd {
		if s.inc == inc {
			li.fwd = append(append(li.fwd[:i:i], li.fwd[i+1:]...), s)
			return s
		}
	}
	s := &fwdSession{inc: inc, props: map[uint64]Zxid{}}
	if len(li.fwd) >= maxFwdSessions {
		li.fwd = li.fwd[1:]
	}
	li.fwd = append(li.fwd, s)
	return s
}

type pendingRead struct {
	seq   uint64
	from  PeerID
	id    uint64
	index Zxid
}

// leaderState is the state of a peer that won the election.
type leaderState struct {
	start        uint64
	history      bool // we were a member when elected: empty voters do not count
	learners     map[PeerID]*learnerInfo
	order        []PeerID // sorted keys of learners, for determinism
	epochDecided bool
	ackQuorum    bool // a quorum acknowledged the epoch: history fixed
	established  bool // a quorum acknowledged NEWLEADER: serving
	exhausted    bool // the zxid counter is used up
	l0           Zxid // our last zxid when the history was fixed
	counter      uint32
	readSeq      uint64
	reads        []pendingRead
	pingDue      bool
	nextPing     uint64
	snapQueue    []PeerID // learners with a snapshot stream, in arrival order
	// pings are the ping rounds sent and not yet known confirmed by a
	// quorum, oldest first; confirmedAt is the tick of the newest one that
	// is (see LeaderConfirmed), confirmed whether there is one.
	pings       []pingRound
	confirmedAt uint64
	confirmed   bool
}

// pingRound is one batch of pings: the read sequence they carry and the
// tick they were sent at.
type pingRound struct {
	seq, tick uint64
}

// maxPingRounds bounds leaderState.pings: beyond it the oldest round is
// forgotten (a newer one confirms more).
const maxPingRounds = 256

func (p *Peer) becomeLeader() {
	p.role, p.leader, p.phase, p.epoch = RoleLeading, p.id, phaseDiscovery, 0
	p.lrn = nil
	p.lead = &leaderState{start: p.now, learners: map[PeerID]*learnerInfo{}, history: p.hs.Member}
	if p.mistake == plant.CountEmptyVoters {
		p.lead.history = false // planted by zab/zabtest only: empty voters count
	}
	p.logger.Info("zab: elected leader", "round", p.el.round, "last", p.log.last())
	p.leaderCheckInfoQuorum()
}

// leaderStop is called as the leader steps down.
func (p *Peer) leaderStop() {
	for _, r := range p.lead.reads {
		if r.from == p.id {
			p.syncs = append(p.syncs, SyncResult{ID: r.id, Err: ErrLeaderLost})
		} else {
			p.send(Message{Type: MsgSyncResp, To: r.from, Epoch: p.epoch, ReqID: r.id, Reject: true})
		}
	}
	p.lead.reads = nil
}

func (p *Peer) learner(id PeerID) *learnerInfo {
	l := p.lead
	li, ok := l.learners[id]
	if !ok {
		li = &learnerInfo{id: id, observer: !p.voters.Contains(id)}
		l.learners[id] = li
		i, _ := slices.BinarySearch(l.order, id)
		l.order = slices.Insert(l.order, i, id)
	}
	return li
}

// quorumOf reports whether a quorum of voters satisfies pred; the leader
// itself counts when self is true. Observers never count.
func (p *Peer) quorumOf(self bool, pred func(*learnerInfo) bool) bool {
	return p.voters.HasQuorum(func(id PeerID) bool {
		if id == p.id {
			return self
		}
		li, ok := p.lead.learners[id]
		return ok && !li.observer && !li.unsynced && pred(li)
	})
}

// leaderCheckInfoQuorum decides the new epoch once a quorum sent
// FOLLOWERINFO: one more than the largest accepted epoch among them.
func (p *Peer) leaderCheckInfoQuorum() {
	l := p.lead
	if l.epochDecided || !p.quorumOf(true, func(li *learnerInfo) bool { return li.info }) {
		return
	}
	e := max(p.hs.AcceptedEpoch, p.refusedBelow)
	for _, id := range l.order {
		if li := l.learners[id]; li.info && !li.observer && li.accepted > e {
			e = li.accepted
		}
	}
	if e >= MaxEpoch {
		// Only a forged FOLLOWERINFO claims this (2^31 elections are out
		// of reach): going on would wrap zxids. Refuse to lead.
		p.logger.Error("zab: epoch space exhausted, refusing to lead", "accepted", e)
		p.becomeLooking()
		return
	}
	cid, err := p.decideClusterID()
	if err != nil {
		p.logger.Error("zab: refusing to lead", "err", err)
		p.becomeLooking()
		return
	}
	e++
	p.setClusterID(cid)
	p.setAccepted(e)
	p.epoch, l.epochDecided = e, true
	for _, id := range l.order {
		if li := l.learners[id]; li.info {
			p.send(Message{Type: MsgLeaderInfo, To: id, Epoch: e, Round: p.el.round, Cluster: cid})
		}
	}
	p.leaderCheckAckQuorum()
}

// decideClusterID returns the cluster id this reign carries: a fixed one
// (ours, or the FOLLOWERINFO quorum's: every established epoch carries the
// first one's, since its NEWLEADER quorum, whose members hold the id, meets
// every later FOLLOWERINFO quorum; two differ only between clusters, an
// error); else the id of the member with the newest current epoch (a
// bootstrap whose epochs failed); else a tentative one (ours, a
// learner's, or a new random one when the cluster is bootstrapping).
func (p *Peer) decideClusterID() (uint64, error) {
	if p.hs.ClusterID != 0 && p.hs.Fixed {
		return p.hs.ClusterID, nil
	}
	l := p.lead
	var fixed, member, tentative uint64
	var memberEpoch uint32
	if p.hs.Member && p.hs.ClusterID != 0 {
		member, memberEpoch = p.hs.ClusterID, p.hs.CurrentEpoch
	}
	for _, id := range l.order {
		li := l.learners[id]
		switch {
		case !li.info || li.cluster == 0:
		case li.fixed:
			if fixed != 0 && li.cluster != fixed {
				return 0, fmt.Errorf("learners belong to two clusters, ids %016x and %016x", fixed, li.cluster)
			}
			fixed = li.cluster
		case li.member:
			if member == 0 || li.current > memberEpoch {
				member, memberEpoch = li.cluster, li.current
			}
		case tentative == 0:
			tentative = li.cluster
		}
	}
	switch {
	case fixed != 0:
		return fixed, nil
	case member != 0:
		return member, nil
	case p.hs.ClusterID != 0:
		return p.hs.ClusterID, nil
	case tentative != 0:
		return tentative, nil
	}
	id := p.idRand.Uint64()
	for id == 0 {
		id = p.idRand.Uint64()
	}
	return id, nil
}

// leaderCheckAckQuorum fixes the history once a quorum acknowledged the
// epoch, and starts synchronising every learner that did.
func (p *Peer) leaderCheckAckQuorum() {
	l := p.lead
	if !l.epochDecided || l.ackQuorum || !p.quorumOf(true, func(li *learnerInfo) bool { return li.ackFresh }) {
		return
	}
	l.ackQuorum = true
	p.phase = phaseSync
	p.setCurrent(p.epoch)
	l.l0 = p.log.last()
	for _, id := range l.order {
		if li := l.learners[id]; li.ackEpoch {
			p.startSync(li, li.reqSeq)
		}
	}
	// A lone voter establishes as soon as its epoch is durable.
	p.leaderDurable()
}

// startSync synchronises li from its last zxid: DIFF if its log is a prefix
// of ours, TRUNC to the last zxid we share, or SNAP if our log no longer
// reaches back that far; then the entries up to our last zxid and NEWLEADER.
func (p *Peer) startSync(li *learnerInfo, seq uint64) {
	first := Message{Type: MsgSync, To: li.id, Epoch: p.epoch, Seq: seq}
	li.tailWait = false
	if fl, err := p.log.floor(li.last); err == nil {
		first.Mode, first.Prev = SyncTrunc, fl
		if fl == li.last {
			first.Mode = SyncDiff
		} else if p.mistake == plant.DiffWithoutTrunc {
			first.Mode, first.Prev = SyncDiff, li.last // planted by zab/zabtest only
		}
		// The configuration in force where the learner's log will end: a
		// learner must act on ours, not on its own bootstrap guess.
		first.Voters = p.configAt(first.Prev)
	} else {
		s := p.log.snapshot()
		if p.streamed(s) {
			// Too big for one frame: stream it ahead of the SNAP itself.
			p.startSnapStream(li, seq)
			return
		}
		first.Mode, first.Prev, first.Snap, first.Voters = SyncSnap, s.Zxid, s.Data, s.Voters
		if len(first.Voters) == 0 {
			first.Voters = p.configAt(s.Zxid)
		}
	}
	p.endSnapStream(li)
	li.syncing = true
	li.sent = first.Prev
	p.sendSyncTail(li, first)
}

// sendSyncTail sends our log after li.sent as synchronisation chunks, the
// last one being NEWLEADER. first carries the chunk's header fields.
func (p *Peer) sendSyncTail(li *learnerInfo, first Message) {
	last := p.log.last()
	m := first
	for {
		ents, err := p.log.entries(li.sent, last, p.cfg.MaxMsgEntries)
		if errors.Is(err, ErrUnavailable) {
			// The entries are being read back: the rest follows when they
			// arrive (Fetched). The first chunk goes now, without them, so
			// the learner knows its request was answered.
			if m.Mode != SyncNone {
				m.Type, m.To, m.Epoch = MsgSync, li.id, p.epoch
				m.Prev, m.Commit = li.sent, p.log.committed
				p.send(m)
			}
			li.tailWait, li.tailSeq = true, first.Seq
			return
		}
		if err != nil {
			return // compacted meanwhile: the learner will ask again
		}
		ents = p.fitBytes(ents, len(m.Snap))
		m.Type, m.To, m.Epoch = MsgSync, li.id, p.epoch
		m.Prev, m.Entries, m.Commit = li.sent, ents, p.log.committed
		if n := len(ents); n > 0 {
			li.sent = ents[n-1].Zxid
		}
		if li.sent >= last {
			m.Type, m.Zxid = MsgNewLeader, last
			p.send(m)
			return
		}
		p.send(m)
		m = Message{Seq: first.Seq}
	}
}

// Fetched hands the core the entries its driver read back for r
// (Ready.Fetch), in zxid order after r.After: nil if the read failed (the
// learners waiting then ask again). The learners whose synchronisation
// waited for them go on. A result for another request is ignored.
func (p *Peer) Fetched(r FetchRequest, ents []Entry) {
	p.mustNotBeInReady()
	l := &p.log
	if !l.fetching || r.Seq != l.fetchSeq {
		return
	}
	l.fetching = false
	if len(ents) > 0 && ents[0].Zxid > r.After {
		l.fetched, l.fetchedAfter = ents, r.After
	}
	if p.lead == nil {
		return
	}
	for _, id := range p.lead.order {
		if li := p.lead.learners[id]; li.tailWait && li.syncing {
			li.tailWait = false
			p.sendSyncTail(li, Message{Seq: li.tailSeq})
		}
	}
}

// fitBytes shortens ents so that their data and used bytes already in the
// message stay within MaxMsgBytes; the first entry always goes.
func (p *Peer) fitBytes(ents []Entry, used int) []Entry {
	for i, e := range ents {
		used += len(e.Data)
		if used > p.cfg.MaxMsgBytes && i > 0 {
			return ents[:i]
		}
	}
	return ents
}

// leaderDurable runs after Advance: our own durable log may complete the
// NEWLEADER quorum or a commit quorum.
func (p *Peer) leaderDurable() {
	p.maybeEstablish()
	p.maybeCommit()
}

func (p *Peer) selfDurable() Zxid {
	if p.durableCurrent != p.epoch {
		return 0
	}
	return p.stableLast
}

func (p *Peer) maybeEstablish() {
	l := p.lead
	if !l.ackQuorum || l.established {
		return
	}
	self := p.durableCurrent == p.epoch && p.stableLast >= l.l0
	if !p.quorumOf(self, func(li *learnerInfo) bool { return li.nlAcked }) || p.awaitingEmptyVoter() {
		return
	}
	l.established = true
	p.setMember()
	p.setFixed()
	p.phase = phaseBroadcast
	p.dropStaleWaiting()
	p.logger.Info("zab: leading", "epoch", p.epoch, "history", l.l0)
	if l.l0 > p.log.committed {
		p.log.committed = l.l0
	}
	p.commitBootstrapConfig()
	for _, id := range l.order {
		if li := l.learners[id]; li.nlAcked {
			li.unsynced = false // synced by this reign, now established
			p.send(Message{Type: MsgUpToDate, To: id, Epoch: p.epoch, Commit: p.log.committed})
			li.commitSent = p.log.committed
		}
	}
	l.nextPing = p.now // announce Established at once
}

// awaitingEmptyVoter reports whether establishment should still wait for
// a voter that may be empty (no current epoch) to acknowledge NEWLEADER,
// although a quorum already did. Once the cluster has members, an empty
// voter counts for nothing at a member (the lost-disk rule, see
// Peer.unsynced), and nothing can tell a voter that never synced from one
// that lost its disk: if the leader went away before such a voter synced,
// the other two voters of three could elect nobody until a voter holding
// the history returned. A voter that processed NEWLEADER holds a current
// epoch and counts like any other, so the leader gives a live one the
// time to do so before it serves, at most half of InitLimit from its
// election (after that a slow or absent voter syncs once it shows up, as
// a late one always did). Waited for: every voter that sent FOLLOWERINFO
// in this reign reporting no current epoch (a lost disk, a resync), and
// while bootstrapping (no history here: every voter is empty) every voter
// not heard from yet, which may be about to follow: voters started
// together are then all synced from the first epoch on. A cluster with
// history and a voter down fails over without waiting.
//
// Only establishment waits, so this is safe whatever the voter is: its
// acknowledgement counts no more than before (at a member, not at all),
// and its NEWLEADER processing, which ends its emptiness, is what it would
// do after establishment too.
func (p *Peer) awaitingEmptyVoter() bool {
	l := p.lead
	if p.now-l.start >= uint64(p.cfg.InitLimit/2) {
		return false
	}
	for _, id := range p.voters.IDs() {
		if id == p.id {
			continue
		}
		switch li := l.learners[id]; {
		case li == nil || !li.info:
			if !l.history {
				return true
			}
		case li.observer || li.nlAcked:
		case li.current == 0:
			return true
		}
	}
	return false
}

// maybeCommit commits up to the largest zxid a quorum durably holds.
func (p *Peer) maybeCommit() {
	l := p.lead
	if !l.established {
		return
	}
	q := p.voters.CommittedZxid(func(id PeerID) Zxid {
		if id == p.id {
			return p.selfDurable()
		}
		if li, ok := l.learners[id]; ok && !li.observer && !li.unsynced && li.nlAcked {
			return li.acked
		}
		return 0
	})
	q = min(q, p.log.last())
	if q > p.log.committed {
		p.log.committed = q
		if !p.voters.Contains(p.id) && !p.confPending() {
			p.maybeStepDownRemoved()
			return
		}
	}
	if l.exhausted && p.log.committed >= NewZxid(p.epoch, p.cfg.MaxCounter) {
		// Every zxid of this epoch is used and committed: force a new
		// epoch, as ZooKeeper does on counter rollover.
		p.becomeLooking()
	}
}

// leaderAppend proposes e (data or a configuration) under the next zxid.
func (p *Peer) leaderAppend(e Entry) Zxid {
	l := p.lead
	l.counter++
	z := NewZxid(p.epoch, l.counter)
	e.Zxid = z
	p.appendLog(e)
	if l.counter >= p.cfg.MaxCounter {
		l.exhausted = true
	}
	return z
}

func (p *Peer) leaderRead(from PeerID, id uint64) {
	l := p.lead
	l.readSeq++
	l.reads = append(l.reads, pendingRead{seq: l.readSeq, from: from, id: id, index: p.log.committed})
	l.pingDue = true
	p.checkReads()
}

// checkReads answers the reads a quorum has confirmed our leadership for.
func (p *Peer) checkReads() {
	l := p.lead
	n := 0
	for _, r := range l.reads {
		if !p.quorumOf(true, func(li *learnerInfo) bool { return li.nlAcked && li.readAck >= r.seq }) {
			break
		}
		n++
		if r.from == p.id {
			p.addReadWait(r.id, r.index)
		} else {
			p.send(Message{Type: MsgSyncResp, To: r.from, Epoch: p.epoch, ReqID: r.id, Zxid: r.index})
		}
	}
	l.reads = l.reads[n:]
}

func (p *Peer) ping(li *learnerInfo) {
	l := p.lead
	p.send(Message{Type: MsgPing, To: li.id, Epoch: p.epoch, Zxid: li.sent, Commit: p.log.committed,
		Seq: l.readSeq, Established: l.established})
}

// newPingRound starts a batch of pings: each batch carries a read sequence
// of its own, so a learner's pong tells which batch (or a later one) it
// answered, and the tick it was sent at is remembered for LeaderConfirmed.
// A read registered before the batch has a smaller sequence, so the
// batch's pongs confirm it too.
func (p *Peer) newPingRound() {
	l := p.lead
	l.readSeq++
	if len(l.pings) >= maxPingRounds {
		l.pings = l.pings[1:]
	}
	l.pings = append(l.pings, pingRound{seq: l.readSeq, tick: p.now})
}

// checkConfirmed records the newest ping round a quorum of voters (the
// leader counting itself) has answered in this epoch: every one of them
// still followed this reign after the round was sent, so no later epoch
// could have been established before its tick (a successor needs a quorum
// that accepted its epoch first, and a voter that did no longer answers
// this epoch's pings).
func (p *Peer) checkConfirmed() {
	l := p.lead
	for i := len(l.pings) - 1; i >= 0; i-- {
		pr := l.pings[i]
		if p.quorumOf(true, func(li *learnerInfo) bool { return li.nlAcked && li.readAck >= pr.seq }) {
			l.confirmedAt, l.confirmed = pr.tick, true
			l.pings = l.pings[i+1:]
			return
		}
	}
}

// LeaderConfirmed reports, on an established leader, the newest tick t
// (Ticks' count) such that a quorum of voters answered a ping this leader
// sent at tick t or later in epoch: none of them had moved to a later
// epoch when it answered, so no successor was established before tick t.
// A caller holding a promise that only this reign may keep (coord
// acknowledges session heartbeats so) may keep it for whatever it took in
// before tick t began, without a round of its own. ok is false on any
// other peer, or before a ping round of this reign was answered.
func (p *Peer) LeaderConfirmed() (epoch uint32, tick uint64, ok bool) {
	if p.role != RoleLeading || !p.lead.established || !p.lead.confirmed {
		return 0, 0, false
	}
	return p.epoch, p.lead.confirmedAt, true
}

// Ticks returns how many times Tick was called: the peer's clock, in
// which LeaderConfirmed counts.
func (p *Peer) Ticks() uint64 { return p.now }

func (p *Peer) tickLeader() {
	l := p.lead
	if l.established && !p.voters.Contains(p.id) && !p.confPending() {
		// Elected to commit our own removal (mayLead), and it is.
		p.maybeStepDownRemoved()
		return
	}
	if !l.established {
		if p.now-l.start > uint64(p.cfg.InitLimit) {
			p.becomeLooking()
			return
		}
		p.maybeEstablish() // the wait for empty voters may be over
	} else if !p.quorumOf(true, func(li *learnerInfo) bool {
		return li.nlAcked && p.now-li.lastHeard <= uint64(p.cfg.SyncLimit)
	}) {
		// Lost contact with a quorum for longer than the sync limit.
		p.logger.Warn("zab: lost quorum, stepping down", "epoch", p.epoch)
		p.becomeLooking()
		return
	}
	p.tickSnapStreams()
	if p.now >= l.nextPing {
		l.nextPing = p.now + uint64(p.cfg.HeartbeatTicks)
		p.newPingRound()
		for _, id := range l.order {
			if li := l.learners[id]; li.info && !p.silent(li) {
				p.ping(li)
			}
		}
		if l.established {
			p.checkConfirmed() // alone, a leader confirms itself
		}
	}
}

// silent reports whether a learner has not been heard from for longer than
// the sync limit. The leader then stops sending it anything, as ZooKeeper's
// leader drops such a learner: otherwise a learner whose messages no longer
// reach the leader (a one-way cut) would keep hearing pings, stay
// "serving" and hold its clients' requests for ever. Once its leader is
// silent too, the learner looks for a leader again; anything it says later
// revives it here.
func (p *Peer) silent(li *learnerInfo) bool {
	return p.now-li.lastHeard > uint64(p.cfg.SyncLimit)
}

// leaderFlush batches new proposals, commits and read pings into one
// message per learner.
func (p *Peer) leaderFlush() {
	l := p.lead
	if !l.established {
		return
	}
	last, c := p.log.last(), p.log.committed
	for _, id := range l.order {
		li := l.learners[id]
		if !li.syncing {
			continue
		}
		if li.paused || p.silent(li) || li.tailWait {
			continue // tailWait: its NEWLEADER goes first, after the read-back
		}
		target, typ := last, MsgProposal
		if li.observer && !p.voters.Contains(id) {
			// A voter still connected as an observer (being added) gets
			// proposals, so it learns of its promotion before the commit
			// that may need its vote.
			target, typ = c, MsgInform
		}
		if li.sent < target {
			for li.sent < target {
				ents, err := p.log.entries(li.sent, target, p.cfg.MaxMsgEntries)
				if errors.Is(err, ErrCompacted) {
					// It is behind our log's start. Count it as sent: our
					// pings then carry a zxid beyond its last, so it asks
					// to resync and gets a SNAP.
					li.sent = target
					break
				}
				if err != nil || len(ents) == 0 {
					break
				}
				ents = p.fitBytes(ents, 0)
				p.send(Message{Type: typ, To: id, Epoch: p.epoch, Prev: li.sent, Entries: ents, Commit: c})
				li.sent = ents[len(ents)-1].Zxid
			}
			li.commitSent = c
		} else if li.commitSent < c {
			p.send(Message{Type: MsgCommit, To: id, Epoch: p.epoch, Zxid: c})
			li.commitSent = c
		}
	}
	if l.pingDue {
		l.pingDue = false
		p.newPingRound()
		for _, id := range l.order {
			if li := l.learners[id]; !li.observer && li.nlAcked && !p.silent(li) {
				p.ping(li)
			}
		}
	}
}

func (p *Peer) stepLeader(m Message) {
	l := p.lead
	switch m.Type {
	case MsgVote:
		p.replyVote(m)
		return
	case MsgFollowerInfo:
		if m.Round != p.el.round {
			return // a FOLLOWERINFO of another reign
		}
		if m.Epoch > maxPlausibleEpoch {
			// Forged: counting it would move the cluster to the last epochs.
			p.logger.Warn("zab: refusing FOLLOWERINFO with an implausible accepted epoch",
				"from", m.From, "epoch", m.Epoch)
			return
		}
		li := p.learner(m.From)
		if !li.newIncarnation(m, l.history) {
			return // an incarnation it left
		}
		// Our configuration decides, not the learner's (it may be stale:
		// a voter that does not know yet it was added must count).
		if obs := !p.voters.Contains(m.From); obs != li.observer {
			// It re-joins in its other role: start over with it.
			li.observer = obs
			li.ackEpoch, li.ackFresh, li.syncing, li.nlAcked, li.paused = false, false, false, false, false
			li.sent, li.acked, li.commitSent = 0, 0, 0
		}
		if li.snap != nil {
			// A FOLLOWERINFO starts the learner over (or repeats itself): its
			// next request, whatever its number, restarts the stream, which
			// keeps its turn and goes on from what the learner holds.
			li.snap.seq = 0
		}
		li.info, li.accepted, li.lastHeard = true, m.Epoch, p.now
		li.current, li.cluster, li.member, li.fixed = m.Current, m.Cluster, m.Member, m.Fixed
		if !li.nlAcked || !l.established {
			li.unsynced = l.history && m.Current == 0
		}
		if l.epochDecided && m.Epoch > p.epoch && (!li.observer || !m.Observer) {
			// This learner accepted a newer epoch (from a leader that failed
			// to establish it) and, a voter in our configuration or in its
			// own (a removed voter whose log ends before its removal), can
			// never follow ours: stand down so that the next epoch goes
			// above it. (Before, a removed voter that had accepted a newer
			// epoch was left out for as long as this leader lasted.)
			p.refusedBelow = max(p.refusedBelow, m.Epoch)
			p.becomeLooking()
			return
		}
		if l.epochDecided {
			p.send(Message{Type: MsgLeaderInfo, To: m.From, Epoch: p.epoch, Round: p.el.round, Cluster: p.hs.ClusterID})
		} else {
			p.leaderCheckInfoQuorum()
		}
		return
	}
	li, ok := l.learners[m.From]
	if !ok || !li.info || !l.epochDecided || m.Epoch != p.epoch {
		return
	}
	li.lastHeard = p.now
	if li.paused && (m.Type == MsgAck || m.Type == MsgPong) {
		p.resume(li, m)
	}
	switch m.Type {
	case MsgAckEpoch:
		if m.Current > maxPlausibleEpoch {
			p.logger.Warn("zab: refusing ACKEPOCH with an implausible current epoch", "from", m.From, "current", m.Current)
			return
		}
		if !li.observer && !l.ackQuorum &&
			(m.Current > p.hs.CurrentEpoch || (m.Current == p.hs.CurrentEpoch && m.Zxid > p.log.last())) {
			// The follower is ahead of us: we must not lead.
			p.logger.Warn("zab: follower ahead of leader, re-electing", "follower", m.From, "its_last", m.Zxid)
			p.becomeLooking()
			return
		}
		li.ackEpoch, li.last, li.reqSeq = true, m.Zxid, m.Seq
		if l.history && m.Current == 0 && !(li.nlAcked && l.established) {
			li.unsynced = true
		}
		li.ackFresh = li.ackFresh || m.Accepted
		if l.ackQuorum {
			p.startSync(li, m.Seq)
		} else {
			p.leaderCheckAckQuorum()
		}
	case MsgAck:
		if !li.syncing || li.staleAck(m) {
			return
		}
		// Never credit more than we sent it: an acknowledgement beyond
		// that (a bug or a forgery) would commit past our log.
		if z := min(m.Zxid, li.sent); z > li.acked {
			li.acked = z
		}
		if m.NewLeader && !li.nlAcked {
			li.nlAcked = true
			if l.established {
				// Synced by an established reign: it vouches for what it
				// acknowledges from now on.
				li.unsynced = false
				p.send(Message{Type: MsgUpToDate, To: li.id, Epoch: p.epoch, Commit: p.log.committed})
				li.commitSent = p.log.committed
			} else if !li.observer {
				p.maybeEstablish()
			}
		}
		if !li.observer {
			p.maybeCommit()
		}
	case MsgResync:
		if li.snap != nil {
			p.startSnapStream(li, m.Seq) // asked again while streaming
			return
		}
		if !li.syncing {
			return
		}
		li.last = m.Zxid
		if !p.log.contains(m.Zxid) {
			p.startSync(li, m.Seq) // behind our log's start: SNAP
			return
		}
		if m.Zxid < li.sent {
			li.sent = m.Zxid
			if !li.nlAcked {
				p.sendSyncTail(li, Message{})
			}
		}
	case MsgSnapAck:
		p.leaderSnapAck(li, m)
	case MsgPong:
		if m.Seq > li.readAck {
			li.readAck = m.Seq
			p.checkReads()
			p.checkConfirmed()
		}
	case MsgPropose:
		p.leaderForwarded(li, m)
	case MsgReconfig:
		p.leaderReconfig(li, m)
	case MsgSyncReq:
		if !l.established {
			p.send(Message{Type: MsgSyncResp, To: li.id, Epoch: p.epoch, ReqID: m.ReqID, Reject: true})
			return
		}
		p.leaderRead(li.id, m.ReqID)
	}
}

// leaderForwarded proposes the writes a learner forwarded, once each: a
// retransmitted request gets the zxid it got the first time. Request ids
// are scoped by the learner's incarnation, so a restarted learner's ids
// (which may start lower) are new requests, never stale duplicates.
func (p *Peer) leaderForwarded(li *learnerInfo, m Message) {
	l := p.lead
	fs := li.fwdSession(m.Inc)
	if m.Seq > fs.lowWater {
		fs.lowWater = m.Seq
		// Forget the settled ones (ids increase, so they lead the order).
		n := 0
		for n < len(fs.propOrder) && fs.propOrder[n] < fs.lowWater {
			delete(fs.props, fs.propOrder[n])
			n++
		}
		fs.propOrder = fs.propOrder[n:]
	}
	resp := Message{Type: MsgProposeResp, To: li.id, Epoch: p.epoch}
	for i, id := range m.ReqIDs {
		if id < fs.lowWater {
			continue // settled long ago: a stale duplicate
		}
		z, seen := fs.props[id]
		if !seen || p.mistake == plant.ReproposeForwards { // planted by zab/zabtest only
			// An oversize write (its learner checks too) is refused: it
			// would stop every log it reached.
			if l.established && !l.exhausted && len(m.Entries[i].Data) <= MaxEntrySize {
				z = p.leaderAppend(Entry{Data: p.stamp(m.Entries[i].Data)})
			}
			fs.props[id] = z
			fs.propOrder = append(fs.propOrder, id)
		}
		resp.ReqIDs = append(resp.ReqIDs, id)
		resp.Entries = append(resp.Entries, Entry{Zxid: z})
	}
	if len(resp.ReqIDs) > 0 {
		p.send(resp)
	}
}

// resume restarts streaming to a paused learner from what it reports to
// hold, once it shows it is reachable again.
func (p *Peer) resume(li *learnerInfo, m Message) {
	li.paused = false
	from := li.acked
	if m.Type == MsgAck && m.Zxid > from {
		from = m.Zxid
	}
	if from < li.sent && p.log.contains(from) {
		li.sent = from
	}
}

// ReportUnreachable tells a leader that a message to id could not be
// queued (for example Transport.Send returned ErrQueueFull). The leader
// stops streaming proposals to id, sending only heartbeats, until id
// answers; then it resends from what id acknowledged. Call it after
// Advance, never between Ready and Advance. Other roles ignore it.
func (p *Peer) ReportUnreachable(id PeerID) {
	p.mustNotBeInReady()
	if p.role != RoleLeading {
		return
	}
	if li, ok := p.lead.learners[id]; ok && li.syncing {
		li.paused = true
	}
}
