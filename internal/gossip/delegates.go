package gossip

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegates implements memberlist's delegate interfaces for a Gossip, so
// those methods stay off Gossip's API. memberlist calls the event, alive
// and conflict delegates with its node lock held: they take g.mu briefly,
// never block, and never call back into memberlist.
type delegates struct{ g *Gossip }

var (
	_ memberlist.Delegate         = delegates{}
	_ memberlist.EventDelegate    = delegates{}
	_ memberlist.AliveDelegate    = delegates{}
	_ memberlist.MergeDelegate    = delegates{}
	_ memberlist.ConflictDelegate = delegates{}
	_ memberlist.PingDelegate     = delegates{}
)

// NodeMeta returns this node's encoded metadata (≤ MetaMaxSize, checked
// when it was set).
func (d delegates) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if len(d.g.metaBytes) > limit {
		return nil
	}
	return d.g.metaBytes
}

// NotifyMsg ignores user messages: coord sends none over gossip.
func (delegates) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (delegates) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState has no user state to exchange.
func (delegates) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores the (empty) user state of peers.
func (delegates) MergeRemoteState(buf []byte, join bool) {}

// validatePeer checks a peer's node name and metadata against this node's
// cluster.
func (g *Gossip) validatePeer(name string, meta []byte) (Meta, bool, error) {
	id, err := parseNodeName(name)
	if err != nil {
		return Meta{}, false, err
	}
	m, leaving, err := decodeMeta(meta)
	if err != nil {
		return Meta{}, false, err
	}
	if m.NodeID != id {
		return Meta{}, false, fmt.Errorf("%w: metadata of node %d under node name %s", ErrInvalidMeta, m.NodeID, name)
	}
	if m.Cluster != g.cfg.Cluster {
		return Meta{}, false, fmt.Errorf("%w: %.80q, this node's is %q", ErrForeignCluster, m.Cluster, g.cfg.Cluster)
	}
	return m, leaving, nil
}

// refuse counts and logs (rate limited) a vetoed peer.
func (g *Gossip) refuse(n *memberlist.Node, err error) {
	g.vetoed.Add(1)
	addr := n.Address()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.warnLimited("veto "+n.Name+"@"+addr, "refused gossip peer", "peer", fmt.Sprintf("%.40q", n.Name), "addr", addr, "err", err)
}

// NotifyAlive vetoes a peer with malformed or foreign metadata before
// memberlist considers it a member (the merge delegate alone would miss
// peers learnt from ordinary gossip).
func (d delegates) NotifyAlive(peer *memberlist.Node) error {
	if _, _, err := d.g.validatePeer(peer.Name, peer.Meta); err != nil {
		d.g.refuse(peer, err)
		return err
	}
	return nil
}

// NotifyMerge vetoes a join whose state lists any peer with malformed or
// foreign metadata: that state belongs to another cluster.
func (d delegates) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if _, _, err := d.g.validatePeer(p.Name, p.Meta); err != nil {
			d.g.refuse(p, err)
			return fmt.Errorf("gossip: merge refused: %w", err)
		}
	}
	return nil
}

// NotifyJoin records a member that became alive.
func (d delegates) NotifyJoin(n *memberlist.Node) { d.g.observe(n, EventJoin) }

// NotifyUpdate records a member's new metadata or address.
func (d delegates) NotifyUpdate(n *memberlist.Node) { d.g.observe(n, EventUpdate) }

// NotifyLeave records a member that left or failed: it left if its last
// metadata announced it, failed otherwise.
func (d delegates) NotifyLeave(n *memberlist.Node) {
	g := d.g
	id, err := parseNodeName(n.Name)
	if err != nil {
		return
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.members[id]
	if r == nil {
		m, leaving, err := g.validatePeer(n.Name, n.Meta)
		if err != nil {
			return
		}
		r = &record{m: Member{Meta: m, Addr: n.Address()}, leaving: leaving}
		g.members[id] = r
	}
	typ, st := EventFail, StateDead
	if r.leaving {
		typ, st = EventLeave, StateLeft
	}
	r.m.State, r.m.Since = st, now
	if id == g.cfg.NodeID {
		return
	}
	if st == StateDead {
		g.log.Info("gossip member failed", "peer", id, "addr", r.m.Addr)
	} else {
		g.log.Info("gossip member left", "peer", id, "addr", r.m.Addr)
	}
	g.emit(Event{Type: typ, Member: r.m})
}

// observe records an alive member and emits typ if something a consumer
// cares about changed.
func (g *Gossip) observe(n *memberlist.Node, typ EventType) {
	m, leaving, err := g.validatePeer(n.Name, n.Meta)
	if err != nil {
		// The alive delegate vetoes such peers before they get here.
		g.refuse(n, err)
		return
	}
	now := time.Now()
	addr := n.Address()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.members[m.NodeID]
	if r == nil {
		r = &record{m: Member{State: StateDead}}
		g.members[m.NodeID] = r
		typ = EventJoin
	}
	prev := r.m
	if prev.State != StateAlive {
		typ = EventJoin
		r.m.Since = now
	}
	r.m.Meta, r.m.Addr, r.m.State = m, addr, StateAlive
	r.leaving = leaving
	r.lastAck = now
	if m.NodeID == g.cfg.NodeID {
		return
	}
	if typ == EventUpdate && prev.Meta == m && prev.Addr == addr {
		return // only the leaving flag (or nothing visible) changed
	}
	if typ == EventJoin {
		g.log.Info("gossip member joined", "peer", m.NodeID, "addr", addr, "role", m.Role)
	}
	g.emit(Event{Type: typ, Member: r.m})
}

// maxSelfClaims bounds the addresses kept for TakeSelfClaims.
const maxSelfClaims = 64

// NotifyConflict handles a node id seen at two addresses: usually a node
// restarted on a new address before its old one was declared dead. Both
// sides then push their state to each other on every heal round until
// memberlist, once the old address is dead, accepts the new one.
func (d delegates) NotifyConflict(existing, other *memberlist.Node) {
	g := d.g
	g.conflicts.Add(1)
	until := time.Now().Add(g.t.toTheDead + 2*g.cfg.HealInterval)
	if existing.Name == g.name {
		// Peers still know this id at another address: our previous
		// incarnation, or (misconfiguration) another live node with our id.
		g.mu.Lock()
		g.reannounce = until
		if m, _, err := decodeMeta(other.Meta); err == nil && m.NodeID == g.meta.NodeID && m.Cluster == g.meta.Cluster &&
			m.ReplicationAddr != g.meta.ReplicationAddr && !slices.Contains(g.selfClaims, m.ReplicationAddr) &&
			len(g.selfClaims) < maxSelfClaims {
			g.selfClaims = append(g.selfClaims, m.ReplicationAddr)
			select {
			case g.selfSig <- struct{}{}:
			default:
			}
		}
		g.warnLimited("conflict self "+other.Address(),
			"gossip peers know this node's id at another address; re-announcing until they accept this one (if another live node uses this id, fix its configuration)",
			"other_addr", other.Address(), "addr", existing.Address())
		g.mu.Unlock()
		g.kickHeal()
		return
	}
	if _, _, err := g.validatePeer(other.Name, other.Meta); err != nil {
		g.refuse(other, err)
		return
	}
	g.mu.Lock()
	g.pending[other.Address()] = until
	g.warnLimited("conflict "+other.Name+" "+other.Address(),
		"gossip member reappeared at a new address; accepting it once the old one is declared dead",
		"peer", other.Name, "old_addr", existing.Address(), "new_addr", other.Address())
	g.mu.Unlock()
	g.kickHeal()
}

// AckPayload adds nothing to probe acks.
func (delegates) AckPayload() []byte { return nil }

// NotifyPingComplete records that a member answered a direct probe.
func (d delegates) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	id, err := parseNodeName(other.Name)
	if err != nil {
		return
	}
	now := time.Now()
	d.g.mu.Lock()
	if r := d.g.members[id]; r != nil {
		r.lastAck = now
	}
	d.g.mu.Unlock()
}
