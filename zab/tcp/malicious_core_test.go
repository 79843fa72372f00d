package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// TestHostileAcksFromAQuorum: a key holder acknowledges, in the name of
// every follower, a zxid the leader never proposed. (One such ack is
// covered by TestHostilePeerAgainstEnsemble.) The leader must not commit
// past its own log.
//
// It found a zab core bug, now fixed: the leader took m.Zxid unclamped
// into li.acked, maybeCommit set committed beyond the log, and Node.run
// spun forever handing out Readys; the leader stopped serving and its Close
// never returned. The leader now credits at most what it sent.
func TestHostileAcksFromAQuorum(t *testing.T) {
	c, L, e, F1, F2 := startHostileCluster(t)
	never := zab.NewZxid(e, 1<<30)
	c.send(F1, L, zab.Message{Type: zab.MsgAck, Epoch: e, Zxid: never})
	c.send(F2, L, zab.Message{Type: zab.MsgAck, Epoch: e, Zxid: never})
	c.write()
	c.write()
	c.verify(e + 3)
}

// TestHostileFollowerInfoRounds: a key holder sends, in a follower's name,
// FOLLOWERINFOs claiming a huge accepted epoch for every small election
// round. The ensemble must go on committing and must not adopt the epoch.
func TestHostileFollowerInfoRounds(t *testing.T) {
	c, L, e, F1, _ := startHostileCluster(t)
	c.send(F1, L, hugeFollowerInfos(64)...)
	c.write()
	L2, e2, _, _ := c.roles()
	t.Logf("leader %v epoch %d before, leader %v epoch %d after", L, e, L2, e2)
	c.write()
	c.verify(e + 3)
}

// TestHostileFollowerInfoFlood: FOLLOWERINFOs claiming accepted epoch
// 2^31-2 (and ACKEPOCHs claiming it as current epoch), sent for a while to
// every node in another voter's name, race the genuine ones of the
// discoveries they cause (issue 10 item 7). Found before: every one that
// reached an established leader made it stand down, so a flood re-elected
// over and over, and a leader-elect that counted one took it + 1, the last
// epoch 2^31-1, persisted it, and no election could lead after that (with
// 2^32-1 the epoch wrapped to 0). Epochs above MaxEpoch-2^20 are refused
// now: the ensemble keeps its leader and its epoch.
func TestHostileFollowerInfoFlood(t *testing.T) {
	c, _, e, _, _ := startHostileCluster(t)
	msgs := hugeFollowerInfos(16)
	for r := range uint64(16) {
		msgs = append(msgs, zab.Message{Type: zab.MsgAckEpoch, Epoch: e + uint32(r), Current: zab.MaxEpoch - 1,
			Zxid: zab.NewZxid(zab.MaxEpoch-1, 1)})
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, to := range c.ids {
			c.send(c.ids[int(to)%3], to, msgs...)
		}
	}
	c.write()
	for _, id := range c.ids {
		st := c.nodes[id].node.Status().SoftState
		t.Logf("node %v: %+v", id, st)
		require.GreaterOrEqual(t, st.Epoch, e, "node %v: epoch went back (wrapped)", id)
	}
	c.verify(e + 16)
}

// hugeFollowerInfos claims accepted epochs near the top (2^31-2, the
// largest a leader could still add one to, and 2^32-1) for election rounds
// 0..rounds-1 (rounds are small, so a hostile peer can cover them).
func hugeFollowerInfos(rounds int) []zab.Message {
	var msgs []zab.Message
	for r := range uint64(rounds) {
		msgs = append(msgs,
			zab.Message{Type: zab.MsgFollowerInfo, Epoch: zab.MaxEpoch - 1, Zxid: zab.NewZxid(zab.MaxEpoch-1, 1), Round: r},
			zab.Message{Type: zab.MsgFollowerInfo, Epoch: 1<<32 - 1, Zxid: zab.NewZxid(1<<32-1, 1), Round: r})
	}
	return msgs
}
