// Real-process test of many replicas starting together (issue 12): three
// voters hold many znodes and a crowd of observers (every other replica of
// the service) starts at once, each needing the whole state as a streamed
// snapshot. On process_test.go's plumbing.
//
// Flags, given after -args:
//
//	-coord.observers.soak  the full size of issue 12: 100,000 znodes and 17
//	                       observers, with its targets enforced (every
//	                       observer serving within 60s, write p99 under 1s).
//	                       Run it without -race; it needs a few GiB of RAM.
//	-coord.observers.synclimit=D  the children's SyncLimit (default 1s; 0
//	                       keeps LocalConfig's 150ms, for an idle machine).
//	-coord.observers.cpuprofile=DIR  each voter's CPU profile while the
//	                       observers join, as DIR/voter-<id>.pprof, and
//	                       each observer's for its whole life, as
//	                       DIR/node-<id>.pprof.
//	-coord.observers.znodes=N, -coord.observers.count=N  another size
//	                       (for measurements: 100000 and 1 shows what one
//	                       observer's sync costs it); the soak's targets
//	                       are not enforced then.
package coord_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
)

var (
	observersSoak = flag.Bool("coord.observers.soak", false,
		"TestProcessManyObservers at full size: 100,000 znodes and 17 observers")
	observersSyncLimit = flag.Duration("coord.observers.synclimit", time.Second,
		"the children's SyncLimit in TestProcessManyObservers (0: LocalConfig's)")
	observersZnodes  = flag.Int("coord.observers.znodes", 0, "TestProcessManyObservers's znodes (0: by -coord.observers.soak)")
	observersProfile = flag.String("coord.observers.cpuprofile", "",
		"a directory: TestProcessManyObservers writes there each voter's CPU profile while the observers join and each observer's for its whole life")
	observersCount = flag.Int("coord.observers.count", 0, "TestProcessManyObservers's observers (0: by -coord.observers.soak)")
)

const (
	// procEnvVoters, if set to n, makes ids 1..n the voters and every
	// other child an observer.
	procEnvVoters = "COORD_PROC_VOTERS"
	// procEnvSyncLimit, if set, is the children's SyncLimit (a duration).
	procEnvSyncLimit = "COORD_PROC_SYNCLIMIT"
)

// procVotersEnv applies procEnvVoters and procEnvSyncLimit to cfg.
func procVotersEnv(cfg *coord.Config) error {
	if v := os.Getenv(procEnvSyncLimit); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", procEnvSyncLimit, err)
		}
		cfg.SyncLimit = d
	}
	v := os.Getenv(procEnvVoters)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%s: %w", procEnvVoters, err)
	}
	cfg.Voters = nil
	for id := 1; id <= n; id++ {
		cfg.Voters = append(cfg.Voters, uint64(id))
	}
	if cfg.NodeID > uint64(n) {
		cfg.Role = coord.RoleObserver
	}
	return nil
}

// procFill creates arg's count of znodes of 100 bytes under /fill, 50 per
// Multi or as many as arg's optional second number says ("100000 4"), and
// prints FILLED or FILLERR. A batch that fails (a leader change
// on a loaded machine) is tried again, with a new session if need be, for
// up to a minute; ErrNodeExists means an earlier try committed it.
func procFill(ctx context.Context, node *coord.Node, out *procOut, arg string) {
	countArg, batchArg, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(countArg)
	if err != nil {
		out.line("FILLERR count %q: %v", arg, err)
		return
	}
	batch := 50
	if batchArg != "" {
		if batch, err = strconv.Atoi(batchArg); err != nil || batch < 1 {
			out.line("FILLERR batch %q: %v", arg, err)
			return
		}
	}
	var sess *coord.Session
	try := func(op func(context.Context) error) error {
		deadline := time.Now().Add(time.Minute)
		for {
			if sess == nil {
				sess, err = node.Session(ctx, coord.SessionOptions{})
			}
			if err == nil {
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = op(octx)
				cancel()
			}
			if err == nil || errors.Is(err, coord.ErrNodeExists) {
				return nil
			}
			if errors.Is(err, coord.ErrSessionExpired) || errors.Is(err, coord.ErrClosed) {
				sess = nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := try(func(ctx context.Context) error {
		_, err := sess.Create(ctx, "/fill", nil, coord.Persistent)
		return err
	}); err != nil {
		out.line("FILLERR create /fill: %v", err)
		return
	}
	value := []byte(strings.Repeat("v", 100))
	for lo := 0; lo < n; lo += batch {
		ops := make([]coord.Op, 0, batch)
		for k := lo; k < min(lo+batch, n); k++ {
			ops = append(ops, coord.CreateOp(fmt.Sprintf("/fill/k%06d", k), value, coord.Persistent))
		}
		if err := try(func(ctx context.Context) error {
			_, err := sess.Multi(ctx, ops...)
			return err
		}); err != nil {
			out.line("FILLERR multi at %d: %v", lo, err)
			return
		}
	}
	if sess != nil {
		sess.Close(ctx)
	}
	out.line("FILLED %d", n)
}

// procMemory returns a process's resident set size and its peak, in bytes
// (Linux: /proc/pid/status).
func procMemory(pid int) (rss, peak uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak, sc.Err()
}

// TestProcessManyObservers starts a crowd of observers together against
// three voters holding many znodes, under write load from every node: the
// leader streams the snapshot to a few at a time while the others wait
// their turn. Every observer must serve within the bound, the voters must
// keep their leader (no election), writes must go on throughout, and the
// voters' memory is reported (peak RSS). The CI size is small (see
// -coord.observers.soak for issue 12's full size).
func TestProcessManyObservers(t *testing.T) {
	znodes, observers := 12_000, 5
	if *observersSoak {
		znodes, observers = 100_000, 17
	}
	znodes, observers = cmp.Or(*observersZnodes, znodes), cmp.Or(*observersCount, observers)
	if *observersSyncLimit > 0 {
		// This machine is shared: two cores, load averages of 20 to 70
		// while other tests run. A child is then sometimes descheduled
		// for longer than LocalConfig's 150ms SyncLimit, an election this
		// test did not cause. A second still catches heartbeats that wait
		// behind snapshot bytes (before streaming, the voters re-elected 7
		// to 22 times and grew to GiBs); -coord.observers.synclimit=0
		// keeps LocalConfig's limit, for an idle machine.
		t.Setenv(procEnvSyncLimit, observersSyncLimit.String())
	}
	const voters = 3
	t.Setenv(procEnvVoters, strconv.Itoa(voters))
	c := newProcCluster(t, voters+observers)
	fillBatch := 50
	if znodes >= 100_000 {
		// A snapshot of 100,000 znodes every 64 writes would keep every
		// node busy serialising. A service that holds this many znodes has
		// compacted its log long ago, so a new replica needs a SNAP: the
		// nodes keep LocalConfig's SnapshotEvery and the fill writes the
		// znodes in enough entries for two snapshots and a compaction.
		// (With SnapshotEvery 500, as this test had, all 20 nodes took a
		// 17 MB snapshot every 2.6-5s while the observers joined, about
		// 30% of the observers' CPU: no user of the presets sees that at
		// this write rate.)
		c.snapshotEvery = coord.LocalConfig(1).SnapshotEvery
		fillBatch = max(1, znodes*2/(5*c.snapshotEvery))
	}
	for id := 1; id <= voters; id++ {
		c.start(id)
	}
	c.waitReady(60*time.Second, 1, 2, 3)
	lead := c.leader(15 * time.Second)

	filled := time.Now()
	c.send(c.proc(int(lead)), fmt.Sprintf("fill %d %d", znodes, fillBatch))
	if !c.waitFor(5*time.Minute, func() bool { return c.procs[int(lead)-1].filled || len(c.badLine) > 0 }) {
		t.Fatalf("%d znodes not created within 5m", znodes)
	}
	c.mu.Lock()
	bad := slices.Clone(c.badLine)
	epoch := c.procs[int(lead)-1].leader.epoch
	c.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("fill: %v", bad)
	}
	t.Logf("%d znodes created in %v", znodes, time.Since(filled).Round(time.Millisecond))
	c.waitAcks(15*time.Second, time.Now(), 10)

	if *observersProfile != "" {
		for id := 1; id <= voters; id++ {
			c.send(c.proc(id), fmt.Sprintf("profile %s/voter-%d.pprof", *observersProfile, id))
		}
		t.Cleanup(func() {
			// Before the children are killed, also when the test failed:
			// each writes its profile out on profileend.
			for id := 1; id <= voters; id++ {
				if p := c.proc(id); p != nil {
					_, _ = io.WriteString(p.stdin, "profileend\n") // gone: nothing to write
				}
			}
			c.waitFor(10*time.Second, func() bool {
				for id := 1; id <= voters; id++ {
					if _, err := os.Stat(fmt.Sprintf("%s/voter-%d.pprof", *observersProfile, id)); err != nil {
						return false
					}
				}
				return true
			})
		})
	}
	if *observersProfile != "" {
		// The observers' profiles cover their whole join (restore too).
		t.Setenv(procEnvProfile, *observersProfile)
	}
	begin := time.Now()
	var obs []int
	for id := voters + 1; id <= voters+observers; id++ {
		c.start(id)
		obs = append(obs, id)
	}
	c.waitReady(60*time.Second, obs...)
	joined := time.Since(begin)
	t.Logf("%d observers started together, all serving after %v", observers, joined.Round(time.Millisecond))
	if *observersProfile != "" {
		for id := 1; id <= voters; id++ {
			c.send(c.proc(id), "profileend")
		}
		t.Logf("voter CPU profiles in %s (voter %d led)", *observersProfile, lead)
	}
	c.waitAcks(15*time.Second, time.Now(), 10)

	var peaks []uint64
	for id := 1; id <= voters; id++ {
		rss, peak, err := procMemory(c.proc(id).cmd.Process.Pid)
		if err != nil {
			t.Logf("voter %d memory: %v", id, err)
			continue
		}
		peaks = append(peaks, peak)
		t.Logf("voter %d: RSS %d MiB, peak %d MiB", id, rss>>20, peak>>20)
	}
	var obsPeaks []uint64
	for _, id := range obs {
		if _, peak, err := procMemory(c.proc(id).cmd.Process.Pid); err == nil {
			obsPeaks = append(obsPeaks, peak>>20)
		}
	}
	slices.Sort(obsPeaks)
	t.Logf("observers' peak RSS (MiB, sorted): %v", obsPeaks)

	c.mu.Lock()
	var elections []procLeader
	for _, l := range c.leaders {
		if l.node <= voters && l.at >= begin.UnixNano() && (l.leader != lead || l.epoch != epoch) {
			elections = append(elections, l)
		}
	}
	var lat, voterLat, obsLat []time.Duration
	for _, a := range c.acks {
		if tr, ok := c.tries[a.data]; ok && tr.at >= begin.UnixNano() {
			d := time.Duration(a.at - tr.at)
			lat = append(lat, d)
			if tr.node <= voters {
				voterLat = append(voterLat, d)
			} else {
				obsLat = append(obsLat, d)
			}
		}
	}
	// A write that failed (its 2s deadline passed, its session expired)
	// counts with the time it took to fail: leaving it out would hide the
	// worst of the tail.
	failed := 0
	for _, f := range c.failed {
		if tr, ok := c.tries[f.data]; ok && tr.at >= begin.UnixNano() {
			failed++
			lat = append(lat, time.Duration(f.at-tr.at))
		}
	}
	timeline := observersTimeline(c, begin, voters)
	c.mu.Unlock()
	t.Logf("per second since the observers started (writes begun: count, slowest by voters' and observers' origin; observers serving):\n%s", timeline)
	p99 := quantile(lat, 0.99)
	gap := c.longestGap(begin)
	t.Logf("writes while the observers joined: %d acknowledged, %d failed, p99 %v (failures counted), longest gap %v",
		len(lat)-failed, failed, p99.Round(time.Millisecond), gap.Round(time.Millisecond))
	// Where the tail is: the voters' own writes, or the observers' (which
	// start once their node has joined, while the others still restore).
	t.Logf("by origin: voters %d writes, p50 %v, p99 %v; observers %d writes, p50 %v, p99 %v",
		len(voterLat), quantile(voterLat, 0.5).Round(time.Millisecond), quantile(voterLat, 0.99).Round(time.Millisecond),
		len(obsLat), quantile(obsLat, 0.5).Round(time.Millisecond), quantile(obsLat, 0.99).Round(time.Millisecond))
	require := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf(format, args...)
		}
	}
	require(len(elections) == 0, "the voters changed leader while the observers joined (was %d, epoch %d): %+v",
		lead, epoch, elections)
	procCheckGap(t, gap)
	for _, p := range peaks {
		// Before streaming, 12 observers against 65,000 znodes grew the
		// voters to 2.3-3.9 GiB.
		require(p < 1<<30, "a voter's peak RSS is %d MiB", p>>20)
	}
	if *observersSoak {
		require(joined < 60*time.Second, "observers serving after %v, target 60s", joined)
		require(p99 < time.Second, "write p99 %v while the observers joined, target under 1s", p99)
	}
	c.finish()
}

// quantile returns the q-quantile of ds (sorting it), zero for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(int(float64(len(ds))*q), len(ds)-1)]
}

// observersTimeline describes, for each second since begin, the writes
// begun in it (how many, the slowest from a voter and from an observer),
// the writes that failed in it and how many observers were serving by its
// end: where the tail is in time. The distinct errors of the failures
// follow. c.mu must be held.
func observersTimeline(c *procCluster, begin time.Time, voters int) string {
	type second struct {
		n, fails   int
		voter, obs time.Duration
		ready      int
	}
	var secs []second
	at := func(ns int64) *second {
		i := max(int((ns-begin.UnixNano())/int64(time.Second)), 0)
		for len(secs) <= i {
			secs = append(secs, second{})
		}
		return &secs[i]
	}
	for _, a := range c.acks {
		tr, ok := c.tries[a.data]
		if !ok || tr.at < begin.UnixNano() {
			continue
		}
		s, d := at(tr.at), time.Duration(a.at-tr.at)
		s.n++
		if tr.node <= voters {
			s.voter = max(s.voter, d)
		} else {
			s.obs = max(s.obs, d)
		}
	}
	for _, f := range c.failed {
		if f.at >= begin.UnixNano() {
			at(f.at).fails++
		}
	}
	for _, p := range c.procs {
		if p != nil && p.id > voters && p.readyAt >= begin.UnixNano() {
			at(p.readyAt).ready++
		}
	}
	var b strings.Builder
	ready := 0
	for i, s := range secs {
		ready += s.ready
		fmt.Fprintf(&b, "  %3ds: %4d writes, slowest voter %6v observer %6v, %3d failed; %2d serving\n", i, s.n,
			s.voter.Round(time.Millisecond), s.obs.Round(time.Millisecond), s.fails, ready)
	}
	errs := map[string]int{}
	for _, f := range c.failed {
		if f.at >= begin.UnixNano() {
			errs[f.err]++
		}
	}
	for _, e := range slices.Sorted(maps.Keys(errs)) {
		fmt.Fprintf(&b, "  failed %d times: %s\n", errs[e], e)
	}
	return b.String()
}
