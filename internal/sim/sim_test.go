package sim

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab/zabtest"
)

var (
	seedFlag   = flag.Uint64("seed", 0, "run only this seed (replays a failure)")
	seedsFlag  = flag.Int("sim.seeds", 200, "number of seeds TestLinearizable runs (from -sim.base)")
	baseFlag   = flag.Uint64("sim.base", 1, "first seed of TestLinearizable")
	durFlag    = flag.Int64("sim.duration", 0, "virtual time of each run's fault phase (0: Config's default)")
	forgetFlag = flag.Bool("sim.forgetretried", false, "TestLinearizable, TestSimSessions, TestSimLock: plant "+
		"'forget a retried write' (Config.ForgetRetried; zab commits no late copy, so it is not caught)")
	disFlag = flag.String("sim.disable", "", "fault classes to leave out, comma-separated ("+AllFaults.String()+")")
)

// disabled returns the fault classes -sim.disable leaves out.
func disabled(t *testing.T) Faults {
	f, err := ParseFaults(*disFlag)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// seeds returns the seeds to run: -seed alone, or -sim.seeds from -sim.base.
func seeds() []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	out := make([]uint64, *seedsFlag)
	for i := range out {
		out[i] = *baseFlag + uint64(i)
	}
	return out
}

// runSeeds runs cfg for every seed on all CPUs and returns the results in
// seed order. If stopAtFirst, it stops starting seeds once one failed.
func runSeeds(seedList []uint64, cfg func(seed uint64) Config, stopAtFirst bool) []*Result {
	return runParallel(seedList, func(seed uint64) *Result { return Run(cfg(seed)) }, stopAtFirst)
}

// runParallel runs run for every seed on all CPUs and returns the results
// in seed order; with stopAtFirst it starts no seed after one failed.
func runParallel[R interface{ Failed() bool }](seedList []uint64, run func(uint64) R, stopAtFirst bool) []R {
	results := make([]R, len(seedList))
	var (
		mu     sync.Mutex
		next   int
		failed bool
		wg     sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(seedList) || (stopAtFirst && failed) {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				res := run(seedList[i])
				mu.Lock()
				results[i] = res
				failed = failed || res.Failed()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results
}

// report prints everything needed to replay and understand a failed run:
// the replay command, the porcupine visualisation and the schedule. If
// cfg is not nil, it also shrinks the run's fault classes (see Shrink) and
// prints the replay command of the smallest set that still fails.
func report(t *testing.T, test string, res *Result, cfg *Config) {
	t.Helper()
	var b strings.Builder
	replay := fmt.Sprintf("go test ./internal/sim -run '%s$' -seed %d -v", test, res.Seed)
	if cfg != nil {
		replay = ReplayCommand(test, *cfg)
	}
	fmt.Fprintf(&b, "%v\nreplay: %s\n", res, replay)
	if cfg != nil {
		on, sr := Shrink(*cfg, res)
		small := *cfg
		small.Disable = AllFaults &^ on
		fmt.Fprintf(&b, "shrunk: still fails with only the fault classes {%v}: %v\nreplay: %s\n", on, sr.Err,
			ReplayCommand(test, small))
	}
	if e := res.Explain(); e != "" {
		fmt.Fprintln(&b, e)
	}
	if res.Check == porcupine.Illegal || res.Check == porcupine.Unknown {
		if f, err := os.CreateTemp("", fmt.Sprintf("coord-sim-seed%d-*.html", res.Seed)); err == nil {
			if err := porcupine.Visualize(Model(), res.Info, f); err == nil {
				fmt.Fprintf(&b, "porcupine visualisation: %s\n", f.Name())
			}
			f.Close()
		}
	}
	if f, err := os.CreateTemp("", fmt.Sprintf("coord-sim-seed%d-*.log", res.Seed)); err == nil {
		fmt.Fprintln(f, strings.Join(res.Schedule, "\n"))
		f.Close()
		fmt.Fprintf(&b, "schedule (%d lines): %s\n", len(res.Schedule), f.Name())
	}
	tail := res.Schedule[max(0, len(res.Schedule)-40):]
	fmt.Fprintf(&b, "last lines of the schedule:\n%s", strings.Join(tail, "\n"))
	t.Error(b.String())
}

// TestLinearizable runs seeded fault schedules against 3- and 5-voter
// clusters of real trees and checks every client history with porcupine,
// then convergence after heal. go test ./internal/sim -sim.seeds=10000 runs
// a long soak; -seed N replays one seed.
func TestLinearizable(t *testing.T) {
	list := seeds()
	start := time.Now()
	dis := disabled(t)
	cfgOf := func(seed uint64) Config {
		return Config{Seed: seed, Duration: *durFlag, Disable: dis, ForgetRetried: *forgetFlag}
	}
	results := runSeeds(list, cfgOf, false)
	elapsed := time.Since(start)
	ops, pending, late, failures := 0, 0, 0, 0
	for _, res := range results {
		ops += len(res.History)
		pending += res.Pending
		late += res.LateAttempts
		if res.Failed() {
			failures++
			if failures <= 3 {
				cfg := cfgOf(res.Seed)
				report(t, "TestLinearizable", res, &cfg)
			} else {
				t.Errorf("%v", res)
			}
		} else if len(list) == 1 {
			t.Log(res)
		}
	}
	t.Logf("%d seeds in %v (%.1f seeds/s), %d ops checked (%d with unknown outcome), %d earlier attempts "+
		"reached their leader after their write returned, %d failed", len(list), elapsed.Round(time.Millisecond),
		float64(len(list))/elapsed.Seconds(), ops, pending, late, failures)
}

// mutationBudget is how many seeds a mutation test may run: the CI budget.
// Each stops at its first catch; the rarest, a retry without Since, needs a
// leader's clock step and a dedup expiry around one write: with Async
// Readys it was caught at seed 217 from base 0, and from bases 200, 400,
// 600 and 1000 within 20 seeds but not within 200 from base 800, so a
// budget of 200 would pass or fail by the base.
func mutationBudget() []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	n := 1000
	if flagSet("sim.seeds") {
		n = min(*seedsFlag, n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = *baseFlag + uint64(i)
	}
	return out
}

// requireCaught runs a mutated harness and asserts the checker reports a
// non-linearizable history within the CI seed budget.
func requireCaught(t *testing.T, wantIllegal bool, mutate func(*Config)) {
	t.Helper()
	list := mutationBudget()
	results := runSeeds(list, func(seed uint64) Config {
		cfg := Config{Seed: seed}
		mutate(&cfg)
		return cfg
	}, true)
	for i, res := range results {
		if res != nil && res.Failed() {
			t.Logf("caught at seed %d (%d of %d seeds): %v\n%s", res.Seed, i+1, len(list), res.Err, res.Explain())
			if wantIllegal && res.Check != porcupine.Illegal {
				t.Errorf("seed %d: caught by %v, want porcupine to find the history illegal", res.Seed, res.Err)
			}
			return
		}
	}
	t.Fatalf("the mutation survived %d seeds: the checker is blind to it", len(list))
}

// TestCheckerCatchesStaleReads serves "linearizable" reads from the local
// tree without the Sync: the checker must find a stale read.
func TestCheckerCatchesStaleReads(t *testing.T) {
	requireCaught(t, true, func(c *Config) { c.StaleReads = true })
}

// TestCheckerCatchesDuplicateRetries retries writes under a fresh ReqID, so
// a write whose first attempt did apply applies twice.
func TestCheckerCatchesDuplicateRetries(t *testing.T) {
	requireCaught(t, false, func(c *Config) { c.FreshRetryIDs = true })
}

// TestCheckerCatchesRetryWithoutSince retries writes without Since (the
// rule proposal.Retry applies once an outcome is unknown): after a leader's
// wall clock stepped ahead and dedup forgot a first attempt, its retry
// applies a second time, which the checker must catch.
func TestCheckerCatchesRetryWithoutSince(t *testing.T) {
	requireCaught(t, false, func(c *Config) { c.RetryWithoutSince = true })
}

// TestCheckerCatchesDiffWithoutTrunc re-introduces a protocol mistake in
// every peer: a leader synchronises a learner that holds entries it lacks
// (an old epoch's uncommitted tail) with a DIFF instead of a TRUNC. The
// simulator must find the divergence by its normal checks.
func TestCheckerCatchesDiffWithoutTrunc(t *testing.T) {
	requireCaught(t, false, func(c *Config) { c.Mistake = zabtest.MistakeDiffWithoutTrunc })
}

// TestShrink shrinks a failing run (stale reads fail with few faults) and
// replays the smaller set: it must still fail, and the names round-trip.
func TestShrink(t *testing.T) {
	var cfg Config
	var res *Result
	for seed := uint64(1); seed <= 20 && res == nil; seed++ {
		cfg = Config{Seed: seed, StaleReads: true, Duration: 600} // short: up to 9 runs
		if r := Run(cfg); r.Failed() {
			res = r
		}
	}
	if res == nil {
		t.Fatal("no failing seed to shrink")
	}
	on, sr := Shrink(cfg, res)
	if !sr.Failed() {
		t.Fatalf("seed %d: the shrunk result does not fail", cfg.Seed)
	}
	small := cfg
	small.Disable = AllFaults &^ on
	if !Run(small).Failed() {
		t.Fatalf("seed %d: replaying with %v no longer fails", cfg.Seed, on)
	}
	got, err := ParseFaults(small.Disable.String())
	if err != nil || got != small.Disable {
		t.Fatalf("ParseFaults(%q) = %v, %v", small.Disable, got, err)
	}
	t.Logf("seed %d (stale reads) still fails with only {%v}; flags: %s", cfg.Seed, on, ReplayCommand("TestLinearizable", small))
}

// TestFailureKind: the shrinker tells one failure from another by text
// without its numbers.
func TestFailureKind(t *testing.T) {
	kind := func(msg string) string { return failureKind(&Result{Err: errors.New(msg)}) }
	for _, tc := range []struct{ a, b string }{
		{"peer 3: applied another entry at 0x7:19 than a peer before it", "peer 1: applied another entry at 0x2a:3 than a peer before it"},
		{"acknowledged write (req 12 at 0x3:4) is not in the final history", "acknowledged write (req 7 at 0x9:1) is not in the final history"},
	} {
		require.Equal(t, kind(tc.a), kind(tc.b))
	}
	require.NotEqual(t, kind("peer 3: applied another entry at 0x7:19 than a peer before it"),
		kind("no convergence after heal: leader=0 stable=false"))
	require.Equal(t, "", failureKind(&Result{}))
}

// TestCheckerCatchesReproposedForwards plants a leader that proposes
// every copy of a forwarded write it receives (a learner's retransmission,
// a duplicate, a late copy), not once per request: a copy committed after
// the write's call returned must fail the run even while the tree still
// recognises it as a duplicate, since coord forgets the results of writes
// it proposed once (proposal.Finished). The check that no copy of a write
// is applied after its call returned is also what stands in the simulator
// for "forget a retried write" (see the package doc).
func TestCheckerCatchesReproposedForwards(t *testing.T) {
	requireCaught(t, false, func(c *Config) { c.Mistake = zabtest.MistakeReproposeForwards })
}
