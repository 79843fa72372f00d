package zab

// MsgApp carries an application payload (in Message.Snap) between Nodes over
// the same authenticated transport as the protocol, for traffic that must
// reach the leader but is not replicated, such as session heartbeats. The
// core never sees it: Node hands it to NodeConfig.OnApp.
const MsgApp MsgType = 100

// MsgLeaving is sent by a leader that is shutting down on purpose (see
// Node.Handoff); learners start an election at once.
const MsgLeaving MsgType = 101

// SendApp sends payload to peer to. Delivery is best effort, like every
// message: the caller retries what matters.
func (n *Node) SendApp(to PeerID, payload []byte) error {
	return n.cfg.Transport.Send(Message{Type: MsgApp, From: n.peer.ID(), To: to, Snap: payload})
}

// Handoff, on a leader, tells every other member that it is leaving, so a
// new leader is elected at once rather than after the followers' SyncLimit;
// call it just before Close. Elsewhere it does nothing. It is best effort:
// a member that misses the message notices the silence as usual.
func (n *Node) Handoff() {
	st := n.Status()
	if st.SoftState.Role != RoleLeading {
		return
	}
	// From now on the core hears nothing: a leader that still answered
	// votes would be followed again by whoever has not yet read MsgLeaving.
	n.leaving.Store(true)
	self := n.peer.ID()
	for _, id := range append(append([]PeerID(nil), n.cfg.Core.Voters...), n.cfg.Core.Observers...) {
		if id != self {
			_ = n.cfg.Transport.Send(Message{Type: MsgLeaving, From: self, To: id, Epoch: st.SoftState.Epoch})
		}
	}
}
