package session_test

import (
	"fmt"
	"time"

	"github.com/coord-dev/coord/session"
)

func ExampleNegotiate() {
	limits := session.DefaultLimits(2 * time.Second) // ZooKeeper's 2 and 20 ticks
	if err := limits.Validate(); err != nil {
		panic(err)
	}
	for _, asked := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		fmt.Printf("asked %v, granted %v\n", asked, limits.Negotiate(asked))
	}
	// Output:
	// asked 1s, granted 4s
	// asked 10s, granted 10s
	// asked 1m0s, granted 40s
}

func ExampleLimits_Validate() {
	err := session.Limits{Min: 10 * time.Second, Max: time.Second}.Validate()
	fmt.Println(err)
	// Output:
	// session: invalid config: Limits.Min (10s) must not exceed Limits.Max (1s)
}

func ExampleID() {
	// The zxid of the createSession txn: epoch 5, counter 42.
	id := session.ID(5<<32 | 42)
	fmt.Println(id, id.Valid(), id.Epoch(), id.Counter())
	fmt.Println(session.ID(0).Valid())
	// Output:
	// 0x50000002a true 5 42
	// false
}

// The leader's side: sessions are added when created, touched by each
// heartbeat and reported by Expired once their timeout has passed without one.
func ExampleTracker() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }

	tr, err := session.NewTracker(100*time.Millisecond, start)
	if err != nil {
		panic(err)
	}
	_ = tr.Add(0x100000001, 2*time.Second, at(0))
	_ = tr.Add(0x100000002, 2*time.Second, at(0))
	fmt.Println("touch 1:", tr.Touch(0x100000001, at(1500*time.Millisecond)))

	next, _ := tr.NextExpiry()
	fmt.Println("next expiry after", next.Sub(start))
	fmt.Println("expired at 2.1s:", tr.Expired(at(2100*time.Millisecond)))
	// The closeSession txn for 0x100000002 is being proposed: too late to revive it.
	fmt.Println("touch 2:", tr.Touch(0x100000002, at(2200*time.Millisecond)))
	tr.Remove(0x100000002) // once the closeSession txn is applied
	fmt.Println("expired at 3.6s:", tr.Expired(at(3600*time.Millisecond)))
	fmt.Println("tracked:", tr.Len())
	// Output:
	// touch 1: true
	// next expiry after 2.1s
	// expired at 2.1s: [0x100000002]
	// touch 2: false
	// expired at 3.6s: [0x100000001]
	// tracked: 1
}

// A new leader gives every session in its tree a full timeout from the
// takeover, so a failover does not expire healthy sessions.
func ExampleTracker_Reset() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	takeover := start.Add(30 * time.Second)
	tr, _ := session.NewTracker(100*time.Millisecond, start)
	_ = tr.Reset([]session.Entry{{ID: 0x100000001, Timeout: 10 * time.Second}}, takeover)
	info, _ := tr.Lookup(0x100000001)
	fmt.Println("expires", info.Expiry.Sub(takeover), "after the takeover")
	// Output:
	// expires 10.1s after the takeover
}

// The owner's side: the application sees Connected, Suspended when acks stop,
// Reconnected when a fresh ack comes back, and Lost when the timeout has run
// out since the newest acknowledged heartbeat was sent.
func ExampleState() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	// createSession sent at 0, reply at 20 ms, 9 s timeout negotiated.
	s, err := session.NewState(session.Config{Timeout: 9 * time.Second}, at(0), at(20))
	if err != nil {
		panic(err)
	}
	show := func() {
		for _, e := range s.Events() {
			fmt.Printf("%-11s at %v (%s)\n", e.Type, e.At.Sub(start), e.Cause)
		}
	}
	fmt.Println("first heartbeat due at", s.NextHeartbeat(at(20)).Sub(start))

	s.HeartbeatSent(at(3000))
	s.HeartbeatAcked(at(3000), at(3010)) // the lease now counts from 3 s
	s.LeaderLost(at(4000))               // connection to the leader dropped
	fmt.Println("while suspended, heartbeat at", s.NextHeartbeat(at(4000)).Sub(start))
	s.HeartbeatSent(at(4500))
	s.HeartbeatAcked(at(4500), at(4600)) // a new leader answered
	s.Tick(at(9000))                     // lease sent at 4.5 s is now 4.5 s old
	fmt.Println("safe for another", s.Remaining(at(9000)))
	s.Tick(s.Deadline()) // nothing acknowledged since: lost at 4.5 s + 9 s
	show()
	fmt.Println(s.Status())
	// Output:
	// first heartbeat due at 3s
	// while suspended, heartbeat at 4s
	// safe for another 4.5s
	// Connected   at 20ms (created)
	// Suspended   at 4s (leader lost)
	// Reconnected at 4.6s (ack)
	// Suspended   at 9s (no ack)
	// Lost        at 13.5s (timeout)
	// Lost
}
