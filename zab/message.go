package zab

// MsgType says what a Message is for.
type MsgType uint8

// Message types. The comment of each names the fields it uses besides
// Type, From and To.
const (
	// MsgVote is a fast-leader-election notification: the sender's current
	// vote (Leader, Zxid, Epoch = the proposed leader's current epoch), its
	// election Round, its State (a Role), its own current epoch (Current:
	// zero means it holds no synchronised history, as after a lost disk),
	// its cluster id (Cluster) and whether it is a member (Member).
	MsgVote MsgType = iota + 1
	// MsgFollowerInfo starts discovery: a learner tells its leader its
	// accepted epoch (Epoch), current epoch (Current), last zxid (Zxid),
	// election Round, cluster id (Cluster), whether it is a member (Member)
	// and whether it is an observer (Observer).
	MsgFollowerInfo
	// MsgLeaderInfo proposes the new epoch (Epoch) of the leader elected in
	// Round, and the cluster id (Cluster) the learner must adopt.
	MsgLeaderInfo
	// MsgAckEpoch acknowledges the new epoch (Epoch) and reports the learner's
	// current epoch (Current) and last zxid (Zxid). Accepted says the learner
	// accepted Epoch from this leader for the first time: only such acks
	// count toward the epoch quorum (ZOOKEEPER-1343), so no two leaders can
	// both gather one for the same epoch. Sent again, it asks the leader to
	// restart synchronisation from Zxid.
	MsgAckEpoch
	// MsgSync is one chunk of a synchronisation (Seq). The first chunk has a
	// Mode (DIFF, TRUNC or SNAP, with Snap for SNAP) that leaves the learner's
	// log ending at Prev; Entries follow Prev. Commit is the leader's commit.
	MsgSync
	// MsgNewLeader is the last chunk of a synchronisation (fields as MsgSync);
	// Zxid is the leader's last zxid the learner must hold before acking.
	MsgNewLeader
	// MsgUpToDate tells a synced learner that the leader is established
	// (Commit).
	MsgUpToDate
	// MsgProposal carries pipelined proposals (Entries after Prev) and the
	// leader's Commit.
	MsgProposal
	// MsgAck acknowledges that the learner durably holds the leader's history
	// up to Zxid (cumulative). NewLeader marks the NEWLEADER acknowledgement.
	MsgAck
	// MsgCommit tells followers that everything up to Zxid is committed.
	MsgCommit
	// MsgInform carries committed entries (Entries after Prev, Commit) to an
	// observer.
	MsgInform
	// MsgResync asks the leader to resend its history after Zxid, the
	// learner's last zxid, because the learner saw a gap.
	MsgResync
	// MsgPing is the leader's heartbeat: Zxid is the last zxid sent to the
	// learner, Commit the leader's commit, Seq the current read sequence and
	// Established whether the leader serves.
	MsgPing
	// MsgPong answers a ping: Zxid is the learner's last zxid and Seq echoes
	// the ping's read sequence.
	MsgPong
	// MsgPropose forwards writes: Entries[i].Data under request ReqIDs[i].
	// Seq is the lowest request id the learner still waits for.
	MsgPropose
	// MsgProposeResp answers MsgPropose: Entries[i].Zxid is the zxid
	// assigned to ReqIDs[i], or zero if the leader refused it.
	MsgProposeResp
	// MsgSyncReq forwards a Sync request ReqID to the leader.
	MsgSyncReq
	// MsgSyncResp answers MsgSyncReq with the zxid (Zxid) the learner must
	// apply before the Sync completes, or Reject.
	MsgSyncResp
	// MsgSnapChunk carries part of a large SNAP (Snap, at Offset, of Total
	// bytes) of synchronisation Seq, for the snapshot at Prev. The leader
	// streams the chunks in order, at most Config.SnapWindow of them ahead
	// of the learner's MsgSnapAck; the SNAP MsgSync follows once every
	// byte is acknowledged, with no Snap and the total size in Offset.
	MsgSnapChunk
	// MsgReconfig forwards a configuration change (Change, Target) under
	// request ReqID to the leader.
	MsgReconfig
	// MsgReconfigResp answers MsgReconfig: the zxid of the configuration
	// entry (Zxid), or a refusal (Reject, with the reason in Code).
	MsgReconfigResp
	// MsgSnapAck acknowledges the first Offset bytes of the snapshot at
	// Prev that synchronisation Seq streams (learner to leader).
	MsgSnapAck
	// MsgSnapWait tells a learner that its synchronisation Seq needs a
	// snapshot and waits its turn (Config.MaxSnapSyncs): it keeps waiting
	// rather than asking again.
	MsgSnapWait
)

var msgTypeNames = [...]string{
	MsgVote: "VOTE", MsgFollowerInfo: "FOLLOWERINFO", MsgLeaderInfo: "LEADERINFO",
	MsgAckEpoch: "ACKEPOCH", MsgSync: "SYNC", MsgNewLeader: "NEWLEADER",
	MsgUpToDate: "UPTODATE", MsgProposal: "PROPOSAL", MsgAck: "ACK",
	MsgCommit: "COMMIT", MsgInform: "INFORM", MsgResync: "RESYNC", MsgPing: "PING",
	MsgPong: "PONG", MsgPropose: "PROPOSE", MsgProposeResp: "PROPOSERESP",
	MsgSyncReq: "SYNCREQ", MsgSyncResp: "SYNCRESP", MsgSnapChunk: "SNAPCHUNK",
	MsgReconfig: "RECONFIG", MsgReconfigResp: "RECONFIGRESP", MsgSnapAck: "SNAPACK",
	MsgSnapWait: "SNAPWAIT",
}

// String returns the ZooKeeper-style name of t.
func (t MsgType) String() string {
	if int(t) < len(msgTypeNames) && msgTypeNames[t] != "" {
		return msgTypeNames[t]
	}
	return "UNKNOWN"
}

// SyncMode says how a synchronisation first brings a learner's log in line
// with the leader's before the DIFF entries follow.
type SyncMode uint8

const (
	// SyncNone marks a continuation chunk.
	SyncNone SyncMode = iota
	// SyncDiff: the learner's log is a prefix of the leader's; only entries
	// follow.
	SyncDiff
	// SyncTrunc: the learner drops its entries after Prev first.
	SyncTrunc
	// SyncSnap: the learner replaces its state with the snapshot at Prev.
	SyncSnap
)

// Entry is one proposed transaction: its zxid and the opaque bytes the state
// machine applies. zab never interprets Data.
//
// An entry with Voters set is a configuration entry instead: it carries the
// whole new voter set, has no Data, and is zab's own (IsConfig). It takes
// effect as soon as a peer holds it in its log, committed or not, and
// successive ones differ by one voter, so any two majorities of
// neighbouring configurations overlap.
type Entry struct {
	Zxid   Zxid     `msgpack:"z"`
	Data   []byte   `msgpack:"d"`
	Voters []PeerID `msgpack:"v,omitempty"`
}

// IsConfig reports whether e is a configuration entry.
func (e Entry) IsConfig() bool { return len(e.Voters) > 0 }

// Message is the single frame type exchanged between peers. It is a flat
// struct (like raftpb.Message) so the wire format stays one versioned msgpack
// shape; each MsgType documents which fields it uses.
type Message struct {
	Type MsgType `msgpack:"t"`
	From PeerID  `msgpack:"f"`
	To   PeerID  `msgpack:"o"`
	// Epoch is the sender's epoch context for the message (accepted or current
	// epoch, depending on Type).
	Epoch uint32 `msgpack:"e,omitempty"`
	// Zxid is the main zxid the message talks about (last zxid, proposal zxid,
	// acknowledged or committed zxid, ...).
	Zxid    Zxid    `msgpack:"z,omitempty"`
	Entries []Entry `msgpack:"n,omitempty"`

	// Prev is the zxid the first of Entries follows.
	Prev Zxid `msgpack:"p,omitempty"`
	// Commit is the sender's commit zxid.
	Commit Zxid `msgpack:"c,omitempty"`
	// Leader is the peer a vote proposes.
	Leader PeerID `msgpack:"l,omitempty"`
	// Round is the election round (ZooKeeper's logical clock).
	Round uint64 `msgpack:"r,omitempty"`
	// State is the sender's Role in a vote.
	State Role `msgpack:"s,omitempty"`
	// Current is the sender's current epoch in MsgAckEpoch, MsgVote and
	// MsgFollowerInfo.
	Current uint32 `msgpack:"cu,omitempty"`
	// Cluster is the cluster id (HardState.ClusterID) in MsgVote,
	// MsgFollowerInfo and MsgLeaderInfo.
	Cluster uint64 `msgpack:"cl,omitempty"`
	// Member and Fixed are the sender's HardState.Member and
	// HardState.Fixed in MsgVote and MsgFollowerInfo.
	Member bool `msgpack:"mb,omitempty"`
	Fixed  bool `msgpack:"fx,omitempty"`
	// Seq is a synchronisation or read sequence number.
	Seq uint64 `msgpack:"q,omitempty"`
	// ReqID identifies a forwarded request.
	ReqID uint64 `msgpack:"i,omitempty"`
	// ReqIDs identify the forwarded writes of MsgPropose and
	// MsgProposeResp, one per entry.
	ReqIDs []uint64 `msgpack:"is,omitempty"`
	// Inc is the sender's incarnation on MsgPropose and MsgReconfig (the
	// scope of its request ids), and on MsgFollowerInfo and MsgAck (a
	// leader ignores acknowledgements of an incarnation a learner left).
	Inc uint64 `msgpack:"in,omitempty"`
	// Mode is the synchronisation mode of a first sync chunk.
	Mode SyncMode `msgpack:"m,omitempty"`
	// Snap is the snapshot (or a chunk of it) of a SNAP synchronisation.
	Snap []byte `msgpack:"sn,omitempty"`
	// Offset places a snapshot chunk; on a SNAP sent in chunks, it is the
	// total size; on MsgSnapAck, the bytes held.
	Offset uint64 `msgpack:"of,omitempty"`
	// Total is the size of the snapshot a chunk belongs to.
	Total uint64 `msgpack:"tt,omitempty"`
	// Reject marks a refused request.
	Reject bool `msgpack:"x,omitempty"`
	// NewLeader marks the acknowledgement of NEWLEADER.
	NewLeader bool `msgpack:"nl,omitempty"`
	// Accepted marks an ACKEPOCH whose epoch the learner newly accepted.
	Accepted bool `msgpack:"ac,omitempty"`
	// Observer marks a learner that does not vote.
	Observer bool `msgpack:"ob,omitempty"`
	// Established says the pinging leader has a quorum and serves.
	Established bool `msgpack:"es,omitempty"`
	// Voters is, on the first chunk of a synchronisation, the leader's
	// configuration in force at Prev (for a SNAP, the snapshot's).
	Voters []PeerID `msgpack:"vs,omitempty"`
	// Change and Target are the configuration change of a MsgReconfig.
	Change ConfChangeType `msgpack:"ch,omitempty"`
	Target PeerID         `msgpack:"tg,omitempty"`
	// Code is why a MsgReconfigResp refuses.
	Code uint8 `msgpack:"cd,omitempty"`
}
