//go:build unix

// Package examples_test builds every example and runs it end to end: the
// multi-process ones as 3 processes on 127.0.0.1 with free ports, the
// others as one. Each run is bounded in time and checked on its output and
// exit code.
package examples_test

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/internal/loopback"
)

// runners runs each example; every directory under examples/ with a main
// package must have one.
var runners = map[string]func(t *testing.T, bin string){
	"config":     runConfig,
	"coordctl":   runCoordctl,
	"election":   runElection,
	"hello":      runHello,
	"lock":       runLock,
	"quickstart": runQuickstart,
	"registry":   runRegistry,
	"bench":      runBench,
}

// Bounds for a loaded 2-core machine; a healthy run takes a fraction.
const (
	joinBound = 30 * time.Second // 3 processes started until each has joined
	stepBound = 30 * time.Second // one more step of an example's story
	exitBound = 20 * time.Second // Ctrl-C until the process has exited
)

func TestExamples(t *testing.T) {
	names := exampleDirs(t)
	for _, name := range append([]string{"demo"}, names...) {
		assertPublicImports(t, name)
	}
	for _, name := range names {
		_, ok := runners[name]
		assert.True(t, ok, "examples/%s has no runner in examples_test.go", name)
	}
	bins := buildAll(t, names)
	for _, name := range names {
		run, ok := runners[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, bins[name])
		})
	}
}

// exampleDirs lists the directories of examples/ that hold a Go program
// (package main; demo is the multi-process examples' shared package).
func exampleDirs(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(e.Name(), "*.go"))
		for _, f := range files {
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
			require.NoError(t, err)
			if ast.Name.Name == "main" {
				names = append(names, e.Name())
				break
			}
		}
	}
	require.NotEmpty(t, names)
	return names
}

// assertPublicImports checks that an example imports no internal package:
// Go refuses those outside this module, so such an example cannot be copied.
func assertPublicImports(t *testing.T, name string) {
	files, err := filepath.Glob(filepath.Join(name, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			assert.False(t, strings.HasPrefix(path, "github.com/coord-dev/coord/") && slices.Contains(strings.Split(path, "/"), "internal"),
				"%s imports %s: examples must import only public packages", f, path)
		}
	}
}

// buildAll builds the examples with one go build, as a user's go run would.
func buildAll(t *testing.T, names []string) map[string]string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	// Without symbol tables and DWARF the five links take about half as long.
	args := []string{"build", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}
	bins := map[string]string{}
	for _, n := range names {
		args = append(args, "./"+n)
		bins[n] = filepath.Join(dir, n)
	}
	start := time.Now()
	out, err := exec.Command(goBin, args...).CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	t.Logf("built %d examples in %v", len(names), time.Since(start).Round(time.Millisecond))
	return bins
}

// proc is one running example process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncBuffer
	done  chan struct{} // closed once the process has exited
	err   error         // Wait's, valid after done
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs bin with args; the process is killed at the end of the test if
// it is still running, and its output logged if the test failed.
func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command(bin, args...))
}

// startCmd is start for a prepared command.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so the cleanup also kills what it started
	// (run.sh's nodes); and Wait does not wait for the output of such
	// orphans for ever.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the group: it and its children
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out)
		}
	})
	return p
}

// waitFor waits until the output matches re at least n times and returns
// the matches. It polls the output: the condition, not a sleep, decides.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp, n int, bound time.Duration) [][]string {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		m := re.FindAllStringSubmatch(p.out.String(), -1)
		if len(m) >= n {
			return m
		}
		select {
		case <-p.done:
			m = re.FindAllStringSubmatch(p.out.String(), -1)
			if len(m) >= n {
				return m
			}
			require.Failf(t, "exited early", "%s exited (%v) before printing %d lines matching %q", p.name, p.err, n, re)
		default:
		}
		require.True(t, time.Now().Before(deadline), "%s: no %d lines matching %q within %v", p.name, n, re, bound)
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAny waits until one of ps prints a line matching re and returns its
// index and the match.
func waitAny(t *testing.T, ps []*proc, re *regexp.Regexp, bound time.Duration) (int, []string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		for i, p := range ps {
			if m := re.FindStringSubmatch(p.out.String()); m != nil {
				return i, m
			}
		}
		require.True(t, time.Now().Before(deadline), "no process printed a line matching %q within %v", re, bound)
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGINT (Ctrl-C) and checks that the process exits with status 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	p.exit(t, exitBound)
}

// exit waits for the process to exit by itself and checks its status is 0.
func (p *proc) exit(t *testing.T, bound time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		require.NoError(t, p.err, "%s exit status", p.name)
	case <-time.After(bound):
		require.Failf(t, "no exit", "%s still running %v after it should have exited", p.name, bound)
	}
}

// freeSeeds returns three free 127.0.0.1 gossip addresses, comma-separated.
func freeSeeds(t *testing.T) string {
	var seeds []string
	for range 3 {
		addr, err := loopback.FreeAddr()
		require.NoError(t, err)
		seeds = append(seeds, addr)
	}
	return strings.Join(seeds, ",")
}

// cluster starts three processes of a multi-process example with -id 1..3
// and the same -seeds on free 127.0.0.1 ports.
func cluster(t *testing.T, name, bin string, args ...string) []*proc {
	seeds := freeSeeds(t)
	var ps []*proc
	for id := 1; id <= 3; id++ {
		a := append([]string{"-id", strconv.Itoa(id), "-seeds", seeds}, args...)
		ps = append(ps, start(t, fmt.Sprintf("%s node %d", name, id), bin, a...))
	}
	return ps
}

func stopAll(t *testing.T, ps []*proc) {
	t.Helper()
	for _, p := range ps {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	}
	for _, p := range ps {
		p.exit(t, exitBound)
	}
}

// runHello: the README's program. Each of the 3 nodes takes the lock once
// and makes its fenced write; the fencing tokens differ.
func runHello(t *testing.T, bin string) {
	ps := cluster(t, "hello", bin)
	held := regexp.MustCompile(`node (\d): held the lock, token (\d+), wrote: (true|false)`)
	tokens := map[string]bool{}
	for i, p := range ps {
		m := p.waitFor(t, held, 1, joinBound)[0]
		assert.Equal(t, strconv.Itoa(i+1), m[1])
		assert.Equal(t, "true", m[3], "node %d's fenced write", i+1)
		assert.False(t, tokens[m[2]], "token %s handed out twice", m[2])
		tokens[m[2]] = true
	}
	stopAll(t, ps)
}

// runLock: the lock passes between the 3 nodes; every increment of the
// shared counter is made by one holder, and fencing tokens grow with it.
func runLock(t *testing.T, bin string) {
	ps := cluster(t, "lock", bin)
	line := regexp.MustCompile(`node (\d): holds the lock, token (\d+): (?:counter (\d+) -> (\d+)|write refused: (.*))`)
	for _, p := range ps {
		p.waitFor(t, line, 1, joinBound) // every node has held the lock
	}
	stopAll(t, ps)

	type inc struct {
		node       string
		token, val int64
	}
	var incs []inc
	for _, p := range ps {
		for _, m := range line.FindAllStringSubmatch(p.out.String(), -1) {
			// A refused write is allowed (a holder whose session was
			// Suspended on a loaded machine), but never a lost update: the
			// holder reads the counter after the previous holder's write.
			assert.NotContains(t, m[5], "version", "%s: a holder read a stale counter: mutual exclusion broken", p.name)
			if m[3] == "" {
				continue
			}
			token, _ := strconv.ParseInt(m[2], 10, 64)
			from, _ := strconv.ParseInt(m[3], 10, 64)
			to, _ := strconv.ParseInt(m[4], 10, 64)
			require.Equal(t, from+1, to)
			incs = append(incs, inc{m[1], token, to})
		}
	}
	slices.SortFunc(incs, func(a, b inc) int { return int(a.val - b.val) })
	require.GreaterOrEqual(t, len(incs), 3)
	for i, c := range incs {
		assert.Equal(t, int64(i+1), c.val, "the counter's increments: each value once, none missing")
		if i > 0 {
			assert.Greater(t, c.token, incs[i-1].token, "fencing tokens grow with the holders' order")
		}
	}
}

// runQuickstart: the demo tells its whole story and exits 0 by itself.
func runQuickstart(t *testing.T, bin string) {
	p := start(t, "quickstart", bin, "-pace", "0")
	p.exit(t, 2*joinBound)
	out := p.out.String()
	for _, want := range []struct {
		re string
		n  int
	}{
		{`(?m)^    nodes 1, 2 and 3 joined in .*; voters \[1 2 3\]; node \d leads epoch \d+$`, 1},
		{`(?m)  node \d holds the lock, fencing token \d+$`, 3},
		{`(?m)  node 1 observes: node \d leads, token \d+$`, 3},
		{`(?m)  node \d's Config shows color=green`, 3},
		{`(?m)^    node 1's Group lists node-1, node-2, node-3$`, 1},
		{`(?m)  node 1's Group lists node-\d, node-\d$`, 1},
		{`(?m)  node \d leads epoch \d+ and writes succeed again: the fail-over took `, 1},
		{`nothing acknowledged was lost`, 1},
		{`registry entry is gone: its session expired`, 1},
	} {
		assert.Len(t, regexp.MustCompile(want.re).FindAllString(out, -1), want.n, "quickstart's output: %s", want.re)
	}
}

// runBench: one short write workload on one node prints its JSON result,
// and so does one on three node processes (-procs).
func runBench(t *testing.T, bin string) {
	p := start(t, "bench", bin, "-workload", "write", "-nodes", "1", "-clients", "2",
		"-duration", "300ms", "-warmup", "100ms", "-in-memory")
	p.exit(t, stepBound)
	assert.Regexp(t, `"workload":"write".*"errors":0`, p.out.String())
	// -procs: three node processes, a client on each, merged into one line.
	p = start(t, "bench", bin, "-workload", "write", "-nodes", "3", "-clients", "3", "-procs",
		"-duration", "300ms", "-warmup", "100ms", "-in-memory")
	p.exit(t, joinBound+stepBound)
	assert.Regexp(t, `"workload":"write","clients":3,.*"errors":0.*"processes":3`, p.out.String())
}

// runConfig: a change typed on node 2 reaches all three nodes, then a
// change typed on node 3 does too. A change refused on a loaded machine
// (its write's outcome unknown after a leader change) is typed again, as a
// user would.
func runConfig(t *testing.T, bin string) {
	ps := cluster(t, "config", bin)
	for _, p := range ps {
		p.waitFor(t, regexp.MustCompile(`type key=value`), 1, joinBound)
	}
	refused := regexp.MustCompile(`(?m)^node \d: not changed: `)
	for _, change := range []struct {
		node       int
		line, want string
	}{
		{2, "color=green", `settings color=green workers=0 \(set by node 2; version \d+\)`},
		{3, "workers=8", `settings color=green workers=8 \(set by node 3; version \d+\)`},
	} {
		typist, want := ps[change.node-1], regexp.MustCompile(change.want)
		for attempt := 1; ; attempt++ {
			before := len(refused.FindAllString(typist.out.String(), -1))
			_, err := io.WriteString(typist.stdin, change.line+"\n")
			require.NoError(t, err)
			deadline := time.Now().Add(stepBound)
			for !want.MatchString(typist.out.String()) && len(refused.FindAllString(typist.out.String(), -1)) == before {
				require.True(t, time.Now().Before(deadline), "%s: %q neither applied nor refused within %v", typist.name, change.line, stepBound)
				time.Sleep(20 * time.Millisecond)
			}
			if want.MatchString(typist.out.String()) {
				break
			}
			require.Less(t, attempt, 3, "%s: %q refused %d times", typist.name, change.line, attempt)
		}
		for _, p := range ps {
			p.waitFor(t, want, 1, stepBound)
		}
	}
	stopAll(t, ps)
}

// runRegistry: all three register and see each other; node 3 stops and
// nodes 1 and 2 see it leave.
func runRegistry(t *testing.T, bin string) {
	ps := cluster(t, "registry", bin)
	all := regexp.MustCompile(`members: node-1=10.0.0.1:8080, node-2=10.0.0.2:8080, node-3=10.0.0.3:8080`)
	for _, p := range ps {
		p.waitFor(t, all, 1, joinBound)
	}
	ps[2].stop(t)
	require.Regexp(t, `node 3: left the group \(ok\)`, ps[2].out.String())
	left := regexp.MustCompile(`node-3 left: members: node-1=10.0.0.1:8080, node-2=10.0.0.2:8080\n`)
	for _, p := range ps[:2] {
		p.waitFor(t, left, 1, stepBound)
	}
	stopAll(t, ps[:2])
}

// TestRunScript: examples/run.sh builds an example, starts its three nodes
// in one terminal and stops them all on Ctrl-C (SIGINT to the script).
func TestRunScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command("bash", "run.sh", "hello")
	cmd.Env = append(os.Environ(), "SEEDS="+freeSeeds(t))
	p := startCmd(t, "run.sh hello", cmd)
	held := regexp.MustCompile(`(?m)^node (\d): held the lock`)
	m := p.waitFor(t, held, 3, 2*joinBound) // the script's go build comes first
	var ids []string
	for _, x := range m {
		ids = append(ids, x[1])
	}
	slices.Sort(ids)
	require.Equal(t, []string{"1", "2", "3"}, ids)
	p.stop(t) // exit status 0: every node exited with 0
	assert.NotContains(t, p.out.String(), "exited with status")
}

// runElection: one node leads and works; kill -9 of its process makes
// another node lead (once the dead leader's session expired), and the
// survivors observe the new leader.
func runElection(t *testing.T, bin string) {
	ps := cluster(t, "election", bin)
	leads := regexp.MustCompile(`(?m)^node (\d): leads: doing the work$`)
	i, m := waitAny(t, ps, leads, joinBound)
	ps[i].waitFor(t, regexp.MustCompile(`(?m)^node \d: work item 1 done$`), 1, stepBound)
	require.NoError(t, ps[i].cmd.Process.Kill())
	killed := time.Now()
	t.Logf("killed node %s, the leader", m[1])

	survivors := slices.Delete(slices.Clone(ps), i, i+1)
	j, m2 := waitAny(t, survivors, leads, stepBound)
	require.NotEqual(t, m[1], m2[1])
	t.Logf("node %s leads %v after the kill (the dead leader's session timeout is 2s)", m2[1], time.Since(killed).Round(time.Millisecond))
	survivors[j].waitFor(t, regexp.MustCompile(`(?m)^node \d: work item 1 done$`), 1, stepBound)
	observed := regexp.MustCompile(`(?m)^node \d: observes: node-` + m2[1] + ` leads \(token \d+\)$`)
	for _, p := range survivors {
		p.waitFor(t, observed, 1, stepBound)
	}
	stopAll(t, survivors)
}
