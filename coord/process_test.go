// Real-process tests: coord nodes run as separate OS processes on
// 127.0.0.1 with their own DataDirs, and are killed with SIGKILL.
//
// The test binary re-executes itself (TestProcessChild, selected by the
// COORD_PROC_CHILD=1 environment variable) to run one node per process. A
// child joins with LocalConfig on the gossip and replication ports the
// parent chose, then two goroutines create persistent sequential znodes
// under /w, one at a time each. The child reports on stdout, one line (one
// write) each: every attempt (TRY) before it is made, every acknowledged
// write (ACK, with its path and czxid) and every leader change (LEADER). On stdin it takes "stop" (end
// the writes), "dump" (Sync, then print every znode under /w) and "exit"
// (Close and exit); it exits when stdin closes, so a dying parent leaves no
// orphans behind.
//
// TestProcessFailover (issue 5) kills the leader and measures how long the
// survivors take to acknowledge writes again; TestProcessCrashRecovery
// (issue 4) kills one node, the leader, two nodes or all three at random
// moments (sometimes again while they recover), restarts them on the same
// ports and DataDirs, and checks that every acknowledged write survives on
// every node, in order, and that nothing appears that no writer attempted.
//
// Both run with the race detector when the parent does (the child is the
// same binary). Under -race a restarted node needs seconds to join (see
// the round lines in -v output), so the default crash run does few rounds;
// soaks are best run without -race. COORD_PROC_LOG=debug sets the
// children's log level (default warn) and COORD_PROC_LOGDIR=dir keeps their
// logs in dir; otherwise the tail of each log is shown when a test fails.
//
// Flags, given after -args, e.g. a soak of 200 rounds:
//
//	go test -run '^TestProcessCrashRecovery$' -v -timeout 30m ./coord/ -args -coord.crashrounds=200
//
//	-coord.crashrounds=N  kill/restart rounds of TestProcessCrashRecovery;
//	                      default 8, no new round after 25s so CI stays
//	                      bounded; with the flag set there is no time cut
//	                      (give go test a long enough -timeout).
//	-coord.crashseed=S    seed of the kill schedule; default time-based. The
//	                      seed and a replay command are printed on failure.
package coord_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/loopback"
)

// procSnapshotEvery is small so that the crash test's nodes snapshot,
// purge their logs and send SNAPs to restarted peers on real disks.
const procSnapshotEvery = 64

var (
	crashRounds = flag.Int("coord.crashrounds", 0, "kill/restart rounds of TestProcessCrashRecovery (0: default 8, time-bounded)")
	crashSeed   = flag.Int64("coord.crashseed", 0, "seed of TestProcessCrashRecovery's kill schedule (0: time-based)")
)

const (
	procEnvChild   = "COORD_PROC_CHILD"
	procEnvID      = "COORD_PROC_ID"
	procEnvSeeds   = "COORD_PROC_SEEDS"
	procEnvRepl    = "COORD_PROC_REPL"
	procEnvDir     = "COORD_PROC_DIR"
	procEnvWriter  = "COORD_PROC_WRITER"
	procEnvWriters = "COORD_PROC_WRITERS"
	// procEnvProfile, if set, is a directory: the child writes its CPU
	// profile there as node-<id>.pprof, from its start to its end (or
	// "profileend").
	procEnvProfile = "COORD_PROC_CPUPROFILE"

	// procWriters is how many goroutines of each child write concurrently
	// (so that appends are group-committed), each one write at a time.
	procWriters = 2

	procParent = "/w"
	procPrefix = "/w/n-"
)

// ---------------------------------------------------------------------------
// Child side.

// TestProcessChild is one coord node in a child process. Without
// COORD_PROC_CHILD=1 it does nothing.
func TestProcessChild(t *testing.T) {
	if os.Getenv(procEnvChild) != "1" {
		return
	}
	if err := runProcChild(); err != nil {
		fmt.Fprintln(os.Stderr, "process child:", err)
		t.Fatal(err)
	}
}

// procOut writes whole lines to stdout, one write each.
type procOut struct{ mu sync.Mutex }

func (o *procOut) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...) + "\n"
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.WriteString(s)
}

func runProcChild() error {
	id, err := strconv.ParseUint(os.Getenv(procEnvID), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", procEnvID, err)
	}
	writer := os.Getenv(procEnvWriter)
	cfg, err := childConfig(id, "proctest", strings.Split(os.Getenv(procEnvSeeds), ","), os.Getenv(procEnvDir),
		30*time.Second)
	if err != nil {
		return err
	}
	cfg.ReplicationBindAddr = os.Getenv(procEnvRepl)
	if err := procAutopilotEnv(&cfg); err != nil {
		return err
	}
	if err := procVotersEnv(&cfg); err != nil {
		return err
	}

	out := &procOut{}
	// A CPU profile from the start (procEnvProfile), or later from the
	// "profile" command, until "profileend" or the end.
	var profile *os.File
	startProfile := func(name string) {
		if f, err := os.Create(name + ".part"); err != nil {
			fmt.Fprintf(os.Stderr, "process child: profile: %v\n", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "process child: profile: %v\n", err)
			f.Close()
		} else {
			profile = f
		}
	}
	endProfile := func() {
		if profile != nil {
			pprof.StopCPUProfile()
			if err := profile.Close(); err == nil {
				name := strings.TrimSuffix(profile.Name(), ".part")
				_ = os.Rename(profile.Name(), name)
			}
			profile = nil
		}
	}
	defer endProfile()
	if d := os.Getenv(procEnvProfile); d != "" {
		startProfile(filepath.Join(d, fmt.Sprintf("node-%d.pprof", id)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// SIGTERM closes the node, as a Kubernetes pod's termination would.
	cancelOnSIGTERM(ctx, cancel)

	// Commands from the parent; EOF (the parent is gone or done) ends the
	// child, with a hard exit if a clean Close hangs.
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case cmds <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
		cancel()
		time.AfterFunc(15*time.Second, func() {
			fmt.Fprintln(os.Stderr, "process child: stdin closed and Close hangs; exiting")
			os.Exit(3)
		})
	}()

	node, err := coord.JoinContext(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // told to go away while joining
		}
		return fmt.Errorf("join: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		node.Close(cctx)
	}()
	out.line("READY %d", time.Now().UnixNano())

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // leader changes
		defer wg.Done()
		var lastID uint64
		var lastEpoch uint32
		var lastVoters []uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if id, epoch := node.Leader(); id != lastID || epoch != lastEpoch {
				lastID, lastEpoch = id, epoch
				out.line("LEADER %d %d %d", id, epoch, time.Now().UnixNano())
			}
			if vs := node.Voters(); !slices.Equal(vs, lastVoters) {
				lastVoters = vs
				out.line("VOTERS %s %d", procIDs(vs), time.Now().UnixNano())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	stop := make(chan struct{})
	writerDone := make(chan struct{})
	writers, _ := strconv.Atoi(os.Getenv(procEnvWriters))
	var wwg sync.WaitGroup
	for k := range max(writers, 1) {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			procWrite(ctx, node, fmt.Sprintf("%s.%d", writer, k), out, stop)
		}()
	}
	go func() {
		wwg.Wait()
		close(writerDone)
	}()
	stopWriter := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-writerDone
	}
	defer wg.Wait()
	defer cancel()
	for {
		var cmd string
		select {
		case <-ctx.Done():
			stopWriter()
			return nil
		case cmd = <-cmds:
		}
		var fillArg string
		if name, arg, ok := strings.Cut(cmd, " "); ok {
			cmd, fillArg = name, arg
		}
		switch cmd {
		case "stop":
			stopWriter()
			out.line("STOPPED")
		case "dump":
			procDump(ctx, node, out)
		case "fill":
			procFill(ctx, node, out, fillArg)
		case "profile":
			// A CPU profile of this child into the file fillArg names
			// (written as .part, renamed when complete), until
			// "profileend" (-coord.observers.cpuprofile).
			if profile == nil {
				startProfile(fillArg)
			}
		case "profileend":
			endProfile()
		case "exit":
			cancel()
			stopWriter()
			return nil
		default:
			fmt.Fprintf(os.Stderr, "process child: unknown command %q\n", cmd)
		}
	}
}

// procWrite creates sequential znodes one at a time until stop or ctx ends.
// Each attempt has unique data "<writer>.<n>"; TRY is printed before the
// attempt, ACK only after the create returned success.
func procWrite(ctx context.Context, node *coord.Node, writer string, out *procOut, stop <-chan struct{}) {
	sess, err := node.DefaultSession(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "process child: default session: %v\n", err)
		return
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		case <-ctx.Done():
			return true
		default:
			return false
		}
	}
	pause := func(d time.Duration) {
		select {
		case <-stop:
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	// A Lost session refuses writes for ever: take a new one.
	renew := func(err error) {
		if errors.Is(err, coord.ErrSessionExpired) || errors.Is(err, coord.ErrClosed) {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if s, err := node.Session(sctx, coord.SessionOptions{}); err == nil {
				sess = s
			}
		}
	}
	for !stopped() {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := sess.Create(wctx, procParent, nil, coord.Persistent)
		cancel()
		if err == nil || errors.Is(err, coord.ErrNodeExists) {
			break
		}
		renew(err)
		pause(20 * time.Millisecond)
	}
	for n := 0; !stopped(); n++ {
		data := fmt.Sprintf("%s.%d", writer, n)
		out.line("TRY %s %d", data, time.Now().UnixNano())
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		path, err := sess.Create(wctx, procPrefix, []byte(data), coord.PersistentSequential)
		var st coord.Stat
		if err == nil {
			// Read-your-writes: the local tree has applied the create.
			var ok bool
			st, ok, err = sess.Exists(wctx, path)
			if err == nil && !ok {
				err = fmt.Errorf("acknowledged %s is missing locally", path)
			}
		}
		cancel()
		if err != nil {
			out.line("FAIL %s %d %v", data, time.Now().UnixNano(), err)
			renew(err)
			pause(20 * time.Millisecond)
			continue
		}
		out.line("ACK %s %s %d %d", data, path, st.Czxid, time.Now().UnixNano())
		pause(2 * time.Millisecond)
	}
}

// procDump prints every znode under /w after a Sync: DUMP, NODE lines,
// DUMPEND; or DUMPERR.
func procDump(ctx context.Context, node *coord.Node, out *procOut) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// A fresh session: the default one may have expired while this node was
	// cut off from a quorum (the node does not renew it).
	var sess *coord.Session
	for {
		s, err := node.Session(dctx, coord.SessionOptions{})
		if err == nil {
			err = s.Sync(dctx)
			if err == nil {
				sess = s
				break
			}
			s.Close(dctx)
		}
		if dctx.Err() != nil {
			out.line("DUMPERR session+sync: %v", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer sess.Close(dctx)
	names, _, err := sess.Children(dctx, procParent)
	if errors.Is(err, coord.ErrNoNode) {
		names, err = nil, nil
	}
	if err != nil {
		out.line("DUMPERR children: %v", err)
		return
	}
	out.line("DUMP %d", len(names))
	for _, name := range names {
		data, st, err := sess.Get(dctx, procParent+"/"+name)
		if err != nil {
			out.line("DUMPERR get %s: %v", name, err)
			return
		}
		out.line("NODE %s %d %s", name, st.Czxid, data)
	}
	out.line("DUMPEND %d", len(names))
}

// ---------------------------------------------------------------------------
// Parent side.

type procTry struct {
	at   int64 // unix ns, child clock (same machine)
	node int
}

type procFail struct {
	data string
	at   int64 // unix ns, child clock
	node int
	err  string
}

type procAck struct {
	data  string
	path  string
	czxid int64
	at    int64
	node  int
}

type procLeader struct {
	node   int
	leader uint64
	epoch  uint32
	at     int64
}

type procZnode struct {
	name  string
	seq   int64
	czxid int64
	data  string
}

type procDumpResult struct {
	nodes []procZnode
	err   string
}

// procChild is one incarnation of a child process.
type procChild struct {
	child
	readDone chan struct{} // closed once stdout is drained
	dumps    chan procDumpResult

	// guarded by procCluster.mu
	ready   bool
	readyAt int64 // unix ns of the last READY
	stopped bool
	filled  bool
	leader  procLeader
	voters  string // as the last VOTERS line said: ids joined by ','
}

type procCluster struct {
	t      *testing.T
	n      int
	gossip []string
	repl   []string
	dirs   []string
	logs   []string

	mu      sync.Mutex
	procs   []*procChild // by id-1; nil while down
	incs    []int
	tries   map[string]procTry
	acks    []procAck
	ackOf   map[string]int // data -> index in acks
	fails   int
	failed  []procFail // each FAIL line: when, from where, why
	leaders []procLeader
	kills   int
	badLine []string

	// snapshotEvery overrides procSnapshotEvery for the children.
	snapshotEvery int
}

// procFreeAddrs returns n distinct loopback addresses whose ports are free
// for TCP and UDP right now (memberlist needs both on its port).
func procFreeAddrs(t *testing.T, n int, taken map[string]bool) []string {
	t.Helper()
	var out []string
	for tries := 0; len(out) < n && tries < 500; tries++ {
		addr, err := loopback.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if !taken[addr] {
			taken[addr] = true
			out = append(out, addr)
		}
	}
	if len(out) < n {
		t.Fatal("no free ports")
	}
	return out
}

func newProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	taken := map[string]bool{}
	c := &procCluster{
		t: t, n: n,
		gossip: procFreeAddrs(t, n, taken),
		repl:   procFreeAddrs(t, n, taken),
		procs:  make([]*procChild, n),
		incs:   make([]int, n),
		tries:  map[string]procTry{},
		ackOf:  map[string]int{},
	}
	base := t.TempDir()
	logBase := base
	if d := os.Getenv("COORD_PROC_LOGDIR"); d != "" {
		logBase = filepath.Join(d, t.Name())
		if err := os.MkdirAll(logBase, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		c.dirs = append(c.dirs, filepath.Join(base, fmt.Sprintf("data%d", i)))
		c.logs = append(c.logs, filepath.Join(logBase, fmt.Sprintf("node%d.log", i)))
	}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup kills and reaps every child still running, and on failure shows
// the end of each node's log.
func (c *procCluster) cleanup() {
	killChildren(c.t, takeChildren(&c.mu, c.procs))
	if c.t.Failed() {
		for i, f := range c.logs {
			c.t.Logf("--- node %d log (tail) ---\n%s", i+1, procTail(f, 40))
		}
	}
}

func (p *procChild) base() *child { return &p.child }

func procTail(file string, lines int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// start launches node id (a new incarnation) on its ports and DataDir.
func (c *procCluster) start(id int) *procChild {
	c.t.Helper()
	c.mu.Lock()
	if c.procs[id-1] != nil {
		c.mu.Unlock()
		c.t.Fatalf("node %d already running", id)
	}
	c.incs[id-1]++
	inc := c.incs[id-1]
	c.mu.Unlock()

	r, w, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	logf, err := os.OpenFile(c.logs[id-1], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== incarnation %d\n", inc)
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcessChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(),
		procEnvChild+"=1",
		fmt.Sprintf("%s=%d", procEnvID, id),
		procEnvSeeds+"="+strings.Join(c.gossip, ","),
		procEnvRepl+"="+c.repl[id-1],
		procEnvDir+"="+c.dirs[id-1],
		fmt.Sprintf("%s=w%d.%d", procEnvWriter, id, inc),
		fmt.Sprintf("%s=%d", procEnvWriters, procWriters),
		fmt.Sprintf("%s=%d", childSnapshotEnv, cmp.Or(c.snapshotEvery, procSnapshotEvery)),
	)
	cmd.Stdout = w
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	p := &procChild{child: child{id: id, inc: inc, cmd: cmd, stdin: stdin, done: make(chan struct{})},
		readDone: make(chan struct{}), dumps: make(chan procDumpResult, 1)}
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		logf.Close()
		c.t.Fatalf("start node %d: %v", id, err)
	}
	w.Close()
	logf.Close()
	c.mu.Lock()
	c.procs[id-1] = p
	c.mu.Unlock()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	go c.read(p, r)
	return p
}

// read parses a child's stdout until EOF.
func (c *procCluster) read(p *procChild, r *os.File) {
	defer close(p.readDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var dump []procZnode
	var dumping bool
	var result *procDumpResult
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		num := func(i int) int64 {
			if i >= len(f) {
				return -1
			}
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return -1
			}
			return v
		}
		c.mu.Lock()
		switch f[0] {
		case "READY":
			p.ready, p.readyAt = true, num(1)
		case "STOPPED":
			p.stopped = true
		case "FILLED":
			p.filled = true
		case "FILLERR":
			c.badLine = append(c.badLine, line)
		case "VOTERS":
			if len(f) == 3 {
				p.voters = f[1]
			}
		case "LEADER":
			l := procLeader{node: p.id, leader: uint64(num(1)), epoch: uint32(num(2)), at: num(3)}
			p.leader = l
			c.leaders = append(c.leaders, l)
		case "TRY":
			if len(f) == 3 {
				c.tries[f[1]] = procTry{at: num(2), node: p.id}
			} else {
				c.badLine = append(c.badLine, line)
			}
		case "ACK":
			if len(f) == 5 {
				a := procAck{data: f[1], path: f[2], czxid: num(3), at: num(4), node: p.id}
				if _, dup := c.ackOf[a.data]; dup {
					c.badLine = append(c.badLine, "duplicate "+line)
				} else {
					c.ackOf[a.data] = len(c.acks)
					c.acks = append(c.acks, a)
				}
			} else {
				c.badLine = append(c.badLine, line)
			}
		case "FAIL":
			c.fails++
			if len(f) >= 3 {
				c.failed = append(c.failed, procFail{data: f[1], at: num(2), node: p.id, err: strings.Join(f[3:], " ")})
			}
		case "DUMP":
			dumping, dump = true, nil
		case "NODE":
			if dumping && len(f) == 4 {
				dump = append(dump, procZnode{name: f[1], czxid: num(2), data: f[3]})
			} else {
				c.badLine = append(c.badLine, line)
			}
		case "DUMPEND":
			if dumping {
				dumping = false
				result = &procDumpResult{nodes: dump}
			}
		case "DUMPERR":
			dumping = false
			result = &procDumpResult{err: line}
		}
		c.mu.Unlock()
		if result != nil {
			p.dumps <- *result // the parent asks for one dump at a time
			result = nil
		}
	}
}

// live returns the ids of the running nodes.
func (c *procCluster) live() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int
	for i, p := range c.procs {
		if p != nil {
			ids = append(ids, i+1)
		}
	}
	return ids
}

func (c *procCluster) proc(id int) *procChild {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id-1]
}

// waitFor polls cond (called with c.mu held) until it holds or d passes.
func (c *procCluster) waitFor(d time.Duration, cond func() bool) bool {
	return waitLocked(&c.mu, d, 5*time.Millisecond, cond)
}

// waitReady waits until every given node has joined; a child that dies
// first fails the test.
func (c *procCluster) waitReady(d time.Duration, ids ...int) {
	c.t.Helper()
	ok := c.waitFor(d, func() bool {
		for _, id := range ids {
			p := c.procs[id-1]
			if p == nil || !p.ready {
				return false
			}
		}
		return true
	})
	if !ok {
		for _, id := range ids {
			if p := c.proc(id); p != nil {
				select {
				case <-p.done:
					c.t.Errorf("node %d exited before joining: %v", id, p.cmd.ProcessState)
				default:
				}
			}
		}
		var missing []int
		c.mu.Lock()
		for _, id := range ids {
			if p := c.procs[id-1]; p == nil || !p.ready {
				missing = append(missing, id)
			}
		}
		c.mu.Unlock()
		c.t.Fatalf("nodes %v not all joined within %v: %v did not", ids, d, missing)
	}
}

// leader waits until every running node follows the same leader and returns it.
func (c *procCluster) leader(d time.Duration) uint64 {
	c.t.Helper()
	var id uint64
	ok := c.waitFor(d, func() bool {
		id = 0
		for _, p := range c.procs {
			if p == nil {
				continue
			}
			if p.leader.leader == 0 || id != 0 && p.leader.leader != id {
				return false
			}
			id = p.leader.leader
		}
		return id != 0
	})
	if !ok {
		c.t.Fatalf("no common leader within %v", d)
	}
	return id
}

// kill SIGKILLs the given nodes at once and reaps them.
func (c *procCluster) kill(ids ...int) time.Time {
	c.t.Helper()
	var ps []*procChild
	c.mu.Lock()
	for _, id := range ids {
		if p := c.procs[id-1]; p != nil {
			ps = append(ps, p)
			c.procs[id-1] = nil
		}
	}
	c.mu.Unlock()
	at := time.Now()
	for _, p := range ps {
		if err := p.cmd.Process.Kill(); err != nil {
			c.t.Errorf("kill node %d: %v", p.id, err)
		}
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("node %d not reaped 10s after SIGKILL", p.id)
		}
		select {
		case <-p.readDone:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("node %d stdout not closed 10s after SIGKILL", p.id)
		}
	}
	c.mu.Lock()
	c.kills += len(ps)
	c.mu.Unlock()
	return at
}

func (c *procCluster) send(p *procChild, cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		c.t.Fatalf("node %d: %s: %v", p.id, cmd, err)
	}
}

// acksSince counts acknowledged writes attempted after at.
func (c *procCluster) acksSince(at time.Time) int {
	n := 0
	for i := len(c.acks) - 1; i >= 0; i-- {
		if tr, ok := c.tries[c.acks[i].data]; ok && tr.at > at.UnixNano() {
			n++
		}
	}
	return n
}

// longestGap returns the longest time without an acknowledged write, on
// any node, from since until now.
func (c *procCluster) longestGap(since time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at []int64
	for _, a := range c.acks {
		if a.at >= since.UnixNano() {
			at = append(at, a.at)
		}
	}
	slices.Sort(at)
	prev, gap := since.UnixNano(), int64(0)
	for _, t := range append(at, time.Now().UnixNano()) {
		gap = max(gap, t-prev)
		prev = t
	}
	return time.Duration(gap)
}

// stopAll ends the writes on every running node.
func (c *procCluster) stopAll() {
	c.t.Helper()
	for _, id := range c.live() {
		c.send(c.proc(id), "stop")
	}
	if !c.waitFor(15*time.Second, func() bool {
		for _, p := range c.procs {
			if p != nil && !p.stopped {
				return false
			}
		}
		return true
	}) {
		c.t.Fatal("writers did not stop within 15s")
	}
}

// dumpAll reads /w on every running node, until all agree (in-flight writes of
// killed nodes may still be settling) or attempts run out.
func (c *procCluster) dumpAll() []procZnode {
	c.t.Helper()
	var dumps [][]procZnode
	ids := c.live()
	for attempt := 0; attempt < 10; attempt++ {
		dumps = dumps[:0]
		for _, id := range ids {
			p := c.proc(id)
			c.send(p, "dump")
			select {
			case d := <-p.dumps:
				if d.err != "" {
					c.t.Fatalf("node %d: %s", id, d.err)
				}
				dumps = append(dumps, d.nodes)
			case <-time.After(30 * time.Second):
				c.t.Fatalf("node %d: no dump within 30s", id)
			}
		}
		same := true
		for _, d := range dumps[1:] {
			same = same && slices.Equal(d, dumps[0])
		}
		if same {
			return dumps[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, d := range dumps {
		c.t.Errorf("node %d: %d znodes", ids[i], len(d))
	}
	for i := 0; ; i++ {
		var row []procZnode
		for _, d := range dumps {
			if i < len(d) {
				row = append(row, d[i])
			}
		}
		if len(row) == 0 {
			break
		}
		for _, z := range row[1:] {
			if z != row[0] || len(row) != len(dumps) {
				c.t.Fatalf("nodes disagree from index %d: %v", i, row)
			}
		}
	}
	c.t.Fatal("nodes disagree")
	return nil
}

// exitAll closes every node cleanly and checks that each child exits 0.
func (c *procCluster) exitAll() {
	c.t.Helper()
	cs := takeChildren(&c.mu, c.procs)
	for _, p := range cs {
		io.WriteString(p.stdin, "exit\n")
	}
	awaitExit(c.t, cs, `"exit"`, true)
}

// checkLogs fails the test on a data race or panic reported by a child.
func (c *procCluster) checkLogs() {
	c.t.Helper()
	checkChildLogs(c.t, c.logs, "")
}

// check verifies the final tree (the same on every node) against what the
// writers attempted and what was acknowledged:
//   - every znode's data was attempted by some writer, and at most once;
//   - every acknowledged write is there, at its acknowledged path and zxid;
//   - sequence numbers increase with czxid (the order of the log);
//   - a write attempted after another was acknowledged got a higher
//     sequence number (real-time order; per writer, acknowledgement order).
//
// It returns how many acknowledged writes it checked.
func (c *procCluster) check(tree []procZnode) int {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.badLine {
		c.t.Errorf("bad line from a child: %q", l)
	}
	byData := map[string]*procZnode{}
	for i := range tree {
		z := &tree[i]
		if !strings.HasPrefix(z.name, "n-") {
			c.t.Errorf("unexpected znode /w/%s", z.name)
			continue
		}
		seq, err := strconv.ParseInt(strings.TrimPrefix(z.name, "n-"), 10, 64)
		if err != nil {
			c.t.Errorf("znode /w/%s: bad sequence suffix", z.name)
			continue
		}
		z.seq = seq
		if _, ok := c.tries[z.data]; !ok {
			c.t.Errorf("znode /w/%s holds %q, which no writer attempted", z.name, z.data)
		}
		if prev, dup := byData[z.data]; dup {
			c.t.Errorf("write %q created twice: /w/%s and /w/%s", z.data, prev.name, z.name)
		}
		byData[z.data] = z
	}
	byZxid := slices.Clone(tree)
	sort.Slice(byZxid, func(i, j int) bool { return byZxid[i].czxid < byZxid[j].czxid })
	for i := 1; i < len(byZxid); i++ {
		a, b := byZxid[i-1], byZxid[i]
		if a.czxid == b.czxid || a.seq >= b.seq {
			c.t.Errorf("log order broken: /w/%s (czxid %#x) before /w/%s (czxid %#x)", a.name, a.czxid, b.name, b.czxid)
		}
	}
	for _, a := range c.acks {
		z := byData[a.data]
		switch {
		case z == nil:
			c.t.Errorf("acknowledged write %q (%s, czxid %#x, by node %d) is lost", a.data, a.path, a.czxid, a.node)
		case procParent+"/"+z.name != a.path || z.czxid != a.czxid:
			c.t.Errorf("acknowledged write %q at %s czxid %#x is now at /w/%s czxid %#x", a.data, a.path, a.czxid, z.name, z.czxid)
		}
	}
	// Real-time order: acks sorted by time, with the running maximum of
	// their sequence numbers; a write attempted later must exceed it.
	acks := slices.Clone(c.acks)
	sort.Slice(acks, func(i, j int) bool { return acks[i].at < acks[j].at })
	maxSeq := make([]int64, len(acks))
	maxData := make([]string, len(acks))
	for i, a := range acks {
		maxSeq[i], maxData[i] = -1, ""
		if i > 0 {
			maxSeq[i], maxData[i] = maxSeq[i-1], maxData[i-1]
		}
		if z := byData[a.data]; z != nil && z.seq > maxSeq[i] {
			maxSeq[i], maxData[i] = z.seq, a.data
		}
	}
	const margin = int64(time.Millisecond) // clock reads in different processes
	for _, z := range tree {
		tr, ok := c.tries[z.data]
		if !ok {
			continue
		}
		k := sort.Search(len(acks), func(i int) bool { return acks[i].at >= tr.at-margin })
		if k > 0 && maxSeq[k-1] >= z.seq {
			c.t.Errorf("write %q (/w/%s) attempted after %q was acknowledged, yet has a lower sequence number", z.data, z.name, maxData[k-1])
		}
	}
	// Per writer, in acknowledgement order.
	last := map[string]int64{}
	for _, a := range c.acks { // in arrival order per child, i.e. ack order per writer
		w := a.data[:strings.LastIndexByte(a.data, '.')]
		if z := byData[a.data]; z != nil {
			if prev, ok := last[w]; ok && z.seq <= prev {
				c.t.Errorf("writer %s: %q acknowledged later got a lower sequence number", w, a.data)
			}
			last[w] = z.seq
		}
	}
	return len(c.acks)
}

// ---------------------------------------------------------------------------
// Tests.

// TestProcessFailover starts 3 nodes as separate processes, SIGKILLs the
// leader under write load and measures how long the survivors take to
// acknowledge writes again; no write acknowledged before the kill may be
// lost on the survivors. (Restarts are TestProcessCrashRecovery's.)
func TestProcessFailover(t *testing.T) {
	c := newProcCluster(t, 3)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitReady(45*time.Second, 1, 2, 3)
	leader := c.leader(15 * time.Second)
	before := time.Now()
	if !c.waitFor(15*time.Second, func() bool { return c.acksSince(before) >= 50 }) {
		t.Fatal("fewer than 50 writes acknowledged in 15s before the kill")
	}
	c.mu.Lock()
	var oldEpoch uint32
	for _, p := range c.procs {
		oldEpoch = max(oldEpoch, p.leader.epoch)
	}
	c.mu.Unlock()

	killedAt := c.kill(int(leader))
	c.mu.Lock()
	seen := len(c.acks) // later acks are not yet in a new epoch
	c.mu.Unlock()

	// Fail-over: the first write acknowledged by a survivor in a newer epoch
	// (a write the old leader committed just before dying does not count).
	var resumed, elected time.Duration
	ok := c.waitFor(15*time.Second, func() bool {
		for _, l := range c.leaders {
			if elected == 0 && l.node != int(leader) && l.leader != 0 && l.leader != leader && l.at > killedAt.UnixNano() {
				elected = time.Duration(l.at - killedAt.UnixNano())
			}
		}
		for _, a := range c.acks[seen:] {
			if uint32(uint64(a.czxid)>>32) > oldEpoch {
				resumed = time.Duration(a.at - killedAt.UnixNano())
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no write acknowledged in a new epoch within 15s of killing leader %d", leader)
	}
	t.Logf("leader %d (epoch %d) SIGKILLed: new leader seen after %v, writes acknowledged again after %v",
		leader, oldEpoch, elected.Round(time.Millisecond), resumed.Round(time.Millisecond))
	if resumed > 5*time.Second {
		t.Errorf("fail-over took %v, want under 5s", resumed)
	}

	// Let the survivors write on in the new epoch, then check them: every
	// write acknowledged before the kill (and after it) must be there.
	time.Sleep(300 * time.Millisecond)
	c.stopAll()
	tree := c.dumpAll()
	checked := c.check(tree)
	c.exitAll()
	c.checkLogs()
	c.mu.Lock()
	ackedBefore := 0
	for _, a := range c.acks {
		if a.at < killedAt.UnixNano() {
			ackedBefore++
		}
	}
	t.Logf("%d writes attempted, %d acknowledged (%d before the kill) and checked on both survivors, %d failed; %d znodes",
		len(c.tries), checked, ackedBefore, c.fails, len(tree))
	c.mu.Unlock()
}

// TestProcessCrashRecovery runs 3 nodes as processes with DataDirs under
// write load and SIGKILLs one, two or all of them (sometimes the leader) at
// random moments, restarting them on the same ports and DataDirs; one round
// in five kills the restarted nodes again while they recover or join. At the
// end every acknowledged write must be on every node, in order, and no
// znode may hold data no writer attempted. See the flags at the top.
func TestProcessCrashRecovery(t *testing.T) {
	rounds, budget := *crashRounds, time.Duration(0)
	if rounds <= 0 {
		rounds, budget = 8, 25*time.Second
	}
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d; replay: go test -race -run '^TestProcessCrashRecovery$' ./coord/ -args -coord.crashseed=%d -coord.crashrounds=%d",
				seed, seed, rounds)
		}
	})
	rng := rand.New(rand.NewSource(seed))
	c := newProcCluster(t, 3)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	c.waitReady(45*time.Second, 1, 2, 3)
	start := time.Now()
	done := 0
	kinds := map[string]int{} // kills by kind: one, leader, two, all
	for round := 0; round < rounds; round++ {
		if budget > 0 && time.Since(start) > budget {
			t.Logf("time budget %v used up after %d rounds", budget, round)
			break
		}
		time.Sleep(time.Duration(150+rng.Intn(850)) * time.Millisecond)
		var victims []int
		var kind string
		switch r := rng.Float64(); {
		case r < 0.15:
			kind, victims = "all", []int{1, 2, 3}
		case r < 0.30:
			kind = "two"
			victims = rng.Perm(3)[:2]
			for i := range victims {
				victims[i]++
			}
		case r < 0.65:
			kind = "leader"
			c.mu.Lock()
			for _, p := range c.procs {
				if p != nil && p.leader.leader != 0 {
					victims = []int{int(p.leader.leader)}
					break
				}
			}
			c.mu.Unlock()
			if len(victims) == 0 {
				victims = []int{1 + rng.Intn(3)}
			}
		default:
			kind, victims = "one", []int{1 + rng.Intn(3)}
		}
		kinds[kind]++
		killedAt := c.kill(victims...)
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		restarted := time.Now()
		for _, id := range victims {
			c.start(id)
		}
		if rng.Float64() < 0.2 {
			// Again while recovering or joining, then for good.
			kinds["again"]++
			time.Sleep(time.Duration(rng.Intn(1000)) * time.Millisecond)
			c.kill(victims...)
			time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond)
			restarted = time.Now()
			for _, id := range victims {
				c.start(id)
			}
		}
		c.waitReady(90*time.Second, victims...) // a restart under -race spends seconds scanning the preallocated log
		joined := time.Since(restarted)
		if !c.waitFor(30*time.Second, func() bool { return c.acksSince(restarted) > 0 }) {
			t.Fatalf("round %d (%s %v): no write acknowledged within 30s of the restart", round, kind, victims)
		}
		t.Logf("round %d: SIGKILLed %s %v, restarted %v later, joined after %v; longest time without an acknowledged write %v",
			round, kind, victims, restarted.Sub(killedAt).Round(time.Millisecond),
			joined.Round(time.Millisecond), c.longestGap(killedAt).Round(time.Millisecond))
		done++
	}
	c.stopAll()
	tree := c.dumpAll()
	checked := c.check(tree)
	c.exitAll()
	c.checkLogs()
	snaps := 0
	for _, d := range c.dirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "snap-*.snap"))
		n, _ := filepath.Glob(filepath.Join(d, "snap-*.snap"))
		snaps += len(m) + len(n)
	}
	if checked > 2*procSnapshotEvery && snaps == 0 {
		t.Errorf("%d writes with SnapshotEvery %d left no snapshot on any disk", checked, procSnapshotEvery)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("%d snapshot files on the disks at the end", snaps)
	t.Logf("seed %d: %d rounds in %v (kills of a random node %d, the leader %d, two nodes %d, all three %d; killed again while restarting %d), %d SIGKILLs; "+
		"%d writes attempted, %d acknowledged and checked on all 3 nodes, %d failed, %d znodes",
		seed, done, time.Since(start).Round(time.Millisecond), kinds["one"], kinds["leader"], kinds["two"], kinds["all"], kinds["again"],
		c.kills, len(c.tries), checked, c.fails, len(tree))
}
