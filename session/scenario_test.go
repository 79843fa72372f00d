package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A leader failover, step by step: the owner keeps heartbeating, leader A
// dies, B takes over with Reset, the owner is Suspended meanwhile and
// Reconnected by B's first ack; B never expires the healthy session.
func TestFailoverKeepsHealthySession(t *testing.T) {
	const T = 3000 // ms
	a := newTracker(t, ms(100))
	require.NoError(t, a.Add(7, ms(T), at(5)))                    // createSession sent at 0, arrived at 5
	owner, err := NewState(Config{Timeout: ms(T)}, at(0), at(10)) // reply at 10
	require.NoError(t, err)

	heartbeat := func(leader *Tracker, sent, arrive, ackArrive int64) {
		t.Helper()
		owner.HeartbeatSent(at(sent))
		require.True(t, leader.Touch(7, at(arrive)))
		owner.HeartbeatAcked(at(sent), at(ackArrive))
	}
	heartbeat(a, 1000, 1005, 1010)
	heartbeat(a, 2000, 2005, 2010)
	// A dies at 2500 (the heartbeat sent at 3000 gets no answer); the owner
	// notices at 2600. B takes over at 4200 and knows nothing of the
	// heartbeats A saw: Reset gives the session a full timeout from 4200.
	owner.LeaderLost(at(2600))
	owner.HeartbeatSent(at(3000))
	b := newTracker(t, ms(100))
	require.NoError(t, b.Reset([]Entry{{ID: 7, Timeout: ms(T)}}, at(4200)))
	info, _ := b.Lookup(7)
	assert.Equal(t, at(7300), info.Expiry)
	assert.Nil(t, b.Expired(at(4200)))
	// Before B answers, the owner's lease (from 2000) runs out at 5000 unless
	// acknowledged; B answers the heartbeat sent at 4300.
	owner.Tick(at(4300))
	require.Equal(t, Suspended, owner.Status())
	heartbeat(b, 4300, 4305, 4310)
	require.Equal(t, Connected, owner.Status())
	for sent := int64(5300); sent <= 12300; sent += 1000 {
		heartbeat(b, sent, sent+5, sent+10)
		assert.Nil(t, b.Expired(at(sent+10)))
	}
	owner.Tick(at(12400))
	assert.Equal(t, Connected, owner.Status())
	var types []EventType
	for _, e := range owner.Events() {
		types = append(types, e.Type)
	}
	assert.Equal(t, []EventType{EventConnected, EventSuspended, EventReconnected}, types)

	// Now the owner stops (killed): B expires it at the first tick after
	// 12305+T, and the owner, had it survived, was Lost at 12300+T.
	next, ok := b.NextExpiry()
	require.True(t, ok)
	assert.Equal(t, at(15400), next)
	owner.Tick(next)
	assert.Equal(t, Lost, owner.Status())
	assert.Equal(t, at(12300+T), owner.Events()[1].At)
	assert.Equal(t, []ID{7}, b.Expired(next))
	assert.False(t, b.Touch(7, next.Add(time.Millisecond)))
}
