package coord

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "channel closed early")
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func TestPersistentWatches(t *testing.T) {
	c := startCluster(t, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[1]

	all, err := n.Watch(ctx, "/w", true)
	require.NoError(t, err)
	flat, err := n.Watch(ctx, "/w", false)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/w", nil, Persistent)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/w/x", nil, Persistent)
	require.NoError(t, err)
	_, err = n.Set(ctx, "/w/x", []byte("1"), AnyVersion)
	require.NoError(t, err)

	require.Equal(t, EventNodeCreated, recv(t, all.C()).Type)
	ev := recv(t, all.C())
	require.Equal(t, EventNodeCreated, ev.Type)
	require.Equal(t, "/w/x", ev.Path)
	last := recv(t, all.C())
	require.Equal(t, EventNodeDataChanged, last.Type)

	require.Equal(t, EventNodeCreated, recv(t, flat.C()).Type)
	require.Equal(t, EventNodeChildrenChanged, recv(t, flat.C()).Type)

	// Resume: a new watch from the zxid of the second event replays the third.
	again, err := n.WatchFrom(ctx, "/w", true, ev.Zxid)
	require.NoError(t, err)
	require.Equal(t, last, recv(t, again.C()))
	_, err = n.WatchFrom(ctx, "/w", true, 1<<40)
	require.ErrorIs(t, err, ErrBadArguments)

	// Close ends the watch with a final event, then the channel closes.
	require.NoError(t, all.Close())
	end := recv(t, all.C())
	require.ErrorIs(t, end.Err, ErrClosed)
	_, ok := <-all.C()
	require.False(t, ok)
	require.NoError(t, all.Close(), "idempotent")
}

func TestSessionEndEndsItsWatches(t *testing.T) {
	c := startCluster(t, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[1]
	s, err := n.Session(ctx, SessionOptions{})
	require.NoError(t, err)
	w, err := s.Watch(ctx, "/", true)
	require.NoError(t, err)
	_, _, one, err := s.ExistsW(ctx, "/nothing")
	require.NoError(t, err)
	require.Equal(t, SessionConnected, (<-s.Events()).Type)

	require.NoError(t, s.Close(ctx))
	require.ErrorIs(t, recv(t, one).Err, ErrClosed)
	require.ErrorIs(t, recv(t, w.C()).Err, ErrClosed)
	_, ok := <-s.Events()
	require.False(t, ok, "session events close")
	_, err = s.Watch(ctx, "/", true)
	require.ErrorIs(t, err, ErrClosed)
}

func TestWatchOverflowIsReported(t *testing.T) {
	c := startCluster(t, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[1]
	w, err := n.Watch(ctx, "/o", false)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/o", nil, Persistent)
	require.NoError(t, err)
	// Nobody reads while MaxWatchBacklog+1 more events are queued.
	ops := make([]Op, 0, 100)
	for len(ops) < cap(ops) {
		ops = append(ops, SetOp("/o", nil, AnyVersion))
	}
	for i := 0; i < MaxWatchBacklog/len(ops)+2; i++ {
		_, err := n.Multi(ctx, ops...)
		require.NoError(t, err)
	}
	var got int
	for ev := range w.C() {
		if ev.Err != nil {
			require.ErrorIs(t, ev.Err, ErrWatchOverflow)
			break
		}
		got++
	}
	require.LessOrEqual(t, got, MaxWatchBacklog+1)
	_, ok := <-w.C()
	require.False(t, ok)
}

func TestReaperRemovesContainersAndTTLNodes(t *testing.T) {
	c := startCluster(t, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[1]
	_, err := n.Create(ctx, "/box", nil, Container)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/box/item", nil, Persistent)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/ttl", nil, PersistentWithTTL, WithTTL(200*time.Millisecond))
	require.NoError(t, err)
	_, err = n.Create(ctx, "/bad-ttl", nil, Persistent, WithTTL(time.Second))
	require.ErrorIs(t, err, ErrBadArguments)

	require.NoError(t, n.Delete(ctx, "/box/item", AnyVersion))
	require.Eventually(t, func() bool {
		_, boxOK, _ := n.Exists(ctx, "/box")
		_, ttlOK, _ := n.Exists(ctx, "/ttl")
		return !boxOK && !ttlOK
	}, 5*time.Second, 20*time.Millisecond, "the leader's reaper removes the empty container and the expired TTL node")
}

// TestRemoveWatch: a one-shot watch nobody waits for any more is removed
// at once (Stats().Watches back where it was), its channel ends with
// ErrClosed, and a later change of the node does not reach it.
func TestRemoveWatch(t *testing.T) {
	c := startCluster(t, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[1]
	s, err := n.Session(ctx, SessionOptions{})
	require.NoError(t, err)
	before := n.Stats().Watches
	_, _, exists, err := s.ExistsW(ctx, "/rw")
	require.NoError(t, err)
	_, _, kids, err := s.ChildrenW(ctx, "/")
	require.NoError(t, err)
	require.Equal(t, before+2, n.Stats().Watches)

	require.True(t, s.RemoveWatch(exists))
	require.True(t, s.RemoveWatch(kids))
	require.Equal(t, before, n.Stats().Watches)
	require.ErrorIs(t, recv(t, exists).Err, ErrClosed)
	_, ok := <-exists
	require.False(t, ok, "closed after the final event")
	require.False(t, s.RemoveWatch(exists), "already removed")

	// A watch that fired is not pending any more.
	_, _, fired, err := s.ExistsW(ctx, "/rw")
	require.NoError(t, err)
	_, err = s.Create(ctx, "/rw", nil, Persistent)
	require.NoError(t, err)
	require.Equal(t, EventNodeCreated, recv(t, fired).Type)
	require.False(t, s.RemoveWatch(fired))
	require.Equal(t, before, n.Stats().Watches)

	// Another session's watch is not this session's to remove.
	other, err := n.Session(ctx, SessionOptions{})
	require.NoError(t, err)
	_, _, theirs, err := other.ExistsW(ctx, "/rw")
	require.NoError(t, err)
	require.False(t, s.RemoveWatch(theirs))
	require.True(t, other.RemoveWatch(theirs))
}
