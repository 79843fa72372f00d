package zab

import "slices"

// A snapshot larger than Config.MaxMsgBytes is streamed to a learner in
// chunks with flow control, ZooKeeper's SNAP made safe for many learners
// joining at once:
//
//   - a leader streams at most Config.MaxSnapSyncs snapshots at a time; the
//     other learners that need one queue, voters ahead of observers (a
//     voter waiting pauses an observer's stream), in arrival order, and
//     hear MsgSnapWait every tick so they wait instead of asking again;
//   - a stream keeps at most Config.SnapWindow chunks beyond what the
//     learner acknowledged (MsgSnapAck), so a leader holds no more than
//     window × chunk per learner in its send queues, whatever the
//     snapshot's size, and the chunks slice one shared image (the newest
//     snapshot when the stream started) rather than copies;
//   - the learner judges progress by the chunks it receives, not by ticks:
//     a learner receiving bytes never restarts its synchronisation;
//   - once every byte is acknowledged, the SNAP itself (without data)
//     and the rest of the synchronisation follow as for any SNAP. A chunk
//     lost on the way (a connection cut, a send queue full) is sent again
//     from the last acknowledged byte after RetryTicks without progress,
//     the wait doubling while the stream stays stuck (stallTicks), or at
//     once when the learner acknowledges less than it did (it lost its
//     spool). An acknowledgement that repeats the last one is no sign of
//     loss: the learner acknowledges every chunk it is sent, also the
//     copies a resend put behind the originals, and answering those with
//     another resend fed itself (issue 12: a slow learner on a loaded
//     machine got each chunk several times over).

// snapStream is a leader's stream of one snapshot to one learner, running
// or queued.
type snapStream struct {
	seq     uint64   // the learner's synchronisation request
	running bool     // false: queued
	snap    Snapshot // the image streamed (running only)
	next    uint64   // bytes sent
	acked   uint64   // bytes acknowledged
	moved   uint64   // tick of the last acknowledged progress (or start)
	rewound uint64   // tick of the last resend
	stalls  int      // resends since the last progress
}

// streamed reports whether a SNAP of s must be streamed in chunks.
func (p *Peer) streamed(s Snapshot) bool { return len(s.Data) > p.cfg.MaxMsgBytes }

// startSnapStream starts (or queues) streaming our snapshot to li for
// synchronisation seq. A request already streaming or queued under the
// same seq (a duplicate ACKEPOCH) changes nothing; a new request keeps
// its place and restarts from what the learner acknowledges.
func (p *Peer) startSnapStream(li *learnerInfo, seq uint64) {
	// Nothing but chunks until the SNAP itself; our pings carry no zxid
	// the learner would ask to resync to.
	li.syncing, li.sent = false, 0
	if x := li.snap; x != nil {
		if x.seq == seq {
			return
		}
		x.seq = seq
		if x.running {
			p.runSnapStream(li, x)
		} else {
			p.send(Message{Type: MsgSnapWait, To: li.id, Epoch: p.epoch, Seq: seq})
		}
		return
	}
	x := &snapStream{seq: seq}
	li.snap = x
	l := p.lead
	l.snapQueue = append(l.snapQueue, li.id)
	p.admitSnapStreams()
	if !x.running {
		p.send(Message{Type: MsgSnapWait, To: li.id, Epoch: p.epoch, Seq: seq})
	}
}

// runningSnapStreams counts the streams in progress.
func (p *Peer) runningSnapStreams() int {
	n := 0
	for _, id := range p.lead.snapQueue {
		if p.lead.learners[id].snap.running {
			n++
		}
	}
	return n
}

// admitSnapStreams starts queued streams while fewer than MaxSnapSyncs
// run: voters' first, each in arrival order, then observers'. A queued
// voter also takes the place of a running observer's stream, which waits
// again (keeping what its learner received: it goes on from there when
// its turn comes back). An empty voter counts toward no quorum until it is
// synced (see awaitingEmptyVoter), so it must not wait behind observers.
func (p *Peer) admitSnapStreams() {
	l := p.lead
	for _, voters := range []bool{true, false} {
		for _, id := range slices.Clone(l.snapQueue) {
			li := l.learners[id]
			if li.snap == nil || li.snap.running || li.observer == voters {
				continue
			}
			if p.runningSnapStreams() >= p.cfg.MaxSnapSyncs && !(voters && p.pauseObserverStream()) {
				return
			}
			li.snap.running = true
			p.runSnapStream(li, li.snap)
		}
	}
}

// pauseObserverStream puts the running stream of the observer that came
// last back in the queue, and reports whether there was one.
func (p *Peer) pauseObserverStream() bool {
	l := p.lead
	for i := len(l.snapQueue) - 1; i >= 0; i-- {
		li := l.learners[l.snapQueue[i]]
		if x := li.snap; li.observer && x.running {
			x.running = false
			p.logger.Info("zab: snapshot stream paused for a voter's", "learner", li.id, "acked", x.acked)
			p.send(Message{Type: MsgSnapWait, To: li.id, Epoch: p.epoch, Seq: x.seq})
			return true
		}
	}
	return false
}

// runSnapStream starts x, or restarts it for a new request of the
// learner. A restart goes on with the image it was streaming, from the
// last acknowledged byte (the learner keeps what it received of an image
// across its requests, and a learner that lost it acknowledges less, which
// rewinds the stream), as long as our log still reaches back to that image
// so the synchronisation can go on from it; otherwise it starts over with
// our newest snapshot.
func (p *Peer) runSnapStream(li *learnerInfo, x *snapStream) {
	x.stalls = 0
	if x.snap.Data != nil && p.log.contains(x.snap.Zxid) {
		x.next, x.moved, x.rewound = x.acked, p.now, p.now
		p.sendSnapWindow(li, x)
		return
	}
	x.snap = p.log.snapshot()
	if len(x.snap.Voters) == 0 {
		x.snap.Voters = p.configAt(x.snap.Zxid)
	}
	x.next, x.acked, x.moved, x.rewound = 0, 0, p.now, p.now
	if !p.streamed(x.snap) {
		// Small enough (our snapshot changed): one message.
		p.endSnapStream(li)
		p.startSync(li, x.seq)
		return
	}
	p.logger.Info("zab: streaming snapshot", "learner", li.id, "zxid", x.snap.Zxid, "bytes", len(x.snap.Data),
		"queued", len(p.lead.snapQueue)-p.runningSnapStreams())
	p.sendSnapWindow(li, x)
}

// sendSnapWindow sends the chunks of x that fit its window.
func (p *Peer) sendSnapWindow(li *learnerInfo, x *snapStream) {
	data, chunk := x.snap.Data, uint64(p.cfg.MaxMsgBytes)
	total := uint64(len(data))
	for x.next < total && x.next-x.acked < uint64(p.cfg.SnapWindow)*chunk {
		end := min(x.next+chunk, total)
		p.send(Message{Type: MsgSnapChunk, To: li.id, Epoch: p.epoch, Seq: x.seq, Prev: x.snap.Zxid,
			Offset: x.next, Total: total, Snap: data[x.next:end:end]})
		p.snapSent += end - x.next
		x.next = end
	}
}

// endSnapStream forgets li's stream, running or queued, and lets the next
// queued one start.
func (p *Peer) endSnapStream(li *learnerInfo) {
	if li.snap == nil {
		return
	}
	li.snap = nil
	l := p.lead
	if i := slices.Index(l.snapQueue, li.id); i >= 0 {
		l.snapQueue = slices.Delete(l.snapQueue, i, i+1)
	}
	p.admitSnapStreams()
}

// leaderSnapAck handles a learner's acknowledgement of streamed bytes.
func (p *Peer) leaderSnapAck(li *learnerInfo, m Message) {
	x := li.snap
	if x == nil {
		return
	}
	if m.Seq > x.seq {
		x.seq = m.Seq // the learner asked again meanwhile: serve that request
	}
	if !x.running || m.Seq != x.seq || m.Prev != x.snap.Zxid {
		return
	}
	total := uint64(len(x.snap.Data))
	switch {
	case m.Offset > total:
		return // a lie: ignore it
	case m.Offset > x.acked:
		// It may hold more than we sent (a restarted stream of the same
		// image): go on from there.
		x.acked, x.next, x.moved, x.stalls = m.Offset, max(x.next, m.Offset), p.now, 0
	case m.Offset < x.acked && x.rewound != p.now:
		// The learner holds less than it said (it restarted): send again
		// from what it holds, at most once per tick.
		x.acked, x.next, x.rewound = m.Offset, m.Offset, p.now
	}
	if x.acked == total {
		p.finishSnapStream(li, x)
		return
	}
	p.sendSnapWindow(li, x)
}

// finishSnapStream sends the SNAP itself once every byte is acknowledged,
// then the entries after it and NEWLEADER.
func (p *Peer) finishSnapStream(li *learnerInfo, x *snapStream) {
	p.endSnapStream(li)
	s := x.snap
	p.logger.Info("zab: snapshot streamed", "learner", li.id, "zxid", s.Zxid, "bytes", len(s.Data))
	first := Message{Type: MsgSync, To: li.id, Epoch: p.epoch, Seq: x.seq, Mode: SyncSnap, Prev: s.Zxid,
		Voters: s.Voters, Offset: uint64(len(s.Data))}
	li.syncing = true
	li.sent = s.Zxid
	p.sendSyncTail(li, first)
}

// tickSnapStreams, on every leader tick, drops the streams of learners gone
// silent, resends from the last acknowledged byte a stream that made no
// progress for a tick, and tells queued learners to keep waiting.
func (p *Peer) tickSnapStreams() {
	l := p.lead
	for _, id := range slices.Clone(l.snapQueue) {
		li := l.learners[id]
		x := li.snap
		switch {
		case x == nil:
		case p.silent(li):
			z := x.snap.Zxid
			if !x.running {
				z = p.log.snapshot().Zxid
			}
			p.endSnapStream(li)
			// Count it as sent, as leaderFlush does a compacted range: once
			// it speaks again, our pings make it ask for a new one.
			li.syncing, li.sent = true, z
		case !x.running:
			p.send(Message{Type: MsgSnapWait, To: id, Epoch: p.epoch, Seq: x.seq})
		case x.next > x.acked && p.now-max(x.moved, x.rewound) >= p.stallTicks(x):
			x.next, x.rewound = x.acked, p.now
			x.stalls++
			p.sendSnapWindow(li, x)
		}
	}
}

// stallTicks is how long stream x goes without progress before it is
// sent again from the last acknowledged byte: RetryTicks, doubling with
// every resend that brought no progress, up to 8 RetryTicks. A learner
// slow to take the chunks (a loaded machine) is not sent the same bytes
// every tick; a lost chunk is still sent again within a few ticks.
func (p *Peer) stallTicks(x *snapStream) uint64 {
	return uint64(p.cfg.RetryTicks) << min(x.stalls, 3)
}

// learnerSnapChunk receives a chunk of a streamed SNAP. Chunks are taken
// in order only, appended to the spool (Config.SnapSpool: memory, or a
// file, grows with the bytes received, not with what a chunk claims), and
// each is acknowledged with the bytes held. The spool belongs to the
// image (zxid and size), not to one request: a restarted stream of the
// same image goes on where it was. The acknowledgement names our latest
// request, which the leader's stream adopts: a request of ours it missed
// (a MsgResync lost) does not leave the stream feeding one we no longer
// wait for.
func (p *Peer) learnerSnapChunk(m Message) {
	lr := p.lrn
	if lr.modeSeq == lr.reqSeq {
		return // our latest synchronisation is under way or done
	}
	if len(m.Snap) == 0 || m.Offset+uint64(len(m.Snap)) > m.Total || m.Offset+uint64(len(m.Snap)) < m.Offset {
		return
	}
	if lr.snapZxid != m.Prev || lr.snapTotal != m.Total {
		lr.snapZxid, lr.snapTotal = m.Prev, m.Total
		p.resetSpool()
	}
	lr.lastProgress, lr.streaming = p.now, true // receiving bytes is progress
	if m.Offset == lr.spool.Len() {
		if err := lr.spool.Append(m.Snap); err != nil {
			// Start the image over: our acknowledgement rewinds the stream.
			p.logger.Error("zab: spooling a snapshot chunk", "zxid", m.Prev, "offset", m.Offset, "err", err)
			p.resetSpool()
		} else {
			p.snapRecv += uint64(len(m.Snap))
		}
	}
	p.sendSnapAck()
	if mm := lr.snapMode; mm != nil && lr.spool.Len() == lr.snapTotal && mm.Seq == lr.reqSeq {
		lr.snapMode = nil
		p.learnerSync(*mm)
	}
}

// sendSnapAck tells the leader how much of the streamed snapshot we hold,
// for our latest request.
func (p *Peer) sendSnapAck() {
	lr := p.lrn
	p.send(Message{Type: MsgSnapAck, To: p.leader, Epoch: p.epoch, Seq: lr.reqSeq, Prev: lr.snapZxid,
		Offset: lr.spool.Len()})
}

// newSpool returns the spool of a new learner state, emptied: the
// configured one, or one in memory.
func (p *Peer) newSpool() SnapSpool {
	if p.cfg.SnapSpool == nil {
		return &memSpool{}
	}
	if p.cfg.SnapSpool.Len() > 0 {
		if err := p.cfg.SnapSpool.Reset(); err != nil {
			p.logger.Error("zab: emptying the snapshot spool", "err", err)
		}
	}
	return p.cfg.SnapSpool
}

// resetSpool drops what the learner's spool holds.
func (p *Peer) resetSpool() {
	if err := p.lrn.spool.Reset(); err != nil {
		p.logger.Error("zab: emptying the snapshot spool", "err", err)
	}
}

// learnerSnapWait handles MsgSnapWait: our synchronisation is queued at the
// leader, which is progress enough not to ask again. If the leader waits
// on an older request of ours, we name the latest.
func (p *Peer) learnerSnapWait(m Message) {
	lr := p.lrn
	if lr.modeSeq == lr.reqSeq {
		return
	}
	lr.lastProgress, lr.streaming = p.now, true
	if m.Seq != lr.reqSeq {
		p.sendSnapAck()
	}
}

// SnapStreamFloor returns, on a leader, the oldest snapshot a running
// stream sends (zero when none runs, and on other roles). A driver that
// compacts its log keeps the entries after it: the synchronisation goes on
// from that snapshot once every byte arrived, and a stream that outlives a
// compaction past its image would have to start over, for ever if each one
// takes longer than the snapshots come. Call it between Readys, like Step.
func (p *Peer) SnapStreamFloor() Zxid {
	if p.role != RoleLeading {
		return 0
	}
	var floor Zxid
	for _, id := range p.lead.snapQueue {
		if x := p.lead.learners[id].snap; x.running && (floor == 0 || x.snap.Zxid < floor) {
			floor = x.snap.Zxid
		}
	}
	return floor
}
