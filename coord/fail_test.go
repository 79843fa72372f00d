package coord

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNodeFailStopsWhenReplicationStops: a follower's data directory is
// replaced by a file, so the next epoch it must persist cannot be written and
// its zab.Node stops with that error. coord must then fail-stop the node
// (issue 10 item 2): Done closes, Err says why, its sessions are Lost with
// their Suspended channels (a recipes Lease.Done) closed and their watches
// ended, reads and writes fail with the cause, an EventNodeFailed is
// emitted, and Close returns the cause.
func TestNodeFailStopsWhenReplicationStops(t *testing.T) {
	c := startCluster(t, 3, withDataDirs(t))
	ctx := ctxT(t)
	leader := c.leader()
	var victim *Node
	for id, n := range c.nodes {
		if id != leader {
			victim = n
			break
		}
	}
	_, err := victim.Create(ctx, "/d", []byte("x"), Persistent)
	require.NoError(t, err)
	s, err := victim.Session(ctx, SessionOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	_, err = s.Create(ctx, "/d/eph", nil, Ephemeral)
	require.NoError(t, err)
	suspended := s.Suspended()
	_, _, watch, err := s.GetW(ctx, "/d")
	require.NoError(t, err)
	require.NoError(t, victim.Err())
	select {
	case <-victim.Done():
		t.Fatal("Done is closed on a healthy node")
	default:
	}

	// The disk goes: the directory is replaced by a file.
	dir := c.cfgs[victim.ID()].DataDir
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
	// A new epoch must be persisted by every voter: close the leader.
	require.NoError(t, c.nodes[leader].Close(ctx))
	delete(c.nodes, leader)

	select {
	case <-victim.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the node did not fail-stop (status %+v)", victim.Stats())
	}
	ferr := victim.Err()
	require.ErrorIs(t, ferr, ErrFailed)
	require.ErrorIs(t, ferr, syscall.ENOTDIR, "the cause: %v", ferr)

	// The session is Lost, its lease broken, its watch ended.
	<-suspended
	var last SessionEvent
	for ev := range s.Events() {
		last = ev
	}
	require.Equal(t, SessionLost, last.Type)
	require.Equal(t, SessionStateLost, s.State())
	ev := <-watch
	require.ErrorIs(t, ev.Err, ErrFailed)

	// Reads and writes fail with the cause.
	_, _, err = victim.Get(ctx, "/d")
	require.ErrorIs(t, err, ErrFailed)
	_, _, err = s.Get(ctx, "/d")
	require.ErrorIs(t, err, ErrFailed)
	_, err = victim.Create(ctx, "/d/x", nil, Persistent)
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, err, syscall.ENOTDIR)
	_, err = victim.Session(ctx, SessionOptions{})
	require.ErrorIs(t, err, ErrFailed)

	// The failure is announced.
	seen := false
	for !seen {
		select {
		case ev := <-victim.Events():
			if ev.Type == EventNodeFailed {
				require.ErrorIs(t, ev.Err, ErrFailed)
				seen = true
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no EventNodeFailed")
		}
	}

	// Close returns the cause, and again when called twice.
	err = victim.Close(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	require.True(t, errors.Is(victim.Close(context.Background()), ErrFailed))
}
