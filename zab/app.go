package zab

// MsgApp carries an application payload (in Message.Snap) between Nodes over
// the same authenticated transport as the protocol, for traffic that must
// reach the leader but is not replicated, such as session heartbeats. The
// core never sees it: Node hands it to NodeConfig.OnApp.
const MsgApp MsgType = 100

// SendApp sends payload to peer to. Delivery is best effort, like every
// message: the caller retries what matters.
func (n *Node) SendApp(to PeerID, payload []byte) error {
	return n.cfg.Transport.Send(Message{Type: MsgApp, From: n.peer.ID(), To: to, Snap: payload})
}
