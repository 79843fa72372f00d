package zab

// Transport carries Messages between peers. The protocol core never calls it:
// the driver loop that owns a core hands it the core's outbound messages and
// steps the core with what arrives. zab/tcp is the only implementation, and
// Node's tests run over it on loopback. The core's tests need no Transport:
// Sim (memnet.go) steps Peers directly on a seeded virtual network.
//
// Delivery is best effort: a message may be lost (full queue, broken
// connection, unknown peer) but is never corrupted, and messages from one
// sender to one receiver that are delivered arrive in the order they were sent
// (except that other messages may overtake snapshot chunks, MsgSnapChunk,
// which a transport may send at a lower priority).
// The core recovers from loss by itself (retransmission or resynchronisation).
type Transport interface {
	// Send queues m for delivery to m.To without blocking on the network. It
	// returns ErrQueueFull when the queue for m.To is full (back-pressure the
	// caller may use to stop pipelining to that peer) and ErrUnknownPeer when
	// no address is known for m.To. Other failures are reported by dropping m.
	Send(m Message) error
	// Receive returns the channel of inbound messages from authenticated peers.
	// It is closed by Close.
	Receive() <-chan Message
	// SetPeer records (or updates) the replication address of a peer.
	SetPeer(id PeerID, addr string)
	// RemovePeer forgets a peer and closes its connections.
	RemovePeer(id PeerID)
	// Close stops every goroutine of the transport and closes its connections.
	// It is idempotent.
	Close() error
}
