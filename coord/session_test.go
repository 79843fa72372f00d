package coord

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

var raceRoundsFlag = flag.Int("coord.raceRounds", 60, "TestSessionEndRace: rounds of close/expiry/heartbeat races")

// TestSessionEndRace races, on the leader's node, a session's Close, its
// expiry by the leader, heartbeats, acknowledgements ("alive" and
// "expired") and the maintenance tick. A session has hundreds of watches so
// that ending it takes a while. Nothing may send on the session's closed
// events channel (which panics the process), and every session ends with its
// channel closed. Issue 10 item 5.
func TestSessionEndRace(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[1]
	ctx := ctxT(t)
	_, err := n.Create(ctx, "/w", nil, Persistent)
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for round := 0; round < *raceRoundsFlag && time.Now().Before(deadline); round++ {
		// A long timeout: the leader's expiry is proposed directly below.
		s, err := n.Session(ctx, SessionOptions{Timeout: 10 * time.Second})
		require.NoError(t, err)
		for range 300 {
			_, _, _, err := s.ExistsW(ctx, "/w")
			require.NoError(t, err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		hammer := func(f func(i int)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					f(i)
				}
			}()
		}
		payload := func(kind uint8, ok bool) []byte {
			b, err := encodeAppMsg(appMsg{Kind: kind, Session: s.id, Sent: 1, OK: ok})
			require.NoError(t, err)
			return b
		}
		hb, ack, gone := payload(msgHeartbeat, false), payload(msgHeartbeatAck, true), payload(msgHeartbeatAck, false)
		// Heartbeats reach the leader and acks come back, as the zab driver
		// hands them over.
		hammer(func(int) { n.onApp(n.zabID(), hb) })
		hammer(func(int) { n.onApp(n.zabID(), ack) })
		// The leader's "expired" answer and an applied closeSession come once
		// the owner is closing.
		hammer(func(int) {
			s.mu.Lock()
			closing := s.closing || s.closed
			s.mu.Unlock()
			if closing {
				n.onApp(n.zabID(), gone)
				n.onApply(tree.Txn{Op: tree.Op{Type: tree.OpCloseSession, Session: s.id}}, tree.Result{})
			}
		})
		// The leader expires the session while its owner closes it.
		_, epoch := n.Leader()
		if round%2 == 0 {
			n.proposeExpiry(s.id, epoch)
		}
		require.NoError(t, s.Close(ctx))
		if round%2 == 1 {
			n.proposeExpiry(s.id, epoch)
		}
		close(stop)
		wg.Wait()
		for range s.Events() {
		}
		require.Error(t, s.usable(), "round %d", round)
	}
}

// zabID is this node's replication id.
func (n *Node) zabID() zab.PeerID { return zab.PeerID(n.cfg.NodeID) }

// TestCloseDrainsEvents: the events channel of a closed session is closed,
// and its Suspended channel too.
func TestSessionCloseEndsChannels(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[1]
	ctx := ctxT(t)
	s, err := n.Session(ctx, SessionOptions{})
	require.NoError(t, err)
	sus := s.Suspended()
	require.NoError(t, s.Close(context.Background()))
	<-sus
	for range s.Events() {
	}
}

// TestSuspendedSharesOneChannel: Suspended hands out one channel per
// Connected period, closed at its end and replaced by a new one after
// Reconnected, so a session that locks often does not grow (issue 11).
func TestSuspendedSharesOneChannel(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[1]
	ctx := ctxT(t)
	s, err := n.Session(ctx, SessionOptions{})
	require.NoError(t, err)
	first := s.Suspended()
	for range 10000 {
		require.Equal(t, first, s.Suspended())
	}
	// Suspended, as when the leader is lost: the channel closes and later
	// calls get a closed channel.
	s.mu.Lock()
	s.deliverLocked(SessionEvent{Type: SessionSuspended})
	s.mu.Unlock()
	select {
	case <-first:
	default:
		t.Fatal("the Suspended channel is open after Suspended")
	}
	<-s.Suspended()
	// Reconnected: a new channel.
	s.mu.Lock()
	s.deliverLocked(SessionEvent{Type: SessionReconnected})
	s.mu.Unlock()
	second := s.Suspended()
	require.NotEqual(t, first, second)
	select {
	case <-second:
		t.Fatal("the new Connected period's channel is closed")
	default:
	}
	require.Equal(t, second, s.Suspended())
}

// TestCloseOfALostSessionDeletesItsEphemerals: a session whose owner
// declared it Lost may not be expired by the leader yet; Close still has
// its ephemerals deleted at once.
func TestCloseOfALostSessionDeletesItsEphemerals(t *testing.T) {
	c := startCluster(t, 1, nil)
	n := c.nodes[1]
	ctx := ctxT(t)
	s, err := n.Session(ctx, SessionOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	_, err = s.Create(ctx, "/e", nil, Ephemeral)
	require.NoError(t, err)
	// The owner gives the session up (as at Lost by its own clock); the
	// leader still tracks it for 10s.
	s.mu.Lock()
	s.deliverLocked(SessionEvent{Type: SessionLost})
	s.mu.Unlock()
	s.finish(ErrSessionExpired)
	_, ok, err := n.Exists(ctx, "/e")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Close(ctx))
	_, ok, err = n.Exists(ctx, "/e")
	require.NoError(t, err)
	require.False(t, ok, "Close of a Lost session deletes its ephemerals")
	require.NoError(t, s.Close(ctx), "idempotent")
	_, err = s.Create(ctx, "/e2", nil, Ephemeral)
	require.ErrorIs(t, err, ErrClosed)
}
