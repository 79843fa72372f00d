package zabtest

import (
	"fmt"
	"testing"
)

// benchCommit measures commit throughput of 3 voters on the simulated
// network (no faults, no fsync): b.N proposals at the leader (or forwarded
// by a follower), at most window in flight, counted done once applied where
// proposed. ns/op is the wall-clock cost per committed proposal,
// summed over the three peers and the network, all on one goroutine.
func benchCommit(b *testing.B, window int, viaFollower bool) {
	s, err := NewSim(SimConfig{Seed: 1, Voters: 3, MinDelay: 1, MaxDelay: 1})
	if err != nil {
		b.Fatal(err)
	}
	if !s.RunUntil(5000, s.Stable) {
		b.Fatal("no leader")
	}
	l := s.Leader()
	at := l
	if viaFollower {
		at = l%3 + 1 // forwarded writes
	}
	n := s.Node(at)
	data := make([]byte, 64)
	start, t0 := n.SM.N, s.Now()
	b.ReportAllocs()
	s.Delivered = 0
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		for sent < b.N && sent-int(n.SM.N-start) < window {
			if _, err := s.Propose(at, data); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		s.Step()
	}
	for int(n.SM.N-start) < b.N {
		if !s.Step() {
			b.Fatal("stalled")
		}
	}
	b.StopTimer()
	if s.Err != nil {
		b.Fatal(s.Err)
	}
	// Virtual time per commit: with one in flight it is the commit latency
	// in message delays (each link takes 1 unit here).
	b.ReportMetric(float64(s.Now()-t0)/float64(b.N), "vtime/op")
	b.ReportMetric(float64(s.Delivered)/float64(b.N), "msgs/op")
}

func BenchmarkCommit3Voters(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		for _, w := range []int{1, 64, 1024} {
			b.Run(fmt.Sprintf("at=%s/window=%d", via, w), func(b *testing.B) { benchCommit(b, w, via == "follower") })
		}
	}
}
