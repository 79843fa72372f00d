package coord

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	ackLoadFlag = flag.Duration("coord.ackload", 2*time.Second,
		"TestHeartbeatAckLatencyUnderLoad: how long to load the cluster while measuring")
	ackWritersFlag = flag.Int("coord.ackload.writers", 16, "TestHeartbeatAckLatencyUnderLoad: concurrent writers")
	ackSpinFlag    = flag.Int("coord.ackload.spinners", -1,
		"TestHeartbeatAckLatencyUnderLoad: goroutines of pure computation (-1: 2×GOMAXPROCS)")
)

// TestHeartbeatAckLatencyUnderLoad measures what a session's life hangs
// on (issue 10 item 8, issue 13): the round trip of its heartbeats, send to
// acknowledgement on the owner's clock, on a 3-node in-process cluster
// while 16 writers (-coord.ackload.writers) set a znode through every node
// and 2×GOMAXPROCS goroutines (-coord.ackload.spinners) compute, for
// -coord.ackload (2s in CI) and until a heartbeat was acknowledged (at
// most a minute). It logs the p50 and
// p99 of every node's latest acknowledged heartbeats, and the suspensions
// and losses of 24 sessions with a 2s timeout; it asserts only that
// heartbeats were acknowledged (figures, not a bound, on a shared machine:
// run it with -coord.ackload=10s for them).
func TestHeartbeatAckLatencyUnderLoad(t *testing.T) {
	c := startCluster(t, 3, nil)
	ctx := ctxT(t)
	ids := []uint64{1, 2, 3}
	_, err := c.nodes[1].Create(ctx, "/hot", []byte("data"), Persistent)
	require.NoError(t, err)
	var sessions []*Session
	for i := range 24 {
		s, err := c.nodes[ids[i%3]].Session(ctx, SessionOptions{Timeout: 2 * time.Second})
		require.NoError(t, err)
		sessions = append(sessions, s)
	}
	var lost, suspended, writes, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	watchSessionEvents(&wg, stop, sessions, func(_ *Session, ev SessionEvent) {
		switch ev.Type {
		case SessionLost:
			lost.Add(1)
		case SessionSuspended:
			suspended.Add(1)
		}
	})
	for i := range *ackWritersFlag {
		n := c.nodes[ids[i%3]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(fmt.Sprint(i))
			for {
				select {
				case <-stop:
					return
				default:
				}
				wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := n.Set(wctx, "/hot", data, -1)
				cancel()
				writes.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	spinners := *ackSpinFlag
	if spinners < 0 {
		spinners = 2 * runtime.GOMAXPROCS(0)
	}
	spinCPUs(&wg, stop, spinners)
	// Only what the load's own heartbeats took counts.
	for _, id := range ids {
		n := c.nodes[id]
		n.coreMu.Lock()
		n.core.ResetAckLatency()
		n.coreMu.Unlock()
	}
	samples := func() (acks []time.Duration) {
		for _, id := range ids {
			n := c.nodes[id]
			n.coreMu.Lock()
			acks = append(acks, n.core.AckSamples()...)
			n.coreMu.Unlock()
		}
		return acks
	}
	start := time.Now()
	time.Sleep(*ackLoadFlag) // the load runs for this long; nothing waits on it
	// And until a heartbeat was acknowledged: a round trip takes what the
	// scheduler gives it, and beside other processes at load 30-65 none
	// ended within 2 s (1 run of 16 beside three hogs). Acknowledgements
	// stuck for good still fail, at the bound.
	acks := samples()
	for ; len(acks) == 0 && time.Since(start) < time.Minute; acks = samples() {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	require.NotEmpty(t, acks, "no heartbeat acknowledged in %v under load", elapsed)
	slices.Sort(acks)
	pct := func(p int) time.Duration { return acks[(len(acks)-1)*p/100] }
	t.Logf("%v of load (%d writers, %d spinners): %d writes (%d failed); %d heartbeat acks: p50 %v p90 %v p99 %v max %v; "+
		"24 sessions of 2s: %d suspensions, %d lost", elapsed.Round(time.Millisecond), *ackWritersFlag, spinners, writes.Load(),
		failed.Load(), len(acks), pct(50).Round(100*time.Microsecond), pct(90).Round(100*time.Microsecond),
		pct(99).Round(100*time.Microsecond), acks[len(acks)-1].Round(100*time.Microsecond), suspended.Load(),
		lost.Load())
}
