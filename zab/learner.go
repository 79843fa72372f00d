package zab

import (
	"fmt"
)

// learnerState is the state of a follower or observer.
type learnerState struct {
	lastHeard    uint64 // last valid message from the leader
	lastProgress uint64 // last step forward in discovery/synchronisation
	lastRetry    uint64
	accepted     bool   // we newly accepted the epoch from this leader
	reqSeq       uint64 // our latest synchronisation request
	modeSeq      uint64 // the request whose DIFF/TRUNC/SNAP we applied
	prefixOK     bool   // our log is a prefix of the leader's
	nlSeen       bool
	nlZxid       Zxid
	nlDone       bool // NEWLEADER processed: currentEpoch set, acks flow
	serving      bool // the leader is established and we are synced
	ackDue       bool
	snapZxid     Zxid      // the streamed snapshot the chunks belong to
	snapTotal    uint64    // the size the chunks claim
	spool        SnapSpool // its first bytes, received in order
	snapMode     *Message  // the SNAP itself, if it overtook chunks
	// streaming: the leader streams (or queued) a snapshot for our latest
	// request. It resends what is lost by itself, so we ask again only
	// after SyncLimit ticks without a chunk, not RetryTicks: a slow
	// stream is not helped by asking again.
	streaming bool
	// syncWait is how long we now wait for progress before asking for a
	// synchronisation again: RetryTicks at first, doubled by every request
	// that brought none, up to SyncLimit, and back to RetryTicks when one
	// does. A request re-sent sooner than the leader can answer restarts
	// the whole synchronisation and makes every answer in flight stale,
	// so a fixed short timer never lets a slow answer arrive in time.
	syncWait   uint64
	fwdDue     bool   // new forwarded writes wait to be sent
	readSeq    uint64 // highest read sequence seen in a ping
	lastPong   uint64
	lastResync uint64
	resyncAt   Zxid
}

func (p *Peer) becomeLearner(leader PeerID) {
	p.role = RoleFollowing
	if p.isObserver() {
		p.role = RoleObserving
	}
	p.leader, p.epoch, p.phase = leader, 0, phaseDiscovery
	p.lead = nil
	p.lrn = &learnerState{lastHeard: p.now, lastProgress: p.now, spool: p.newSpool()}
	p.logger.Info("zab: following", "leader", leader, "round", p.el.round)
	p.sendFollowerInfo()
}

func (p *Peer) sendFollowerInfo() {
	p.lrn.lastRetry = p.now
	p.send(Message{Type: MsgFollowerInfo, To: p.leader, Epoch: p.hs.AcceptedEpoch, Zxid: p.log.last(),
		Round: p.el.round, Observer: p.isObserver(), Current: p.hs.CurrentEpoch, Cluster: p.hs.ClusterID, Member: p.hs.Member, Fixed: p.hs.Fixed, Inc: p.inc})
}

func (p *Peer) sendAckEpoch() {
	lr := p.lrn
	lr.reqSeq++
	lr.lastRetry, lr.streaming = p.now, false
	p.send(Message{Type: MsgAckEpoch, To: p.leader, Epoch: p.epoch, Current: p.hs.CurrentEpoch,
		Zxid: p.log.last(), Seq: lr.reqSeq, Accepted: lr.accepted})
}

// maybeResync asks the leader to resend after our last zxid, at most once
// per RetryTicks for the same position.
func (p *Peer) maybeResync() {
	lr := p.lrn
	last := p.log.last()
	if lr.resyncAt == last && p.now-lr.lastResync < uint64(p.cfg.RetryTicks) && lr.lastResync != 0 {
		return
	}
	lr.reqSeq++
	lr.lastResync, lr.resyncAt = p.now, last
	p.send(Message{Type: MsgResync, To: p.leader, Epoch: p.epoch, Zxid: last, Seq: lr.reqSeq})
}

// sendForwards sends, in batches, the forwarded writes not sent yet (or
// all unanswered ones sent RetryTicks ago, when retry is set).
func (p *Peer) sendForwards(retry bool) {
	// Ids increase, so the oldest unsettled one is the lowest.
	for len(p.fwdOrder) > 0 && p.fwdProps[p.fwdOrder[0]] == nil {
		p.fwdOrder = p.fwdOrder[1:]
	}
	if len(p.fwdOrder) == 0 {
		return
	}
	m := Message{Type: MsgPropose, To: p.leader, Epoch: p.epoch, Seq: p.fwdOrder[0], Inc: p.inc}
	used := 0
	for _, id := range p.fwdOrder {
		fp := p.fwdProps[id]
		if fp == nil || (fp.sent && !(retry && p.retransmitDue(fp))) || (!fp.sent && retry) {
			continue
		}
		if fp.sent {
			fp.tries++
		}
		// Like the leader's streams, a batch stays within MaxMsgBytes
		// (one entry always goes), so it fits the transport's frame.
		if len(m.Entries) > 0 && used+len(fp.data) > p.cfg.MaxMsgBytes {
			p.send(m)
			m.ReqIDs, m.Entries, used = nil, nil, 0
		}
		fp.sent, fp.sentAt = true, p.now
		m.ReqIDs = append(m.ReqIDs, id)
		m.Entries = append(m.Entries, Entry{Data: fp.data})
		used += len(fp.data)
		if len(m.Entries) >= p.cfg.MaxMsgEntries {
			p.send(m)
			m.ReqIDs, m.Entries, used = nil, nil, 0
		}
	}
	if len(m.Entries) > 0 {
		p.send(m)
	}
}

func (p *Peer) tickLearner() {
	lr := p.lrn
	limit := uint64(p.cfg.InitLimit)
	if lr.serving {
		limit = uint64(p.cfg.SyncLimit)
	}
	if p.now-lr.lastHeard > limit {
		p.becomeLooking() // the leader is gone
		return
	}
	retry := uint64(p.cfg.RetryTicks)
	switch {
	case p.phase == phaseDiscovery:
		if p.now-lr.lastRetry >= retry {
			p.sendFollowerInfo()
		}
	case !lr.nlDone:
		limit := max(retry, uint64(p.cfg.SyncLimit))
		wait := max(retry, lr.syncWait)
		if lr.streaming {
			wait = limit
		}
		if p.now-lr.lastProgress >= wait && p.now-lr.lastRetry >= wait {
			p.sendAckEpoch() // restart the synchronisation
			lr.syncWait = min(2*wait, limit)
		}
	}
	if lr.nlDone && p.now-lr.lastPong >= uint64(p.cfg.HeartbeatTicks) {
		// Our half of the heartbeat, which also re-sends our cumulative
		// acknowledgement (of NEWLEADER and of what we hold) in case the
		// last one was lost: commits must not wait for the next proposal.
		lr.lastPong = p.now
		p.send(Message{Type: MsgAck, To: p.leader, Epoch: p.epoch, Zxid: p.log.last(), NewLeader: true, Inc: p.inc})
	}
	if !lr.serving {
		return
	}
	if len(p.fwdOrder) > 2*len(p.fwdProps)+16 {
		// Drop settled ids stuck behind an old pending one.
		keep := p.fwdOrder[:0]
		for _, id := range p.fwdOrder {
			if p.fwdProps[id] != nil {
				keep = append(keep, id)
			}
		}
		p.fwdOrder = keep
	}
	p.sendForwards(true)
	p.retryReconfigs()
	for _, id := range sortedKeys(p.fwdSyncs) {
		if p.now-p.fwdSyncs[id] >= retry {
			p.fwdSyncs[id] = p.now
			p.send(Message{Type: MsgSyncReq, To: p.leader, Epoch: p.epoch, ReqID: id})
		}
	}
}

func (p *Peer) stepLearner(m Message) {
	if m.Type == MsgVote {
		if m.From == p.leader && (m.State == RoleFollowing || m.State == RoleObserving) && m.Round >= p.el.round {
			// The peer we took for the leader of our round follows another
			// (the election decided otherwise than our quorum of votes
			// said): look again rather than wait InitLimit for it, and
			// join the real leader.
			p.logger.Info("zab: our leader follows another, looking again", "leader", m.From, "its_leader", m.Leader)
			p.becomeLooking()
			return
		}
		p.replyVote(m)
		return
	}
	if m.Type == MsgFollowerInfo {
		// The sender takes us for its leader, and we are not: our vote
		// tells it whom we follow, so that it stops waiting for us.
		p.send(p.voteMsg(m.From))
		return
	}
	lr := p.lrn
	if m.From != p.leader {
		return
	}
	if m.Type == MsgLeaderInfo {
		if m.Round != p.el.round || p.phase != phaseDiscovery {
			return // another reign's, or a duplicate
		}
		if m.Epoch > maxPlausibleEpoch {
			return // forged: no leader goes there
		}
		if m.Epoch < p.hs.AcceptedEpoch && !p.isObserver() {
			// We promised a newer epoch elsewhere. (Observers promise
			// nothing: their acknowledgements never count.)
			p.becomeLooking()
			return
		}
		if m.Cluster != 0 && m.Cluster != p.hs.ClusterID {
			if p.hs.ClusterID != 0 && p.hs.Fixed {
				// Our history is another cluster's: following would mix them.
				p.logger.Error("zab: leader belongs to another cluster, not following it", "leader", m.From,
					"its_cluster_id", fmt.Sprintf("%016x", m.Cluster), "our_cluster_id", fmt.Sprintf("%016x", p.hs.ClusterID))
				p.becomeLooking()
				return
			}
			// An id no established epoch fixed yields.
			p.setClusterID(m.Cluster)
		}
		// An epoch accepted before (from any leader) must not be counted
		// twice toward an epoch quorum.
		lr.accepted = m.Epoch > p.hs.AcceptedEpoch
		if lr.accepted {
			p.setAccepted(m.Epoch)
		}
		p.epoch, p.phase = m.Epoch, phaseSync
		lr.lastHeard, lr.lastProgress = p.now, p.now
		p.sendAckEpoch()
		return
	}
	if p.phase == phaseDiscovery || m.Epoch != p.epoch {
		return // stale
	}
	lr.lastHeard = p.now
	switch m.Type {
	case MsgSync, MsgNewLeader:
		p.learnerSync(m)
	case MsgSnapChunk:
		p.learnerSnapChunk(m)
	case MsgSnapWait:
		p.learnerSnapWait(m)
	case MsgProposal, MsgInform:
		if lr.prefixOK {
			p.appendChain(m)
			p.learnerCommit(m.Commit)
		}
	case MsgCommit:
		p.learnerCommit(m.Zxid)
		if lr.nlDone && m.Zxid > p.log.last() {
			p.maybeResync()
		}
	case MsgUpToDate:
		p.learnerUpToDate()
		p.learnerCommit(m.Commit)
	case MsgPing:
		lr.readSeq = max(lr.readSeq, m.Seq)
		p.pong()
		if m.Established {
			p.learnerUpToDate()
		}
		p.learnerCommit(m.Commit)
		if lr.prefixOK && m.Zxid > p.log.last() {
			p.maybeResync()
		}
	case MsgProposeResp:
		for i, id := range m.ReqIDs {
			if _, ok := p.fwdProps[id]; !ok {
				continue // answered before: a duplicate
			}
			delete(p.fwdProps, id)
			if z := m.Entries[i].Zxid; z != 0 {
				p.addWaiting(z, id)
			} else {
				p.props = append(p.props, ProposalResult{ID: id, Err: ErrProposalDropped})
			}
		}
	case MsgReconfigResp:
		p.learnerReconfigResp(m)
	case MsgSyncResp:
		if _, ok := p.fwdSyncs[m.ReqID]; !ok {
			return
		}
		delete(p.fwdSyncs, m.ReqID)
		if m.Reject {
			p.syncs = append(p.syncs, SyncResult{ID: m.ReqID, Err: ErrLeaderLost})
			return
		}
		p.addReadWait(m.ReqID, m.Zxid)
	}
}

// pong tells the leader we still follow it, echoing the newest read
// sequence we saw: confirming it later than asked is still a confirmation.
func (p *Peer) pong() {
	lr := p.lrn
	lr.lastPong = p.now
	p.send(Message{Type: MsgPong, To: p.leader, Epoch: p.epoch, Seq: lr.readSeq, Zxid: p.log.last()})
}

func (p *Peer) learnerUpToDate() {
	if lr := p.lrn; lr.nlDone && !lr.serving {
		lr.serving = true
		p.setFixed()
		p.phase = phaseBroadcast
		p.dropStaleWaiting()
	}
}

// learnerSync handles a synchronisation chunk.
func (p *Peer) learnerSync(m Message) {
	lr := p.lrn
	if m.Mode != SyncNone && m.Seq == lr.reqSeq && lr.modeSeq != lr.reqSeq {
		if !p.applySyncMode(m) {
			return
		}
		lr.modeSeq = lr.reqSeq
		lr.prefixOK = true
		lr.lastProgress, lr.syncWait = p.now, 0
	}
	if !lr.prefixOK {
		return // wait for (or re-request) the first chunk
	}
	p.appendChain(m)
	if m.Type == MsgNewLeader && (!lr.nlSeen || m.Zxid > lr.nlZxid) {
		lr.nlSeen, lr.nlZxid = true, m.Zxid
	}
	p.checkNewLeader()
	p.learnerCommit(m.Commit)
}

// applySyncMode brings our log to end at m.Prev as the leader's does. It
// reports false when it cannot (the chunk is then ignored; the retry timer
// asks for a new synchronisation).
func (p *Peer) applySyncMode(m Message) bool {
	lr := p.lrn
	last := p.log.last()
	switch m.Mode {
	case SyncDiff:
		if m.Prev != last {
			return false
		}
		p.confSynced(m.Prev, m.Voters)
		return true
	case SyncTrunc:
		if lr.nlDone {
			return false // our log already is the leader's prefix
		}
		if !p.log.truncate(m.Prev) {
			// The leader would drop a committed entry: it must not lead.
			p.becomeLooking()
			return false
		}
		p.confTruncated(m.Prev)
		if p.log.last() != m.Prev {
			return false
		}
		p.confSynced(m.Prev, m.Voters)
		return true
	case SyncSnap:
		if m.Prev < p.log.committed || (lr.nlDone && m.Prev <= last) {
			return false
		}
		data := m.Snap
		if m.Offset > 0 {
			// Streamed ahead of this message.
			if lr.snapZxid != m.Prev || lr.snapTotal != m.Offset || lr.spool.Len() != m.Offset {
				// Chunks still missing (reordered): apply it once they
				// are all here.
				mm := m
				lr.snapMode = &mm
				return false
			}
			b, err := lr.spool.Bytes()
			if err != nil {
				// Not installed: the retry timer asks for it again.
				p.logger.Error("zab: streamed snapshot not installed", "zxid", m.Prev, "err", err)
				lr.snapZxid, lr.snapTotal, lr.snapMode = 0, 0, nil
				p.resetSpool()
				return false
			}
			data = b
		}
		lr.snapZxid, lr.snapTotal, lr.snapMode = 0, 0, nil
		p.resetSpool()
		snap := Snapshot{Zxid: m.Prev, Data: data, Voters: m.Voters}
		p.log.installSnapshot(snap)
		p.confSnapshot(snap)
		p.snapshotInstalled(m.Prev)
		return true
	}
	return false
}

// appendChain appends the entries of m that follow our last zxid. It needs
// our log to be a prefix of the leader's (prefixOK); a gap asks for a
// resend.
func (p *Peer) appendChain(m Message) {
	n := len(m.Entries)
	if n == 0 {
		return
	}
	last := p.log.last()
	if m.Entries[n-1].Zxid <= last {
		return // duplicate
	}
	if m.Prev > last {
		p.maybeResync()
		return
	}
	ents := m.Entries[searchEntries(m.Entries, last):]
	p.appendLog(ents...)
	p.lrn.lastProgress, p.lrn.syncWait = p.now, 0
	if p.lrn.nlDone && p.role == RoleFollowing {
		p.lrn.ackDue = true
	}
}

// checkNewLeader acknowledges NEWLEADER once we hold the leader's history
// up to it; the ack leaves in the Ready that persists currentEpoch and the
// synced log, so it is only sent once they are durable.
func (p *Peer) checkNewLeader() {
	lr := p.lrn
	if lr.nlDone || !lr.nlSeen || !lr.prefixOK || p.log.last() < lr.nlZxid {
		return
	}
	lr.nlDone = true
	lr.lastProgress, lr.syncWait = p.now, 0
	p.setCurrent(p.epoch)
	p.setMember()
	p.send(Message{Type: MsgAck, To: p.leader, Epoch: p.epoch, Zxid: p.log.last(), NewLeader: true, Inc: p.inc})
}

func (p *Peer) learnerCommit(c Zxid) {
	if !p.lrn.nlDone {
		return
	}
	c = min(c, p.log.last())
	if c > p.log.committed {
		p.log.committed = c
	}
}

// learnerFlush sends one cumulative ACK for everything appended since the
// last Ready, and the writes forwarded since then in one message.
func (p *Peer) learnerFlush() {
	lr := p.lrn
	if lr.ackDue {
		lr.ackDue = false
		p.send(Message{Type: MsgAck, To: p.leader, Epoch: p.epoch, Zxid: p.log.last(), Inc: p.inc})
	}
	if lr.fwdDue {
		lr.fwdDue = false
		p.sendForwards(false)
	}
}

// LeaderLeaving tells a learner that from, if it is its leader, is shutting
// down on purpose: the learner starts an election at once instead of
// waiting SyncLimit ticks to notice the silence. Anything else is ignored.
// The caller must have authenticated from (the transport does).
func (p *Peer) LeaderLeaving(from PeerID) {
	p.mustNotBeInReady()
	if (p.role == RoleFollowing || p.role == RoleObserving) && p.leader == from && from != p.id {
		p.logger.Info("zab: leader is leaving, looking for a new one", "leader", from)
		p.becomeLooking()
	}
}
