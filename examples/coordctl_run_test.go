package examples_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/internal/loopback"
)

// runCoordctl: coordctl against a running 3-process cluster (the config
// example's nodes): it lists the voters, writes and reads a znode, exits 3
// for a missing one, and backs the cluster up; the backup, restored, starts
// a new one-node cluster that holds the znode. (examples/coordctl's own
// tests cover every command against in-process clusters.)
func runCoordctl(t *testing.T, bin string) {
	ps := cluster(t, "coordctl cluster", filepath.Join(filepath.Dir(bin), "config"))
	for _, p := range ps {
		p.waitFor(t, regexp.MustCompile(`type key=value`), 1, joinBound)
	}
	ctlVoters := "1,2,3"
	seeds := regexp.MustCompile(`-seeds ([^ ]+)`).FindStringSubmatch(strings.Join(ps[0].cmd.Args, " "))[1]
	ctl := func(want int, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), stepBound)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(cmd.Environ(), "COORD_SEEDS="+seeds, "COORD_VOTERS="+ctlVoters)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err, "coordctl %v", args)
		}
		require.Equal(t, want, code, "coordctl %v: stdout %q stderr %q", args, out.String(), errb.String())
		return out.String()
	}
	require.Regexp(t, `^ID\s+STATE\s+LEADER\n1\s+alive\s*\*?\n2\s+alive\s*\*?\n3\s+alive\s*\*?\n$`, ctl(0, "voters"))
	require.Equal(t, "/coordctl\n", ctl(0, "create", "/coordctl", "hello"))
	require.Equal(t, "hello", ctl(0, "get", "/coordctl"))
	ctl(3, "get", "/missing")
	ctl(4, "create", "/coordctl")

	// A backup of the running cluster seeds a new one-node cluster (node 1
	// of the config example on a data directory coordctl restored).
	file := filepath.Join(t.TempDir(), "backup")
	require.Regexp(t, `(?m)^voters\s+\[1 2 3\]$`, ctl(0, "backup", file))
	stopAll(t, ps)
	dir := filepath.Join(t.TempDir(), "restored")
	require.Regexp(t, `(?m)^znodes\s+\d+$`, ctl(0, "restore", "-data-dir", dir, "-id", "1", "-voters", "1", file))
	addr, err := loopback.FreeAddr()
	require.NoError(t, err)
	one := start(t, "coordctl restored node", filepath.Join(filepath.Dir(bin), "config"), "-id", "1", "-seeds", addr, "-data", dir)
	one.waitFor(t, regexp.MustCompile(`type key=value`), 1, joinBound)
	seeds = addr
	ctlVoters = "1"
	require.Equal(t, "hello", ctl(0, "get", "/coordctl"))
	one.stop(t)
}
