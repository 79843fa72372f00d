package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/testcluster"
)

// TestMain runs the real main when the test binary is started as coordctl
// (by TestProcessExitCodes).
func TestMain(m *testing.M) {
	if os.Getenv("COORDCTL_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuf is a bytes.Buffer safe to read while a command writes it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctl runs coordctl with env (COORD_* variables) and args, bounded by
// 60 s, and returns its exit code and output.
type ctl struct {
	t   *testing.T
	env map[string]string
}

func (c ctl) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb syncBuf
	code := c.runTo(context.Background(), &out, &errb, args...)
	return code, out.String(), errb.String()
}

func (c ctl) runTo(ctx context.Context, out, errb *syncBuf, args ...string) int {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return c.env[k] }, strings.NewReader(""), out, errb)
	}()
	select {
	case code := <-done:
		return code
	case <-time.After(90 * time.Second):
		c.t.Fatalf("coordctl %v did not return; stderr: %s", args, errb.String())
		return -1
	}
}

// must runs a command that must succeed and returns its output.
func (c ctl) must(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	require.Equal(c.t, exitOK, code, "coordctl %v: stderr %s", args, errs)
	return out
}

// code runs a command that must fail with want.
func (c ctl) code(want int, args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	require.Equal(c.t, want, code, "coordctl %v: stdout %q stderr %q", args, out, errs)
	return errs
}

// cluster starts 3 voters and returns them with the environment that
// points coordctl at them.
func cluster(t *testing.T, name string) ([]*coord.Node, []coord.Config, ctl) {
	cfgs := testcluster.Configs(t, name, 3, false)
	nodes := testcluster.Join(t, cfgs...)
	return nodes, cfgs, ctl{t: t, env: map[string]string{
		"COORD_SEEDS":   strings.Join(cfgs[0].Seeds, ","),
		"COORD_VOTERS":  "1,2,3",
		"COORD_CLUSTER": name,
		"COORD_TIMEOUT": "30s",
	}}
}

// TestZnodeCommands runs the znode commands against a 3-node cluster and
// checks their output and exit codes.
func TestZnodeCommands(t *testing.T) {
	nodes, _, c := cluster(t, "ctl-znodes")

	require.Equal(t, "/app\n", c.must("create", "/app", "v1"))
	assert.Contains(t, c.code(exitExists, "create", "/app", "again"), "exists")
	require.Equal(t, "v1", c.must("get", "/app"))
	require.Equal(t, "version 1\n", c.must("set", "-version", "0", "/app", "v2"))
	c.code(exitVersion, "set", "-version", "0", "/app", "v3")
	require.Equal(t, "version 2\n", c.must("set", "/app", "v3"), "-version defaults to any")
	c.code(exitNoNode, "get", "/nope")
	c.code(exitNoNode, "stat", "/nope")
	c.code(exitNoNode, "ls", "/nope")

	require.Equal(t, "/app/c1\n", c.must("create", "/app/c1", "x"))
	seq := c.must("create", "-mode", "sequential", "/app/s-")
	require.Regexp(t, `^/app/s-\d{10}\n$`, seq)
	require.Equal(t, "c1\n"+strings.TrimPrefix(seq, "/app/"), c.must("ls", "/app"))
	tree := c.must("tree", "/app")
	require.Equal(t, "/app  (2 bytes)\n  c1  (1 bytes)\n  "+strings.TrimSpace(strings.TrimPrefix(seq, "/app/"))+"  (0 bytes)\n", tree)
	full := c.must("tree")
	require.True(t, strings.HasPrefix(full, "/  (0 bytes)\n  app  (2 bytes)\n"), full)

	stat := c.must("stat", "/app")
	require.Regexp(t, `(?m)^version\s+2$`, stat)
	require.Regexp(t, `(?m)^numChildren\s+2$`, stat)
	require.Regexp(t, `(?m)^dataLength\s+2$`, stat)
	require.Regexp(t, `(?m)^czxid\s+0x[0-9a-f]+$`, stat)

	c.code(exitNotEmpty, "delete", "/app")
	c.code(exitVersion, "delete", "-version", "7", "/app/c1")
	c.must("delete", "-r", "/app")
	c.code(exitNoNode, "get", "/app")
	c.code(exitNoNode, "delete", "/app")

	// The writes reached the cluster itself.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, nodes[0].Sync(ctx))
	_, ok, err := nodes[0].Exists(ctx, "/app")
	require.NoError(t, err)
	require.False(t, ok)

	// watch prints each change until -n events.
	var out, errb syncBuf
	done := make(chan int, 1)
	go func() { done <- c.runTo(context.Background(), &out, &errb, "watch", "-n", "3", "-r", "/w") }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "watching /w") {
		select {
		case code := <-done:
			t.Fatalf("watch ended with %d: %s", code, errb.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "watch did not start: %s", errb.String())
		time.Sleep(10 * time.Millisecond)
	}
	_, err = nodes[1].Create(ctx, "/w", nil, coord.Persistent)
	require.NoError(t, err)
	_, err = nodes[1].Create(ctx, "/w/x", []byte("1"), coord.Persistent)
	require.NoError(t, err)
	_, err = nodes[2].Set(ctx, "/w/x", []byte("2"), -1)
	require.NoError(t, err)
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, errb.String())
	case <-time.After(60 * time.Second):
		t.Fatal("watch did not end after 3 events")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, out.String())
	require.Regexp(t, `^NodeCreated\s+/w\s+0x[0-9a-f]+$`, lines[1])
	require.Regexp(t, `^NodeCreated\s+/w/x\s+0x[0-9a-f]+$`, lines[2])
	require.Regexp(t, `^NodeDataChanged\s+/w/x\s+0x[0-9a-f]+$`, lines[3])
}

// TestClusterCommands: members, leader, voters, stats, add-voter,
// remove-voter, backup and restore.
func TestClusterCommands(t *testing.T) {
	nodes, cfgs, c := cluster(t, "ctl-cluster")
	l := testcluster.Leader(t, nodes)
	leader := nodes[l].ID()
	lid := strconv.FormatUint(leader, 10)

	members := c.must("members")
	lines := strings.Split(strings.TrimSpace(members), "\n")
	require.Regexp(t, `^ID\s+ROLE\s+STATE\s+GOSSIP\s+REPLICATION\s+LEADER$`, lines[0])
	voterRows := 0
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if f[1] != "voter" {
			continue // earlier coordctl observers, left
		}
		voterRows++
		require.Equal(t, "alive", f[2], line)
		require.Equal(t, f[0] == lid, len(f) == 6 && f[5] == "*", line)
	}
	require.Equal(t, 3, voterRows, members)

	ld := c.must("leader")
	require.Regexp(t, `^ID\s+EPOCH\s+REPLICATION\n`+lid+`\s+\d+\s+127\.0\.0\.1:\d+\n$`, ld)

	voters := c.must("voters")
	require.Regexp(t, `^ID\s+STATE\s+LEADER\n1\s+alive\s*\S*\n2\s+alive\s*\S*\n3\s+alive\s*\S*\n$`, voters)

	stats := c.must("stats")
	require.Regexp(t, `(?m)^voters\s+\[1 2 3\]$`, stats)
	require.Regexp(t, `(?m)^leader\s+`+lid+`$`, stats)
	var st coord.Stats
	require.NoError(t, json.Unmarshal([]byte(c.must("stats", "-json")), &st))
	require.Equal(t, "OBSERVING", st.Role)
	require.Equal(t, []uint64{1, 2, 3}, st.Voters)

	// An observer becomes a voter and back.
	obs := testcluster.Join(t, testcluster.Observer(t, cfgs[0], 4))[0]
	require.Equal(t, "voters [1 2 3 4]\n", c.must("add-voter", "4"))
	require.Equal(t, []uint64{1, 2, 3, 4}, obs.Voters())
	require.Equal(t, "voters [1 2 3]\n", c.must("remove-voter", "4"))
	c.code(exitUsage, "add-voter", "four")
	c.code(exitUsage, "remove-voter", "1", "2")
	c.code(exitError, "add-voter", "99") // not a synced observer

	// backup writes a verified file; restore seeds a data directory.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := nodes[0].Create(ctx, "/b", []byte("kept"), coord.Persistent)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "coord.backup")
	out := c.must("backup", file)
	require.Regexp(t, `(?m)^zxid\s+0x[0-9a-f]+$`, out)
	require.Regexp(t, `(?m)^voters\s+\[1 2 3\]$`, out)
	require.Regexp(t, `(?m)^sha256\s+[0-9a-f]{64}$`, out)
	info, err := readInfo(file)
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.Znodes, 2)
	c.code(exitError, "backup", file) // never overwrites
	dir := filepath.Join(t.TempDir(), "restored")
	out = c.must("restore", "-data-dir", dir, "-id", "7", "-cluster", "ctl-restored", "-voters", "7", file)
	require.Regexp(t, `(?m)^znodes\s+\d+$`, out)
	c.code(exitError, "restore", "-data-dir", dir, "-id", "7", file) // not into a used directory
	c.code(exitUsage, "restore", file)
	bad := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a backup"), 0o600))
	c.code(exitError, "restore", "-data-dir", filepath.Join(t.TempDir(), "x"), "-id", "7", bad)

	// The restored directory starts a node of a new cluster holding /b.
	rc := coord.LocalConfig(7)
	rc.Cluster, rc.Voters, rc.DataDir = "ctl-restored", []uint64{7}, dir
	rn := testcluster.Join(t, rc)[0]
	data, _, err := rn.Get(ctx, "/b")
	require.NoError(t, err)
	require.Equal(t, "kept", string(data))
}

// TestUsageAndJoinErrors: usage mistakes exit 2 before joining anything;
// a cluster that cannot be joined exits 1 within the timeout.
func TestUsageAndJoinErrors(t *testing.T) {
	c := ctl{t: t, env: map[string]string{}}
	assert.Contains(t, c.code(exitUsage), "no command")
	assert.Contains(t, c.code(exitUsage, "frobnicate"), "unknown command")
	c.code(exitUsage, "-h")
	c.code(exitUsage, "ls")
	c.code(exitUsage, "get", "/a", "/b")
	c.code(exitUsage, "-nosuchflag", "ls", "/")
	assert.Contains(t, c.code(exitUsage, "ls", "/"), "-seeds")
	c.env["COORD_SEEDS"] = "127.0.0.1:1"
	assert.Contains(t, c.code(exitUsage, "ls", "/"), "-voters")
	c.env["COORD_TIMEOUT"] = "soon"
	c.code(exitUsage, "ls", "/")

	c.env["COORD_TIMEOUT"] = "30s"
	c.env["COORD_VOTERS"] = "1"
	c.env["COORD_KEY"] = "hex:zz"
	assert.Contains(t, c.code(exitUsage, "ls", "/"), "-key")

	// A cluster with a key: the same key in hex or base64 joins it.
	cfgs := testcluster.Configs(t, "ctl-key", 1, false)
	cfgs[0].SecretKey = []byte("0123456789abcdef0123456789abcdef")
	testcluster.Join(t, cfgs...)
	keyed := ctl{t: t, env: map[string]string{"COORD_SEEDS": cfgs[0].Seeds[0], "COORD_VOTERS": "1",
		"COORD_CLUSTER": "ctl-key", "COORD_KEY": "hex:" + hex.EncodeToString(cfgs[0].SecretKey)}}
	require.Equal(t, "", keyed.must("ls", "/"))
	keyed.env["COORD_KEY"] = "base64:" + base64.StdEncoding.EncodeToString(cfgs[0].SecretKey)
	require.Equal(t, "", keyed.must("ls", "/"))

	// A real cluster, the wrong key: joining fails, exit 1, in time.
	_, _, good := cluster(t, "ctl-errors")
	good.env["COORD_KEY"] = "a 32-byte key nobody else has..."
	good.env["COORD_TIMEOUT"] = "2s"
	start := time.Now()
	assert.Contains(t, good.code(exitError, "ls", "/"), "joining")
	require.Less(t, time.Since(start), 30*time.Second)
}

// TestProcessExitCodes runs coordctl as a process (this test binary in
// main mode) and checks the exit status the shell sees.
func TestProcessExitCodes(t *testing.T) {
	_, _, c := cluster(t, "ctl-process")
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"create", "/p", "data"}, exitOK, "/p\n"},
		{[]string{"get", "/p"}, exitOK, "data"},
		{[]string{"get", "/missing"}, exitNoNode, ""},
		{[]string{"create", "/p"}, exitExists, ""},
		{[]string{"ls"}, exitUsage, ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, exe, tc.args...)
		cmd.Env = append(os.Environ(), "COORDCTL_TEST_MAIN=1")
		for k, v := range c.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, tc.code, code, "coordctl %v: %s", tc.args, errb.String())
		if tc.out != "" {
			require.Equal(t, tc.out, out.String())
		}
	}
}
