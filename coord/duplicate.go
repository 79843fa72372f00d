package coord

import (
	"context"
	"fmt"

	"github.com/coord-dev/coord/zab/tcp"
)

// Two live processes with one NodeID must not both vote. Gossip reports
// this node's id at another address (a name conflict, see
// gossip.TakeSelfClaims) both for a previous process of this node, gone
// but not yet declared dead, and for another live process configured with
// the id. The replication address of the claim is asked directly
// (tcp.ProbeSameID): only a live process of this cluster with this id
// answers, so a restart (the old process is gone: nothing answers) is never
// refused, and detection does not wait for the other process to have
// talked to anyone recently.
//
//   - At Join, after the first gossip exchange and before replication
//     starts, any live claimant refuses this process: it is the newcomer.
//   - Later (a claim gossip learns after Join, such as two processes that
//     joined at the same moment or on the two sides of a partition), the
//     later start (tcp.Transport.StartedAfter) of two processes that both
//     passed the Join check fail-stops; a claimant still in its Join check
//     refuses itself.

// checkDuplicates probes every claim to this node's id that gossip holds
// and returns an error wrapping ErrDuplicateID for the first live one.
func (n *Node) checkDuplicates(ctx context.Context) error {
	for _, addr := range n.gossip.TakeSelfClaims() {
		if c := n.probeClaim(ctx, addr); c != nil {
			return n.duplicateErr(c)
		}
	}
	return nil
}

// probeClaim asks addr, where gossip reports this node's id, whether a live
// process with this id answers there, and returns it (nil: none, logged).
func (n *Node) probeClaim(ctx context.Context, addr string) *tcp.Claimant {
	c, err := n.tr.ProbeSameID(ctx, addr)
	if c == nil {
		n.log.Info("coord: gossip knows this node's id at another address; nothing answers there as this id (a previous process)",
			"addr", addr, "probe", err)
	}
	return c
}

// duplicateErr describes claimant c.
func (n *Node) duplicateErr(c *tcp.Claimant) error {
	return fmt.Errorf("coord: node id %d: %w: a live process answers as this id at %s (started %s, instance %x)",
		n.cfg.NodeID, ErrDuplicateID, c.Addr, c.Started.UTC().Format("15:04:05.000000"), c.Instance)
}

// watchDuplicates probes the claims gossip learns after Join until the
// node closes (see the rules above).
func (n *Node) watchDuplicates() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-n.closing:
			return
		case <-n.gossip.SelfClaimed():
		}
		for _, addr := range n.gossip.TakeSelfClaims() {
			c := n.probeClaim(ctx, addr)
			if c == nil {
				continue
			}
			if !c.Joined || !n.tr.StartedAfter(c) {
				n.log.Error("coord: another live process uses this node's id; it yields (still in its Join check, or started later)",
					"addr", c.Addr, "joined", c.Joined)
				continue
			}
			err := n.duplicateErr(c)
			n.log.Error("coord: another live process with this node's id started first; this one stops", "err", err)
			n.dupErr.CompareAndSwap(nil, &err)
			if n.zab != nil && n.joinedAll.Load() {
				// Stop voting at once; maintain then fail-stops with
				// the cause below.
				n.fail(err)
				_ = n.zab.Close()
			}
			return
		}
	}
}
