// Package gossip is coord's membership layer: it wraps hashicorp/memberlist
// so a node finds its peers, learns their ids, replication addresses and
// roles, and hears when they join, change, leave or fail.
//
// Gossip is not the quorum (DESIGN.md, decision 1): what this package
// reports is who is reachable, never who votes.
//
// # Isolation and security
//
// The memberlist node name is the decimal node id and the memberlist label
// is the cluster name, so traffic of another cluster is dropped before it
// is decoded. Every peer's metadata is checked by an AliveDelegate and a
// MergeDelegate: malformed metadata, an id that differs from the node name
// or a foreign cluster vetoes the peer. With a SecretKey, every packet and
// stream is encrypted and unencrypted ones are rejected, so a node with a
// wrong or no key can neither join nor be joined; such refusals are logged
// at Warn (rate limited) and counted in Stats.
//
// # Healing and restarts
//
// memberlist forgets a dead member after its gossip-to-the-dead time and
// never contacts it again, so after a long partition the two sides stay
// apart for ever. Every HealInterval, a Gossip re-joins (one TCP state
// exchange each) the last known address of every member it saw and now
// believes dead, and its seeds while any member is dead or no peer is
// alive. The first exchange that crosses a healed partition merges the two
// views.
//
// A node that restarts with the same id on a new address is accepted: a
// peer that still holds the old address reports a name conflict, and both
// sides then keep pushing their state to each other (every HealInterval)
// until the old address is declared dead; memberlist then replaces the
// entry after DeadNodeReclaimTime (one probe interval). A node that left
// gracefully is replaced at once.
//
// # Goroutines
//
// New starts memberlist's goroutines (listeners, packet handler, probe,
// gossip and push/pull tickers), one heal loop and one event pump. Join
// runs each blocking memberlist join in a goroutine so that its context can
// cut the wait short; the heal loop runs its joins concurrently. Close
// stops memberlist, then waits for every goroutine this package started;
// memberlist's own exit as soon as its listeners close.
//
// # Events
//
// Event delivery never blocks memberlist: the delegates queue events and a
// pump goroutine sends them on a buffered channel. While the consumer lags,
// a member's queued event is replaced by its newer one (counted in
// Stats.CoalescedEvents), so the queue holds at most one event per member
// and nothing is dropped: the last event a consumer receives for a member
// carries that member's latest state, though intermediate states (a failure
// followed by a rejoin) may be skipped. Members is always current.
package gossip
