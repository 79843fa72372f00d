package zab

import "errors"

// Sentinel errors of package zab, comparable with errors.Is.
var (
	// ErrQueueFull is returned by Transport.Send when the peer's queue is full.
	ErrQueueFull = errors.New("zab: peer send queue full")
	// ErrUnknownPeer is returned by Transport.Send for a peer with no address.
	ErrUnknownPeer = errors.New("zab: unknown peer")
)
