package session

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkTrackerTouch measures one heartbeat on a leader tracking 100k
// sessions, time advancing so touches keep moving sessions between buckets.
func BenchmarkTrackerTouch(b *testing.B) {
	const n = 100_000
	tr, err := NewTracker(ms(10), t0)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := tr.Add(ID(i), 10*time.Second, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Every session heartbeats about every 3.3 s of virtual time.
		now := t0.Add(time.Duration(i) * 33 * time.Microsecond)
		if !tr.Touch(ID(i%n+1), now) {
			b.Fatal("touch refused")
		}
	}
}

// BenchmarkTrackerExpire measures one Expired call that returns a batch of
// 10 sessions while a varying number of other sessions sit far from expiry.
// Only Expired is timed (the adds are prepared in chunks with the timer
// stopped): its cost must not grow with the live count.
func BenchmarkTrackerExpire(b *testing.B) {
	for _, live := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			tr, err := NewTracker(ms(10), t0)
			if err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= live; i++ {
				if err := tr.Add(ID(i), 1000*time.Hour, t0); err != nil {
					b.Fatal(err)
				}
			}
			const batch, chunk = 10, 2000
			next := ID(live + 1)
			step := 0 // batches expire every 100 ms of virtual time
			prepare := func() {
				for k := 0; k < chunk; k++ {
					now := t0.Add(time.Duration(step+k) * ms(100))
					for j := 0; j < batch; j++ {
						if err := tr.Add(next, ms(50), now); err != nil {
							b.Fatal(err)
						}
						next++
					}
				}
			}
			prepare()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%chunk == 0 {
					b.StopTimer()
					prepare()
					b.StartTimer()
				}
				got := tr.Expired(t0.Add(time.Duration(step)*ms(100) + ms(60)))
				step++
				if len(got) != batch {
					b.Fatalf("expired %d, want %d", len(got), batch)
				}
			}
		})
	}
}
