package zabtest

import (
	"errors"
	"fmt"
	. "github.com/coord-dev/coord/zab"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSimSync(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 23), Voters: 3, Observers: 1})
	l := waitStable(t, s, 2000)
	reqs := submit(t, s, 100, 20)
	settleAndConverge(t, s, reqs, 2000)

	for _, id := range s.IDs() {
		t.Run(fmt.Sprintf("at%d", id), func(t *testing.T) {
			want := s.Node(l).Peer.Committed()
			r, err := s.Sync(id)
			require.NoError(t, err)
			require.True(t, s.RunUntil(500, func() bool { _, ok := s.Node(id).Syncs[r]; return ok }))
			res := s.Node(id).Syncs[r]
			require.NoError(t, res.Err)
			require.GreaterOrEqual(t, res.Zxid, want, "sync must cover what the leader had committed")
			require.GreaterOrEqual(t, s.Node(id).SM.Last, res.Zxid, "sync completed before applying")
		})
	}
}

// A leader cut off from its quorum still believes it leads for a while; a
// Sync at it (or at a follower still attached to it) must not complete.
func TestSimDeposedLeaderCannotSync(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 29), Voters: 5, Observers: 1})
	old := waitStable(t, s, 2000)
	reqs := submit(t, s, 50, 10)
	settleAndConverge(t, s, reqs, 2000)
	other := PeerID(1)
	if other == old {
		other = 2
	}
	var majority []PeerID
	for _, id := range s.IDs() {
		if id != old && id != other {
			majority = append(majority, id)
		}
	}
	s.Partition([]PeerID{old, other}, majority)
	require.Equal(t, RoleLeading, s.Node(old).Peer.SoftState().Role, "still believes it leads")
	atLeader, err := s.Sync(old)
	require.NoError(t, err)
	atFollower, err := s.Sync(other)
	require.NoError(t, err)

	// Meanwhile the majority moves on.
	require.True(t, s.RunUntil(3000, func() bool { l := s.Leader(); return l != 0 && l != old }), describe(s))
	l := s.Leader()
	more := map[PeerID][]uint64{}
	for i := range 10 {
		r, err := s.Propose(l, fmt.Appendf(nil, "new%d", i))
		require.NoError(t, err)
		more[l] = append(more[l], r)
	}
	require.True(t, s.RunUntil(2000, func() bool { return settled(s, more) }))
	s.RunFor(500)
	for _, c := range []struct {
		id  PeerID
		req uint64
	}{{old, atLeader}, {other, atFollower}} {
		res, done := s.Node(c.id).Syncs[c.req]
		if done {
			require.ErrorIs(t, res.Err, ErrLeaderLost, "peer %d completed a stale sync", c.id)
		}
	}
	s.Heal()
	settleAndConverge(t, s, nil, 3000)
}

func TestSimForwarding(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 31), Voters: 3, Observers: 1})
	l := waitStable(t, s, 2000)
	for _, id := range s.IDs() {
		if id == l {
			continue
		}
		t.Run(fmt.Sprintf("from%d", id), func(t *testing.T) {
			r, err := s.Propose(id, []byte("forwarded"))
			require.NoError(t, err)
			require.True(t, s.RunUntil(500, func() bool { _, ok := s.Node(id).Proposals[r]; return ok }))
			res := s.Node(id).Proposals[r]
			require.NoError(t, res.Err)
			require.Equal(t, s.Node(l).Peer.SoftState().Epoch, res.Zxid.Epoch())
			// Read-your-writes: the result comes once the local state has it.
			require.GreaterOrEqual(t, s.Node(id).SM.Last, res.Zxid)
		})
	}
}

// Forwarded requests survive lost and duplicated messages: each commits
// exactly once.
func TestSimForwardingLossy(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 37), Voters: 3, Observers: 1, DropRate: 0.2, DupRate: 0.3, Reorder: true})
	l := waitStable(t, s, 5000)
	var f PeerID
	for _, id := range s.IDs() {
		if id != l {
			f = id
			break
		}
	}
	reqs := map[PeerID][]uint64{}
	for i := range 100 {
		r, err := s.Propose(f, fmt.Appendf(nil, "w%d", i))
		if err == nil {
			reqs[f] = append(reqs[f], r)
		}
		s.RunFor(2)
	}
	s.SetFaults(0, 0)
	settleAndConverge(t, s, reqs, 5000)
	committed, unknown := 0, 0
	for _, r := range reqs[f] {
		switch err := s.Node(f).Proposals[r].Err; {
		case err == nil:
			committed++
		case errors.Is(err, ErrOutcomeUnknown):
			unknown++
		}
	}
	// A write whose zxid the learner learnt only after applying it has an
	// unknown outcome (its response is gone): it may be among the applied.
	n := int(s.Node(f).SM.N)
	require.True(t, committed <= n && n <= committed+unknown,
		"every committed write applied exactly once, no more: %d applied, %d committed, %d unknown", n, committed, unknown)
}

func TestSimCounterExhaustion(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 41), Voters: 3, Observers: 1, Peer: Config{MaxCounter: 10}})
	waitStable(t, s, 2000)
	first := s.Node(s.Leader()).Peer.SoftState().Epoch
	reqs := map[PeerID][]uint64{}
	for sent := 0; sent < 45; {
		l := s.Leader()
		if l == 0 {
			s.RunFor(10)
			continue
		}
		if r, err := s.Propose(l, fmt.Appendf(nil, "c%d", sent)); err == nil {
			reqs[l] = append(reqs[l], r)
			sent++
		}
		s.RunFor(2)
	}
	settleAndConverge(t, s, reqs, 5000)
	require.Equal(t, 45, requireAllCommitted(t, s, reqs))
	epoch := s.Node(s.Leader()).Peer.SoftState().Epoch
	require.GreaterOrEqual(t, epoch, first+4, "each exhausted epoch forces a new one")
	for _, id := range s.IDs() {
		for _, r := range s.Node(id).Proposals {
			require.LessOrEqual(t, r.Zxid.Counter(), uint32(10))
		}
	}
}

// Observers never count toward a quorum: with a majority of voters down,
// no leader is elected and nothing commits, however many observers remain.
func TestSimObserverNeverCounted(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 43), Voters: 3, Observers: 3})
	l := waitStable(t, s, 2000)
	reqs := submit(t, s, 20, 10)
	settleAndConverge(t, s, reqs, 2000)
	var down PeerID = 1
	if down == l {
		down = 2
	}
	s.Crash(down)
	// One follower down: the leader and the other voter still commit.
	more := submit(t, s, 10, 10)
	require.True(t, s.RunUntil(2000, func() bool { return settled(s, more) }))
	requireAllCommitted(t, s, more)

	// Two voters down: the leader hears from three observers, never a quorum.
	for _, id := range []PeerID{1, 2, 3} {
		if id != l && id != down {
			s.Crash(id)
		}
	}
	committed := s.Node(l).Peer.Committed()
	r, err := s.Propose(l, []byte("lonely"))
	require.NoError(t, err)
	s.RunFor(2000)
	require.Equal(t, committed, s.Node(l).Peer.Committed())
	require.Zero(t, s.Leader(), "no leader without a voter quorum: %s", describe(s))
	_, done := s.Node(l).Proposals[r]
	require.False(t, done, "its outcome is not known yet")
	for _, id := range s.IDs()[3:] {
		require.Equal(t, committed, s.Node(id).Peer.Committed())
	}
}

// A stalled link holds what its sender writes, the messages in flight
// included, and delivers it late but in order: a learner's forwards reach
// the leader only after Unstall (the learner may have given up on them by
// then: a late first attempt) and are appended in the order submitted;
// a crash of the receiver loses what the link still held.
func TestSimStalledLinkDeliversLateInOrder(t *testing.T) {
	s := newSim(t, SimConfig{Seed: testSeed(t, 41), Voters: 3})
	l := waitStable(t, s, 2000)
	f := s.IDs()[0]
	if f == l {
		f = s.IDs()[1]
	}
	for i := range 5 {
		_, err := s.Propose(f, fmt.Appendf(nil, "w%d", i))
		require.NoError(t, err)
		if i == 0 {
			s.RunFor(0) // w0 is sent: the stall holds it in flight
			s.Stall(f, l)
		}
		s.RunFor(2)
	}
	s.RunFor(100)
	require.NoError(t, s.Err)
	logged := func() []string {
		last, err := s.Node(l).Storage.LastZxid()
		require.NoError(t, err)
		ents, err := s.Node(l).Storage.Entries(0, last, 0)
		require.NoError(t, err)
		var out []string
		for _, e := range ents {
			if len(e.Data) > 0 && e.Data[0] == 'w' {
				out = append(out, string(e.Data))
			}
		}
		return out
	}
	require.Empty(t, logged(), "a forward got through a stalled link")
	held := s.Held(f, l)
	require.NotEmpty(t, held)
	var got []Message
	s.OnDeliver = func(m Message) {
		if m.From == f && m.To == l {
			got = append(got, m)
		}
	}
	s.Unstall(f, l)
	require.Empty(t, s.Held(f, l))
	want := []string{"w0", "w1", "w2", "w3", "w4"}
	require.True(t, s.RunUntil(2000, func() bool { return len(logged()) >= len(want) && len(got) >= len(held) }),
		describe(s))
	require.Equal(t, want, logged(), "appended once each, in the order submitted")
	require.Equal(t, held, got[:len(held)], "what the link held arrives first, in the order sent")
	s.OnDeliver = nil

	l = waitStable(t, s, 2000)
	f = s.IDs()[0]
	if f == l {
		f = s.IDs()[1]
	}
	s.Stall(f, l)
	_, err := s.Propose(f, []byte("lost"))
	require.NoError(t, err)
	s.RunFor(20)
	require.NotEmpty(t, s.Held(f, l))
	s.Crash(l)
	require.Empty(t, s.Held(f, l), "the receiver's crash loses what the link held")
	s.Heal()
	require.NoError(t, s.Err)
}
