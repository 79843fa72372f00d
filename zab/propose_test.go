package zab_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// TestNodeProposeReturnsApplyResponse: a write's result comes back with its
// applied entry (hashicorp/raft's ApplyFuture.Response), on the leader and
// through a follower's forward, not through a side channel.
func TestNodeProposeReturnsApplyResponse(t *testing.T) {
	c := newCluster(t, 3, false)
	l := c.leader(10 * time.Second)
	f := c.follower(l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, at := range []zab.PeerID{l, f, l, f} {
		data := fmt.Sprintf("w%d", i)
		var a zab.Applied
		require.Eventually(t, func() bool {
			var err error
			a, err = c.nodes[at].Propose(ctx, []byte(data))
			require.False(t, errors.Is(err, zab.ErrOutcomeUnknown), "nothing fails here: %v", err)
			return err == nil
		}, 10*time.Second, 10*time.Millisecond)
		// logSM answers with the entry's position in its log.
		ents := c.sms[at].snapshot()
		pos, ok := a.Response.(int)
		require.True(t, ok, "response %#v", a.Response)
		require.Equal(t, a.Zxid, ents[pos-1].Zxid)
		require.Equal(t, data, string(ents[pos-1].Data))
	}
}

// TestNodeDoneContextNeverSent: a write whose context has ended before the
// core took it in returns the context's error, not ErrOutcomeUnknown, and
// is never proposed, whether the context ended before the call or while
// the request waited in the driver's queue.
func TestNodeDoneContextNeverSent(t *testing.T) {
	c := newCluster(t, 1, false)
	n, sm := c.nodes[1], c.sms[1]
	c.leader(10 * time.Second)
	before := c.propose(1, "first")

	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		_, err := n.Propose(done, []byte("dead"))
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, zab.ErrOutcomeUnknown)
	}

	// Hold the driver inside Apply, so requests wait in its queue, and end
	// their contexts there.
	entered, release := make(chan struct{}), make(chan struct{})
	sm.setHook(func(e zab.Entry) {
		if string(e.Data) == "block" {
			close(entered)
			<-release
		}
	})
	blocked := make(chan error, 1)
	go func() {
		_, err := n.Propose(context.Background(), []byte("block"))
		blocked <- err
	}()
	<-entered
	var wg sync.WaitGroup
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := n.Propose(ctx, []byte("queued"))
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, zab.ErrOutcomeUnknown, "the driver never took it in")
		}()
		cancel()
	}
	wg.Wait()
	close(release)
	require.NoError(t, <-blocked)
	// The queue is FIFO: once "after" is applied, everything queued before
	// it has been taken in or skipped.
	after := c.propose(1, "after")
	var got []string
	for _, e := range sm.snapshot() {
		if e.Zxid > before {
			got = append(got, string(e.Data))
		}
	}
	require.Equal(t, []string{"block", "after"}, got)
	require.Greater(t, after, before)
}

// TestNodeRestartedFollowerWritesAnswered: a follower's request ids count
// from 1 in every run, below the ids of its previous run; after a restart
// its writes are still answered (the leader scopes ids by incarnation).
func TestNodeRestartedFollowerWritesAnswered(t *testing.T) {
	c := newCluster(t, 3, false)
	l := c.leader(10 * time.Second)
	f := c.follower(l)
	for i := range 20 {
		c.propose(f, fmt.Sprintf("before%d", i))
	}
	c.restart(f)
	z := c.propose(f, "after")
	c.waitApplied(z)
}
