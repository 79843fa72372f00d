package coord

import (
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
)

// ClusterEvent is a change of membership (Member set), of leader (Leader
// and Epoch set; Leader 0 while an election runs), of the voters (Voters
// set) or this node's failure (Err set).
type ClusterEvent struct {
	Type   ClusterEventType
	Member Member
	Leader uint64
	Epoch  uint32
	Voters []uint64
	Err    error
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

// Stats is a snapshot of a node's state for monitoring.
type Stats struct {
	ID        uint64
	Role      string // LOOKING, FOLLOWING, LEADING or OBSERVING, as ZooKeeper says
	Leader    uint64
	Epoch     uint32
	LastZxid  int64 // last zxid in the log
	Committed int64 // last zxid known committed
	Applied   int64 // last zxid applied to the local tree
	Znodes    int
	Sessions  int // sessions in the replicated table
	Watches   int // watch registrations on this node
	// SendQueues is the replication send queue depth per peer.
	SendQueues map[uint64]int
	// Followers is, on the leader, each learner's replication state.
	Followers map[uint64]FollowerStats
	// FsyncP50 and FsyncP99 are recent log write latencies (zero in memory).
	FsyncP50, FsyncP99 string
	// LoopBusy is the fraction of time the replication loop was busy.
	LoopBusy float64
	// Snapshots taken since the node started.
	Snapshots int
	// Voters is the voter configuration in force on this node.
	Voters []uint64
}

// Stats returns a snapshot of the node's state.
func (n *Node) Stats() Stats {
	st := n.zab.Status()
	s := Stats{
		ID: n.cfg.NodeID, Role: st.SoftState.Role.String(), Leader: uint64(st.SoftState.Leader), Epoch: st.SoftState.Epoch,
		LastZxid: int64(st.LastZxid), Committed: int64(st.Committed), Applied: int64(st.Applied),
		Znodes: n.tree.NodeCount(), Sessions: n.tree.SessionCount(), Watches: n.tree.WatchCount(),
		SendQueues: map[uint64]int{}, FsyncP50: st.FsyncP50.String(), FsyncP99: st.FsyncP99.String(),
		LoopBusy: st.LoopBusy, Snapshots: st.Snapshots, Voters: n.Voters(),
	}
	for _, p := range n.tr.Stats().Peers {
		s.SendQueues[uint64(p.ID)] = p.QueueLen
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
	Observer bool
	Synced   bool  // acknowledged NEWLEADER in this epoch
	Acked    int64 // last zxid it acknowledged holding durably
	// Lag is how many txns of this epoch it has not acknowledged yet (-1
	// while it has acknowledged nothing of this epoch).
	Lag    int64
	Paused bool          // streaming waits for it (its send queue was full)
	Idle   time.Duration // since it was last heard from
}
