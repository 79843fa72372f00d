package zab

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeaderConfirmedByItsPings: an established leader reports the tick of
// the newest ping round a quorum answered in its epoch (coord acknowledges
// session heartbeats that arrived before it), and nothing else moves it:
// not a pong of an older epoch, however new the sequence it echoes, not an
// observer's, not an old round's.
func TestLeaderConfirmedByItsPings(t *testing.T) {
	h := establishOne(t)
	pingRound := func() (uint64, uint64) {
		h.p.Tick()
		msgs, _ := h.drain()
		pings := only(msgs, MsgPing)
		require.NotEmpty(t, pings)
		return pings[0].Seq, h.p.Ticks()
	}
	s1, t1 := pingRound()
	_, _, ok := h.p.LeaderConfirmed()
	require.False(t, ok, "no round answered yet")

	h.step(Message{Type: MsgPong, From: 2, Epoch: 1, Seq: s1})
	e, at, ok := h.p.LeaderConfirmed()
	require.True(t, ok)
	require.Equal(t, uint32(1), e)
	require.Equal(t, t1, at, "the round answered by 2 (and the leader) is a quorum of 3")

	s2, t2 := pingRound()
	s3, _ := pingRound()
	require.Greater(t, s3, s2, "each ping round carries a sequence of its own")

	// Nothing but this epoch's voters answering a later round moves it.
	for _, m := range []Message{
		{Type: MsgPong, From: 2, Epoch: 0, Seq: s3 + 100}, // an older epoch's pong
		{Type: MsgPong, From: 3, Epoch: 0, Seq: s3 + 100},
		{Type: MsgPong, From: 2, Epoch: 1, Seq: s1}, // an old round's, again
		{Type: MsgPong, From: 3, Epoch: 1, Seq: s3}, // 3 never synced with this reign
	} {
		h.step(m)
		_, at, _ = h.p.LeaderConfirmed()
		require.Equal(t, t1, at, "after %+v", m)
	}

	h.step(Message{Type: MsgPong, From: 2, Epoch: 1, Seq: s2})
	_, at, _ = h.p.LeaderConfirmed()
	require.Equal(t, t2, at)

	// A read confirmed by a ping round is confirmed by any later one too.
	require.NoError(t, h.p.Sync(7))
	msgs, rds := h.drain()
	require.Empty(t, syncsOf(rds))
	pings := only(msgs, MsgPing)
	require.NotEmpty(t, pings)
	h.step(Message{Type: MsgPong, From: 2, Epoch: 1, Seq: pings[0].Seq})
	_, rds = h.drain()
	require.Len(t, syncsOf(rds), 1)
	_, at, _ = h.p.LeaderConfirmed()
	require.Equal(t, h.p.Ticks(), at, "the read's ping round went out at the current tick")

	// Deposed, it confirms nothing.
	for range 20 {
		h.p.Tick()
		h.drain()
	}
	require.NotEqual(t, RoleLeading, h.p.SoftState().Role, "no pong for longer than SyncLimit")
	_, _, ok = h.p.LeaderConfirmed()
	require.False(t, ok)
}

func syncsOf(rds []Ready) []SyncResult {
	var out []SyncResult
	for _, rd := range rds {
		out = append(out, rd.Syncs...)
	}
	return out
}

// TestLoneLeaderConfirmsItself: a single voter is its own quorum, at every
// ping round.
func TestLoneLeaderConfirmsItself(t *testing.T) {
	h := newHarness(t, 1, []PeerID{1}, nil)
	for range 10 {
		h.p.Tick()
		h.drain()
	}
	require.True(t, h.p.SoftState().Serving)
	h.p.Tick()
	h.drain()
	e, at, ok := h.p.LeaderConfirmed()
	require.True(t, ok)
	require.Equal(t, h.p.SoftState().Epoch, e)
	require.Equal(t, h.p.Ticks(), at)
}
