package coord

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/session"
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
// and back (monoStamp, monoTime) into the owner's lease; stepping the system
// clock back or forward between the send, the ack and a later Remaining
// must neither extend the lease past the session timeout nor shorten it
// (issue 10 item 6). With the old wire format (UnixNano, time.Unix) a step
// back of an hour extended Remaining by an hour.
func TestLeaseIgnoresWallClockSteps(t *testing.T) {
	if _, ok := wallStepped(time.Now(), time.Hour); !ok {
		t.Skip("time.Time's layout is not the one wallStepped knows")
	}
	n := &Node{start: time.Now()}
	const timeout = 10 * time.Second
	for _, tc := range []struct {
		name                  string
		atSend, atAck, atRead time.Duration // wall step in force at each moment
	}{
		{"no step", 0, 0, 0},
		{"back after the ack", 0, 0, -time.Hour},
		{"forward after the ack", 0, 0, time.Hour},
		{"back between send and ack", 0, -time.Hour, -time.Hour},
		{"forward before the send, back after", time.Hour, time.Hour, -time.Hour},
		{"back before the send", -time.Hour, -time.Hour, -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := func(step time.Duration) time.Time {
				now, ok := wallStepped(time.Now(), step)
				require.True(t, ok)
				return now
			}
			created := clock(tc.atSend)
			st, err := session.NewState(session.Config{Timeout: timeout}, created, created)
			require.NoError(t, err)
			sentAt := clock(tc.atSend)
			st.HeartbeatSent(sentAt)
			// The stamp travels to the leader and back in the ack.
			b, err := encodeAppMsg(appMsg{Kind: msgHeartbeatAck, Sent: n.monoStamp(sentAt), OK: true})
			require.NoError(t, err)
			m, err := decodeAppMsg(b)
			require.NoError(t, err)
			back, ok := n.monoTime(m.Sent)
			require.True(t, ok)
			st.HeartbeatAcked(back, clock(tc.atAck))
			before := time.Now()
			rem := st.Remaining(clock(tc.atRead))
			require.LessOrEqual(t, rem, timeout, "a wall-clock step extended the lease")
			require.Greater(t, rem, timeout-time.Since(before)-time.Since(sentAt)-time.Second,
				"a wall-clock step shortened the lease")
			require.Equal(t, session.Connected, st.Status())
		})
	}
}
