package coord_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
)

// child is what the process tests (process_test.go, chaos_test.go) keep of
// one node running as an OS process: its incarnation, pipes and reaping.
type child struct {
	id, inc int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan struct{} // closed once reaped
}

// takeChildren empties procs (under mu) and returns the children that ran.
func takeChildren[P interface{ base() *child }](mu *sync.Mutex, procs []P) []*child {
	mu.Lock()
	defer mu.Unlock()
	var out []*child
	var zero P
	for i, p := range procs {
		if any(p) != any(zero) {
			out = append(out, p.base())
			procs[i] = zero
		}
	}
	return out
}

// killChildren SIGKILLs every child and waits until each is reaped.
func killChildren(t *testing.T, cs []*child) {
	for _, c := range cs {
		c.cmd.Process.Kill()
	}
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("node %d (pid %d) not reaped 10s after SIGKILL", c.id, c.cmd.Process.Pid)
		}
	}
}

// awaitExit waits for each child to exit after it was told to (what
// tells names how, for the error), killing the ones that take over 20s.
func awaitExit(t *testing.T, cs []*child, tells string, wantSuccess bool) {
	for _, c := range cs {
		select {
		case <-c.done:
			if wantSuccess && !c.cmd.ProcessState.Success() {
				t.Errorf("node %d exited with %v", c.id, c.cmd.ProcessState)
			}
		case <-time.After(20 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
			t.Errorf("node %d did not exit within 20s of %s", c.id, tells)
		}
	}
}

// waitLocked polls cond under mu every poll until it holds or d passes.
func waitLocked(mu *sync.Mutex, d, poll time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
}

// checkChildLogs fails t on a data race, panic or fatal error in a child's
// log (hint says where to find the logs).
func checkChildLogs(t *testing.T, logs []string, hint string) {
	t.Helper()
	for i, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("node %d log: %v", i+1, err)
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("node %d log reports %q; see %s%s", i+1, bad, f, hint)
			}
		}
	}
}

// childSnapshotEnv carries a child's SnapshotEvery (unset: the preset's).
// A small value makes snapshots, log purges and SNAP transfers happen on
// real disks during the process tests.
const childSnapshotEnv = "COORD_CHILD_SNAPSHOT_EVERY"

// childConfig is the Config of node id of a process test: gossip on
// seeds[id-1], every seed a voter, DataDir dir, SnapshotEvery from
// childSnapshotEnv, and warnings (or COORD_PROC_LOG's level) logged on
// stderr, which the parent keeps.
func childConfig(id uint64, cluster string, seeds []string, dir string, join time.Duration) (coord.Config, error) {
	if id == 0 || int(id) > len(seeds) {
		return coord.Config{}, fmt.Errorf("id %d outside seeds %v", id, seeds)
	}
	cfg := coord.LocalConfig(id)
	cfg.Cluster = cluster
	cfg.GossipBindAddr = seeds[id-1]
	cfg.Seeds = seeds
	for i := range seeds {
		cfg.Voters = append(cfg.Voters, uint64(i+1))
	}
	cfg.DataDir = dir
	cfg.JoinTimeout = join
	if v := os.Getenv(childSnapshotEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return coord.Config{}, fmt.Errorf("%s: %w", childSnapshotEnv, err)
		}
		cfg.SnapshotEvery = n
	}
	level := slog.LevelWarn
	if l := os.Getenv("COORD_PROC_LOG"); l != "" {
		if err := level.UnmarshalText([]byte(l)); err != nil {
			return coord.Config{}, fmt.Errorf("COORD_PROC_LOG: %w", err)
		}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}
