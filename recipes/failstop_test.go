package recipes_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
	"github.com/coord-dev/coord/recipes"
)

// TestLeaseEndsWhenItsNodeFailStops (issue 10 item 2): the node of a lock
// holder fail-stops (its data directory is replaced by a file, so the next
// epoch cannot be persisted): the lease's Done closes at once, its
// Remaining is zero, and Release reports the loss.
func TestLeaseEndsWhenItsNodeFailStops(t *testing.T) {
	cfgs := testcluster.Configs(t, "failstop", 3, true)
	nodes := testcluster.Join(t, cfgs...)
	leader := testcluster.Leader(t, nodes)
	victim := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := nodes[victim].Session(ctx, coord.SessionOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	lease, err := recipes.NewLock(s, "/locks/a", nil).Acquire(ctx)
	require.NoError(t, err)
	require.Positive(t, lease.Remaining())

	dir := cfgs[victim].DataDir
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	require.NoError(t, nodes[leader].Close(ctx)) // a new epoch must be persisted

	select {
	case <-lease.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lease outlived its node's fail-stop")
	}
	<-nodes[victim].Done()
	require.ErrorIs(t, nodes[victim].Err(), coord.ErrFailed)
	require.Zero(t, lease.Remaining())
	require.Error(t, lease.Release(ctx))
}
