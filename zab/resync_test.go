package zab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// Node.Resync on a real data directory: a follower throws its log and
// snapshots away, takes the leader's state again, and its directory then
// opens again (currentEpoch zero, the synchronisation marker, no stale
// snapshot left to recover from).
func TestNodeResyncOnDisk(t *testing.T) {
	c := newCluster(t, 3, true)
	L := c.leader(10 * time.Second)
	var last zab.Zxid
	for i := range 120 {
		last = c.propose(L, fmt.Sprintf("w%d", i))
	}
	want := c.waitApplied(last)
	var A zab.PeerID
	for id := range c.nodes {
		if id != L {
			A = id
		}
	}
	snaps, err := filepath.Glob(filepath.Join(c.dirs[A], "snap-*"))
	require.NoError(t, err)
	require.NotEmpty(t, snaps, "the follower had snapshots to throw away")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.ErrorIs(t, c.nodes[L].Resync(ctx), zab.ErrResyncLeader)
	require.NoError(t, c.nodes[A].Resync(ctx))
	got := c.waitApplied(c.propose(L, "after"))
	require.Equal(t, want, got[:len(want)])
	require.Equal(t, got, c.sms[A].snapshot(), "the resynced follower holds the leader's state")
	require.Eventually(t, func() bool { return c.nodes[A].Status().SoftState.Serving }, 10*time.Second, 10*time.Millisecond)

	c.restart(A)
	got = c.waitApplied(c.propose(L, "after restart"))
	require.Equal(t, got, c.sms[A].snapshot())
	_, err = os.Stat(c.dirs[A])
	require.NoError(t, err)
}
