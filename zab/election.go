package zab

import "slices"

// vote is a fast-leader-election vote: the proposed leader, its last zxid
// and its current epoch. Votes are totally ordered by (Epoch, Zxid, Leader).
type vote struct {
	Leader PeerID
	Zxid   Zxid
	Epoch  uint32
}

func (a vote) greater(b vote) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	if a.Zxid != b.Zxid {
		return a.Zxid > b.Zxid
	}
	return a.Leader > b.Leader
}

type notification struct {
	vote
	round   uint64
	state   Role
	current uint32 // the sender's current epoch
}

// election is the state of ZooKeeper's FastLeaderElection.
type election struct {
	round      uint64 // logical clock; also names the leader's reign
	vote       vote   // current (or, outside LOOKING, decided) vote
	recv       map[PeerID]vote
	ooe        map[PeerID]notification // votes of peers out of election
	answered   map[PeerID]uint64       // tick+1 we last answered an uncounted peer's equal vote
	candidate  bool                    // this round we may lead (see mayLead)
	finalizeAt uint64                  // 0: not finalizing
	resendAt   uint64
}

func (p *Peer) selfVote() vote {
	return vote{Leader: p.id, Zxid: p.log.last(), Epoch: p.hs.CurrentEpoch}
}

// becomeLooking starts a new election round.
func (p *Peer) becomeLooking() {
	var notify []PeerID // non-voters that followed us must learn it too
	switch p.role {
	case RoleLeading:
		for _, id := range p.lead.order {
			if li := p.lead.learners[id]; li.info && !p.voters.Contains(id) {
				notify = append(notify, id)
			}
		}
		p.leaderStop()
	case RoleFollowing, RoleObserving:
		p.failForwarded()
	}
	p.role, p.leader, p.epoch, p.phase = RoleLooking, 0, 0, phaseDiscovery
	p.lead, p.lrn = nil, nil
	p.el.round++
	p.logger.Info("zab: looking for a leader", "round", p.el.round, "last", p.log.last())
	p.el.recv = map[PeerID]vote{}
	p.el.ooe = map[PeerID]notification{}
	p.el.answered = map[PeerID]uint64{}
	p.el.finalizeAt = 0
	p.el.candidate = p.mayLead()
	p.el.vote = p.initialVote()
	if p.el.candidate {
		p.el.recv[p.id] = p.el.vote
	}
	p.broadcastVote()
	for _, id := range notify {
		p.send(p.voteMsg(id))
	}
	if p.voters.Len() == 1 && p.voters.Contains(p.id) {
		p.tryDecide(true)
	}
}

func (p *Peer) voteMsg(to PeerID) Message {
	v := p.el.vote
	return Message{Type: MsgVote, To: to, Leader: v.Leader, Zxid: v.Zxid, Epoch: v.Epoch,
		Round: p.el.round, State: p.role, Current: p.hs.CurrentEpoch, Cluster: p.hs.ClusterID, Member: p.hs.Member, Fixed: p.hs.Fixed}
}

// broadcastVote sends the current vote to every other voter and schedules
// the next re-send, jittered so that lost notifications cannot stall the
// election forever.
func (p *Peer) broadcastVote() {
	for _, id := range p.voters.IDs() {
		if id != p.id {
			p.send(p.voteMsg(id))
		}
	}
	base := p.cfg.ElectionTicks
	p.el.resendAt = p.now + uint64(base+p.rand.IntN(base+1))
}

func (p *Peer) tickLooking() {
	if p.el.finalizeAt != 0 && p.now >= p.el.finalizeAt {
		p.tryDecide(true)
		if p.role != RoleLooking {
			return
		}
	}
	if p.now >= p.el.resendAt {
		p.broadcastVote()
	}
}

// stepLooking handles a message while looking: only votes matter. Votes
// count only from voters of our configuration, but we answer anyone: a peer
// with a newer configuration may count us. An observer never proposes
// itself and never decides; it echoes the best candidate it has seen, so
// that a leader whose newer configuration counts it can win, and it joins
// the leader once the voters report it established.
func (p *Peer) stepLooking(m Message) {
	if m.Type != MsgVote {
		return
	}
	n := notification{vote: vote{Leader: m.Leader, Zxid: m.Zxid, Epoch: m.Epoch}, round: m.Round, state: m.State,
		current: m.Current}
	if n.state != RoleLooking {
		// Anyone may tell us whom it follows (only voters count toward
		// the quorum): a leader outside our possibly stale configuration
		// must be able to answer us.
		p.outOfElection(m.From, n)
		return
	}
	counted := p.voters.Contains(m.From) && p.counts(m.Current)
	replied := false
	switch {
	case n.round > p.el.round:
		p.el.round = n.round
		clear(p.el.recv)
		p.el.finalizeAt = 0
		p.el.vote = p.initialVote()
		if n.vote.greater(p.el.vote) {
			p.el.vote = n.vote
		}
		if p.el.candidate {
			p.el.recv[p.id] = p.el.vote
		}
		p.broadcastVote()
	case n.round < p.el.round:
		// Help the laggard catch up.
		p.send(p.voteMsg(m.From))
		return
	case n.vote.greater(p.el.vote):
		p.el.vote = n.vote
		if p.el.candidate {
			p.el.recv[p.id] = p.el.vote
		}
		p.el.finalizeAt = 0
		p.broadcastVote()
	case n.vote != p.el.vote:
		// The sender proposes a worse leader: tell it ours.
		p.send(p.voteMsg(m.From))
		replied = true
	}
	if !counted {
		// At most once a tick for the same vote: two peers that do not
		// count each other (an observer and a removed voter) would
		// otherwise answer each other's answers without end.
		if !replied && (n.vote != p.el.vote || p.el.answered[m.From] != p.now+1) {
			p.el.answered[m.From] = p.now + 1
			p.send(p.voteMsg(m.From))
		}
		return
	}
	p.el.recv[m.From] = n.vote
	if p.el.candidate {
		p.tryDecide(false)
	}
}

// initialVote is a round's first vote: ourselves, or nobody for a peer that
// may not lead.
func (p *Peer) initialVote() vote {
	if !p.mayLead() {
		return vote{}
	}
	return p.selfVote()
}

// mayLead reports whether the peer stands for election: a voter that is
// not unsynced, or a voter
// removed by a configuration not yet known committed. The latter may hold
// the longest log, so it may be needed to commit its own removal (as in
// Raft); it never counts its own vote.
func (p *Peer) mayLead() bool {
	if p.unsynced() {
		return false
	}
	if p.voters.Contains(p.id) {
		return true
	}
	n := len(p.confs)
	return n >= 2 && p.confPending() && slices.Contains(p.confs[n-2].voters, p.id)
}

// tryDecide ends the election if a quorum agrees with our vote: at once when
// every voter agrees, else after FinalizeTicks without a better vote.
func (p *Peer) tryDecide(final bool) {
	v := p.el.vote
	if !p.voters.HasQuorum(func(id PeerID) bool { w, ok := p.el.recv[id]; return ok && w == v }) {
		p.el.finalizeAt = 0
		return
	}
	all := true
	for _, id := range p.voters.IDs() {
		if w, ok := p.el.recv[id]; !ok || w != v {
			all = false
			break
		}
	}
	if !all && !final {
		if p.el.finalizeAt == 0 {
			p.el.finalizeAt = p.now + uint64(p.cfg.FinalizeTicks)
		}
		return
	}
	p.el.finalizeAt = 0
	if v.Leader == p.id {
		p.becomeLeader()
	} else {
		p.becomeLearner(v.Leader)
	}
}

// outOfElection handles a vote from a peer that already follows or leads:
// a (re)starting peer joins the established leader once a quorum of voters
// reports following it and the leader itself says it leads.
func (p *Peer) outOfElection(from PeerID, n notification) {
	p.el.ooe[from] = n
	if n.round == p.el.round && p.el.candidate && p.voters.Contains(from) && p.counts(n.current) {
		p.el.recv[from] = n.vote
	}
	l := n.Leader
	if l == p.id || l == 0 {
		return
	}
	ln, ok := p.el.ooe[l]
	if l != from && (!ok || ln.vote != n.vote) {
		// Ask the leader itself (what we heard from it may be of an older
		// reign): with a stale configuration we may not count it among the
		// voters we send our votes to.
		p.send(p.voteMsg(l))
	}
	if !ok || ln.state != RoleLeading || ln.Leader != l {
		return
	}
	agree := p.voters.HasQuorum(func(id PeerID) bool {
		if id == p.id && p.el.candidate {
			// We are willing to follow it: without our own voice a voter
			// just added could not join while another one is down.
			return true
		}
		// The leader id is enough: a follower's vote may still carry the
		// epoch of an earlier reign of the same leader (ZOOKEEPER-1732),
		// and the leader itself vouches for its reign.
		o, ok := p.el.ooe[id]
		return ok && o.Leader == l
	})
	if !agree && p.el.candidate {
		return
	}
	// A peer that may not lead follows whoever says it leads: its own
	// configuration may be too stale to find a quorum (the leader counts
	// learners by its configuration, and one without a quorum soon steps
	// down, sending us looking again).
	// The leader's round names its reign: discovery checks it.
	p.el.round = ln.round
	p.el.vote = ln.vote
	p.becomeLearner(l)
}

// replyVote answers a looking peer's notification while following or
// leading, so it can join us; a notification from our own leader saying it
// is looking means it stepped down.
func (p *Peer) replyVote(m Message) {
	if m.State != RoleLooking {
		return
	}
	if (p.role == RoleFollowing || p.role == RoleObserving) && m.From == p.leader && m.Round > p.el.round {
		p.becomeLooking()
		if p.role == RoleLooking { // a lone voter leads at once
			p.stepLooking(m)
		}
		return
	}
	p.send(p.voteMsg(m.From))
}
