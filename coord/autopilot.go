package coord

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coord-dev/coord/zab"
)

// Autopilot (Consul's is the anchor) keeps the committed voter set at a
// target size without manual AddVoter and RemoveVoter calls, so that a
// service whose replicas are restarted, replaced by new ones with new ids
// and empty disks (a Kubernetes Deployment), or scaled up keeps a voter set
// of live nodes:
//
//   - a node whose id is not a voter joins as an observer and is promoted
//     once the voters are fewer than the target and it has been alive in
//     gossip for StableAfter and is synced with the leader;
//   - a voter missing from gossip (failed, or never seen) for DeadAfter is
//     replaced by a synced observer (the observer is added first, then the
//     missing voter removed), or, with no observer to take its place,
//     removed while the remaining voters still number a quorum of the
//     target;
//   - a voter that left cleanly (Close) is replaced at once by a synced
//     observer: a clean leave is a departure, not a flap, and the next
//     replica of a rollout may go a second later; with no observer it is
//     treated like a failed one (a restart usually returns within
//     DeadAfter);
//   - beyond the target, a missing or unhealthy voter is removed first,
//     else the healthy voter with the highest id (never the leader).
//
// Every decision is made by the established leader on its maintenance
// goroutine, one change at a time (none while a configuration is not
// committed), and committed through the log like AddVoter and RemoveVoter;
// none leaves a voter set without a live quorum (zab refuses such a change
// too). Decisions are reported as EventAutopilot ClusterEvents on the leader
// and in Stats.Autopilot.

// AutopilotMode says whether autopilot runs.
type AutopilotMode uint8

const (
	// AutopilotAuto (the zero value) runs autopilot when the cluster is
	// bootstrapped with BootstrapExpect, not with Voters.
	AutopilotAuto AutopilotMode = iota
	// AutopilotOn runs it in either case.
	AutopilotOn
	// AutopilotOff never runs it: the voters change only by AddVoter and
	// RemoveVoter.
	AutopilotOff
)

// String returns "auto", "on" or "off".
func (m AutopilotMode) String() string {
	switch m {
	case AutopilotAuto:
		return "auto"
	case AutopilotOn:
		return "on"
	case AutopilotOff:
		return "off"
	}
	return fmt.Sprintf("AutopilotMode(%d)", uint8(m))
}

// AutopilotConfig configures autopilot. Every node of a cluster should use
// the same values: whichever leads decides.
type AutopilotConfig struct {
	// Mode is AutopilotAuto (the zero value), AutopilotOn or AutopilotOff.
	Mode AutopilotMode
	// Voters is the target number of voters; zero means BootstrapExpect,
	// or the length of Voters. An odd number is best: 4 voters tolerate no
	// more failures than 3. While autopilot runs it wins over manual
	// changes that leave the voters off target.
	Voters int
	// StableAfter is how long a node must have been alive in gossip (and
	// be synced) before it is promoted to voter. Default 10s (LANConfig),
	// 1s (LocalConfig).
	StableAfter time.Duration
	// DeadAfter is how long a voter may be missing from gossip before it is
	// replaced or removed; it should exceed the time a restart takes.
	// Default 30s (LANConfig), 3s (LocalConfig).
	DeadAfter time.Duration
}

// String shows the settings, as in {Mode: auto, Voters: 0, StableAfter:
// 10s, DeadAfter: 30s}.
func (a AutopilotConfig) String() string {
	return fmt.Sprintf("{Mode: %s, Voters: %d, StableAfter: %v, DeadAfter: %v}", a.Mode, a.Voters, a.StableAfter, a.DeadAfter)
}

// autopilotOn reports whether autopilot runs under c.
func (c Config) autopilotOn() bool {
	switch c.Autopilot.Mode {
	case AutopilotOn:
		return true
	case AutopilotAuto:
		return c.BootstrapExpect > 0
	}
	return false
}

// autopilotTarget is the number of voters autopilot keeps.
func (c Config) autopilotTarget() int {
	switch {
	case c.Autopilot.Voters > 0:
		return c.Autopilot.Voters
	case c.BootstrapExpect > 0:
		return c.BootstrapExpect
	}
	return len(c.Voters)
}

// maxAutopilotVoters bounds Autopilot.Voters: a quorum of more voters is
// slower than any service needs.
const maxAutopilotVoters = 15

// validateAutopilot reports through bad what is wrong with c.Autopilot
// (c has its defaults).
func (c Config) validateAutopilot(bad func(field, format string, args ...any)) {
	a := c.Autopilot
	if a.Mode > AutopilotOff {
		bad("Autopilot.Mode", "%d is not AutopilotAuto, AutopilotOn or AutopilotOff", a.Mode)
	}
	if a.Voters < 0 || a.Voters > maxAutopilotVoters {
		bad("Autopilot.Voters", "%d, must be in [0, %d]", a.Voters, maxAutopilotVoters)
	}
	if a.StableAfter < 0 {
		bad("Autopilot.StableAfter", "%v, must be positive", a.StableAfter)
	}
	if a.DeadAfter < 0 {
		bad("Autopilot.DeadAfter", "%v, must be positive", a.DeadAfter)
	} else if a.DeadAfter > 0 && a.DeadAfter < c.SyncLimit {
		bad("Autopilot.DeadAfter", "%v, shorter than SyncLimit %v", a.DeadAfter, c.SyncLimit)
	}
}

// AutopilotStats is autopilot's state on this node (Stats.Autopilot).
type AutopilotStats struct {
	// Enabled is true when autopilot runs on this node; it decides only
	// while the node is the established leader (Leading).
	Enabled bool `json:"enabled"`
	Leading bool `json:"leading"`
	// Target is the number of voters it keeps.
	Target int `json:"target"`
	// Voters and HealthyVoters are, at its last evaluation as leader, the
	// committed voters and those alive in gossip and synced with the leader
	// (the leader included).
	Voters        int `json:"voters"`
	HealthyVoters int `json:"healthy_voters"`
	// Changes counts the changes it committed, Failures those refused or
	// failed (retried at the next evaluation).
	Changes  uint64 `json:"changes"`
	Failures uint64 `json:"failures"`
	// Last is its last decision (zero before the first).
	Last AutopilotDecision `json:"last"`
}

// AutopilotDecision is one change autopilot made or tried.
type AutopilotDecision struct {
	// Add is true for a promotion (AddVoter), false for a removal.
	Add bool   `json:"add"`
	ID  uint64 `json:"id"`
	// Reason says why, for people.
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Took is how long the change took to commit (or fail).
	Took time.Duration `json:"took_ns"`
	// Err is why it failed; empty once committed.
	Err string `json:"err,omitempty"`
}

// apMember is what autopilot knows of one node.
type apMember struct {
	ID uint64
	// State is its gossip state; a node absent from gossip is MemberDead
	// since the observer started.
	State MemberState
	// Since is when gossip last saw it become alive, dead or left.
	Since time.Time
	// Synced: the leader has it connected, synced and heard within the
	// sync limit.
	Synced bool
}

// apView is everything an autopilot decision depends on.
type apView struct {
	Now         time.Time
	Leader      uint64
	Target      int
	Voters      []uint64 // the committed configuration
	Members     []apMember
	StableAfter time.Duration
	DeadAfter   time.Duration
}

// apDecision is one change, or none (ID 0).
type apDecision struct {
	Add    bool
	ID     uint64
	Reason string
}

func quorumOf(n int) int { return n/2 + 1 }

// autopilotDecide returns the one change the leader should make now, or
// none. It is pure: the same view gives the same answer.
func autopilotDecide(v apView) apDecision {
	byID := make(map[uint64]apMember, len(v.Members))
	for _, m := range v.Members {
		byID[m.ID] = m
	}
	member := func(id uint64) apMember {
		if m, ok := byID[id]; ok {
			return m
		}
		return apMember{ID: id, State: MemberDead, Since: time.Time{}} // never seen: missing for ever
	}
	alive := func(m apMember) bool { return m.State == MemberAlive || m.State == MemberSuspect }
	healthy := func(id uint64) bool {
		m := member(id)
		return id == v.Leader || alive(m) && m.Synced
	}
	missingFor := func(id uint64) time.Duration {
		m := member(id)
		if id == v.Leader || alive(m) {
			return -1
		}
		if m.Since.IsZero() {
			return 1<<63 - 1
		}
		return v.Now.Sub(m.Since)
	}
	live := 0
	for _, id := range v.Voters {
		if healthy(id) {
			live++
		}
	}
	isVoter := func(id uint64) bool { return slices.Contains(v.Voters, id) }

	// Observers fit to vote, longest alive first.
	var cands []apMember
	for _, m := range v.Members {
		if !isVoter(m.ID) && m.State == MemberAlive && m.Synced {
			cands = append(cands, m)
		}
	}
	slices.SortFunc(cands, func(a, b apMember) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID))
	})
	stable := func(m apMember) bool { return v.Now.Sub(m.Since) >= v.StableAfter }
	var stableCand, anyCand *apMember
	for i := range cands {
		if anyCand == nil {
			anyCand = &cands[i]
		}
		if stableCand == nil && stable(cands[i]) {
			stableCand = &cands[i]
		}
	}
	canAdd := func() bool { return live+1 >= quorumOf(len(v.Voters)+1) }
	canRemove := func(id uint64) bool {
		after := live
		if healthy(id) {
			after--
		}
		return len(v.Voters) > 1 && after >= quorumOf(len(v.Voters)-1)
	}

	// Missing voters, longest missing first.
	var missing []uint64
	for _, id := range v.Voters {
		if missingFor(id) >= 0 {
			missing = append(missing, id)
		}
	}
	slices.SortFunc(missing, func(a, b uint64) int {
		return cmp.Or(cmp.Compare(missingFor(b), missingFor(a)), cmp.Compare(a, b))
	})
	describe := func(id uint64) string {
		m := member(id)
		if _, seen := byID[id]; !seen {
			return fmt.Sprintf("voter %d not in gossip", id)
		}
		return fmt.Sprintf("voter %d %s for %v", id, m.State, v.Now.Sub(m.Since).Round(time.Millisecond))
	}

	// Too many voters: remove the missing, then the unhealthy, then the
	// highest id.
	if len(v.Voters) > v.Target {
		var pick uint64
		if len(missing) > 0 {
			pick = missing[0]
		}
		for _, id := range slices.Backward(v.Voters) {
			if pick == 0 && id != v.Leader && !healthy(id) {
				pick = id
			}
		}
		for _, id := range slices.Backward(v.Voters) {
			if pick == 0 && id != v.Leader {
				pick = id
			}
		}
		if pick != 0 && canRemove(pick) {
			return apDecision{ID: pick, Reason: fmt.Sprintf("%d voters, target %d: %s", len(v.Voters), v.Target,
				describeHealth(describe, pick, healthy(pick), missingFor(pick) >= 0))}
		}
		return apDecision{}
	}

	// A missing voter: replace it, or remove it.
	for _, id := range missing {
		m := member(id)
		gone := missingFor(id) >= v.DeadAfter
		c := stableCand
		if m.State == MemberLeft && c == nil {
			c = anyCand // a clean leave is replaced at once
		}
		if c != nil && (gone || m.State == MemberLeft) {
			if canAdd() {
				return apDecision{Add: true, ID: c.ID, Reason: fmt.Sprintf("replaces %s", describe(id))}
			}
			return apDecision{}
		}
		if gone && len(v.Voters)-1 >= quorumOf(v.Target) && canRemove(id) {
			return apDecision{ID: id, Reason: fmt.Sprintf("%s and no observer to replace it", describe(id))}
		}
	}

	// Too few voters: promote the observer alive longest.
	if len(v.Voters) < v.Target && stableCand != nil && canAdd() {
		return apDecision{Add: true, ID: stableCand.ID, Reason: fmt.Sprintf("%d voters, target %d: node %d alive for %v and synced",
			len(v.Voters), v.Target, stableCand.ID, v.Now.Sub(stableCand.Since).Round(time.Millisecond))}
	}
	return apDecision{}
}

func describeHealth(describe func(uint64) string, id uint64, healthy, missing bool) string {
	switch {
	case missing:
		return describe(id)
	case !healthy:
		return fmt.Sprintf("voter %d not synced with the leader", id)
	}
	return fmt.Sprintf("voter %d has the highest id", id)
}

// autopilot is a node's autopilot state.
type autopilot struct {
	mu       sync.Mutex
	stats    AutopilotStats
	busy     bool
	lastEval time.Time
}

// autopilotTick evaluates autopilot on the maintenance goroutine: only on
// the established leader, with the configuration committed and no change
// of its own in flight, at most every 50ms (or tick). A change runs on its
// own goroutine.
func (n *Node) autopilotTick(st zab.Status) {
	ap := &n.ap
	now := time.Now()
	leading := st.SoftState.Role == zab.RoleLeading && st.SoftState.Serving
	ap.mu.Lock()
	defer ap.mu.Unlock()
	ap.stats.Leading = leading
	if !leading || ap.busy || now.Sub(ap.lastEval) < max(n.cfg.TickInterval, 50*time.Millisecond) {
		return
	}
	ap.lastEval = now
	if st.ConfigZxid > st.Committed {
		return // the previous change is not committed
	}
	v := apView{Now: now, Leader: n.cfg.NodeID, Target: ap.stats.Target,
		StableAfter: n.cfg.Autopilot.StableAfter, DeadAfter: n.cfg.Autopilot.DeadAfter}
	for _, id := range st.Voters {
		v.Voters = append(v.Voters, uint64(id))
	}
	idle := uint64(n.cfg.ticks(n.cfg.SyncLimit))
	seen := map[uint64]bool{}
	for _, m := range n.gossip.Members() {
		seen[m.NodeID] = true
		am := apMember{ID: m.NodeID, State: MemberState(m.State), Since: m.Since}
		if p, ok := st.Progress[zab.PeerID(m.NodeID)]; ok {
			am.Synced = p.Synced && !p.Paused && p.IdleTicks < idle
		}
		v.Members = append(v.Members, am)
	}
	for _, id := range v.Voters {
		if !seen[id] { // reaped from gossip, or never seen since we started
			v.Members = append(v.Members, apMember{ID: id, State: MemberDead, Since: n.start})
		}
	}
	healthy := 0
	for _, id := range v.Voters {
		for _, m := range v.Members {
			if m.ID == id && (id == v.Leader || (m.State == MemberAlive || m.State == MemberSuspect) && m.Synced) {
				healthy++
			}
		}
	}
	ap.stats.Voters, ap.stats.HealthyVoters = len(v.Voters), healthy
	d := autopilotDecide(v)
	if d.ID == 0 {
		return
	}
	ap.busy = true
	epoch := st.SoftState.Epoch
	n.wg.Add(1)
	go n.autopilotChange(d, epoch)
}

// autopilotChange commits d through the replicated reconfiguration, while
// this node still leads in epoch.
func (n *Node) autopilotChange(d apDecision, epoch uint32) {
	defer n.wg.Done()
	start := time.Now()
	dec := AutopilotDecision{Add: d.Add, ID: d.ID, Reason: d.Reason, At: start}
	kind := "remove-voter"
	if d.Add {
		kind = "add-voter"
	}
	var err error
	if ss := n.zab.Status().SoftState; ss.Role != zab.RoleLeading || ss.Epoch != epoch {
		err = fmt.Errorf("%w: no longer the leader of epoch %d", ErrNoQuorum, epoch)
	} else {
		ctx, cancel := n.housekeepingContext()
		if d.Add {
			err = n.AddVoter(ctx, d.ID)
		} else {
			err = n.RemoveVoter(ctx, d.ID)
		}
		cancel()
	}
	dec.Took = time.Since(start)
	if err != nil {
		dec.Err = err.Error()
		n.log.Warn("coord: autopilot change failed", "change", kind, "id", d.ID, "reason", d.Reason, "err", err)
	} else {
		n.log.Info("coord: autopilot", "change", kind, "id", d.ID, "reason", d.Reason, "took", dec.Took)
	}
	n.ap.mu.Lock()
	n.ap.busy = false
	n.ap.stats.Last = dec
	if err != nil {
		n.ap.stats.Failures++
	} else {
		n.ap.stats.Changes++
	}
	n.ap.mu.Unlock()
	n.emit(ClusterEvent{Type: EventAutopilot, Autopilot: dec, Voters: n.Voters(), Err: err})
}

// autopilotStats returns Stats.Autopilot.
func (n *Node) autopilotStats() AutopilotStats {
	n.ap.mu.Lock()
	defer n.ap.mu.Unlock()
	return n.ap.stats
}
