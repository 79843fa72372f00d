package sim

import (
	"fmt"
	"strings"
	"unicode"
)

// Shrink looks for fewer fault classes that still make cfg's seed fail the
// same way: it leaves the enabled classes out one at a time, in a fixed
// order, and keeps each one out if the run still fails with the same kind
// of failure as res (see failureKind; a different failure is another bug,
// not a smaller schedule of this one). It is a greedy one-pass shrink: at
// most one run per class. A class's actions are still drawn from the seed,
// so the rest of the schedule stays close. It returns the classes still in
// use and the last failing result (res itself if nothing could be left out).
func Shrink(cfg Config, res *Result) (Faults, *Result) {
	best, kind := res, failureKind(res)
	for _, n := range faultNames {
		if cfg.Disable&n.f != 0 {
			continue
		}
		try := cfg
		try.Disable |= n.f
		if r := Run(try); r.Failed() && failureKind(r) == kind {
			cfg, best = try, r
		}
	}
	return AllFaults &^ cfg.Disable, best
}

// failureKind names a failure without its particulars: the error's text
// with every number (decimal, or hex after a digit) replaced by '#'.
func failureKind(r *Result) string {
	if r.Err == nil {
		return ""
	}
	var b strings.Builder
	digits := false
	for _, c := range r.Err.Error() {
		d := unicode.IsDigit(c) || digits && strings.ContainsRune("abcdefx", c)
		if d && !digits {
			b.WriteByte('#')
		}
		if !d {
			b.WriteRune(c)
		}
		digits = d
	}
	return b.String()
}

// ReplayCommand returns the go test command line that replays cfg's seed
// (test names the test function).
func ReplayCommand(test string, cfg Config) string {
	cmd := fmt.Sprintf("go test ./internal/sim -run '%s$' -seed %d", test, cfg.Seed)
	if cfg.Disable != 0 {
		cmd += " -sim.disable=" + cfg.Disable.String()
	}
	if cfg.Duration != 0 {
		cmd += fmt.Sprintf(" -sim.duration=%d", cfg.Duration)
	}
	if cfg.ForgetRetried {
		cmd += " -sim.forgetretried"
	}
	return cmd + " -v"
}
