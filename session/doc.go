// Package session holds coord's session logic: timeout negotiation, session
// ids, the leader's expiry tracker and the owner's connection-state machine.
//
// It is pure logic. Nothing here touches the network, starts a goroutine,
// reads the clock or sends on a channel: every time comes in as a parameter
// and every outcome is returned, so coord's driver and a deterministic
// simulator run the same code.
//
// # Pieces
//
//   - Negotiate and Limits clamp a requested timeout into the cluster's
//     bounds, as ZooKeeper does (defaults 2 and 20 ticks).
//   - ID is a session id: the zxid of the session's createSession txn, so
//     ids are unique across leaders and positive while the epoch is < 2^31.
//   - Tracker runs on the leader (ZooKeeper's SessionTrackerImpl and
//     ExpiryQueue): Add on createSession, Touch on every heartbeat, Expired
//     on a timer (NextExpiry says when), MarkClosing on a client's close,
//     Remove when the closeSession txn is applied, Reset when a new leader
//     takes over.
//   - State runs on the session's owner: fed HeartbeatSent, HeartbeatAcked,
//     LeaderLost, Expired and Tick, it moves Connected → Suspended → Lost
//     (with Reconnected on Suspended → Connected) and queues an Event for
//     each transition.
//   - Replica is one replica's whole session logic built from the two, in
//     the shape of zab.Peer: stepped with Ticks (time and the replication
//     layer's View), applied createSession and closeSession txns, heartbeat
//     messages and the replication layer's confirmations that its reign
//     still stands, it returns what to do in a Ready (messages, owners'
//     events, ended sessions, expiries to propose, reaper scans). coord's node and the
//     simulator in internal/sim step the same Replica.
//
// # Safety: Lost is never later than the leader's expiry
//
// Let h be the newest heartbeat whose acknowledgement the owner has seen, sent
// at owner time s (its lease; the createSession request counts as the first
// heartbeat). The owner declares Lost at s + T, T the negotiated timeout. A
// leader acknowledges only heartbeats it received, and it received h at some
// r ≥ s in real time; Touch then set the session's expiry to at least
// r + T, rounded up to the next tick, and an expiry never moves earlier.
// Heartbeats sent after h that reached the leader only push its expiry
// further out. So the leader that acknowledged h expires the session no
// earlier than r + T ≥ s + T: at the moment the owner says Lost, the leader
// has expired the session or has not yet, never the other way round, and
// when the leader does expire it, the owner has already said Lost (or says so
// at once, on the leader's "session expired" reply). A leader that takes over
// calls Reset at its takeover time k, which gives every session until k + T;
// this is safe provided k ≥ s for every acknowledged heartbeat, that is, no
// deposed leader acknowledges a heartbeat sent after its successor took over.
// The Replica guarantees that by answering a heartbeat only once its
// replication layer reported that a quorum confirmed the reign that took the
// heartbeat in at an instant c after the heartbeat arrived
// (Replica.LeaderConfirmed, checked against the reign's epoch: a
// confirmation of a later reign of the same node does not count). zab's
// leader learns c from the pings it sends every tick anyway: c is when the
// tick of the newest ping round that a quorum of voters answered in the
// epoch began. A voter that answered had not yet joined a later epoch, and
// a successor needs a quorum that joined its epoch, which meets this one:
// so the successor's takeover came after c ≥ r ≥ s.
//
// The argument compares durations measured by two clocks, the owner's
// (s to s + T) and the leader's (r to r + T). It needs no synchronised wall
// clocks, only that the owner's clock does not run slower than the leader's:
// use monotonic readings (time.Now's, which Sub uses) and, where clock rates
// may differ by a relative error ρ, set Config.DriftMargin to at least ρ·T.
// The leader's rounding up to its tick and the network delay r - s add
// further slack on the safe side.
//
// # Why a lock holder stops at Suspended, not at Lost
//
// Lost marks the earliest moment at which the leader may expire the
// session: right after it the ephemeral lock node may be deleted and another
// process may take the lock. An application that keeps acting until Lost
// therefore races the next holder. Suspended comes
// Timeout-DriftMargin-SuspendAfter earlier (half the timeout by default) and
// means "I can no longer prove the session is alive": a holder that stops
// there finishes its in-flight work while the session is still certainly
// alive, and resumes only after Reconnected, when a fresh acknowledgement has
// proved the session (and so the lock) survived. State.Remaining gives the
// same answer as a fencing check right before each action.
//
// # Concurrency
//
// Tracker, State and Replica are not safe for concurrent use: their user
// serialises every call. In coord, one goroutine (the node's maintenance
// goroutine) steps the node's Replica, which owns the leader's Tracker and
// every local session's State; the zab driver goroutine and the
// application only queue inputs for it, and it delivers the owners' events
// onto each Session's Events and Suspended channels.
package session
