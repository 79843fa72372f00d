package coord

import (
	"fmt"
	"slices"
	"time"

	"github.com/coord-dev/coord/internal/gossip"
)

// MemberState is a member's liveness as this node's gossip sees it.
type MemberState uint8

// Member states.
const (
	MemberAlive MemberState = iota
	MemberSuspect
	MemberDead
	MemberLeft
)

var memberStateNames = [...]string{"alive", "suspect", "dead", "left"}

// String returns the state's name.
func (s MemberState) String() string {
	if int(s) < len(memberStateNames) {
		return memberStateNames[s]
	}
	return "MemberState(?)"
}

// Member is one node of the cluster as seen through gossip.
type Member struct {
	ID              uint64
	GossipAddr      string
	ReplicationAddr string
	Role            Role
	State           MemberState
}

func memberOf(m gossip.Member) Member {
	r := RoleVoter
	if m.Role == gossip.RoleObserver {
		r = RoleObserver
	}
	return Member{ID: m.NodeID, GossipAddr: m.Addr, ReplicationAddr: m.ReplicationAddr, Role: r, State: MemberState(m.State)}
}

// Members returns the cluster's members as gossip sees them, this node
// included, each with its Role in the voter configuration in force here
// (see Voters). Gossip is not the quorum: a member listed alive may be
// unreachable for replication.
func (n *Node) Members() []Member {
	voters := n.Voters()
	var out []Member
	for _, m := range n.gossip.Members() {
		mm := memberOf(m)
		mm.Role = RoleObserver
		if slices.Contains(voters, mm.ID) {
			mm.Role = RoleVoter
		}
		out = append(out, mm)
	}
	return out
}

// Leader returns the id of the leader this node follows (or itself) and the
// epoch; 0, 0 while there is none.
func (n *Node) Leader() (id uint64, epoch uint32) {
	ss := n.zab.Status().SoftState
	return uint64(ss.Leader), ss.Epoch
}

// ClusterEventType says what a ClusterEvent reports.
type ClusterEventType uint8

// Cluster event types.
const (
	EventMemberJoined ClusterEventType = iota + 1
	EventMemberUpdated
	EventMemberLeft
	EventMemberFailed
	EventLeaderChanged
	// EventVotersChanged: the voter configuration in force changed
	// (Voters set).
	EventVotersChanged
	// EventNodeFailed: this node fail-stopped because its replication
	// stopped (Err set, as Node.Err returns it). It is the last event.
	EventNodeFailed
	// EventAutopilot: this node, as leader, made an autopilot change
	// (Autopilot set; Err set if it failed; Voters as they are after it).
	EventAutopilot
	// EventDiverged: the leader's digest check found this replica's tree
	// different (Err set, wrapping ErrDiverged): it stopped serving and
	// resynchronises from the leader.
	EventDiverged
	// EventResynced: a replica that diverged took the leader's state
	// again and serves.
	EventResynced
)

// ClusterEvent is a change of membership (Member set), of leader (Leader
// and Epoch set; Leader 0 while an election runs), of the voters (Voters
// set), an autopilot decision (Autopilot set) or this node's failure (Err
// set).
type ClusterEvent struct {
	Type      ClusterEventType
	Member    Member
	Leader    uint64
	Epoch     uint32
	Voters    []uint64
	Autopilot AutopilotDecision
	Err       error
}

func memberEventType(t gossip.EventType) ClusterEventType {
	switch t {
	case gossip.EventJoin:
		return EventMemberJoined
	case gossip.EventUpdate:
		return EventMemberUpdated
	case gossip.EventLeave:
		return EventMemberLeft
	}
	return EventMemberFailed
}

// Events returns the channel of membership and leader changes. It is
// buffered; when the reader falls behind, the oldest events are dropped
// (call Members and Leader for the current state).
func (n *Node) Events() <-chan ClusterEvent { return n.events }

func (n *Node) emit(ev ClusterEvent) {
	select {
	case n.events <- ev:
	default:
		select {
		case <-n.events:
		default:
		}
		select {
		case n.events <- ev:
		default:
		}
	}
}

// Stats is a snapshot of a node's state for monitoring. Counts are
// numbers, latencies are time.Durations; the JSON names (snake case, with
// durations in nanoseconds under a _ns suffix) are stable, for the
// coord/admin handler and expvar (ExpvarName).
type Stats struct {
	ID uint64 `json:"id"`
	// Role is LOOKING, FOLLOWING, LEADING or OBSERVING, as ZooKeeper says.
	Role string `json:"role"`
	// Serving is true while the node follows (or is) an established
	// leader and is synced with it: reads and writes are served.
	Serving bool `json:"serving"`
	// Running is true while the node is open and its replication runs;
	// false once Close or Shutdown was called or replication stopped (a
	// fail-stop: see Node.Err).
	Running   bool   `json:"running"`
	Leader    uint64 `json:"leader"`
	Epoch     uint32 `json:"epoch"`
	LastZxid  int64  `json:"last_zxid"` // last zxid in the log
	Committed int64  `json:"committed"` // last zxid known committed
	Applied   int64  `json:"applied"`   // last zxid applied to the local tree
	// Commits counts the txns applied to the local tree since the node
	// started (snapshots restored at start or from the leader excepted).
	Commits  uint64 `json:"commits"`
	Znodes   int    `json:"znodes"`
	Sessions int    `json:"sessions"` // sessions in the replicated table
	Watches  int    `json:"watches"`  // watch registrations on this node
	// Dedup is how many write results the local tree remembers for
	// retries: those not yet finished by their proposer
	// (proposal.Request.Forget), or at most tree.DedupWindow old.
	Dedup int `json:"dedup"`
	// SendQueues is the replication send queue depth per peer.
	SendQueues map[uint64]int `json:"send_queues"`
	// Followers is, on the leader, each learner's replication state.
	Followers map[uint64]FollowerStats `json:"followers,omitempty"`
	// FsyncP50 and FsyncP99 are recent log write latencies (zero in memory).
	FsyncP50 time.Duration `json:"fsync_p50_ns"`
	FsyncP99 time.Duration `json:"fsync_p99_ns"`
	// LoopBusy is the fraction of time the replication loop was busy.
	LoopBusy float64 `json:"loop_busy"`
	// Snapshots taken since the node started.
	Snapshots int `json:"snapshots"`
	// Voters is the voter configuration in force on this node.
	Voters []uint64 `json:"voters"`
	// ClusterID is the id the cluster chose when it was first established
	// (16 hex digits; empty until this node learned it), recorded in every
	// member's data directory: a directory of another cluster is refused.
	ClusterID string `json:"cluster_id,omitempty"`
	// Transport counts the replication transport's traffic and failures.
	Transport TransportStats `json:"transport"`
	// Gossip counts the membership layer's events and refusals.
	Gossip GossipStats `json:"gossip"`
	// Autopilot is the voter set's self-management (see AutopilotConfig).
	Autopilot AutopilotStats `json:"autopilot"`
	// DigestChecks counts the leader's digest checks this replica's tree
	// matched, DigestMismatches those it did not (see ErrDiverged),
	// Resyncs the resynchronisations they started, and Resyncing is true
	// while one runs (the node serves nothing then). ResyncAsks counts the
	// requests for the leader's permission to resync, one a tick at first
	// and then fewer (at most one every 8 ticks) while none is granted.
	DigestChecks     uint64 `json:"digest_checks"`
	DigestMismatches uint64 `json:"digest_mismatches"`
	Resyncs          uint64 `json:"resyncs"`
	Resyncing        bool   `json:"resyncing"`
	ResyncAsks       uint64 `json:"resync_asks"`
	// HeartbeatAckP50 and HeartbeatAckP99 are the median and 99th
	// percentile round trip (send to acknowledgement) of the latest 1024
	// acknowledged heartbeats of this node's sessions; zero before the
	// first. A session stays Connected while they stay well under a third
	// of its timeout.
	HeartbeatAckP50 time.Duration `json:"heartbeat_ack_p50_ns"`
	HeartbeatAckP99 time.Duration `json:"heartbeat_ack_p99_ns"`
	// SnapStreams is the snapshot streaming of this node: as the leader,
	// to learners too far behind for a log diff; as a learner, from its
	// leader.
	SnapStreams SnapStreamStats `json:"snap_streams"`
}

// SnapStreamStats is a node's snapshot streaming. A leader streams at most
// a few snapshots at once (two); other learners that need one queue.
type SnapStreamStats struct {
	// Running is, on the leader, how many snapshot streams run now, and
	// Queued how many learners wait their turn for one (zero on other
	// roles).
	Running int `json:"running"`
	Queued  int `json:"queued"`
	// BytesSent counts the snapshot bytes this node streamed as a leader
	// (resent chunks included), BytesReceived those it received as a
	// learner, since the node started.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	// Receiving is true while this node, as a learner, receives a
	// snapshot: Held of its Total bytes have arrived.
	Receiving bool   `json:"receiving"`
	Held      uint64 `json:"held"`
	Total     uint64 `json:"total"`
}

// TransportStats are the replication transport's counters, cumulative
// since the node started.
type TransportStats struct {
	MessagesSent     uint64 `json:"messages_sent"`
	BytesSent        uint64 `json:"bytes_sent"`
	MessagesReceived uint64 `json:"messages_received"`
	BytesReceived    uint64 `json:"bytes_received"`
	// QueueFull counts messages refused because a peer's send queue was
	// full; SendDrops counts messages accepted and then lost (dial or
	// write failure, oversized, peer removed).
	QueueFull uint64 `json:"queue_full"`
	SendDrops uint64 `json:"send_drops"`
	// HandshakeFailures counts failed connection handshakes, inbound and
	// outbound; AuthFailures those of them where the other end did not
	// prove the cluster's SecretKey (or the keys' presence differed), and
	// inbound encrypted frames that failed to open (tampered, replayed,
	// reordered), each of which closed its connection.
	HandshakeFailures uint64 `json:"handshake_failures"`
	AuthFailures      uint64 `json:"auth_failures"`
	// DuplicateIDs counts handshakes refused because another live process
	// already connects under the dialer's id (two nodes with one NodeID).
	DuplicateIDs uint64 `json:"duplicate_ids"`
	// BadFrames counts connections closed for a malformed frame;
	// ForgedDrops messages dropped for a sender or recipient that did not
	// match the authenticated connection.
	BadFrames   uint64 `json:"bad_frames"`
	ForgedDrops uint64 `json:"forged_drops"`
	// ConnectedPeers is how many peers have an open outbound connection;
	// DialFailures counts the failed connection attempts to all peers.
	ConnectedPeers int    `json:"connected_peers"`
	DialFailures   uint64 `json:"dial_failures"`
}

// GossipStats are the membership layer's counters, cumulative since the
// node started, and its current view.
type GossipStats struct {
	// Members is how many members gossip lists (this node included), and
	// Alive how many of them are alive.
	Members int `json:"members"`
	Alive   int `json:"alive"`
	// AuthFailures counts gossip packets refused for a wrong Cluster label
	// or SecretKey.
	AuthFailures uint64 `json:"auth_failures"`
	// VetoedPeers counts peers refused for bad or foreign metadata;
	// Conflicts a node id seen at two addresses.
	VetoedPeers uint64 `json:"vetoed_peers"`
	Conflicts   uint64 `json:"conflicts"`
	// CoalescedEvents counts membership events merged into a later one
	// because the consumer was behind.
	CoalescedEvents uint64 `json:"coalesced_events"`
}

// Stats returns a snapshot of the node's state.
func (n *Node) Stats() Stats {
	st := n.zab.Status()
	running := !n.closed.Load()
	select {
	case <-n.Done():
		running = false
	case <-n.zab.Done(): // before the node notices and fail-stops
		running = false
	default:
	}
	s := Stats{
		ID: n.cfg.NodeID, Role: st.SoftState.Role.String(), Serving: st.SoftState.Serving && running,
		Running: running, Leader: uint64(st.SoftState.Leader), Epoch: st.SoftState.Epoch,
		LastZxid: int64(st.LastZxid), Committed: int64(st.Committed), Applied: int64(st.Applied),
		Commits: n.fsm.commits.Load(),
		Znodes:  n.tree.NodeCount(), Sessions: n.tree.SessionCount(), Watches: n.tree.WatchCount(),
		Dedup:      n.tree.DedupLen(),
		SendQueues: map[uint64]int{}, FsyncP50: st.FsyncP50, FsyncP99: st.FsyncP99,
		LoopBusy: st.LoopBusy, Snapshots: st.Snapshots, Voters: n.Voters(),
		Autopilot: n.autopilotStats(),
		Resyncs:   n.div.resyncs.Load(), Resyncing: n.diverged() != nil, ResyncAsks: n.div.asks.sent.Load(),
	}
	s.DigestChecks, s.DigestMismatches = n.fsm.digests.counts()
	ss := st.SnapStreams
	s.SnapStreams = SnapStreamStats{Running: ss.Running, Queued: ss.Queued, BytesSent: ss.BytesSent,
		BytesReceived: ss.BytesReceived, Receiving: ss.Receiving, Held: ss.Held, Total: ss.Total}
	n.coreMu.Lock()
	s.HeartbeatAckP50, s.HeartbeatAckP99, _ = n.core.AckLatency()
	n.coreMu.Unlock()
	if s.Resyncing {
		s.Serving = false
	}
	if st.ClusterID != 0 {
		s.ClusterID = fmt.Sprintf("%016x", st.ClusterID)
	}
	ts := n.tr.Stats()
	s.Transport = TransportStats{
		MessagesSent: ts.MessagesSent, BytesSent: ts.BytesSent,
		MessagesReceived: ts.MessagesReceived, BytesReceived: ts.BytesReceived,
		QueueFull: ts.QueueFull, SendDrops: ts.SendDrops,
		HandshakeFailures: ts.HandshakeFailures, AuthFailures: ts.AuthFailures, DuplicateIDs: ts.DuplicateIDs,
		BadFrames: ts.BadFrames, ForgedDrops: ts.ForgedDrops,
	}
	for _, p := range ts.Peers {
		s.SendQueues[uint64(p.ID)] = p.QueueLen
		s.Transport.DialFailures += p.DialFailures
		if p.Connected {
			s.Transport.ConnectedPeers++
		}
	}
	gs := n.gossip.Stats()
	s.Gossip = GossipStats{AuthFailures: gs.AuthFailures, VetoedPeers: gs.VetoedPeers,
		Conflicts: gs.Conflicts, CoalescedEvents: gs.CoalescedEvents}
	for _, m := range n.gossip.Members() {
		s.Gossip.Members++
		if m.State == gossip.StateAlive {
			s.Gossip.Alive++
		}
	}
	if len(st.Progress) > 0 {
		s.Followers = make(map[uint64]FollowerStats, len(st.Progress))
		for id, p := range st.Progress {
			f := FollowerStats{Observer: p.Observer, Synced: p.Synced, Acked: int64(p.Acked), Paused: p.Paused,
				Lag: -1, Idle: time.Duration(p.IdleTicks) * n.cfg.TickInterval}
			if p.Acked.Epoch() == st.LastZxid.Epoch() {
				f.Lag = int64(st.LastZxid.Counter()) - int64(p.Acked.Counter())
			}
			s.Followers[uint64(id)] = f
		}
	}
	return s
}

// FollowerStats is the leader's view of one follower or observer.
type FollowerStats struct {
	Observer bool  `json:"observer"`
	Synced   bool  `json:"synced"` // acknowledged NEWLEADER in this epoch
	Acked    int64 `json:"acked"`  // last zxid it acknowledged holding durably
	// Lag is how many txns of this epoch it has not acknowledged yet (-1
	// while it has acknowledged nothing of this epoch).
	Lag    int64         `json:"lag"`
	Paused bool          `json:"paused"`  // streaming waits for it (its send queue was full)
	Idle   time.Duration `json:"idle_ns"` // since it was last heard from
}
