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
)

// runCoordctl: coordctl against a running 3-process cluster (the config
// example's nodes): it lists the voters, writes and reads a znode, and
// exits 3 for a missing one. (examples/coordctl's own tests cover every
// command against in-process clusters.)
func runCoordctl(t *testing.T, bin string) {
	ps := cluster(t, "coordctl cluster", filepath.Join(filepath.Dir(bin), "config"))
	for _, p := range ps {
		p.waitFor(t, regexp.MustCompile(`type key=value`), 1, joinBound)
	}
	seeds := regexp.MustCompile(`-seeds ([^ ]+)`).FindStringSubmatch(strings.Join(ps[0].cmd.Args, " "))[1]
	ctl := func(want int, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), stepBound)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(cmd.Environ(), "COORD_SEEDS="+seeds, "COORD_VOTERS=1,2,3")
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
	stopAll(t, ps)
}
