package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// table is an in-memory Table.
type table map[ID]time.Duration

func (t table) Sessions() []Entry {
	var out []Entry
	for id, d := range t {
		out = append(out, Entry{ID: id, Timeout: d})
	}
	return out
}

func (t table) Timeout(id ID) (time.Duration, bool) { d, ok := t[id]; return d, ok }

func newTestReplica(t *testing.T, self uint64, tb table) *Replica {
	t.Helper()
	r, err := NewReplica(ReplicaConfig{Self: self, Tick: ms(10), Origin: t0, Table: tb, ReapEvery: ms(1000)})
	require.NoError(t, err)
	return r
}

var leading = View{Leader: 1, Epoch: 1, Serving: true, Leading: true}

func TestNewReplicaValidates(t *testing.T) {
	_, err := NewReplica(ReplicaConfig{Table: table{}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewReplica(ReplicaConfig{Tick: ms(10)})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewReplica(ReplicaConfig{Tick: ms(10), Table: table{}, ReapEvery: -1})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// TestReplicaAcksOnlyAfterARound: the leader answers a heartbeat only once
// a leadership round asked for after it arrived succeeded; a failed or slow
// round drops nothing, and the next successful one acknowledges it.
func TestReplicaAcksOnlyAfterARound(t *testing.T) {
	tb := table{7: ms(900)}
	r := newTestReplica(t, 1, tb)
	r.Tick(at(0), leading)
	r.Ready()
	hb := Message{Type: MsgHeartbeat, Session: 7, Sent: 123}
	r.Receive(2, hb, at(1))
	require.Empty(t, r.Ready().Messages, "no ack before a round")
	r.Tick(at(10), leading)
	rd := r.Ready()
	require.Len(t, rd.Rounds, 1)
	first := rd.Rounds[0]
	assert.Equal(t, ms(891), first.Timeout, "a round is useful while the session's timeout runs")
	// A heartbeat after the round was asked for is not covered by it.
	r.Receive(3, Message{Type: MsgHeartbeat, Session: 7, Sent: 456}, at(11))
	r.Confirmed(first.ID, false, at(300))
	require.Empty(t, r.Ready().Messages, "a failed round acknowledges nothing")
	r.Tick(at(310), leading)
	rd = r.Ready()
	require.Len(t, rd.Rounds, 1, "a new round for what still waits")
	r.Confirmed(rd.Rounds[0].ID, true, at(320))
	rd = r.Ready()
	require.Equal(t, []Outbound{
		{To: 2, Msg: Message{Type: MsgAck, Session: 7, Sent: 123, OK: true}},
		{To: 3, Msg: Message{Type: MsgAck, Session: 7, Sent: 456, OK: true}},
	}, rd.Messages)
	// A late success of a superseded round is ignored.
	r.Confirmed(first.ID, true, at(330))
	require.Empty(t, r.Ready().Messages)
}

// TestReplicaAckWaitsNoLongerThanTheTimeout: a heartbeat whose session's
// timeout passed without a successful round is dropped (its ack could only
// mislead), and a round covering only it is not asked for.
func TestReplicaAckWaitsNoLongerThanTheTimeout(t *testing.T) {
	r := newTestReplica(t, 1, table{7: ms(200)})
	r.Tick(at(0), leading)
	r.Receive(2, Message{Type: MsgHeartbeat, Session: 7, Sent: 1}, at(1))
	r.Tick(at(10), leading)
	rd := r.Ready()
	require.Len(t, rd.Rounds, 1)
	r.Tick(at(250), leading) // the tracker expires the session, too
	r.Confirmed(rd.Rounds[0].ID, true, at(260))
	rd = r.Ready()
	require.Empty(t, rd.Messages)
	require.Equal(t, []Expiry{{Session: 7, Epoch: 1}}, rd.Expire)
}

// TestReplicaDeposedLeaderForgetsWaitingAcks: rounds and waiting heartbeats
// belong to a reign; a new one starts from nothing.
func TestReplicaDeposedLeaderForgetsWaitingAcks(t *testing.T) {
	r := newTestReplica(t, 1, table{7: ms(900)})
	r.Tick(at(0), leading)
	r.Receive(2, Message{Type: MsgHeartbeat, Session: 7, Sent: 1}, at(1))
	r.Tick(at(10), leading)
	rd := r.Ready()
	require.Len(t, rd.Rounds, 1)
	r.Tick(at(20), View{Leader: 3, Epoch: 2, Serving: true})
	r.Tick(at(30), View{Leader: 1, Epoch: 3, Serving: true, Leading: true})
	r.Confirmed(rd.Rounds[0].ID, true, at(40))
	require.Empty(t, r.Ready().Messages)
}

// TestReplicaAnswersGoneSessionsAtOnce: a heartbeat for a session the table
// does not have (or that is being expired) is answered "expired" without a
// round, and the owner is Lost at once.
func TestReplicaAnswersGoneSessionsAtOnce(t *testing.T) {
	leader := newTestReplica(t, 1, table{})
	leader.Tick(at(0), leading)
	leader.Receive(2, Message{Type: MsgHeartbeat, Session: 9, Sent: 5}, at(1))
	rd := leader.Ready()
	require.Equal(t, []Outbound{{To: 2, Msg: Message{Type: MsgAck, Session: 9, Sent: 5}}}, rd.Messages)

	owner := newTestReplica(t, 2, table{})
	require.NoError(t, owner.Open(9, Config{Timeout: ms(900)}, at(0), at(0)))
	owner.Receive(1, rd.Messages[0].Msg, at(2))
	rd = owner.Ready()
	require.Len(t, rd.Events, 2)
	assert.Equal(t, EventLost, rd.Events[1].Event.Type)
	assert.Equal(t, CauseExpired, rd.Events[1].Event.Cause)
	assert.Equal(t, []Ended{{Session: 9}}, rd.Ended)
	_, ok := owner.Status(9)
	assert.False(t, ok)
}

// TestReplicaRoundTrip: an owner on one replica, the leader on another; the
// owner's heartbeats reach the leader, a round succeeds, the ack carries
// the owner's stamp back and the lease moves to the heartbeat's send time.
func TestReplicaRoundTrip(t *testing.T) {
	tb := table{}
	leader, owner := newTestReplica(t, 1, tb), newTestReplica(t, 2, tb)
	follow := View{Leader: 1, Epoch: 1, Serving: true}
	leader.Tick(at(0), leading)
	require.NoError(t, owner.Open(5, Config{Timeout: ms(900)}, at(0), at(0)))
	tb[5] = ms(900)
	leader.Created(5, ms(900), at(0))
	owner.Ready()
	owner.Tick(at(300), follow) // HeartbeatInterval 300ms
	rd := owner.Ready()
	require.Len(t, rd.Messages, 1)
	hb := rd.Messages[0]
	require.Equal(t, uint64(1), hb.To)
	leader.Receive(2, hb.Msg, at(305))
	leader.Tick(at(310), leading)
	rd = leader.Ready()
	require.Len(t, rd.Rounds, 1)
	leader.Confirmed(rd.Rounds[0].ID, true, at(315))
	rd = leader.Ready()
	require.Len(t, rd.Messages, 1)
	owner.Receive(1, rd.Messages[0].Msg, at(320))
	lease, end, ok := owner.Lease(5)
	require.True(t, ok)
	assert.Equal(t, at(300), lease)
	assert.Equal(t, at(1200), end)
	assert.Equal(t, ms(880), owner.Remaining(5, at(320)))
}

// TestReplicaSelfHeartbeats: an owner on the leader itself needs no
// message, only the round.
func TestReplicaSelfHeartbeats(t *testing.T) {
	tb := table{5: ms(900)}
	r := newTestReplica(t, 1, tb)
	r.Tick(at(0), leading)
	require.NoError(t, r.Open(5, Config{Timeout: ms(900)}, at(0), at(0)))
	r.Ready()
	r.Tick(at(300), leading)
	rd := r.Ready()
	require.Empty(t, rd.Messages)
	require.Len(t, rd.Rounds, 1)
	r.Confirmed(rd.Rounds[0].ID, true, at(301))
	lease, _, _ := r.Lease(5)
	assert.Equal(t, at(300), lease)
}

// TestReplicaClosedEndsLocalSessions: the closeSession of a session its
// owner is closing ends it by its owner; another's is an expiry (Lost).
func TestReplicaClosedEndsLocalSessions(t *testing.T) {
	r := newTestReplica(t, 1, table{})
	require.NoError(t, r.Open(5, Config{Timeout: ms(900)}, at(0), at(0)))
	require.NoError(t, r.Open(6, Config{Timeout: ms(900)}, at(0), at(0)))
	r.Ready()
	r.Closing(5)
	r.Closed(5, at(10))
	r.Closed(6, at(10))
	rd := r.Ready()
	require.Equal(t, []Ended{{Session: 5, ByOwner: true}, {Session: 6}}, rd.Ended)
	require.Len(t, rd.Events, 1)
	assert.Equal(t, EventLost, rd.Events[0].Event.Type)
}

// TestReplicaStop: a stopped replica loses every local session at once.
func TestReplicaStop(t *testing.T) {
	r := newTestReplica(t, 1, table{})
	require.NoError(t, r.Open(5, Config{Timeout: ms(900)}, at(0), at(0)))
	r.Ready()
	r.Stop(at(1))
	rd := r.Ready()
	require.Equal(t, []OwnerEvent{{Session: 5, Event: Event{Type: EventLost, At: at(1), Cause: CauseStopped}}}, rd.Events)
	require.Equal(t, []Ended{{Session: 5}}, rd.Ended)
	require.Empty(t, r.Owned())
}

// TestReplicaReapsOnTheLeader: reaper scans come every ReapEvery while
// leading, never on a follower.
func TestReplicaReapsOnTheLeader(t *testing.T) {
	r := newTestReplica(t, 1, table{})
	r.Tick(at(0), View{Leader: 2, Epoch: 1, Serving: true})
	require.False(t, r.Ready().Reap)
	r.Tick(at(10), leading)
	require.True(t, r.Ready().Reap)
	r.Tick(at(500), leading)
	require.False(t, r.Ready().Reap)
	r.Tick(at(1010), leading)
	require.True(t, r.Ready().Reap)
}

// TestReplicaRoundIsConfirmedOnlyByItsReign replays the sequence behind a
// session reported Lost "expired by leader" while its owner's lease still
// ran (seen once in coord's saturation test under -race): leader A is
// deposed by B without its core noticing (A's core runs late), takes in its
// own owner's heartbeat after B's takeover and asks for a round; B expires
// the session by its own clock (no heartbeat reached it); A's round then
// reaches zab while A follows B. Run as a plain Sync, the round is
// confirmed by B's quorum, A acknowledges the heartbeat, and its owner holds
// a lease ending after B expired the session: the ephemerals were deleted
// while the owner was entitled to act. Run as zab.SyncAsLeader in the
// round's epoch (what coord does), it fails, and the owner is Lost before
// B's expiry.
func TestReplicaRoundIsConfirmedOnlyByItsReign(t *testing.T) {
	const s ID = 7
	timeout := ms(2000)
	leadA := View{Leader: 1, Epoch: 1, Serving: true, Leading: true}
	leadB := View{Leader: 2, Epoch: 2, Serving: true, Leading: true}
	followB := View{Leader: 2, Epoch: 2, Serving: true}
	for _, tc := range []struct {
		name string
		// confirms says whether the replication layer confirms round r
		// when it takes the round in with view v.
		confirms func(r Round, v View) bool
		safe     bool
	}{
		{"plain Sync", func(_ Round, v View) bool { return v.Serving }, false},
		{"SyncAsLeader", func(r Round, v View) bool { return v.Leading && v.Epoch == r.Epoch }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := table{s: timeout}
			a := newTestReplica(t, 1, tb)
			b := newTestReplica(t, 2, tb)
			a.Tick(at(0), leadA)
			require.NoError(t, a.Open(s, Config{Timeout: timeout}, at(0), at(0)))
			a.Ready()
			// A leads: a heartbeat at 700, acknowledged (lease 700).
			a.Tick(at(700), leadA)
			rd := a.Ready()
			require.Len(t, rd.Rounds, 1)
			a.Confirmed(rd.Rounds[0].ID, tc.confirms(rd.Rounds[0], leadA), at(710))
			a.Ready()

			// B takes over at 1000; A's core does not know.
			b.Tick(at(1000), leadB)
			b.Ready()
			// A's core runs at 1400 with its stale view: its owner
			// heartbeats to itself, and A asks for a round of epoch 1.
			a.Tick(at(1400), leadA)
			rd = a.Ready()
			require.Len(t, rd.Rounds, 1)
			round := rd.Rounds[0]
			require.Equal(t, uint32(1), round.Epoch, "a round names the reign that asked for it")

			// A's round reaches zab late, while A follows B.
			a.Confirmed(round.ID, tc.confirms(round, followB), at(2500))
			a.Ready()

			// No heartbeat reached B: it expires the session by its clock.
			b.Tick(at(3010), leadB)
			rd = b.Ready()
			require.Equal(t, []Expiry{{Session: s, Epoch: 2}}, rd.Expire)
			expiredAt := at(3010)
			a.Tick(at(3010), followB)
			a.Ready()
			_, end, ok := a.Lease(s)
			if !tc.safe {
				require.True(t, ok)
				require.True(t, end.After(expiredAt),
					"the hazard: the owner's lease (to %v) outlasts B's expiry (%v)", end.Sub(t0), expiredAt.Sub(t0))
				// B's closeSession applied at A: "expired by leader" with
				// lease left, the symptom seen.
				delete(tb, s)
				a.Closed(s, at(3020))
				rd = a.Ready()
				require.Len(t, rd.Events, 1)
				assert.Equal(t, CauseExpired, rd.Events[0].Event.Cause)
				return
			}
			if ok {
				require.False(t, end.After(expiredAt),
					"the owner's lease (to %v) outlasts B's expiry (%v)", end.Sub(t0), expiredAt.Sub(t0))
			}
		})
	}
}
