package zab

// Progress is what a leader knows about one learner.
type Progress struct {
	Observer bool
	// Synced is true once the learner acknowledged NEWLEADER.
	Synced bool
	// Sent is the last zxid streamed to it, Acked the last it acknowledged
	// holding durably.
	Sent, Acked Zxid
	// Paused is true while streaming waits for it to answer (see
	// ReportUnreachable).
	Paused bool
	// IdleTicks is how many ticks ago it was last heard from.
	IdleTicks uint64
	// SnapRunning is true while a snapshot streams to it, SnapQueued while
	// it waits its turn for one (Config.MaxSnapSyncs). SnapInFlight is
	// how many bytes of the stream were sent and not yet acknowledged.
	SnapRunning, SnapQueued bool
	SnapInFlight            uint64
}

// PeerStatus is a snapshot of a Peer's state for monitoring.
type PeerStatus struct {
	SoftState
	HardState
	LastZxid  Zxid
	Committed Zxid
	Applied   Zxid
	// Progress is set on a leader only: one entry per learner that
	// contacted it in this reign.
	Progress map[PeerID]Progress
	// Voters is the configuration in force (shared: never modify it),
	// logged at ConfigZxid
	// (the snapshot's zxid, or zero, when it predates the log).
	Voters     []PeerID
	ConfigZxid Zxid
	// SnapStreams is the peer's snapshot streaming, as leader and as
	// learner.
	SnapStreams SnapStreamStatus
}

// SnapStreamStatus is a peer's snapshot streaming (see Config.MaxSnapSyncs).
type SnapStreamStatus struct {
	// Running is, on a leader, how many snapshot streams run, Queued how
	// many learners wait their turn for one (zero on other roles).
	Running, Queued int
	// BytesSent counts the chunk bytes this peer sent as a leader (resent
	// chunks included), BytesReceived those it took in as a learner (each
	// byte once), since it started.
	BytesSent, BytesReceived uint64
	// Receiving is true while this peer, as a learner, takes in a streamed
	// snapshot: Held of its Total bytes have arrived.
	Receiving   bool
	Held, Total uint64
}

// Status returns the peer's current state. It is cheap enough to call on
// every driver loop iteration for metrics.
func (p *Peer) Status() PeerStatus {
	st := PeerStatus{SoftState: p.SoftState(), HardState: p.hs, LastZxid: p.log.last(),
		Committed: p.log.committed, Applied: p.log.applied, Voters: p.voters.IDs(),
		ConfigZxid: p.confs[len(p.confs)-1].zxid}
	if p.role == RoleLeading {
		st.Progress = make(map[PeerID]Progress, len(p.lead.learners))
		for id, li := range p.lead.learners {
			pr := Progress{Observer: li.observer, Synced: li.nlAcked, Sent: li.sent, Acked: li.acked,
				Paused: li.paused, IdleTicks: p.now - li.lastHeard}
			if x := li.snap; x != nil {
				pr.SnapRunning, pr.SnapQueued = x.running, !x.running
				pr.SnapInFlight = x.next - x.acked
			}
			st.Progress[id] = pr
		}
		st.SnapStreams.Running = p.runningSnapStreams()
		st.SnapStreams.Queued = len(p.lead.snapQueue) - st.SnapStreams.Running
	}
	st.SnapStreams.BytesSent, st.SnapStreams.BytesReceived = p.snapSent, p.snapRecv
	if lr := p.lrn; lr != nil && lr.snapTotal > 0 && (p.role == RoleFollowing || p.role == RoleObserving) {
		st.SnapStreams.Receiving = true
		st.SnapStreams.Held, st.SnapStreams.Total = lr.spool.Len(), lr.snapTotal
	}
	return st
}
