package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		wants []string // substrings of the error; nil = valid
	}{
		{"timeout only", Config{Timeout: 9 * time.Second}, nil},
		{"explicit", Config{Timeout: 10 * time.Second, HeartbeatInterval: 2 * time.Second, SuspendedInterval: time.Second, SuspendAfter: 5 * time.Second, DriftMargin: 100 * time.Millisecond}, nil},
		{"no timeout", Config{}, []string{"Config.Timeout (0s) must be positive"}},
		{"negative timeout", Config{Timeout: -time.Second}, []string{"Config.Timeout"}},
		{"negative heartbeat", Config{Timeout: 9 * time.Second, HeartbeatInterval: -1}, []string{"Config.HeartbeatInterval (-1ns) must be positive"}},
		{"suspended interval above heartbeat", Config{Timeout: 9 * time.Second, SuspendedInterval: 4 * time.Second}, []string{"Config.SuspendedInterval (4s) must not exceed Config.HeartbeatInterval (3s)"}},
		{"negative suspended interval", Config{Timeout: 9 * time.Second, SuspendedInterval: -1}, []string{"Config.SuspendedInterval (-1ns) must be positive"}},
		{"suspend before heartbeat", Config{Timeout: 9 * time.Second, SuspendAfter: 3 * time.Second}, []string{"Config.SuspendAfter (3s) must exceed Config.HeartbeatInterval (3s)"}},
		{"suspend after lost", Config{Timeout: 9 * time.Second, SuspendAfter: 9 * time.Second}, []string{"Config.SuspendAfter (9s) must be less than Config.Timeout-Config.DriftMargin (9s)"}},
		{"margin eats the suspend window", Config{Timeout: 9 * time.Second, DriftMargin: 5 * time.Second}, []string{"Config.SuspendAfter (4.5s) must be less than Config.Timeout-Config.DriftMargin (4s)"}},
		{"negative margin", Config{Timeout: 9 * time.Second, DriftMargin: -1}, []string{"Config.DriftMargin (-1ns) must not be negative"}},
		{"several at once", Config{Timeout: 9 * time.Second, HeartbeatInterval: 5 * time.Second, DriftMargin: -1}, []string{"Config.SuspendAfter (4.5s) must exceed", "Config.DriftMargin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wants == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tc.wants {
				assert.Contains(t, err.Error(), w)
			}
			_, err = NewState(tc.cfg, t0, t0)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
	got := Config{Timeout: 9 * time.Second}.Defaults()
	assert.Equal(t, Config{Timeout: 9 * time.Second, HeartbeatInterval: 3 * time.Second, SuspendedInterval: 900 * time.Millisecond, SuspendAfter: 4500 * time.Millisecond}, got)
}

// testCfg: Timeout 900 ms, heartbeat 300 ms, suspended heartbeat 90 ms,
// Suspended once the lease is 450 ms old, Lost at 900 ms.
var testCfg = Config{Timeout: ms(900)}

type stateOp uint8

const (
	opSent stateOp = iota + 1
	opAck
	opLeaderLost
	opTick
	opExpired
)

// step is one input to a State and what must follow. Times are ms after t0.
type step struct {
	op     stateOp
	now    int64
	sentAt int64   // opAck only
	want   Status  // status after the step
	events []Event // events queued by the step (nil = none)
	lease  int64   // if non-zero, the expected Lease after the step
}

func ev(typ EventType, atMs int64, c Cause) Event { return Event{Type: typ, At: at(atMs), Cause: c} }

func TestStateTransitions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config // zero = testCfg
		steps []step
	}{
		{"acked heartbeats stay connected", Config{}, []step{
			{op: opTick, now: 449, want: Connected},
			{op: opSent, now: 300, want: Connected}, // a smaller now is clamped; harmless
			{op: opAck, now: 449, sentAt: 300, want: Connected, lease: 300},
			{op: opTick, now: 749, want: Connected},
			{op: opTick, now: 750, want: Suspended, events: []Event{ev(EventSuspended, 750, CauseNoAck)}},
		}},
		{"no ack: suspended at half the timeout, lost at the timeout", Config{}, []step{
			{op: opTick, now: 449, want: Connected},
			{op: opTick, now: 450, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opTick, now: 899, want: Suspended},
			{op: opTick, now: 900, want: Lost, events: []Event{ev(EventLost, 900, CauseTimeout)}},
		}},
		{"a tick long after reports both thresholds at their instants", Config{}, []step{
			{op: opTick, now: 5000, want: Lost, events: []Event{ev(EventSuspended, 450, CauseNoAck), ev(EventLost, 900, CauseTimeout)}},
		}},
		{"fresh ack reconnects", Config{}, []step{
			{op: opTick, now: 500, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opSent, now: 500, want: Suspended},
			{op: opAck, now: 520, sentAt: 500, want: Connected, lease: 500, events: []Event{ev(EventReconnected, 520, CauseAck)}},
			{op: opTick, now: 949, want: Connected},
		}},
		{"stale or slow acks do not reconnect", Config{}, []step{
			{op: opTick, now: 460, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opAck, now: 470, sentAt: 0, want: Suspended},
			{op: opAck, now: 760, sentAt: 300, want: Suspended, lease: 300}, // lease 460 ms old at arrival
			{op: opAck, now: 770, sentAt: 700, want: Connected, lease: 700, events: []Event{ev(EventReconnected, 770, CauseAck)}},
		}},
		{"ack reordering never moves the lease back", Config{}, []step{
			{op: opSent, now: 300, want: Connected},
			{op: opSent, now: 400, want: Connected},
			{op: opAck, now: 420, sentAt: 400, want: Connected, lease: 400},
			{op: opAck, now: 430, sentAt: 300, want: Connected, lease: 400},
			{op: opAck, now: 440, sentAt: 0, want: Connected, lease: 400},
			{op: opTick, now: 849, want: Connected},
			{op: opTick, now: 850, want: Suspended, events: []Event{ev(EventSuspended, 850, CauseNoAck)}},
			{op: opAck, now: 860, sentAt: 300, want: Suspended, lease: 400},
			{op: opTick, now: 1300, want: Lost, events: []Event{ev(EventLost, 1300, CauseTimeout)}},
		}},
		{"leader lost suspends; only an ack sent after the loss reconnects", Config{}, []step{
			{op: opLeaderLost, now: 100, want: Suspended, events: []Event{ev(EventSuspended, 100, CauseLeaderLost)}},
			{op: opAck, now: 120, sentAt: 50, want: Suspended, lease: 50}, // in flight from the old leader: counts for the lease only
			{op: opLeaderLost, now: 130, want: Suspended},                 // lost again: no new event
			{op: opAck, now: 135, sentAt: 110, want: Suspended, lease: 110},
			{op: opAck, now: 140, sentAt: 130, want: Connected, lease: 130, events: []Event{ev(EventReconnected, 140, CauseAck)}},
		}},
		{"leader lost while suspended for no ack", Config{}, []step{
			{op: opTick, now: 460, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opSent, now: 465, want: Suspended},
			{op: opLeaderLost, now: 470, want: Suspended},
			{op: opAck, now: 475, sentAt: 465, want: Suspended, lease: 465},
			{op: opAck, now: 490, sentAt: 480, want: Connected, lease: 480, events: []Event{ev(EventReconnected, 490, CauseAck)}},
		}},
		{"leader lost then timeout", Config{}, []step{
			{op: opLeaderLost, now: 100, want: Suspended, events: []Event{ev(EventSuspended, 100, CauseLeaderLost)}},
			{op: opTick, now: 900, want: Lost, events: []Event{ev(EventLost, 900, CauseTimeout)}},
		}},
		{"expired by the leader while connected", Config{}, []step{
			{op: opExpired, now: 100, want: Lost, events: []Event{ev(EventLost, 100, CauseExpired)}},
		}},
		{"expired by the leader while suspended", Config{}, []step{
			{op: opLeaderLost, now: 100, want: Suspended, events: []Event{ev(EventSuspended, 100, CauseLeaderLost)}},
			{op: opExpired, now: 200, want: Lost, events: []Event{ev(EventLost, 200, CauseExpired)}},
		}},
		{"expired answer after the timeout reports the timeout", Config{}, []step{
			{op: opExpired, now: 1000, want: Lost, events: []Event{ev(EventSuspended, 450, CauseNoAck), ev(EventLost, 900, CauseTimeout)}},
		}},
		{"lost is terminal", Config{}, []step{
			{op: opExpired, now: 100, want: Lost, events: []Event{ev(EventLost, 100, CauseExpired)}},
			{op: opSent, now: 110, want: Lost},
			{op: opAck, now: 120, sentAt: 110, want: Lost, lease: 0},
			{op: opLeaderLost, now: 130, want: Lost},
			{op: opExpired, now: 140, want: Lost},
			{op: opTick, now: 5000, want: Lost},
		}},
		{"a late ack does not revive a lease that ran out", Config{}, []step{
			{op: opSent, now: 800, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opAck, now: 950, sentAt: 800, want: Lost, events: []Event{ev(EventLost, 900, CauseTimeout)}},
		}},
		{"an ack claiming a future send time counts from now", Config{}, []step{
			{op: opAck, now: 100, sentAt: 5000, want: Connected, lease: 100},
			{op: opTick, now: 550, want: Suspended, events: []Event{ev(EventSuspended, 550, CauseNoAck)}},
		}},
		{"time going backwards is clamped", Config{}, []step{
			{op: opTick, now: 500, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opAck, now: 300, sentAt: 400, want: Connected, lease: 400, events: []Event{ev(EventReconnected, 500, CauseAck)}},
		}},
		{"drift margin declares lost earlier", Config{Timeout: ms(900), DriftMargin: ms(100)}, []step{
			{op: opTick, now: 450, want: Suspended, events: []Event{ev(EventSuspended, 450, CauseNoAck)}},
			{op: opTick, now: 799, want: Suspended},
			{op: opTick, now: 800, want: Lost, events: []Event{ev(EventLost, 800, CauseTimeout)}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Timeout == 0 {
				cfg = testCfg
			}
			s, err := NewState(cfg, at(0), at(10))
			require.NoError(t, err)
			require.Equal(t, []Event{ev(EventConnected, 10, CauseCreated)}, s.Events())
			require.Equal(t, Connected, s.Status())
			for i, st := range tc.steps {
				switch st.op {
				case opSent:
					s.HeartbeatSent(at(st.now))
				case opAck:
					s.HeartbeatAcked(at(st.sentAt), at(st.now))
				case opLeaderLost:
					s.LeaderLost(at(st.now))
				case opTick:
					s.Tick(at(st.now))
				case opExpired:
					s.Expired(at(st.now))
				}
				assert.Equal(t, st.want, s.Status(), "step %d", i)
				assert.Equal(t, st.events, s.Events(), "step %d", i)
				if st.lease != 0 {
					assert.Equal(t, at(st.lease), s.Lease(), "step %d lease", i)
				}
				if n := len(st.events); n > 0 {
					assert.Equal(t, st.events[n-1].Type.Status(), s.Status(), "step %d: last event matches status", i)
				}
			}
		})
	}
}

func TestStateCreatedLate(t *testing.T) {
	// The createSession reply arrived after the timeout had passed since the
	// request was sent: the session may already be gone.
	s, err := NewState(testCfg, at(0), at(1000))
	require.NoError(t, err)
	assert.Equal(t, Lost, s.Status())
	assert.Equal(t, []Event{ev(EventConnected, 1000, CauseCreated), ev(EventSuspended, 450, CauseNoAck), ev(EventLost, 900, CauseTimeout)}, s.Events())
	assert.True(t, s.NextHeartbeat(at(1000)).IsZero())
	assert.True(t, s.Deadline().IsZero())

	// A send time after the reply is treated as the reply time.
	s, err = NewState(testCfg, at(50), at(20))
	require.NoError(t, err)
	assert.Equal(t, at(20), s.Lease())
}

func TestStateSchedule(t *testing.T) {
	s, err := NewState(testCfg, at(0), at(10))
	require.NoError(t, err)
	s.Events()
	assert.Equal(t, ms(900), s.Config().Timeout)

	// Connected: every Timeout/3 after the last send; never before now.
	assert.Equal(t, at(300), s.NextHeartbeat(at(10)))
	assert.Equal(t, at(350), s.NextHeartbeat(at(350)))
	s.HeartbeatSent(at(300))
	assert.Equal(t, at(600), s.NextHeartbeat(at(300)))
	assert.Equal(t, at(450), s.Deadline(), "suspend threshold")
	assert.Equal(t, at(900), s.LeaseEnd())
	assert.Equal(t, ms(600), s.Remaining(at(300)))

	s.HeartbeatAcked(at(300), at(310))
	assert.Equal(t, at(750), s.Deadline())
	assert.Equal(t, at(1200), s.LeaseEnd())
	assert.Equal(t, ms(890), s.Remaining(at(310)))
	assert.Equal(t, time.Duration(0), s.Remaining(at(5000)), "Remaining does not need a Tick")

	// Suspended: every Timeout/10 after the last send.
	s.LeaderLost(at(320))
	assert.Equal(t, at(390), s.NextHeartbeat(at(320)))
	s.HeartbeatSent(at(390))
	assert.Equal(t, at(480), s.NextHeartbeat(at(390)))
	assert.Equal(t, at(1200), s.Deadline(), "lease end")

	// Ticking at each deadline is all the driver needs to be on time.
	s.Tick(s.Deadline())
	assert.Equal(t, Lost, s.Status())
	assert.Equal(t, []Event{ev(EventSuspended, 320, CauseLeaderLost), ev(EventLost, 1200, CauseTimeout)}, s.Events())
	assert.True(t, s.NextHeartbeat(at(1300)).IsZero())
	assert.Equal(t, time.Duration(0), s.Remaining(at(1000)))
}

func TestNames(t *testing.T) {
	assert.Equal(t, "Connected", Connected.String())
	assert.Equal(t, "Lost", Lost.String())
	assert.Equal(t, "Status(9)", Status(9).String())
	assert.Equal(t, "Reconnected", EventReconnected.String())
	assert.Equal(t, "EventType(0)", EventType(0).String())
	assert.Equal(t, Status(0), EventType(0).Status())
	assert.Equal(t, "expired by leader", CauseExpired.String())
	assert.Equal(t, "Cause(0)", Cause(0).String())
	assert.Equal(t, "Suspended at 2026-01-02T03:04:05.45Z (no ack)", ev(EventSuspended, 450, CauseNoAck).String())
}

// TestStoppedIsLostAtOnce: a node that stopped loses its sessions at once,
// whatever lease is left, and only once.
func TestStoppedIsLostAtOnce(t *testing.T) {
	s, err := NewState(testCfg, t0, t0)
	require.NoError(t, err)
	s.Events()
	s.Stopped(t0.Add(ms(10)))
	require.Equal(t, Lost, s.Status())
	require.Equal(t, []Event{{Type: EventLost, At: t0.Add(ms(10)), Cause: CauseStopped}}, s.Events())
	require.Zero(t, s.Remaining(t0.Add(ms(10))))
	s.Stopped(t0.Add(ms(20)))
	require.Empty(t, s.Events())
	assert.Equal(t, "node stopped", CauseStopped.String())
}
