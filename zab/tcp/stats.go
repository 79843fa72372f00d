package tcp

import (
	"errors"
	"sort"
	"sync/atomic"

	"github.com/coord-dev/coord/zab"
)

// counters are the transport-wide statistics, updated atomically.
type counters struct {
	framesSent, msgsSent, bytesSent atomic.Uint64
	framesRecv, msgsRecv, bytesRecv atomic.Uint64
	queueFull, sendDrops            atomic.Uint64
	forgedDrops                     atomic.Uint64
	handshakeFailures, badFrames    atomic.Uint64
	authFailures                    atomic.Uint64
	duplicateIDs                    atomic.Uint64
}

// Stats is a point-in-time snapshot of a Transport's counters. Counters are
// cumulative since New.
type Stats struct {
	// Peers describes each known peer, sorted by id.
	Peers []PeerStats

	// FramesSent, MessagesSent and BytesSent count batch frames written,
	// the messages in them, and their bytes (headers included).
	FramesSent, MessagesSent, BytesSent uint64
	// FramesReceived, MessagesReceived and BytesReceived count batch frames
	// read, messages delivered on Receive, and frame bytes read.
	FramesReceived, MessagesReceived, BytesReceived uint64

	// QueueFull counts Send calls refused with zab.ErrQueueFull.
	QueueFull uint64
	// SendDrops counts messages accepted by Send and then lost (dial or
	// write failure, message larger than MaxFrameSize, peer removed).
	SendDrops uint64
	// ForgedDrops counts inbound messages dropped because their From was not
	// the connection's authenticated id or their To was not this node.
	ForgedDrops uint64
	// HandshakeFailures counts failed handshakes, inbound and outbound.
	HandshakeFailures uint64
	// AuthFailures counts the handshakes among those that failed
	// authentication (ErrAuth): the other end did not prove the secret
	// key, or only one side has a key; and, with a key, inbound frames
	// that failed to open (ErrOpen: tampered, replayed, reordered, sealed
	// with another key, or not sealed), each of which closed its
	// connection (and is counted in BadFrames too).
	AuthFailures uint64
	// DuplicateIDs counts inbound handshakes refused because another live
	// process holds a connection under the same id (ErrDuplicateID).
	DuplicateIDs uint64
	// BadFrames counts inbound connections closed for a malformed, oversized,
	// wrong-version, unexpected or (with a key) unopenable frame.
	BadFrames uint64

	// InboundConns is the number of accepted connections now open
	// (authenticated or still in the handshake).
	InboundConns int
	// AuthenticatedInbound is the number of those that completed the
	// handshake (at most one per peer).
	AuthenticatedInbound int
	// RecvQueueLen is the number of messages waiting in the Receive channel.
	RecvQueueLen int
}

// PeerStats describes one peer's outbound side.
type PeerStats struct {
	ID           zab.PeerID
	Addr         string // as last given to SetPeer
	QueueLen     int    // messages waiting in the send queue
	BulkLen      int    // snapshot chunks waiting in the low-priority queue
	QueueCap     int    // Config.SendQueueSize
	Connected    bool   // an authenticated outbound connection is open
	Dials        uint64 // connection attempts
	DialFailures uint64 // attempts that failed to connect or handshake
	Sent         uint64 // messages written
	Drops        uint64 // messages lost after Send accepted them
}

// Stats returns a snapshot of the transport's counters and queues. It is safe
// to call at any time, including after Close.
func (t *Transport) Stats() Stats {
	s := Stats{
		FramesSent:        t.st.framesSent.Load(),
		MessagesSent:      t.st.msgsSent.Load(),
		BytesSent:         t.st.bytesSent.Load(),
		FramesReceived:    t.st.framesRecv.Load(),
		MessagesReceived:  t.st.msgsRecv.Load(),
		BytesReceived:     t.st.bytesRecv.Load(),
		QueueFull:         t.st.queueFull.Load(),
		SendDrops:         t.st.sendDrops.Load(),
		ForgedDrops:       t.st.forgedDrops.Load(),
		HandshakeFailures: t.st.handshakeFailures.Load(),
		AuthFailures:      t.st.authFailures.Load(),
		DuplicateIDs:      t.st.duplicateIDs.Load(),
		BadFrames:         t.st.badFrames.Load(),
		RecvQueueLen:      len(t.recv),
	}
	t.mu.RLock()
	s.InboundConns = len(t.inbound)
	s.AuthenticatedInbound = len(t.byPeer)
	for _, p := range t.peers {
		addr, _ := p.address()
		s.Peers = append(s.Peers, PeerStats{
			ID:           p.id,
			Addr:         addr,
			QueueLen:     len(p.queue),
			BulkLen:      len(p.bulk),
			QueueCap:     cap(p.queue),
			Connected:    p.connected(),
			Dials:        p.dials.Load(),
			DialFailures: p.dialFailures.Load(),
			Sent:         p.sent.Load(),
			Drops:        p.drops.Load(),
		})
	}
	t.mu.RUnlock()
	sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].ID < s.Peers[j].ID })
	return s
}

// handshakeFailed counts a failed handshake, and an authentication
// failure when err is one.
func (c *counters) handshakeFailed(err error) {
	c.handshakeFailures.Add(1)
	if errors.Is(err, ErrAuth) {
		c.authFailures.Add(1)
	}
}
