package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coord-dev/coord/zab"
)

// Voters returns the ids of the voters in force on this node: the newest
// configuration in its log (committed or about to be), in increasing
// order. Nodes outside it observe.
func (n *Node) Voters() []uint64 {
	vs := n.zab.Status().Voters
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = uint64(v)
	}
	return out
}

// AddVoter makes node id a voter. The node must be running as an observer
// (any node outside the voters is one) and be synced with the leader; the
// change is replicated like a write, one change at a time, and AddVoter
// returns once this node has applied it. It may be called on any node.
//
// Errors: ErrReconfigInProgress while another change is not committed,
// ErrNotSynced if id is not a connected, synced observer,
// ErrReconfigUnsafe if the new voter set would have no live quorum,
// ErrNoQuorum without a leader, ErrOutcomeUnknown if ctx ended after the
// change was sent. Adding a node that already votes succeeds at once.
func (n *Node) AddVoter(ctx context.Context, id uint64) error {
	return n.reconfig(ctx, zab.ConfChange{Type: zab.ConfAddVoter, ID: zab.PeerID(id)})
}

// RemoveVoter makes voter id an observer: it keeps a full copy and serves
// reads, and Close takes it out entirely. Removing the leader is allowed:
// it leads until the change commits, then steps down and another voter
// takes over (about one election). Refused with ErrReconfigUnsafe when the
// remaining voters would have no live quorum, and with
// ErrInvalidReconfig for the last voter; other errors as for AddVoter.
// Removing a node that does not vote succeeds at once.
func (n *Node) RemoveVoter(ctx context.Context, id uint64) error {
	return n.reconfig(ctx, zab.ConfChange{Type: zab.ConfRemoveVoter, ID: zab.PeerID(id)})
}

// reconfigDone reports whether cc's effect is in force on this node.
func (n *Node) reconfigDone(cc zab.ConfChange) bool {
	in := slices.Contains(n.zab.Status().Voters, cc.ID)
	return in == (cc.Type == zab.ConfAddVoter)
}

func (n *Node) reconfig(ctx context.Context, cc zab.ConfChange) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if cc.ID == 0 {
		return fmt.Errorf("%w: node id 0", ErrInvalidReconfig)
	}
	// Already so, and committed as far as the leader knows: done. (A change
	// still in flight is answered by the leader below.)
	if n.reconfigDone(cc) {
		if _, err := n.zab.Sync(ctx); err != nil {
			return n.mapErr(err)
		}
		if st := n.zab.Status(); n.reconfigDone(cc) && st.ConfigZxid <= st.Applied {
			return nil
		}
	}
	var unknown error
	for {
		_, err := n.zab.ProposeConfig(ctx, cc)
		switch {
		case err == nil:
			return nil
		case unknown != nil && errors.Is(err, zab.ErrBadConfChange) && n.reconfigDone(cc):
			return nil // an earlier attempt went through
		case errors.Is(err, zab.ErrReconfigInProgress) && unknown == nil:
			return fmt.Errorf("%w: %w", ErrReconfigInProgress, err)
		case errors.Is(err, zab.ErrReconfigUnsafe):
			return fmt.Errorf("%w: %w", ErrReconfigUnsafe, err)
		case errors.Is(err, zab.ErrNotSynced):
			return fmt.Errorf("%w: %w", ErrNotSynced, err)
		case errors.Is(err, zab.ErrBadConfChange):
			return fmt.Errorf("%w: %w", ErrInvalidReconfig, err)
		}
		// Retry what may or may not have happened, or had no leader, under
		// a fresh request: the checks above make a repeat harmless.
		retry := errors.Is(err, zab.ErrOutcomeUnknown) || errors.Is(err, zab.ErrNoLeader) ||
			errors.Is(err, zab.ErrProposalDropped) || errors.Is(err, zab.ErrReconfigInProgress)
		if errors.Is(err, zab.ErrOutcomeUnknown) {
			unknown = err
		}
		if !retry || ctx.Err() != nil || n.closed.Load() {
			if unknown != nil && !errors.Is(err, zab.ErrOutcomeUnknown) {
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, n.mapErr(err))
			}
			return n.mapErr(err)
		}
		select {
		case <-ctx.Done():
		case <-n.closing:
		case <-time.After(n.cfg.TickInterval):
		}
	}
}
