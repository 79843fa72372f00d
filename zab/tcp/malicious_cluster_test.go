package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/wal"
)

// These tests run a hostile peer against a real 3-voter ensemble of
// zab.Nodes over this transport (127.0.0.1 only). The hostile peer holds the
// cluster key unless said otherwise, and speaks as a non-member id, as a
// follower, or as the leader, sending what the protocol never sends. After
// every attack the ensemble must still commit an honest write within
// stallBound, and at the end every node must hold exactly the honest writes:
// in its state machine, in its log (nothing beyond what it applied) and in
// its epoch files (no hostile epoch was adopted).

const stallBound = 10 * time.Second

// entrySM records applied entries.
type entrySM struct {
	mu   sync.Mutex
	ents []zab.Entry
}

func (s *entrySM) Apply(e zab.Entry) any {
	s.mu.Lock()
	s.ents = append(s.ents, zab.Entry{Zxid: e.Zxid, Data: append([]byte(nil), e.Data...)})
	s.mu.Unlock()
	return nil
}

func (s *entrySM) Snapshot(w io.Writer) (zab.Zxid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last zab.Zxid
	if n := len(s.ents); n > 0 {
		last = s.ents[n-1].Zxid
	}
	return last, msgpack.NewEncoder(w).Encode(s.ents)
}

func (s *entrySM) Restore(snap zab.Snapshot) error {
	var ents []zab.Entry
	if len(snap.Data) > 0 {
		if err := msgpack.Unmarshal(snap.Data, &ents); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ents = ents
	s.mu.Unlock()
	return nil
}

func (s *entrySM) entries() []zab.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]zab.Entry(nil), s.ents...)
}

type honestNode struct {
	tr   *Transport
	tap  *tapTransport
	node *zab.Node
	sm   *entrySM
	dir  string
}

type hostileCluster struct {
	t         *testing.T
	ids       []zab.PeerID
	nodes     map[zab.PeerID]*honestNode
	writes    int
	sentinels uint64
}

// startHostileCluster starts the ensemble (skipped with -short), commits
// one write and returns the leader, its epoch and the followers.
func startHostileCluster(t *testing.T) (c *hostileCluster, leader zab.PeerID, epoch uint32, f1, f2 zab.PeerID) {
	if testing.Short() {
		t.Skip("starts a 3-node ensemble")
	}
	c = startEnsemble(t)
	c.write()
	leader, epoch, f1, f2 = c.roles()
	return c, leader, epoch, f1, f2
}

func startEnsemble(t *testing.T) *hostileCluster {
	c := &hostileCluster{t: t, ids: []zab.PeerID{1, 2, 3}, nodes: map[zab.PeerID]*honestNode{}}
	var trs []*Transport
	for _, id := range c.ids {
		tr := newTransport(t, id, withKey(key1))
		trs = append(trs, tr)
		c.nodes[id] = &honestNode{tr: tr, sm: &entrySM{}, dir: t.TempDir()}
	}
	connect(trs...)
	for _, id := range c.ids {
		h := c.nodes[id]
		h.tap = newTap(h.tr)
		n, err := zab.StartNode(zab.NodeConfig{
			Core:         zab.Config{ID: id, Voters: c.ids, Seed: uint64(id), SyncLimit: 30, InitLimit: 60},
			Transport:    h.tap,
			StateMachine: h.sm,
			DataDir:      h.dir,
			TickInterval: 10 * time.Millisecond,
		})
		require.NoError(t, err)
		h.node = n
		t.Cleanup(func() { _ = n.Close() })
	}
	return c
}

// roles waits for a serving leader and returns it, its epoch and the two
// followers.
func (c *hostileCluster) roles() (leader zab.PeerID, epoch uint32, f1, f2 zab.PeerID) {
	eventually(c.t, stallBound, func() bool {
		for id, h := range c.nodes {
			if st := h.node.Status().SoftState; st.Role == zab.RoleLeading && st.Serving {
				leader, epoch = id, st.Epoch
				return true
			}
		}
		return false
	}, "no serving leader")
	var fs []zab.PeerID
	for _, id := range c.ids {
		if id != leader {
			fs = append(fs, id)
		}
	}
	return leader, epoch, fs[0], fs[1]
}

// write commits one honest write through each node in turn, within
// stallBound, and checks no node has stopped.
func (c *hostileCluster) write() {
	c.t.Helper()
	c.writes++
	data := fmt.Sprintf("honest-%d", c.writes)
	id := c.ids[c.writes%len(c.ids)]
	ctx, cancel := context.WithTimeout(context.Background(), stallBound)
	defer cancel()
	for {
		_, err := c.nodes[id].node.Propose(ctx, []byte(data))
		if err == nil {
			break
		}
		require.NoError(c.t, ctx.Err(), "stalled: %s not committed within %v (last error %v)", data, stallBound, err)
		if !errors.Is(err, zab.ErrNoLeader) && !errors.Is(err, zab.ErrOutcomeUnknown) && !errors.Is(err, zab.ErrProposalDropped) {
			require.NoError(c.t, err, "propose %s on %v", data, id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for id, h := range c.nodes {
		select {
		case <-h.node.Done():
			c.t.Fatalf("node %v stopped: %v", id, h.node.Err())
		default:
		}
	}
}

// verify waits until every node applied its whole log, then checks that all
// state machines are equal and hold every honest write and nothing else,
// and that no node adopted an epoch beyond maxEpoch.
func (c *hostileCluster) verify(maxEpoch uint32) {
	t := c.t
	eventually(t, stallBound, func() bool {
		var last zab.Zxid
		for i, id := range c.ids {
			st := c.nodes[id].node.Status()
			if st.Applied != st.LastZxid || st.Committed != st.LastZxid || (i > 0 && st.LastZxid != last) {
				return false
			}
			last = st.LastZxid
		}
		return true
	}, "logs never converged to what the nodes applied")
	want := c.nodes[c.ids[0]].sm.entries()
	seen := map[string]bool{}
	for _, e := range want {
		require.True(t, strings.HasPrefix(string(e.Data), "honest-"), "hostile entry %v %q applied", e.Zxid, e.Data)
		seen[string(e.Data)] = true
	}
	for i := 1; i <= c.writes; i++ {
		require.True(t, seen[fmt.Sprintf("honest-%d", i)], "honest-%d lost", i)
	}
	for _, id := range c.ids[1:] {
		require.Equal(t, want, c.nodes[id].sm.entries(), "node %v diverges from node %v", id, c.ids[0])
	}
	for _, id := range c.ids {
		h := c.nodes[id]
		require.LessOrEqual(t, h.node.Status().SoftState.Epoch, maxEpoch, "node %v serves a hostile epoch", id)
		require.NoError(t, h.node.Close())
		require.NoError(t, h.node.Err(), "node %v", id)
		for _, f := range []string{wal.AcceptedEpochFile, wal.CurrentEpochFile} {
			e, err := wal.ReadEpoch(h.dir, f)
			require.NoError(t, err)
			require.LessOrEqual(t, e, maxEpoch, "node %v persisted a hostile %s", id, f)
		}
	}
}

// as opens a connection to node to, authenticated as id with key (the
// dialer side of the real handshake), and returns it.
func (c *hostileCluster) as(id, to zab.PeerID) net.Conn {
	conn := rawClient(c.t, c.nodes[to].tr)
	h := hsr(id, c.nodes[to].tr.cfg.Cluster, key1)
	f, err := h.dial(conn, conn, to)
	require.NoError(c.t, err)
	return sealing(conn, f)
}

// tapTransport is what a Node gets: the real Transport, with every
// delivered message seen on the way, so a test knows when its hostile
// messages reached the node (the real peer's reconnect can cut an
// impersonating connection before it was read).
type tapTransport struct {
	*Transport
	out  chan zab.Message
	stop chan struct{}
	once sync.Once
	mu   sync.Mutex
	seen map[uint64]bool // sentinel MsgPong Seqs delivered
}

func newTap(tr *Transport) *tapTransport {
	tt := &tapTransport{Transport: tr, out: make(chan zab.Message), stop: make(chan struct{}), seen: map[uint64]bool{}}
	go func() {
		defer close(tt.out)
		for m := range tr.Receive() {
			if m.Type == zab.MsgPong && m.Seq >= sentinelBase {
				tt.mu.Lock()
				tt.seen[m.Seq] = true
				tt.mu.Unlock()
			}
			select {
			case tt.out <- m:
			case <-tt.stop:
				return
			}
		}
	}()
	return tt
}

func (tt *tapTransport) Receive() <-chan zab.Message { return tt.out }

func (tt *tapTransport) Close() error {
	err := tt.Transport.Close()
	tt.once.Do(func() { close(tt.stop) })
	return err
}

func (tt *tapTransport) delivered(seq uint64) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.seen[seq]
}

// sentinelBase starts the Seqs of the sentinel pongs (ignored by the core:
// epoch 0) that follow hostile messages.
const sentinelBase = 1 << 62

// send writes msgs from id to node to in one frame, then a sentinel frame,
// and retries until the node was handed the sentinel (so every hostile
// message before it), within stallBound.
func (c *hostileCluster) send(id, to zab.PeerID, msgs ...zab.Message) {
	c.t.Helper()
	for i := range msgs {
		msgs[i].From, msgs[i].To = id, to
	}
	c.sentinels++
	seq := sentinelBase + c.sentinels
	frames := append(batchFrame(c.t, msgs...), batchFrame(c.t, zab.Message{Type: zab.MsgPong, From: id, To: to, Seq: seq})...)
	tap := c.nodes[to].tap
	deadline := time.Now().Add(stallBound)
	for !tap.delivered(seq) {
		require.True(c.t, time.Now().Before(deadline), "node %v was never handed the hostile messages", to)
		conn := c.as(id, to)
		_, _ = conn.Write(frames)
		for end := time.Now().Add(time.Second); time.Now().Before(end) && !tap.delivered(seq); {
			time.Sleep(2 * time.Millisecond)
		}
		_ = conn.Close()
	}
}

// sendRaw writes raw bytes after an authenticated handshake as id and
// checks that node to closes the connection.
func (c *hostileCluster) sendRaw(id, to zab.PeerID, b []byte, closeWrite bool) {
	c.t.Helper()
	conn := c.as(id, to)
	_, err := conn.Write(b)
	require.NoError(c.t, err)
	if closeWrite {
		halfClose(c.t, conn)
	}
	requireClosedByServer(c.t, conn)
	_ = conn.Close()
}

func evil(z zab.Zxid) []zab.Entry { return []zab.Entry{{Zxid: z, Data: []byte("EVIL")}} }

func TestHostilePeerAgainstEnsemble(t *testing.T) {
	c, L, e, F1, F2 := startHostileCluster(t)
	const stranger = zab.PeerID(9)
	const huge = uint32(1<<32 - 2)
	never := zab.NewZxid(e, 1<<30)
	t.Logf("leader %v epoch %d, followers %v %v", L, e, F1, F2)

	// leaderish is every message only a leader sends, at epoch ep, with
	// entries that would extend the logs as they are now.
	leaderish := func(ep uint32) []zab.Message {
		var last zab.Zxid
		for _, h := range c.nodes {
			last = max(last, h.node.Status().LastZxid)
		}
		next := last + 1
		return []zab.Message{
			{Type: zab.MsgLeaderInfo, Epoch: huge, Round: 1 << 40},
			{Type: zab.MsgProposal, Epoch: ep, Prev: last, Entries: evil(next), Commit: next},
			{Type: zab.MsgInform, Epoch: ep, Prev: last, Entries: evil(next), Commit: next},
			{Type: zab.MsgNewLeader, Epoch: ep, Prev: last, Entries: evil(next), Zxid: next, Commit: next},
			{Type: zab.MsgSync, Epoch: ep, Seq: 7, Mode: zab.SyncTrunc, Prev: 0},
			{Type: zab.MsgSync, Epoch: ep, Seq: 3, Prev: last, Entries: evil(next)},
			{Type: zab.MsgSync, Epoch: ep, Seq: 1, Mode: zab.SyncSnap, Prev: never, Snap: []byte{0xc1}},
			{Type: zab.MsgSnapChunk, Epoch: ep, Seq: 1, Prev: never, Offset: 0, Total: 1 << 40, Snap: []byte("x")},
			{Type: zab.MsgSnapWait, Epoch: ep, Seq: 1 << 60},
			{Type: zab.MsgUpToDate, Epoch: ep, Commit: never},
			{Type: zab.MsgCommit, Epoch: ep, Zxid: never},
			{Type: zab.MsgPing, Epoch: ep, Zxid: never, Commit: never, Seq: 1 << 60, Established: true},
			{Type: zab.MsgProposeResp, Epoch: ep, Entries: evil(never), ReqIDs: []uint64{1}},
			{Type: zab.MsgSyncResp, Epoch: ep, ReqID: 1, Zxid: never},
		}
	}
	votes := []zab.Message{
		{Type: zab.MsgVote, State: zab.RoleLeading, Leader: F1, Epoch: huge, Zxid: zab.NewZxid(huge, 9), Round: 1 << 60},
		{Type: zab.MsgVote, State: zab.RoleFollowing, Leader: F1, Epoch: huge, Zxid: zab.NewZxid(huge, 9), Round: 1 << 60},
		{Type: zab.MsgVote, State: zab.RoleLooking, Leader: F1, Epoch: huge, Zxid: zab.NewZxid(huge, 9), Round: 1 << 60},
	}
	learnerish := []zab.Message{
		// A member may forward writes in the current epoch (that is its
		// job); in any other one they are ignored.
		{Type: zab.MsgPropose, Epoch: e + 1, Entries: evil(0), ReqIDs: []uint64{1}, Seq: 1},
		{Type: zab.MsgPropose, Epoch: e - 1, Entries: evil(0), ReqIDs: []uint64{2}, Seq: 2},
		{Type: zab.MsgFollowerInfo, Epoch: huge, Zxid: zab.NewZxid(huge, 1), Round: 1 << 60},
		{Type: zab.MsgAckEpoch, Epoch: e, Current: huge, Zxid: zab.NewZxid(huge, 1), Accepted: true},
		{Type: zab.MsgAck, Epoch: e + 1, Zxid: never, NewLeader: true},
		{Type: zab.MsgResync, Epoch: e - 1, Zxid: 0},
		{Type: zab.MsgSnapAck, Epoch: e, Seq: 1 << 60, Prev: never, Offset: 1 << 62},
		{Type: zab.MsgSyncReq, Epoch: e + 1, ReqID: 1},
		{Type: 77, Epoch: e, Zxid: never},
	}
	app := []zab.Message{
		{Type: zab.MsgApp, Epoch: e, Snap: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{Type: zab.MsgLeaving, Epoch: e},
	}
	all := func(ep uint32) []zab.Message {
		return append(append(append(append(leaderish(ep), votes...), learnerish...), app[0]), zab.Message{Type: zab.MsgVote})
	}

	cases := []struct {
		name   string
		attack func()
	}{
		{"non-member speaks every message to every node", func() {
			// A non-member may observe (reconfiguration), so it may reach
			// a leader's discovery: it still must not move the epoch.
			infos := hugeFollowerInfos(64)
			for _, m := range hugeFollowerInfos(64) {
				m.Observer = true
				infos = append(infos, m)
			}
			for _, to := range c.ids {
				c.send(stranger, to, append(append(all(e), app[1]), infos...)...)
			}
		}},
		{"follower sends leader messages to the other follower, stale, current and future epoch", func() {
			for _, ep := range []uint32{e - 1, e, e + 1, huge} {
				c.send(F1, F2, leaderish(ep)...)
			}
		}},
		{"follower sends leader messages and MsgLeaving to the leader", func() {
			c.send(F1, L, append(leaderish(e), app[1])...)
		}},
		{"leader's id with a stale or future epoch to a follower", func() {
			for _, ep := range []uint32{e - 1, e + 1, huge} {
				c.send(L, F1, leaderish(ep)...)
			}
		}},
		{"COMMIT of a zxid never proposed, in the leader's name and epoch", func() {
			c.send(L, F1, zab.Message{Type: zab.MsgCommit, Epoch: e, Zxid: never},
				zab.Message{Type: zab.MsgPing, Epoch: e, Commit: never, Zxid: c.nodes[L].node.Status().LastZxid})
		}},
		{"votes claiming LEADING with a huge epoch, to everyone", func() {
			c.send(F1, L, votes...)
			c.send(F1, F2, votes...)
			c.send(L, F1, votes[:2]...)
		}},
		{"learner messages with the wrong epoch to the leader", func() {
			c.send(F1, L, learnerish...)
		}},
		{"one follower acknowledges a zxid never proposed", func() {
			c.send(F1, L, zab.Message{Type: zab.MsgAck, Epoch: e, Zxid: never})
		}},
		{"heartbeat side channel: garbage MsgApp", func() {
			c.send(F1, L, app[0])
		}},
		{"raw frames after authenticating", func() {
			good := batchFrame(c.t, zab.Message{Type: zab.MsgPong, From: F1, To: F2, Epoch: e})
			c.sendRaw(F1, F2, header(Version, KindBatch, 1<<30), false)                       // oversized
			c.sendRaw(F1, F2, good[:len(good)-3], true)                                       // truncated
			c.sendRaw(F1, F2, append(header(Version, KindBatch, 3), 0x91, 0x81, 0xc1), false) // not msgpack
			for _, p := range [][]byte{
				{0x91, 0x81, 0xa1, 't', 0xa3, 'b', 'a', 'd'},                // Type as a string
				{0x91, 0x81, 0xa1, 'n', 0x05},                               // Entries as an int
				{0x91, 0x81, 0xa1, 'n', 0x91, 0x81, 0xa1, 'z', 0xc3},        // an entry's zxid as a bool
				{0x91, 0x81, 0xa1, 'f', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, // From as a float
				{0x91, 0x92, 0x01, 0x02},                                    // Message as an array
				{0x81, 0xa1, 't', 0x01},                                     // a map, not a batch
				{0x91, 0x81, 0xa1, 'n', 0xdd, 0x7f, 0xff, 0xff, 0xff},       // hostile entry count
				{0x91, 0x81, 0xa2, 'i', 's', 0x91, 0xa1, 'x'},               // ReqIDs of strings
			} {
				c.sendRaw(F1, F2, append(header(Version, KindBatch, uint32(len(p))), p...), false)
			}
			// Integers too wide for their field decode truncated (msgpack's
			// way): harmless, as the sender could send the narrow value.
			// Such a message reaches the core, which ignores it.
			tr := c.nodes[F2].tr
			before := tr.Stats().MessagesReceived
			for _, p := range [][]byte{
				{0x91, 0x83, 0xa1, 'f', byte(F1), 0xa1, 'o', byte(F2), 0xa1, 'm', 0xcd, 0x01, 0x00},                                 // Mode 256, Type 0
				{0x91, 0x84, 0xa1, 't', 0x01, 0xa1, 'f', byte(F1), 0xa1, 'o', byte(F2), 0xa1, 'l', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, // vote for Leader = MinInt64
			} {
				conn := c.as(F1, F2)
				_, err := conn.Write(append(header(Version, KindBatch, uint32(len(p))), p...))
				require.NoError(c.t, err)
				_ = conn.Close()
			}
			eventually(c.t, stallBound, func() bool { return tr.Stats().MessagesReceived >= before+2 }, "lenient messages not delivered")
		}},
		{"no key or the wrong key, claiming a voter's id", func() {
			for _, key := range []string{"", key2} {
				for _, to := range c.ids {
					claim := c.ids[(int(to))%3]
					tr := c.nodes[to].tr
					before := tr.Stats().HandshakeFailures
					conn := rawClient(c.t, tr)
					h := hsr(claim, tr.cfg.Cluster, key)
					_, err := h.dial(conn, conn, to)
					require.Error(c.t, err)
					// Push a batch anyway, as if the handshake had passed.
					_, _ = conn.Write(batchFrame(c.t, zab.Message{Type: zab.MsgCommit, From: claim, To: to, Epoch: e, Zxid: never}))
					requireClosedByServer(c.t, conn)
					eventually(c.t, stallBound, func() bool { return tr.Stats().HandshakeFailures > before }, "handshake failure not counted")
				}
			}
		}},
	}
	parent := t
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			defer func() { c.t = parent }()
			tc.attack()
			c.write()
		})
	}
	for i := 0; i < 5; i++ {
		c.write()
	}
	// A re-election caused by connection churn is tolerated (the epoch
	// moves by one per election); a hostile epoch is not.
	c.verify(e + 3)
}
