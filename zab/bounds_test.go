package zab

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Entries are bounded (issue 10 item 1): nothing above MaxEntrySize is
// proposed, forwarded or taken in, and forwarded writes go in batches a
// transport frame holds.

func TestProposeRefusesEntryAboveMaxEntrySize(t *testing.T) {
	h := establishOne(t)
	require.ErrorIs(t, h.p.Propose(1, make([]byte, MaxEntrySize+1)), ErrEntryTooLarge)
	require.NoError(t, h.p.Propose(2, make([]byte, MaxEntrySize)))

	f := followerAt(t)
	require.ErrorIs(t, f.p.Propose(1, make([]byte, MaxEntrySize+1)), ErrEntryTooLarge)
	msgs, _ := f.drain()
	require.Empty(t, only(msgs, MsgPropose), "nothing forwarded")
}

func TestLeaderRefusesForwardedEntryAboveMaxEntrySize(t *testing.T) {
	h := establishOne(t)
	last := h.p.log.last()
	h.step(Message{Type: MsgPropose, From: 2, Epoch: 1, Seq: 1, ReqIDs: []uint64{1, 2},
		Entries: []Entry{{Data: make([]byte, MaxEntrySize+1)}, {Data: []byte("ok")}}})
	msgs, _ := h.drain()
	resp := only(msgs, MsgProposeResp)
	require.Len(t, resp, 1)
	require.Equal(t, []uint64{1, 2}, resp[0].ReqIDs)
	require.Zero(t, resp[0].Entries[0].Zxid, "refused")
	require.NotZero(t, resp[0].Entries[1].Zxid)
	require.Equal(t, resp[0].Entries[1].Zxid, h.p.log.last())
	require.Equal(t, last.Counter()+1, h.p.log.last().Counter(), "only the small write was appended")
}

func TestForwardBatchesStayWithinMaxMsgBytes(t *testing.T) {
	f := followerAt(t)
	data := bytes.Repeat([]byte("x"), 1<<20) // MaxMsgBytes by default
	for id := uint64(1); id <= 17; id++ {
		require.NoError(t, f.p.Propose(id, data))
	}
	msgs, _ := f.drain()
	fwd := only(msgs, MsgPropose)
	var ids []uint64
	for _, m := range fwd {
		size := 0
		for _, e := range m.Entries {
			size += len(e.Data)
		}
		require.True(t, len(m.Entries) == 1 || size <= f.p.cfg.MaxMsgBytes,
			"a batch of %d entries, %d bytes", len(m.Entries), size)
		ids = append(ids, m.ReqIDs...)
	}
	require.Len(t, ids, 17, "every write forwarded once")
}

// TestForwardRetransmissionBacksOff: an unanswered forward is sent again
// after RetryTicks, then after twice as long each time, so a leader slow
// to take in large writes is not buried under copies of them.
func TestForwardRetransmissionBacksOff(t *testing.T) {
	f := followerAt(t)
	require.NoError(t, f.p.Propose(1, []byte("w")))
	msgs, _ := f.drain()
	require.Len(t, only(msgs, MsgPropose), 1)
	var sentAt []int
	for tick := 1; tick <= 100; tick++ {
		f.p.Tick()
		// Keep the leader alive (its pings), without answering the write.
		f.step(Message{Type: MsgPing, From: 1, Epoch: 1, Established: true})
		msgs, _ := f.drain()
		if len(only(msgs, MsgPropose)) > 0 {
			sentAt = append(sentAt, tick)
		}
	}
	retry := f.p.cfg.RetryTicks
	require.GreaterOrEqual(t, len(sentAt), 4)
	for i := 1; i < len(sentAt); i++ {
		require.GreaterOrEqual(t, sentAt[i]-sentAt[i-1], retry<<min(i, maxFwdBackoff), "retransmissions %v", sentAt)
	}
}

// TestRestartedLearnerIdsAreNew: a learner that restarted (a new
// incarnation) counts its request ids from wherever its new run starts,
// lower than before (its clock set back, or counting from 1); the leader
// proposes them instead of dropping them as settled duplicates of the old
// run (on the old code its writes were never answered).
func TestRestartedLearnerIdsAreNew(t *testing.T) {
	h := establishOne(t)
	fwd := func(inc uint64, ids ...uint64) []Entry {
		m := Message{Type: MsgPropose, From: 2, Epoch: 1, Seq: ids[0], Inc: inc, ReqIDs: ids}
		for range ids {
			m.Entries = append(m.Entries, Entry{Data: []byte("w")})
		}
		h.step(m)
		msgs, _ := h.drain()
		resp := only(msgs, MsgProposeResp)
		require.Len(t, resp, 1)
		require.Equal(t, ids, resp[0].ReqIDs)
		return resp[0].Entries
	}
	old := fwd(7, 1000, 1001)
	require.NotZero(t, old[0].Zxid)
	require.Equal(t, old, fwd(7, 1000, 1001), "a retransmission gets its first zxids")

	// The learner restarts: new incarnation, ids from 1.
	fresh := fwd(8, 1, 2)
	require.NotZero(t, fresh[0].Zxid)
	require.Greater(t, fresh[0].Zxid, old[1].Zxid, "proposed anew")
	require.Equal(t, fresh, fwd(8, 1, 2), "and deduplicated in its own incarnation")
	// A stale retransmission of the old run still gets its old answer.
	require.Equal(t, old, fwd(7, 1000, 1001))
}

// TestLeaderStampsWhatItAppends: Config.Stamp rewrites each write a leader
// appends, its own and forwarded ones, before it is logged and sent; a
// learner logs the leader's bytes as they are.
func TestLeaderStampsWhatItAppends(t *testing.T) {
	stamp := func(b []byte) []byte { return append([]byte("L:"), b...) }
	h := establishOne(t)
	h.p.cfg.Stamp = stamp
	require.NoError(t, h.p.Propose(1, []byte("own")))
	h.step(Message{Type: MsgPropose, From: 2, Epoch: 1, Seq: 1, Inc: 1, ReqIDs: []uint64{1}, Entries: []Entry{{Data: []byte("fwd")}}})
	msgs, rds := h.drain()
	var logged, sent []string
	for _, rd := range rds {
		for _, e := range rd.Entries {
			logged = append(logged, string(e.Data))
		}
	}
	for _, m := range only(msgs, MsgProposal) {
		for _, e := range m.Entries {
			sent = append(sent, string(e.Data))
		}
	}
	require.Equal(t, []string{"L:own", "L:fwd"}, logged)
	require.Subset(t, sent, logged)

	f := followerAt(t)
	f.p.cfg.Stamp = stamp
	f.step(Message{Type: MsgProposal, From: 1, Epoch: 1, Prev: 0, Entries: []Entry{{Zxid: NewZxid(1, 1), Data: []byte("L:x")}}})
	_, rds = f.drain()
	require.Equal(t, "L:x", string(rds[0].Entries[0].Data), "not stamped again")
}
