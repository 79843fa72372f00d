package zab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/coord-dev/coord/zab/internal/plant"
	"slices"
)

// Reconfiguration follows Raft's single-server changes rather than
// ZooKeeper 3.5's joint quorums: each change adds or removes one voter, so
// a majority of the old voter set and a majority of the new one always
// overlap, and a configuration entry takes effect on a peer as soon as it is
// in the peer's log (a truncation undoes it). The leader proposes a change
// only once it is established (NEWLEADER acknowledged by a quorum: its
// epoch's first commit, which closes the hole Ongaro found in the original
// single-server algorithm) and the previous change is committed.
//
// Observers are not part of the configuration: any authenticated peer that
// is not a voter may connect to the leader as an observer, and an observer
// that is connected and synced can be promoted.

// ConfChangeType is the kind of a configuration change.
type ConfChangeType uint8

// Configuration change kinds.
const (
	// ConfAddVoter makes a connected, synced observer a voter.
	ConfAddVoter ConfChangeType = iota + 1
	// ConfRemoveVoter makes a voter an observer. Removing the leader
	// itself is allowed: it leads until the change commits, without
	// counting itself, then steps down.
	ConfRemoveVoter
)

// String names the change kind.
func (t ConfChangeType) String() string {
	switch t {
	case ConfAddVoter:
		return "add-voter"
	case ConfRemoveVoter:
		return "remove-voter"
	}
	return "unknown"
}

// ConfChange is one configuration change.
type ConfChange struct {
	Type ConfChangeType
	ID   PeerID
}

// Reconfiguration errors.
var (
	// ErrReconfigInProgress: the previous configuration change is not
	// committed yet; changes go one at a time.
	ErrReconfigInProgress = errors.New("zab: a configuration change is still in progress")
	// ErrReconfigUnsafe: the change would leave a voter set without a live
	// quorum (too few voters are connected to the leader).
	ErrReconfigUnsafe = errors.New("zab: configuration change would leave no live quorum")
	// ErrNotSynced: a peer to promote must be connected to the leader as
	// an observer and synced.
	ErrNotSynced = errors.New("zab: peer is not a connected, synced observer")
	// ErrBadConfChange: the change makes no sense for the configuration
	// (adding a voter, removing a non-voter or the last voter).
	ErrBadConfChange = errors.New("zab: invalid configuration change")
)

// reconfigErrs numbers the refusals for MsgReconfigResp.Code (index+1).
var reconfigErrs = []error{ErrReconfigInProgress, ErrReconfigUnsafe, ErrNotSynced, ErrBadConfChange, ErrNoLeader}

func reconfigCode(err error) uint8 {
	for i, e := range reconfigErrs {
		if errors.Is(err, e) {
			return uint8(i + 1)
		}
	}
	return uint8(len(reconfigErrs)) // ErrNoLeader: the safest "try again"
}

func reconfigErr(code uint8) error {
	if code == 0 || int(code) > len(reconfigErrs) {
		return ErrNoLeader
	}
	return reconfigErrs[code-1]
}

// confAt is a configuration and the zxid from which it is in force.
type confAt struct {
	zxid   Zxid
	voters []PeerID // sorted
}

type fwdConf struct {
	cc     ConfChange
	sentAt uint64
}

// initConfig sets the configuration from the snapshot (or the configured
// voters) and every configuration entry logged after it.
func (p *Peer) initConfig(snap Snapshot) error {
	base := snap.Voters
	if len(base) == 0 {
		base = p.cfg.Voters
		p.confGuess = true
	}
	p.confs = []confAt{{zxid: snap.Zxid, voters: sortedIDs(base)}}
	last := p.log.last()
	for after := snap.Zxid; after < last; {
		ents, err := p.log.entries(after, last, 4096)
		if err != nil {
			return fmt.Errorf("zab: reading the log for configuration entries: %w", err)
		}
		if len(ents) == 0 {
			break
		}
		p.noteConfigs(ents)
		after = ents[len(ents)-1].Zxid
	}
	p.setVoters()
	p.confDirty = false
	return nil
}

func sortedIDs(ids []PeerID) []PeerID {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

// appendLog appends entries to the log, taking any configuration among them
// into force.
func (p *Peer) appendLog(ents ...Entry) {
	p.log.append(ents...)
	p.noteConfigs(ents)
}

func (p *Peer) noteConfigs(ents []Entry) {
	changed := false
	for _, e := range ents {
		if e.IsConfig() {
			p.confs = append(p.confs, confAt{zxid: e.Zxid, voters: sortedIDs(e.Voters)})
			changed = true
		}
	}
	if changed {
		p.confGuess = false
	}
	if changed {
		p.setVoters()
		if p.role == RoleLeading {
			// Count learners by the new configuration from now on.
			for id, li := range p.lead.learners {
				li.observer = !p.voters.Contains(id)
			}
		}
	}
}

// confTruncated drops the configurations logged after z.
func (p *Peer) confTruncated(z Zxid) {
	n := len(p.confs)
	for n > 1 && p.confs[n-1].zxid > z {
		n--
	}
	if n != len(p.confs) {
		p.confs = p.confs[:n]
		p.setVoters()
	}
}

// confSnapshot resets the configuration to a snapshot's.
func (p *Peer) confSnapshot(s Snapshot) {
	v := s.Voters
	if len(v) == 0 {
		v = p.configAt(s.Zxid)
	} else {
		p.confGuess = false
	}
	p.confs = []confAt{{zxid: s.Zxid, voters: sortedIDs(v)}}
	p.setVoters()
}

// confSynced adopts the configuration the leader says is in force at prev,
// where a DIFF or TRUNC left our log: a learner acts on the leader's
// configuration, never on its own bootstrap guess (with BootstrapExpect, the
// first ids it saw in gossip). Our log up to prev is the leader's, so only
// a base we could not know (the configured voters, or a snapshot's) can
// differ; the entries the synchronisation brings after prev follow it. A
// leader too old to send voters leaves the configuration as it was.
func (p *Peer) confSynced(prev Zxid, voters []PeerID) {
	if len(voters) == 0 {
		return
	}
	v := sortedIDs(voters)
	if slices.Equal(v, p.configAt(prev)) && !p.confGuess {
		return
	}
	p.confs = []confAt{{zxid: prev, voters: v}}
	p.confGuess = false
	p.setVoters()
}

// commitBootstrapConfig makes a newly established leader whose
// configuration is still the configured one (Config.Voters: no
// configuration entry in its log or snapshot) propose it as an entry, so the
// bootstrap voter set is committed like any other configuration and every
// peer that later syncs adopts it instead of its own configured voters.
func (p *Peer) commitBootstrapConfig() {
	if !p.confGuess || len(p.confs) != 1 || p.lead.exhausted {
		return
	}
	p.leaderAppend(Entry{Voters: p.voters.IDs()})
}

// configAt returns the voters in force at z, as far as the peer knows.
func (p *Peer) configAt(z Zxid) []PeerID {
	for i := len(p.confs) - 1; i > 0; i-- {
		if p.confs[i].zxid <= z {
			return p.confs[i].voters
		}
	}
	return p.confs[0].voters
}

func (p *Peer) setVoters() {
	v := p.confs[len(p.confs)-1].voters
	if slices.Equal(v, p.voters.IDs()) {
		return
	}
	p.voters = NewMajorityConfig(v...)
	p.confDirty = true
	p.logger.Info("zab: configuration", "voters", v, "from", p.confs[len(p.confs)-1].zxid)
}

// confPending reports whether the newest configuration is not committed.
func (p *Peer) confPending() bool { return p.confs[len(p.confs)-1].zxid > p.log.committed }

// checkRole takes the role the configuration gives this peer after it made
// it a voter or an observer. A leader removed from the voters keeps
// leading until the change commits (maybeCommit steps it down).
func (p *Peer) checkRole() {
	if !p.confDirty {
		return
	}
	p.confDirty = false
	voter := p.voters.Contains(p.id)
	switch p.role {
	case RoleFollowing, RoleObserving:
		if voter == (p.role == RoleFollowing) {
			return
		}
		// Switch in place: the leader counts us by its configuration,
		// which holds the same entry, so there is nothing to re-join.
		p.role = RoleObserving
		if voter {
			p.role = RoleFollowing
			p.lrn.ackDue = p.lrn.nlDone // acknowledge what we hold at once
		}
		p.logger.Info("zab: role changed by the configuration", "role", p.role)
	case RoleLooking:
		// Votes were cast in the old role.
		if p.mayLead() != p.el.candidate {
			p.becomeLooking()
		}
	case RoleLeading:
		p.maybeStepDownRemoved()
	}
}

// maybeStepDownRemoved steps down a leader once the configuration that
// removed it is committed.
func (p *Peer) maybeStepDownRemoved() {
	if p.role == RoleLeading && !p.voters.Contains(p.id) && !p.confPending() {
		p.logger.Info("zab: removed from the voters, stepping down", "epoch", p.epoch)
		p.becomeLooking()
	}
}

// Voters returns the voter set in force (the newest configuration in the
// peer's log), in increasing order. The slice must not be modified.
func (p *Peer) Voters() []PeerID { return p.voters.IDs() }

// ProposeConfig submits a configuration change under a request id from the
// same sequence as Propose's. A leader checks it at once and returns the
// refusal (ErrReconfigInProgress, ErrReconfigUnsafe, ErrNotSynced,
// ErrBadConfChange); a learner forwards it and the refusal arrives in the
// ProposalResult. Success is a ProposalResult without error once the
// configuration entry is committed and handed out.
func (p *Peer) ProposeConfig(id uint64, cc ConfChange) error {
	p.mustNotBeInReady()
	defer p.checkRole()
	switch p.role {
	case RoleLeading:
		if !p.lead.established || p.lead.exhausted {
			return ErrNoLeader
		}
		z, err := p.leaderConfChange(cc)
		if err != nil {
			return err
		}
		p.addWaiting(z, id)
		return nil
	case RoleFollowing, RoleObserving:
		if !p.lrn.serving {
			return ErrNoLeader
		}
		p.fwdConfs[id] = &fwdConf{cc: cc, sentAt: p.now}
		p.sendReconfig(id, cc)
		return nil
	}
	return ErrNoLeader
}

func (p *Peer) sendReconfig(id uint64, cc ConfChange) {
	p.send(Message{Type: MsgReconfig, To: p.leader, Epoch: p.epoch, ReqID: id, Inc: p.inc, Change: cc.Type, Target: cc.ID})
}

// liveVoter reports whether a voter counts toward a live quorum now: the
// leader itself, or a follower synced and heard within the sync limit.
func (p *Peer) liveVoter(id PeerID) bool {
	if id == p.id {
		return true
	}
	li, ok := p.lead.learners[id]
	return ok && !li.observer && li.nlAcked && !li.paused && !p.silent(li)
}

// leaderConfChange checks cc against the configuration and appends its
// entry.
func (p *Peer) leaderConfChange(cc ConfChange) (Zxid, error) {
	if p.confPending() && p.mistake != plant.SecondVoterChange { // planted by zab/zabtest only
		return 0, ErrReconfigInProgress
	}
	cur := p.voters.IDs()
	var next []PeerID
	switch cc.Type {
	case ConfAddVoter:
		if cc.ID == 0 || p.voters.Contains(cc.ID) {
			return 0, fmt.Errorf("%w: %d is already a voter", ErrBadConfChange, cc.ID)
		}
		li, ok := p.lead.learners[cc.ID]
		if !ok || !li.nlAcked || li.paused || p.silent(li) {
			return 0, fmt.Errorf("%w: peer %d", ErrNotSynced, cc.ID)
		}
		next = sortedIDs(append(slices.Clone(cur), cc.ID))
	case ConfRemoveVoter:
		if !p.voters.Contains(cc.ID) {
			return 0, fmt.Errorf("%w: %d is not a voter", ErrBadConfChange, cc.ID)
		}
		if len(cur) == 1 {
			return 0, fmt.Errorf("%w: %d is the last voter", ErrBadConfChange, cc.ID)
		}
		next = slices.DeleteFunc(slices.Clone(cur), func(id PeerID) bool { return id == cc.ID })
	default:
		return 0, fmt.Errorf("%w: unknown change %d", ErrBadConfChange, cc.Type)
	}
	// The new configuration governs commits from its own entry on, so a
	// quorum of it must be reachable now (a peer being added is: it is
	// synced and takes proposals at once).
	live := 0
	for _, id := range next {
		if id == cc.ID || p.liveVoter(id) {
			live++
		}
	}
	if q := NewMajorityConfig(next...).Quorum(); live < q {
		return 0, fmt.Errorf("%w: %s %d leaves %d of %d voters live, %d needed", ErrReconfigUnsafe, cc.Type, cc.ID,
			live, len(next), q)
	}
	return p.leaderAppend(Entry{Voters: next}), nil
}

// leaderReconfig handles a forwarded change, once per request id.
func (p *Peer) leaderReconfig(li *learnerInfo, m Message) {
	resp := Message{Type: MsgReconfigResp, To: li.id, Epoch: p.epoch, ReqID: m.ReqID}
	fs := li.fwdSession(m.Inc)
	if z, seen := fs.confs[m.ReqID]; seen {
		resp.Zxid = z
		p.send(resp)
		return
	}
	if !p.lead.established || p.lead.exhausted {
		resp.Reject, resp.Code = true, reconfigCode(ErrNoLeader)
		p.send(resp)
		return
	}
	z, err := p.leaderConfChange(ConfChange{Type: m.Change, ID: m.Target})
	if err != nil {
		resp.Reject, resp.Code = true, reconfigCode(err)
		p.send(resp)
		return
	}
	if fs.confs == nil || len(fs.confs) >= 64 {
		fs.confs = map[uint64]Zxid{} // changes are rare; an old retry is long settled
	}
	fs.confs[m.ReqID] = z
	resp.Zxid = z
	p.send(resp)
}

// learnerReconfigResp completes a forwarded change.
func (p *Peer) learnerReconfigResp(m Message) {
	if _, ok := p.fwdConfs[m.ReqID]; !ok {
		return
	}
	delete(p.fwdConfs, m.ReqID)
	if m.Reject {
		p.props = append(p.props, ProposalResult{ID: m.ReqID, Err: reconfigErr(m.Code)})
		return
	}
	p.addWaiting(m.Zxid, m.ReqID)
}

// retryReconfigs re-sends forwarded changes unanswered for RetryTicks.
func (p *Peer) retryReconfigs() {
	for _, id := range sortedKeys(p.fwdConfs) {
		if fc := p.fwdConfs[id]; p.now-fc.sentAt >= uint64(p.cfg.RetryTicks) {
			fc.sentAt = p.now
			p.sendReconfig(id, fc.cc)
		}
	}
}

// maxVoters bounds a decoded configuration; real ensembles have a handful.
const maxVoters = 1 << 12

// appendVoters appends zab's encoding of a voter set (a version byte, a
// uvarint count, uvarint ids), used for configuration records in the log
// and ahead of the state machine's bytes in snapshot files.
func appendVoters(b []byte, voters []PeerID) []byte {
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(voters)))
	for _, id := range voters {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

// readVoters decodes appendVoters' encoding at the start of b and returns
// the rest. It never panics on bad bytes.
func readVoters(b []byte) (voters []PeerID, rest []byte, err error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, nil, errors.New("zab: configuration: unknown encoding version")
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxVoters || n > uint64(len(b)) {
		return nil, nil, errors.New("zab: configuration: bad voter count")
	}
	b = b[k:]
	if n > 0 {
		voters = make([]PeerID, 0, n)
	}
	for range n {
		id, k := binary.Uvarint(b)
		if k <= 0 || id == 0 {
			return nil, nil, errors.New("zab: configuration: bad voter id")
		}
		voters = append(voters, PeerID(id))
		b = b[k:]
	}
	return voters, b, nil
}
