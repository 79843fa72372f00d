// Real-process tests of rolling restarts, rolling replacement and
// autopilot (issue 12), on process_test.go's plumbing: every node is an OS
// process on 127.0.0.1 with its own DataDir, under write load from every
// node; SIGTERM closes a node (as a Kubernetes pod's termination does).
// Every replica of a test runs the same command line: the same Seeds, and
// BootstrapExpect (autopilot on) or Voters.
//
// Flags, given after -args:
//
//	-coord.rollout.long  also run the 5-voter rolling restart and a
//	                     replacement of 5 voters (a minute or more under -race).
package coord_test

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
)

var rolloutLong = flag.Bool("coord.rollout.long", false, "run the long rolling restart and replacement variants")

const (
	// procEnvBootstrap, if set, makes the children bootstrap with
	// BootstrapExpect=N instead of listing every seed in Voters (autopilot
	// is then on).
	procEnvBootstrap = "COORD_PROC_BOOTSTRAP"
	// procEnvAPVoters sets Autopilot.Voters (the target).
	procEnvAPVoters = "COORD_PROC_AP_VOTERS"
	// procEnvLAN, if "1", gives the children LANConfig's timings (ticks,
	// heartbeats, election and sync timeouts, sessions, gossip intervals,
	// autopilot) instead of LocalConfig's, on the same 127.0.0.1 ports.
	procEnvLAN = "COORD_PROC_LAN"
	// procEnvKey, if set, is every child's SecretKey (gossip and
	// replication encrypted).
	procEnvKey = "COORD_PROC_KEY"
)

// procAutopilotEnv applies procEnvBootstrap, procEnvAPVoters, procEnvLAN
// and procEnvKey to cfg.
func procAutopilotEnv(cfg *coord.Config) error {
	if k := os.Getenv(procEnvKey); k != "" {
		cfg.SecretKey = []byte(k)
	}
	if os.Getenv(procEnvLAN) == "1" {
		lan := coord.LANConfig(cfg.NodeID)
		cfg.TickInterval, cfg.HeartbeatInterval, cfg.ElectionTimeout = lan.TickInterval, lan.HeartbeatInterval, lan.ElectionTimeout
		cfg.SyncLimit = lan.SyncLimit
		cfg.MinSessionTimeout, cfg.DefaultSessionTimeout, cfg.MaxSessionTimeout =
			lan.MinSessionTimeout, lan.DefaultSessionTimeout, lan.MaxSessionTimeout
		cfg.GossipProbeInterval, cfg.GossipHealInterval = lan.GossipProbeInterval, lan.GossipHealInterval
		cfg.Autopilot = lan.Autopilot
	}
	if v := os.Getenv(procEnvBootstrap); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		cfg.Voters, cfg.BootstrapExpect = nil, n
	}
	if v := os.Getenv(procEnvAPVoters); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		cfg.Autopilot.Voters = n
	}
	return nil
}

// cancelOnSIGTERM cancels ctx's cancel on SIGTERM (the child then closes
// its node and exits).
func cancelOnSIGTERM(ctx context.Context, cancel context.CancelFunc) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sig)
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// procIDs joins ids with ','.
func procIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}

// terminate sends node id SIGTERM and waits until it has closed and exited
// (successfully); it returns how long that took.
func (c *procCluster) terminate(id int) time.Duration {
	c.t.Helper()
	c.mu.Lock()
	p := c.procs[id-1]
	c.procs[id-1] = nil
	c.mu.Unlock()
	if p == nil {
		c.t.Fatalf("node %d is not running", id)
	}
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM node %d: %v", id, err)
	}
	awaitExit(c.t, []*child{&p.child}, "SIGTERM", true)
	select {
	case <-p.readDone:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d stdout not closed 10s after it exited", id)
	}
	return time.Since(at)
}

// waitVoters waits until every running node reports voters want.
func (c *procCluster) waitVoters(d time.Duration, want string) {
	c.t.Helper()
	if !c.waitFor(d, func() bool {
		for _, p := range c.procs {
			if p != nil && p.voters != want {
				return false
			}
		}
		return true
	}) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, p := range c.procs {
			if p != nil {
				c.t.Errorf("node %d reports voters %s", i+1, p.voters)
			}
		}
		c.t.Fatalf("voters not %s on every running node within %v", want, d)
	}
}

// waitAcks waits until k writes attempted after at are acknowledged.
func (c *procCluster) waitAcks(d time.Duration, at time.Time, k int) {
	c.t.Helper()
	if !c.waitFor(d, func() bool { return c.acksSince(at) >= k }) {
		c.t.Fatalf("fewer than %d writes acknowledged within %v", k, d)
	}
}

// finish stops the writes, checks every acknowledged write on every
// running node and closes them.
func (c *procCluster) finish() {
	c.t.Helper()
	c.stopAll()
	tree := c.dumpAll()
	checked := c.check(tree)
	c.exitAll()
	c.checkLogs()
	c.mu.Lock()
	c.t.Logf("%d writes attempted, %d acknowledged and found on every node, %d failed; %d znodes",
		len(c.tries), checked, c.fails, len(tree))
	c.mu.Unlock()
}

// procCheckGap fails t on a write gap that is an outage. The target is
// under 1s with LocalConfig (reported, and met on an idle machine: see the
// logs); a CI machine loaded several times over, running the race
// detector, stretches every gap, so only gaps of 10s fail. With LANConfig's
// timings (procEnvLAN) the bound is 5s, and a gap above it fails:
// LANConfig's gaps are a hand-off and some 100ms ticks (about 150ms on a
// loaded 2-core machine), far from it.
func procCheckGap(t *testing.T, gap time.Duration) {
	t.Helper()
	if os.Getenv(procEnvLAN) == "1" {
		if gap > 5*time.Second {
			t.Errorf("longest write gap %v is above the 5s bound for LANConfig", gap)
		}
		return
	}
	if gap > time.Second {
		t.Logf("longest write gap %v is above the 1s target (loaded machine?)", gap)
	}
	if gap > 10*time.Second {
		t.Errorf("longest write gap %v: writes stopped", gap)
	}
}

// TestProcessRollingRestart restarts every voter of a 3-voter cluster
// (BootstrapExpect, so autopilot runs) one at a time with its id and
// DataDir, under write load from every node: SIGTERM (Close, which hands
// leadership off), start again, wait until it has joined, next. It reports
// the longest time without an acknowledged write and checks that no
// acknowledged write is lost. 3-bootstrap-lan does the same with
// LANConfig's timings (bound: 5s) and a SecretKey (encrypted gossip and
// replication). -coord.rollout.long adds 5 voters listed
// in Voters, and 5-bootstrap-lan: 5 voters (BootstrapExpect) with
// LANConfig and a SecretKey (bound: 5s), which takes about a minute.
func TestProcessRollingRestart(t *testing.T) {
	t.Run("3-bootstrap", func(t *testing.T) { procRollingRestart(t, 3, true) })
	t.Run("3-bootstrap-lan", func(t *testing.T) {
		t.Setenv(procEnvLAN, "1")
		t.Setenv(procEnvKey, "rolling-restart-key-32-bytes-...")
		procRollingRestart(t, 3, true)
	})
	t.Run("5-voters", func(t *testing.T) {
		if !*rolloutLong {
			t.Skip("-coord.rollout.long")
		}
		procRollingRestart(t, 5, false)
	})
	t.Run("5-bootstrap-lan", func(t *testing.T) {
		if !*rolloutLong {
			t.Skip("-coord.rollout.long")
		}
		t.Setenv(procEnvLAN, "1")
		t.Setenv(procEnvKey, "rolling-restart-key-32-bytes-...")
		procRollingRestart(t, 5, true)
	})
}

func procRollingRestart(t *testing.T, n int, bootstrap bool) {
	if bootstrap {
		t.Setenv(procEnvBootstrap, strconv.Itoa(n))
	}
	c := newProcCluster(t, n)
	var all []int
	for id := 1; id <= n; id++ {
		c.start(id)
		all = append(all, id)
	}
	c.waitReady(60*time.Second, all...)
	c.leader(15 * time.Second)
	c.waitAcks(15*time.Second, time.Now(), 30)

	begin := time.Now()
	for id := 1; id <= n; id++ {
		took := c.terminate(id)
		c.start(id)
		c.waitReady(60*time.Second, id)
		t.Logf("node %d closed in %v, rejoined after %v; longest write gap so far %v", id,
			took.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond),
			c.longestGap(begin).Round(time.Millisecond))
		c.waitAcks(15*time.Second, time.Now(), 10)
	}
	gap := c.longestGap(begin)
	t.Logf("rolling restart of %d voters in %v: longest write gap %v", n, time.Since(begin).Round(time.Millisecond),
		gap.Round(time.Millisecond))
	procCheckGap(t, gap)
	c.finish()
}

// TestProcessRollingReplacement replaces every voter of a BootstrapExpect=3
// cluster, one at a time, by a fresh node (new id, empty DataDir) at a
// Kubernetes Deployment's pace: the new replica starts, the old one gets
// SIGTERM a second after the new one joined, and the next step follows at
// once. Without any manual call the new ids must end up the voters, with no
// acknowledged write lost. -coord.rollout.long replaces 5 voters.
func TestProcessRollingReplacement(t *testing.T) {
	t.Run("3", func(t *testing.T) { procRollingReplacement(t, 3) })
	t.Run("5", func(t *testing.T) {
		if !*rolloutLong {
			t.Skip("-coord.rollout.long")
		}
		procRollingReplacement(t, 5)
	})
}

func procRollingReplacement(t *testing.T, n int) {
	t.Setenv(procEnvBootstrap, strconv.Itoa(n))
	c := newProcCluster(t, 2*n)
	var olds, news []uint64
	var ids []int
	for id := 1; id <= n; id++ {
		c.start(id)
		ids = append(ids, id)
		olds = append(olds, uint64(id))
		news = append(news, uint64(n+id))
	}
	c.waitReady(60*time.Second, ids...)
	c.waitVoters(15*time.Second, procIDs(olds))
	c.waitAcks(15*time.Second, time.Now(), 30)

	begin := time.Now()
	for k := 1; k <= n; k++ {
		c.start(n + k)
		c.waitReady(60*time.Second, n+k)
		time.Sleep(time.Second) // the Deployment's pace, not a synchronisation
		took := c.terminate(k)
		t.Logf("node %d joined, node %d closed in %v; %v in, longest write gap so far %v", n+k, k,
			took.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond),
			c.longestGap(begin).Round(time.Millisecond))
	}
	c.waitVoters(30*time.Second, procIDs(news))
	gap := c.longestGap(begin)
	t.Logf("rolling replacement of %d voters: voters %v after %v, longest write gap %v", n, news,
		time.Since(begin).Round(time.Millisecond), gap.Round(time.Millisecond))
	c.waitAcks(15*time.Second, time.Now(), 10)
	procCheckGap(t, gap)
	c.finish()
}

// TestProcessAutopilotReplacesDeadVoter SIGKILLs a voter of a
// BootstrapExpect=3 cluster with a standing observer (node 4, started with
// the same command line): autopilot promotes the observer and removes the
// dead voter after DeadAfter, without any manual call.
func TestProcessAutopilotReplacesDeadVoter(t *testing.T) {
	t.Setenv(procEnvBootstrap, "3")
	c := newProcCluster(t, 4)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitReady(60*time.Second, 1, 2, 3)
	c.start(4)
	c.waitReady(60*time.Second, 4)
	c.waitVoters(15*time.Second, "1,2,3")
	leader := c.leader(15 * time.Second)
	victim := 3
	if leader == 3 {
		victim = 2
	}
	killed := c.kill(victim)
	want := []uint64{1, 2, 3, 4}
	want = append(want[:victim-1], want[victim:]...)
	c.waitVoters(30*time.Second, procIDs(want))
	t.Logf("voter %d SIGKILLed: voters %v after %v (DeadAfter %v)", victim, want,
		time.Since(killed).Round(time.Millisecond), coord.LocalConfig(1).Autopilot.DeadAfter)
	c.waitAcks(15*time.Second, time.Now(), 10)
	c.finish()
}

// TestProcessAutopilotGrow grows a BootstrapExpect=3 cluster whose
// autopilot target is 5 by starting two more nodes with the same command
// line: both are promoted, one at a time.
func TestProcessAutopilotGrow(t *testing.T) {
	t.Setenv(procEnvBootstrap, "3")
	t.Setenv(procEnvAPVoters, "5")
	c := newProcCluster(t, 5)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitReady(60*time.Second, 1, 2, 3)
	c.waitVoters(15*time.Second, "1,2,3")
	begin := time.Now()
	c.start(4)
	c.start(5)
	c.waitReady(60*time.Second, 4, 5)
	c.waitVoters(30*time.Second, "1,2,3,4,5")
	t.Logf("grown from 3 to 5 voters %v after the two nodes started (StableAfter %v)",
		time.Since(begin).Round(time.Millisecond), coord.LocalConfig(1).Autopilot.StableAfter)
	c.waitAcks(15*time.Second, time.Now(), 10)
	c.finish()
}
