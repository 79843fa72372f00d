package coord

import (
	"slices"
	"time"

	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// The session core (session.Replica) holds this node's session logic:
// heartbeats and their acknowledgements, the owners' Connected, Suspended
// and Lost, the leader's tracker and expiries, and reaper scans. One
// goroutine, maintain, steps it: the zab driver and the application only
// queue inputs (push), so the driver never waits for the core, and the core
// never waits for a quorum. A leader acknowledges heartbeats when zab's
// driver reports that a quorum answered its pings (OnLeaderConfirmed, one
// hand-off to maintain): no quorum round of their own.

// inKind is the kind of a coreInput.
type inKind uint8

const (
	inApp       inKind = iota + 1 // a heartbeat or ack from a peer
	inCreated                     // an applied createSession
	inClosed                      // an applied closeSession
	inConfirmed                   // zab: a quorum confirmed this node's reign
	inOpen                        // a local session was created
	inClosing                     // its owner is closing a local session
	inForget                      // a local session ended locally
)

// coreInput is one input waiting for the session core.
type coreInput struct {
	kind    inKind
	from    uint64
	msg     session.Message
	id      session.ID
	timeout time.Duration
	epoch   uint32    // inConfirmed
	sent    time.Time // inOpen: the createSession's send; inConfirmed: confirmed at
	now     time.Time
	reply   chan error // inOpen
}

// maxInboxMessages bounds the peers' messages waiting for the core: beyond
// it they are dropped (owners send heartbeats again). Applied txns and the
// application's inputs are never dropped.
const maxInboxMessages = 1 << 16

// push queues in for the maintenance goroutine and wakes it. It never
// blocks for longer than an append.
func (n *Node) push(in coreInput) {
	n.inMu.Lock()
	if in.kind == inApp && len(n.inbox) >= maxInboxMessages {
		n.inMu.Unlock()
		return
	}
	n.inbox = append(n.inbox, in)
	n.inMu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// onApp takes in a peer's heartbeat or ack, or a resync request or grant
// (see digest.go). It runs on the zab driver goroutine: it only queues.
func (n *Node) onApp(from zab.PeerID, payload []byte) {
	m, err := decodeAppMsg(payload)
	if err == nil && (m.Kind == msgResyncAsk || m.Kind == msgResyncGrant || m.Kind == msgResyncDone) {
		n.div.queue(from, m)
		select {
		case n.wake <- struct{}{}:
		default:
		}
		return
	}
	if err != nil || (m.Kind != msgHeartbeat && m.Kind != msgHeartbeatAck) {
		n.log.Debug("coord: bad app message", "from", from)
		return
	}
	n.push(coreInput{kind: inApp, from: uint64(from), msg: session.Message{Type: session.MsgType(m.Kind),
		Session: session.ID(m.Session), Sent: m.Sent, OK: m.OK}})
}

// onApply sees every applied txn. It runs on the zab driver goroutine: it
// only queues the session txns for the core.
func (n *Node) onApply(txn tree.Txn, res tree.Result) {
	if res.Err != nil || res.Duplicate {
		return // nothing was applied
	}
	switch txn.Op.Type {
	case tree.OpCreateSession:
		n.push(coreInput{kind: inCreated, id: session.ID(txn.Op.Session),
			timeout: time.Duration(txn.Op.Timeout) * time.Millisecond})
	case tree.OpCloseSession:
		n.push(coreInput{kind: inClosed, id: session.ID(txn.Op.Session)})
	}
}

// maintain steps the session core: at every tick and whenever inputs are
// queued. It also reports leader and voter changes, and fail-stops the
// node when its replication stops.
func (n *Node) maintain() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	var lastLeader zab.PeerID
	var lastEpoch uint32
	var lastVoters []zab.PeerID
	for {
		tick := false
		select {
		case <-n.closing:
			return
		case <-n.zab.Done():
			if !n.closed.Load() {
				n.fail(n.zab.Err())
			}
			return
		case <-n.wake:
		case <-t.C:
			tick = true
		}
		if n.checkDiverged() {
			return
		}
		var view session.View
		if tick {
			st := n.zab.Status()
			ss := st.SoftState
			if ss.Role == zab.RoleLeading && ss.Serving {
				n.maybeProposeDigest()
			}
			if ss.Leader != lastLeader || ss.Epoch != lastEpoch {
				lastLeader, lastEpoch = ss.Leader, ss.Epoch
				n.emit(ClusterEvent{Type: EventLeaderChanged, Leader: uint64(ss.Leader), Epoch: ss.Epoch})
			}
			if !slices.Equal(st.Voters, lastVoters) {
				if lastVoters != nil {
					n.emit(ClusterEvent{Type: EventVotersChanged, Voters: n.Voters()})
				}
				lastVoters = st.Voters
			}
			if n.ap.stats.Enabled {
				n.autopilotTick(st)
			}
			view = session.View{Leader: uint64(ss.Leader), Epoch: ss.Epoch, Serving: ss.Serving,
				Leading: ss.Role == zab.RoleLeading && ss.Serving}
		}
		n.step(tick, view)
	}
}

// step feeds the queued inputs (and, if tick, a Tick) to the core and
// carries out what it asks.
func (n *Node) step(tick bool, view session.View) {
	n.inMu.Lock()
	ins := n.inbox
	n.inbox = nil
	n.inMu.Unlock()
	n.coreMu.Lock()
	var early map[session.ID]time.Duration // lease left when the leader said gone
	for _, in := range ins {
		now := time.Now()
		if in.kind == inClosed || (in.kind == inApp && in.msg.Type == session.MsgAck && !in.msg.OK) {
			id := in.id
			if in.kind == inApp {
				id = in.msg.Session
			}
			if _, end, ok := n.core.Lease(id); ok && end.After(now) {
				if early == nil {
					early = map[session.ID]time.Duration{}
				}
				early[id] = end.Sub(now)
			}
		}
		switch in.kind {
		case inApp:
			n.core.Receive(in.from, in.msg, now)
		case inCreated:
			n.core.Created(in.id, in.timeout, now)
		case inClosed:
			n.core.Closed(in.id, now)
		case inConfirmed:
			n.core.LeaderConfirmed(in.epoch, in.sent, now)
		case inOpen:
			in.reply <- n.core.Open(in.id, session.Config{Timeout: in.timeout}, in.sent, in.now)
		case inClosing:
			n.core.Closing(in.id)
		case inForget:
			n.core.Forget(in.id)
		}
	}
	if tick {
		n.core.Tick(time.Now(), view)
	}
	rd := n.core.Ready()
	n.deliver(rd)
	n.coreMu.Unlock()
	for _, e := range rd.Ended {
		if left, ok := early[e.Session]; ok && !e.ByOwner && !n.closed.Load() { // Close closes its sessions itself
			// The leader may never expire a session before its owner's
			// lease ends (see package session): this is a safety bug.
			n.log.Error("coord: session expired by the leader while its owner's lease ran", "session", e.Session,
				"lease_left", left)
		}
	}
	n.act(rd)
}

// deliver hands the core's session events to their sessions. Caller holds
// coreMu, so Suspended and Remaining see a status and a lease that agree.
func (n *Node) deliver(rd session.Ready) {
	for _, oe := range rd.Events {
		n.sessMu.Lock()
		s := n.sessions[int64(oe.Session)]
		n.sessMu.Unlock()
		if s == nil {
			continue
		}
		s.mu.Lock()
		s.deliverLocked(oe.Event)
		s.mu.Unlock()
	}
}

// act carries out the rest of what the core asks: messages, ended
// sessions, expiries and reaper scans.
func (n *Node) act(rd session.Ready) {
	for _, ob := range rd.Messages {
		b, err := encodeAppMsg(appMsg{Kind: uint8(ob.Msg.Type), Session: int64(ob.Msg.Session), Sent: ob.Msg.Sent,
			OK: ob.Msg.OK})
		if err == nil {
			_ = n.zab.SendApp(zab.PeerID(ob.To), b)
		}
	}
	for _, e := range rd.Ended {
		n.sessMu.Lock()
		s := n.sessions[int64(e.Session)]
		n.sessMu.Unlock()
		if s == nil {
			continue
		}
		if e.ByOwner {
			s.finish(ErrClosed)
		} else {
			s.finish(ErrSessionExpired)
		}
	}
	for _, e := range rd.Expire {
		n.proposeExpiry(int64(e.Session), e.Epoch)
	}
	if rd.Reap {
		for _, p := range n.tree.ReapCandidates(time.Now().UnixMilli()) {
			n.proposeAsync(tree.Op{Type: tree.OpReap, Path: p})
		}
	}
}

// treeTable is the replicated session table as the session core reads it.
type treeTable struct{ t *tree.Tree }

func (tt treeTable) Sessions() []session.Entry {
	var out []session.Entry
	for _, s := range tt.t.Sessions() {
		out = append(out, session.Entry{ID: session.ID(s.ID), Timeout: time.Duration(s.Timeout) * time.Millisecond})
	}
	return out
}

func (tt treeTable) Timeout(id session.ID) (time.Duration, bool) {
	ms, ok := tt.t.Session(int64(id))
	return time.Duration(ms) * time.Millisecond, ok
}
