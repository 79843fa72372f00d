package coord

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/session"
	"github.com/coord-dev/coord/tree"
)

// wallStepped returns t with its wall clock reading moved by d and its
// monotonic reading kept: what time.Now returns once the system clock has
// been stepped by d. It relies on time.Time's layout (a wall word with the
// hasMonotonic flag, 33 bits of seconds since 1885 and 30 of nanoseconds,
// then the monotonic reading), and reports false if t does not look like
// that or the result does not behave as a stepped reading must.
func wallStepped(t time.Time, d time.Duration) (time.Time, bool) {
	type layout struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	const hasMonotonic, nsecShift = 1 << 63, 30
	if unsafe.Sizeof(t) != unsafe.Sizeof(layout{}) {
		return time.Time{}, false
	}
	out := t
	p := (*layout)(unsafe.Pointer(&out))
	if p.wall&hasMonotonic == 0 {
		return time.Time{}, false
	}
	sec := int64(p.wall << 1 >> (nsecShift + 1))
	nsec := int64(p.wall & (1<<nsecShift - 1))
	total := sec*1e9 + nsec + int64(d)
	sec, nsec = total/1e9, total%1e9
	if total < 0 || sec >= 1<<33 {
		return time.Time{}, false
	}
	p.wall = hasMonotonic | uint64(sec)<<nsecShift | uint64(nsec)
	// A stepped reading: same monotonic instant, wall moved by d.
	if out.Sub(t) != 0 || out.Round(0).Sub(t.Round(0)) != d {
		return time.Time{}, false
	}
	return out, true
}

// TestLeaseIgnoresWallClockSteps: a heartbeat's send time goes to the leader
// and back (the session core's stamp, coord's wire format) into the owner's
// lease; stepping the system clock back or forward at any point between the
// session's creation, the send, the ack and a later Remaining must neither
// extend nor shorten the lease (issue 10 item 6). With the old wire format
// (UnixNano, time.Unix) a step back of an hour extended Remaining by an hour.
func TestLeaseIgnoresWallClockSteps(t *testing.T) {
	if _, ok := wallStepped(time.Now(), time.Hour); !ok {
		t.Skip("time.Time's layout is not the one wallStepped knows")
	}
	const timeout = 10 * time.Second
	for _, tc := range []struct {
		name                          string
		atOpen, atSend, atAck, atRead time.Duration // wall step in force at each moment
	}{
		{"no step", 0, 0, 0, 0},
		{"back after the ack", 0, 0, 0, -time.Hour},
		{"forward after the ack", 0, 0, 0, time.Hour},
		{"back between send and ack", 0, 0, -time.Hour, -time.Hour},
		{"forward before the send, back after", 0, time.Hour, time.Hour, -time.Hour},
		{"back before the send", 0, -time.Hour, -time.Hour, -time.Hour},
		{"back before the open", -time.Hour, -time.Hour, -time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := time.Now()
			at := func(d, step time.Duration) time.Time {
				now, ok := wallStepped(base.Add(d), step)
				require.True(t, ok)
				return now
			}
			r, err := session.NewReplica(session.ReplicaConfig{Self: 2, Tick: 10 * time.Millisecond, Origin: base,
				Table: treeTable{tree.New(tree.Options{})}})
			require.NoError(t, err)
			require.NoError(t, r.Open(5, session.Config{Timeout: timeout}, at(0, tc.atOpen), at(0, tc.atOpen)))
			// The heartbeat is due after HeartbeatInterval (timeout/3).
			r.Tick(at(4*time.Second, tc.atSend), session.View{Leader: 1, Epoch: 1, Serving: true})
			rd := r.Ready()
			require.Len(t, rd.Messages, 1)
			hb := rd.Messages[0].Msg
			// The stamp travels to the leader and back in the ack.
			b, err := encodeAppMsg(appMsg{Kind: msgHeartbeatAck, Session: int64(hb.Session), Sent: hb.Sent, OK: true})
			require.NoError(t, err)
			m, err := decodeAppMsg(b)
			require.NoError(t, err)
			r.Receive(1, session.Message{Type: session.MsgAck, Session: session.ID(m.Session), Sent: m.Sent, OK: m.OK},
				at(4*time.Second+10*time.Millisecond, tc.atAck))
			st, ok := r.Status(5)
			require.True(t, ok)
			require.Equal(t, session.Connected, st)
			require.Equal(t, timeout-time.Second, r.Remaining(5, at(5*time.Second, tc.atRead)),
				"the lease runs from the heartbeat's send (4s) for the timeout (10s): at 5s, 9s remain")
		})
	}
}
