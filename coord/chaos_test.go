// Real-process chaos test (issue 6): 3 and 5 coord nodes run as OS
// processes on 127.0.0.1 and every replication link between two of them
// goes through a fault proxy in the test process (internal/faultproxy):
// each node binds its zab/tcp listener on a port of its own and advertises,
// through its gossip metadata (Config.ReplicationAdvertiseAddr), a proxy
// listener that forwards to it. The proxy tells the dialer from its zab/tcp
// hello frame, so it knows every connection's two ends and can cut a pair,
// stall one direction or delay it. Gossip stays direct: nodes see each other
// alive while replication is cut, which is the harder case for zab.
//
// Clients in the test process send operations to the child nodes over the
// children's stdin/stdout (one JSON line each way; the pipes never go
// through the proxy) and record call and return times: creates, sets, CAS,
// deletes and Sync+get reads on a few keys (fresh keys every few seconds so
// that each key's history stays short), plus creates of unique znodes under
// /c. Meanwhile a seeded schedule SIGKILLs (and restarts) or SIGSTOPs (and
// continues) the leader or a random node, isolates, blackholes or delays a
// node's links, stalls them one way, or partitions the cluster, then heals.
// At the end everything is healed and the test checks:
//
//   - the history per key with porcupine, against internal/sim's model of
//     the znode operations (a write whose outcome is unknown, or whose node
//     died under it, is pending with return time infinity; a porcupine
//     Unknown verdict counts as a failure), including a final Sync+read of
//     every key on every node. A write that failed with any other error
//     (ErrNoQuorum, ErrSessionExpired, a context error before submission)
//     is left out as having had no effect, which holds coord to what its
//     errors promise: had it taken effect, the history would not
//     linearize;
//   - every acknowledged create under /c is on every node, and nothing is
//     there that no client attempted;
//   - every node holds the same /q and /c (data, versions, zxids);
//   - no child reported a data race, a panic or a fatal error;
//   - the recipes' workload that ran beside the clients
//     (chaos_recipes_test.go): the Lock's and the Semaphore's mutual
//     exclusion on fenced resources held by the test process (and that
//     coord never let a refused holder keep a valid lease), one leader per
//     token for the Election, and a Config that never goes back.
//
// The schedule's choices come from a seed (printed at the start and on
// failure); their timing is real time, so a replay makes the same choices
// but not the same interleaving. On failure the test prints the seed, the
// replay command, the fault log with timestamps, the porcupine
// visualisation path and the tail of every node's log.
//
//	go test -race ./coord -run 'TestChaos' -v                       # CI: both sizes, 12s of faults each, ~40s in all
//	go test ./coord -run 'TestChaos/nodes=5$' -v -timeout 60m -args -coord.chaos=10m   # a soak
//	go test -race ./coord -run 'TestChaos/nodes=3$' -v -args -coord.chaosseed=S        # replay a seed
//
// COORD_PROC_LOG and COORD_PROC_LOGDIR work as for the process tests.
// COORD_CHAOS_UNSAFE_READS=1 makes the children read without Sync, which
// the check must then reject: a test of the checker, not of coord.
package coord_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/faultproxy"
	"github.com/coord-dev/coord/internal/sim"
	"github.com/coord-dev/coord/zab/tcp"
)

var (
	chaosDuration = flag.Duration("coord.chaos", 0, "fault phase of each TestChaos run (0: the CI default, 12s)")
	chaosSeed     = flag.Int64("coord.chaosseed", 0, "seed of TestChaos's fault schedule (0: time-based)")
)

const (
	chaosEnvChild = "COORD_CHAOS_CHILD"
	chaosEnvID    = "COORD_CHAOS_ID"
	chaosEnvSeeds = "COORD_CHAOS_SEEDS"
	chaosEnvBind  = "COORD_CHAOS_BIND"
	chaosEnvAdv   = "COORD_CHAOS_ADV"
	chaosEnvDir   = "COORD_CHAOS_DIR"
	// chaosEnvUnsafeReads=1 makes the children read without Sync: the
	// history should then fail the check (the checker's self-test).
	chaosEnvUnsafeReads = "COORD_CHAOS_UNSAFE_READS"

	chaosDefault = 12 * time.Second
	// chaosOpTimeout bounds one operation in a child; the parent waits
	// longer (a SIGSTOPped child answers after SIGCONT) before it gives
	// the operation up as unknown.
	chaosOpTimeout   = 3 * time.Second
	chaosCallTimeout = 20 * time.Second
	// chaosSegment is how long a set of keys is used before fresh ones.
	chaosSegment = 4 * time.Second
	chaosKeys    = 3
	// chaosPending is the return time of an operation whose outcome is
	// unknown: after everything.
	chaosPending = int64(1) << 62
)

// ---------------------------------------------------------------------------
// Child side.

// TestChaosChild is one coord node of TestChaos in a child process. Without
// COORD_CHAOS_CHILD=1 it does nothing.
func TestChaosChild(t *testing.T) {
	if os.Getenv(chaosEnvChild) != "1" {
		return
	}
	if err := runChaosChild(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos child:", err)
		t.Fatal(err)
	}
}

// chaosReq is one operation or command from the parent.
type chaosReq struct {
	ID      int64  `json:"id"`
	Op      string `json:"op"` // create, set, delete, read, dump
	Client  string `json:"client,omitempty"`
	Path    string `json:"path,omitempty"`
	Data    string `json:"data,omitempty"`
	Version int32  `json:"version,omitempty"`
}

// chaosRes answers a chaosReq. Code is "ok", a znode error (NoNode,
// NodeExists, BadVersion, NotEmpty), "unknown" (ErrOutcomeUnknown) or
// "fail" (any other error: the operation certainly had no effect).
type chaosRes struct {
	ID      int64        `json:"id"`
	Code    string       `json:"code"`
	Err     string       `json:"err,omitempty"`
	Path    string       `json:"path,omitempty"`
	Data    string       `json:"data,omitempty"`
	Version int32        `json:"version,omitempty"`
	Zxid    int64        `json:"zxid,omitempty"`
	Nodes   []chaosZnode `json:"nodes,omitempty"` // dump
}

type chaosZnode struct {
	Path    string `json:"path"`
	Data    string `json:"data"`
	Version int32  `json:"version"`
	Czxid   int64  `json:"czxid"`
	Mzxid   int64  `json:"mzxid"`
}

type chaosChild struct {
	node *coord.Node
	out  *procOut
	rec  *chaosRec // the recipe workload (chaos_recipes_test.go)

	mu       sync.Mutex
	sessions map[string]*coord.Session
}

func runChaosChild() error {
	id, err := strconv.ParseUint(os.Getenv(chaosEnvID), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", chaosEnvID, err)
	}
	cfg, err := childConfig(id, "chaostest", strings.Split(os.Getenv(chaosEnvSeeds), ","), os.Getenv(chaosEnvDir),
		60*time.Second)
	if err != nil {
		return err
	}
	cfg.ReplicationBindAddr = os.Getenv(chaosEnvBind)
	// Peers dial the proxy, which forwards to ReplicationBindAddr.
	cfg.ReplicationAdvertiseAddr = os.Getenv(chaosEnvAdv)

	out := &procOut{}
	recSeed, _ := strconv.ParseInt(os.Getenv(chaosEnvRecSeed), 10, 64)
	rec := newChaosRec(out, fmt.Sprintf("n%d.%s", id, os.Getenv(chaosEnvInc)), recSeed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reqs := make(chan chaosReq)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r chaosReq
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fmt.Fprintf(os.Stderr, "chaos child: bad request %q: %v\n", sc.Text(), err)
				continue
			}
			if r.Op == "act" { // the answer to a recipe act
				rec.answer(r.ID, r.Data)
				continue
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
		// The parent is gone or done.
		cancel()
		time.AfterFunc(15*time.Second, func() {
			fmt.Fprintln(os.Stderr, "chaos child: stdin closed and Close hangs; exiting")
			os.Exit(3)
		})
	}()

	node, err := coord.JoinContext(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
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
	defer wg.Wait()
	defer rec.wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { // leader changes
		defer wg.Done()
		var lastID uint64
		var lastEpoch uint32
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if id, epoch := node.Leader(); id != lastID || epoch != lastEpoch {
				lastID, lastEpoch = id, epoch
				out.line("LEADER %d %d %d", id, epoch, time.Now().UnixNano())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	ch := &chaosChild{node: node, out: out, rec: rec, sessions: map[string]*coord.Session{}}
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-reqs:
			switch r.Op {
			case "recstart":
				rec.start(ctx, node)
				continue
			case "recstop":
				rec.stop()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := ch.do(ctx, r)
				res.ID = r.ID
				b, _ := json.Marshal(res)
				out.line("RES %s", b)
			}()
		}
	}
}

// session returns the client's session, opening one if it has none (or lost it).
func (ch *chaosChild) session(ctx context.Context, client string) (*coord.Session, error) {
	ch.mu.Lock()
	s := ch.sessions[client]
	ch.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := ch.node.Session(ctx, coord.SessionOptions{})
	if err != nil {
		return nil, err
	}
	ch.mu.Lock()
	ch.sessions[client] = s
	ch.mu.Unlock()
	return s, nil
}

func (ch *chaosChild) dropSession(client string, s *coord.Session) {
	ch.mu.Lock()
	if ch.sessions[client] == s {
		delete(ch.sessions, client)
	}
	ch.mu.Unlock()
	go s.Close(context.Background())
}

func (ch *chaosChild) do(ctx context.Context, r chaosReq) chaosRes {
	if r.Op == "dump" {
		return ch.dump(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, chaosOpTimeout)
	defer cancel()
	s, err := ch.session(ctx, r.Client)
	if err != nil {
		return chaosRes{Code: "fail", Err: "session: " + err.Error()}
	}
	var res chaosRes
	switch r.Op {
	case "create":
		res.Path, err = s.Create(ctx, r.Path, []byte(r.Data), coord.Persistent)
	case "set":
		var st coord.Stat
		st, err = s.Set(ctx, r.Path, []byte(r.Data), r.Version)
		res.Version, res.Zxid = st.Version, st.Mzxid
	case "delete":
		err = s.Delete(ctx, r.Path, r.Version)
	case "read":
		if os.Getenv(chaosEnvUnsafeReads) == "1" {
			err = nil // a self-check of the checker: local reads are not linearizable
		} else {
			err = s.Sync(ctx)
		}
		if err == nil {
			var data []byte
			var st coord.Stat
			data, st, err = s.Get(ctx, r.Path)
			res.Data, res.Version = string(data), st.Version
		}
	default:
		err = fmt.Errorf("unknown op %q", r.Op)
	}
	switch {
	case err == nil:
		res.Code = "ok"
	case errors.Is(err, coord.ErrOutcomeUnknown):
		res.Code = "unknown"
	case errors.Is(err, coord.ErrNoNode):
		res.Code = "NoNode"
	case errors.Is(err, coord.ErrNodeExists):
		res.Code = "NodeExists"
	case errors.Is(err, coord.ErrBadVersion):
		res.Code = "BadVersion"
	case errors.Is(err, coord.ErrNotEmpty):
		res.Code = "NotEmpty"
	default:
		res.Code = "fail"
	}
	if err != nil {
		res.Err = err.Error()
		res.Data, res.Version = "", 0
	}
	if errors.Is(err, coord.ErrSessionExpired) || errors.Is(err, coord.ErrClosed) {
		ch.dropSession(r.Client, s)
	}
	return res
}

// dump Syncs a fresh session and lists /q and /c with data and stats.
func (ch *chaosChild) dump(ctx context.Context) chaosRes {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var s *coord.Session
	var err error
	for s == nil {
		if s, err = ch.node.Session(ctx, coord.SessionOptions{}); err == nil {
			if err = s.Sync(ctx); err != nil {
				s.Close(ctx)
				s = nil
			}
		}
		if s == nil {
			if ctx.Err() != nil {
				return chaosRes{Code: "fail", Err: "session+sync: " + err.Error()}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer s.Close(context.Background())
	var res chaosRes
	for _, parent := range []string{"/q", "/c"} {
		names, _, err := s.Children(ctx, parent)
		if errors.Is(err, coord.ErrNoNode) {
			continue
		}
		if err != nil {
			return chaosRes{Code: "fail", Err: "children: " + err.Error()}
		}
		for _, name := range names {
			data, st, err := s.Get(ctx, parent+"/"+name)
			if err != nil {
				return chaosRes{Code: "fail", Err: "get: " + err.Error()}
			}
			res.Nodes = append(res.Nodes, chaosZnode{Path: parent + "/" + name, Data: string(data),
				Version: st.Version, Czxid: st.Czxid, Mzxid: st.Mzxid})
		}
	}
	res.Code = "ok"
	return res
}

// ---------------------------------------------------------------------------
// Parent side: processes and calls.

// chaosProc is one incarnation of a child.
type chaosProc struct {
	child
	wmu sync.Mutex // one line at a time on stdin

	// guarded by chaosCluster.mu
	ready   bool
	stopped bool // SIGSTOPped
	dead    bool // stdout closed: every pending call is answered "lost"
	leader  uint64
	epoch   uint32
	pending map[int64]chan chaosRes
}

type chaosCluster struct {
	t      *testing.T
	n      int
	t0     time.Time
	gossip []string
	bind   []string // the nodes' real replication addresses
	adv    []string // their proxy listeners, advertised
	dirs   []string
	logs   []string
	proxy  *faultproxy.Proxy
	// snapshotEvery, if set, is the nodes' SnapshotEvery: the 5-node run
	// takes snapshots and sends SNAPs on real disks under faults.
	snapshotEvery int
	seed          int64
	rec           *chaosRecipes  // the recipe workload's resources and reports
	readers       sync.WaitGroup // one per incarnation: reads its stdout

	mu      sync.Mutex
	procs   []*chaosProc
	incs    []int
	nextReq int64
	faults  []string         // the fault log
	leaders []chaosLeaderRep // leader changes as the nodes report them
}

// chaosLeaderRep is one LEADER line of a child: node follows leader in epoch.
type chaosLeaderRep struct {
	at     int64
	node   int
	leader uint64
	epoch  uint32
}

func (r chaosLeaderRep) String() string {
	return fmt.Sprintf("%8.3fs node %d follows %d in epoch %d", time.Duration(r.at).Seconds(), r.node, r.leader, r.epoch)
}

func newChaosCluster(t *testing.T, n int) *chaosCluster {
	t.Helper()
	taken := map[string]bool{}
	c := &chaosCluster{
		t: t, n: n, t0: time.Now(),
		gossip: procFreeAddrs(t, n, taken),
		bind:   procFreeAddrs(t, n, taken),
		procs:  make([]*chaosProc, n),
		incs:   make([]int, n),
		rec:    newChaosRecipes(),
	}
	// The proxy listens on ports picked with the others (port 0 could
	// hand it one of the ports just picked for a node).
	proxyAddrs := procFreeAddrs(t, n, taken)
	c.proxy = faultproxy.New(faultproxy.Config{Identify: chaosIdentify})
	t.Cleanup(func() { c.proxy.Close() })
	for i := range n {
		addr, err := c.proxy.Listen(i+1, proxyAddrs[i], c.bind[i])
		if err != nil {
			t.Fatal(err)
		}
		c.adv = append(c.adv, addr)
	}
	base := t.TempDir()
	logBase := base
	if d := os.Getenv("COORD_PROC_LOGDIR"); d != "" {
		logBase = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
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

// chaosIdentify reads the dialer's id from its zab/tcp hello frame without
// consuming it.
func chaosIdentify(r *bufio.Reader) (int, error) {
	id, err := tcp.PeekHello(r)
	return int(id), err
}

// since is the time since the cluster was made, for logs.
func (c *chaosCluster) since() string {
	return fmt.Sprintf("%8.3fs", time.Since(c.t0).Seconds())
}

func (c *chaosCluster) now() int64 { return time.Since(c.t0).Nanoseconds() }

// fault logs one line of the fault log.
func (c *chaosCluster) fault(format string, args ...any) {
	line := c.since() + " " + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.faults = append(c.faults, line)
	c.mu.Unlock()
	if testing.Verbose() && *chaosDuration == 0 {
		c.t.Log(line)
	}
}

func (c *chaosCluster) cleanup() {
	killChildren(c.t, takeChildren(&c.mu, c.procs))
	if c.t.Failed() {
		for i, f := range c.logs {
			c.t.Logf("--- node %d log (tail) ---\n%s", i+1, procTail(f, 30))
		}
	}
}

func (p *chaosProc) base() *child { return &p.child }

// start launches node id (a new incarnation) on its ports and DataDir.
func (c *chaosCluster) start(id int) {
	c.t.Helper()
	c.mu.Lock()
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
	fmt.Fprintf(logf, "=== incarnation %d at %s\n", inc, c.since())
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		chaosEnvChild+"=1",
		fmt.Sprintf("%s=%d", chaosEnvID, id),
		chaosEnvSeeds+"="+strings.Join(c.gossip, ","),
		chaosEnvBind+"="+c.bind[id-1],
		chaosEnvAdv+"="+c.adv[id-1],
		chaosEnvDir+"="+c.dirs[id-1],
		fmt.Sprintf("%s=%d", chaosEnvInc, inc),
		fmt.Sprintf("%s=%d", chaosEnvRecSeed, c.seed*1000+int64(id)*100+int64(inc)),
	)
	if c.snapshotEvery > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", childSnapshotEnv, c.snapshotEvery))
	}
	cmd.Stdout = w
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	p := &chaosProc{child: child{id: id, inc: inc, cmd: cmd, stdin: stdin, done: make(chan struct{})},
		pending: map[int64]chan chaosRes{}}
	if err := cmd.Start(); err != nil {
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
	c.readers.Add(1)
	go func() {
		defer c.readers.Done()
		c.read(p, r)
	}()
}

// read parses a child's stdout until EOF, then answers its pending calls.
func (c *chaosCluster) read(p *chaosProc, r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "READY":
			c.mu.Lock()
			p.ready = true
			c.mu.Unlock()
			c.rec.mu.Lock()
			running := c.rec.running
			c.rec.mu.Unlock()
			if running {
				c.send(p, chaosReq{Op: "recstart"})
			}
		case "REC":
			if id, verdict, ok := c.rec.line(c.now(), p.id, rest); ok {
				c.send(p, chaosReq{ID: id, Op: "act", Data: verdict})
			}
		case "LEADER":
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			l, _ := strconv.ParseUint(f[0], 10, 64)
			e, _ := strconv.ParseUint(f[1], 10, 32)
			c.mu.Lock()
			p.leader, p.epoch = l, uint32(e)
			c.leaders = append(c.leaders, chaosLeaderRep{at: c.now(), node: p.id, leader: l, epoch: uint32(e)})
			c.mu.Unlock()
		case "RES":
			var res chaosRes
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				c.t.Errorf("node %d: bad line %q: %v", p.id, line, err)
				continue
			}
			c.mu.Lock()
			ch := p.pending[res.ID]
			delete(p.pending, res.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- res
			}
		}
	}
	c.mu.Lock()
	p.dead, p.ready = true, false
	for id, ch := range p.pending {
		ch <- chaosRes{ID: id, Code: "lost", Err: "node died"}
	}
	clear(p.pending)
	c.mu.Unlock()
}

// call sends r to p and waits for its answer; a call the child never
// answers (it died, or took longer than chaosCallTimeout) is "lost".
func (c *chaosCluster) call(p *chaosProc, r chaosReq, timeout time.Duration) chaosRes {
	if p == nil {
		return chaosRes{Code: "lost", Err: "node not running"}
	}
	ch := make(chan chaosRes, 1)
	c.mu.Lock()
	if p.dead {
		c.mu.Unlock()
		return chaosRes{Code: "lost", Err: "node dead"}
	}
	c.nextReq++
	r.ID = c.nextReq
	p.pending[r.ID] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(r)
	p.wmu.Lock()
	_, err := p.stdin.Write(append(b, '\n'))
	p.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(p.pending, r.ID)
		c.mu.Unlock()
		// The line may have been partly written: outcome unknown.
		return chaosRes{Code: "lost", Err: err.Error()}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res
	case <-t.C:
		c.mu.Lock()
		delete(p.pending, r.ID)
		c.mu.Unlock()
		return chaosRes{Code: "lost", Err: "no answer within " + timeout.String()}
	}
}

// proc returns node id's current incarnation if it is ready.
func (c *chaosCluster) ready(id int) *chaosProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[id-1]; p != nil && p.ready && !p.dead {
		return p
	}
	return nil
}

// leader returns the leader that the running nodes report in the highest
// epoch, and that epoch, if that leader runs; 0 if none.
func (c *chaosCluster) leader() (uint64, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id uint64
	var epoch uint32
	for _, p := range c.procs {
		if p != nil && !p.dead && p.leader != 0 && p.epoch >= epoch {
			id, epoch = p.leader, p.epoch
		}
	}
	// A leader that was just killed or stopped is still reported by its
	// followers for a while: it is no target for a fault on the leader.
	if id == 0 || int(id) > len(c.procs) {
		return 0, 0
	}
	if l := c.procs[id-1]; l == nil || l.dead || l.stopped || !l.ready {
		return 0, 0
	}
	return id, epoch
}

// waitFor polls cond (called with c.mu held) until it holds or d passes.
func (c *chaosCluster) waitFor(d time.Duration, cond func() bool) bool {
	return waitLocked(&c.mu, d, 10*time.Millisecond, cond)
}

// kill SIGKILLs node id and waits until it is reaped and its calls answered.
func (c *chaosCluster) kill(id int) {
	c.t.Helper()
	c.mu.Lock()
	p := c.procs[id-1]
	c.procs[id-1] = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d not reaped 10s after SIGKILL", id)
	}
	if !c.waitFor(10*time.Second, func() bool { return p.dead }) {
		c.t.Fatalf("node %d: stdout not closed 10s after SIGKILL", id)
	}
}

func (c *chaosCluster) signal(id int, sig syscall.Signal) {
	c.mu.Lock()
	p := c.procs[id-1]
	if p != nil {
		p.stopped = sig == syscall.SIGSTOP
	}
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(sig)
	}
}

// allReady waits up to d for every node to have joined. A node that
// exits first ends the wait at once (its log says why; a port taken by
// another process in the meantime is one reason).
func (c *chaosCluster) allReady(d time.Duration) bool {
	exited := false
	ok := c.waitFor(d, func() bool {
		all := true
		for _, p := range c.procs {
			if p == nil || !p.ready {
				all = false
			}
			if p != nil && p.dead && !p.ready {
				exited = true
			}
		}
		return all || exited
	})
	return ok && !exited
}

// states describes every node for a failure message.
func (c *chaosCluster) states() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for i, p := range c.procs {
		switch {
		case p == nil:
			parts = append(parts, fmt.Sprintf("node %d: not running", i+1))
		default:
			st := "running"
			select {
			case <-p.done:
				st = "exited: " + p.cmd.ProcessState.String()
			default:
			}
			parts = append(parts, fmt.Sprintf("node %d (incarnation %d, pid %d): %s, ready %v, stopped %v, follows %d in epoch %d",
				i+1, p.inc, p.cmd.Process.Pid, st, p.ready, p.stopped, p.leader, p.epoch))
		}
	}
	return strings.Join(parts, "; ")
}

// impaired counts the nodes that are down, joining or stopped.
func (c *chaosCluster) impaired() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, p := range c.procs {
		if p == nil || !p.ready || p.dead || p.stopped {
			k++
		}
	}
	return k
}

// checkLogs fails the test on a data race, panic or fatal error in a child.
func (c *chaosCluster) checkLogs() {
	c.t.Helper()
	checkChildLogs(c.t, c.logs, " (COORD_PROC_LOGDIR keeps it)")
}

// exitAll closes every node (stdin EOF) and waits for them.
func (c *chaosCluster) exitAll() {
	cs := takeChildren(&c.mu, c.procs)
	for _, p := range cs {
		p.stdin.Close()
	}
	awaitExit(c.t, cs, "stdin closing", false)
}

// ---------------------------------------------------------------------------
// Parent side: the workload and its history.

type chaosHistory struct {
	mu      sync.Mutex
	ops     []porcupine.Operation
	clients int // porcupine client ids handed out
	pending int
	dropped int // definite failures: no effect, left out
	calls   int
	// adds: unique creates under /c: data -> "ok", "unknown" or "fail"
	adds map[string]string
	// write acknowledgements with their zxid, for fail-over times
	acks []chaosAck
}

type chaosAck struct {
	at   int64 // return time
	zxid int64
}

func (h *chaosHistory) newClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

// record adds one finished call to the history. It reports whether the
// outcome is unknown (the client then takes a new porcupine id: its
// pending op never returns).
func (h *chaosHistory) record(client int, in sim.Input, call, ret int64, res chaosRes) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	out := sim.Output{Failed: -1}
	switch res.Code {
	case "ok":
		out.Code = sim.OK
		switch in.Kind {
		case sim.Create:
			out.Path = res.Path
		case sim.Set:
			out.Version = res.Version
			h.acks = append(h.acks, chaosAck{at: ret, zxid: res.Zxid})
		case sim.Read:
			out.Data, out.Version = res.Data, res.Version
		}
	case "NoNode":
		out.Code = sim.NoNode
	case "NodeExists":
		out.Code = sim.NodeExists
	case "BadVersion":
		out.Code = sim.BadVersion
	case "NotEmpty":
		out.Code = sim.NotEmpty
	case "unknown", "lost":
		if in.Kind == sim.Read {
			h.dropped++ // a read that never answered constrains nothing
			return false
		}
		h.pending++
		h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call,
			Output: sim.Output{Unknown: true}, Return: chaosPending})
		return true
	default: // "fail": certainly no effect
		h.dropped++
		return false
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	return false
}

// chaosModel is internal/sim's model checked per key: every operation
// names one key and the model's state of one key does not depend on the
// others' (the parent's cversion, which couples them, is observed only by
// sequential creates, which this workload does not issue).
func chaosModel() porcupine.Model {
	m := sim.Model()
	m.Partition = func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(sim.Input).Path
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	}
	return m
}

// chaosKey is key k of the segment running at time now.
func chaosKey(now time.Duration, k int) string {
	return fmt.Sprintf("/q/s%d-k%d", int(now/chaosSegment), k)
}

// client issues operations on node id until stop closes.
func (c *chaosCluster) client(name string, id int, seed int64, h *chaosHistory, stop <-chan struct{}) {
	rng := rand.New(rand.NewSource(seed))
	pid := h.newClient()
	version := map[string]int32{}
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		p := c.ready(id)
		if p == nil {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		key := chaosKey(time.Since(c.t0), rng.Intn(chaosKeys))
		data := fmt.Sprintf("%s-%d", name, n)
		var in sim.Input
		req := chaosReq{Client: name, Path: key, Data: data, Version: -1}
		switch r := rng.Float64(); {
		case r < 0.40:
			in, req.Op, req.Data = sim.Input{Kind: sim.Read, Path: key}, "read", ""
		case r < 0.65:
			in, req.Op = sim.Input{Kind: sim.Set, Path: key, Data: data, Version: -1}, "set"
		case r < 0.75:
			v, ok := version[key]
			if !ok {
				v = int32(rng.Intn(3))
			}
			req.Version = v
			in, req.Op = sim.Input{Kind: sim.Set, Path: key, Data: data, Version: v}, "set"
		case r < 0.87:
			in, req.Op = sim.Input{Kind: sim.Create, Path: key, Data: data}, "create"
		case r < 0.92:
			in, req.Op, req.Data = sim.Input{Kind: sim.Delete, Path: key, Version: -1}, "delete", ""
		default:
			// A unique create under /c, checked for loss at the end.
			req.Op, req.Path = "create", "/c/"+data
			h.mu.Lock()
			h.adds[data] = "unknown"
			h.mu.Unlock()
			res := c.call(p, req, chaosCallTimeout)
			h.mu.Lock()
			switch res.Code {
			case "ok":
				h.adds[data] = "ok"
			case "unknown", "lost":
			default:
				h.adds[data] = "fail: " + res.Code + " " + res.Err
			}
			h.mu.Unlock()
			continue
		}
		call := c.now()
		res := c.call(p, req, chaosCallTimeout)
		ret := c.now()
		if h.record(pid, in, call, ret, res) {
			pid = h.newClient()
		}
		if res.Code == "ok" && (in.Kind == sim.Read || in.Kind == sim.Set) {
			version[key] = res.Version
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(rng.Intn(5)) * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------------------
// The fault schedule.

// leaderFault is a fault that hit the leader (aimed at it, or it was the
// random target or in the minority of a partition), for fail-over times.
type leaderFault struct {
	at     int64
	until  int64 // when the next one began: later changes are not this one's
	epoch  uint32
	leader uint64
	what   string
}

// chaos injects faults until the deadline, one at a time, each held for a
// random while and then healed. Process faults keep a majority running.
func (c *chaosCluster) chaos(rng *rand.Rand, until time.Time, counts map[string]int) []leaderFault {
	var lf []leaderFault
	n := c.n
	others := func(id int) []int {
		var o []int
		for j := 1; j <= n; j++ {
			if j != id {
				o = append(o, j)
			}
		}
		return o
	}
	var restarts sync.WaitGroup
	defer restarts.Wait()
	defer func() {
		if k := len(lf) - 1; k >= 0 {
			lf[k].until = c.now()
		}
	}()
	stacked := false
	for time.Now().Before(until) {
		time.Sleep(time.Duration(100+rng.Intn(500)) * time.Millisecond)
		// Mostly shorter than the session timeout (2s), sometimes longer.
		hold := time.Duration(200+rng.Intn(1500)) * time.Millisecond
		if rng.Intn(5) == 0 {
			hold = time.Duration(2000+rng.Intn(2500)) * time.Millisecond
		}
		leader, epoch := c.leader()
		target := 1 + rng.Intn(n)
		if leader != 0 && rng.Intn(2) == 0 {
			target = int(leader)
		}
		hits := leader != 0 && target == int(leader)
		who := fmt.Sprintf("node %d", target)
		if hits {
			who = fmt.Sprintf("leader %d (epoch %d)", target, epoch)
		}
		hit := func(what string) {
			at := c.now()
			if k := len(lf) - 1; k >= 0 {
				lf[k].until = at
			}
			lf = append(lf, leaderFault{at: at, epoch: epoch, leader: leader, what: what})
		}
		kinds := []string{"isolate", "blackhole", "oneway-out", "oneway-in", "oneway-pair", "delay", "partition"}
		if c.impaired() < (n-1)/2 {
			kinds = append(kinds, "kill", "kill", "stop", "stop")
		}
		kind := kinds[rng.Intn(len(kinds))]
		if (kind == "kill" || kind == "stop") && c.ready(target) == nil {
			// Down (a restart is pending) or still joining: a second
			// incarnation on the same ports and DataDir must not start.
			kind = "delay"
		}
		counts[kind]++
		if hits && kind != "delay" && kind != "partition" {
			hit(kind)
		}
		switch kind {
		case "kill":
			c.fault("SIGKILL %s; restart in %v", who, hold)
			c.kill(target)
			restarts.Add(1)
			go func() { // restart in the background: joining takes seconds under -race
				defer restarts.Done()
				time.Sleep(hold)
				c.fault("restart node %d", target)
				c.start(target)
			}()
			continue
		case "stop":
			c.fault("SIGSTOP %s for %v", who, hold)
			c.signal(target, syscall.SIGSTOP)
			time.Sleep(hold)
			c.fault("SIGCONT node %d", target)
			c.signal(target, syscall.SIGCONT)
			continue
		case "isolate":
			c.fault("cut (reset) every link of %s for %v", who, hold)
			for _, o := range others(target) {
				c.proxy.Cut(target, o)
			}
		case "blackhole":
			c.fault("blackhole (stall both ways) every link of %s for %v", who, hold)
			for _, o := range others(target) {
				c.proxy.Stall(target, o)
				c.proxy.Stall(o, target)
			}
		case "oneway-out":
			c.fault("stall every link out of %s (it hears, is not heard) for %v", who, hold)
			for _, o := range others(target) {
				c.proxy.Stall(target, o)
			}
		case "oneway-in":
			c.fault("stall every link into %s (it is heard, hears nothing) for %v", who, hold)
			for _, o := range others(target) {
				c.proxy.Stall(o, target)
			}
		case "oneway-pair":
			o := others(target)[rng.Intn(n-1)]
			if rng.Intn(2) == 0 {
				c.fault("stall %s -> node %d for %v", who, o, hold)
				c.proxy.Stall(target, o)
			} else {
				c.fault("stall node %d -> %s for %v", o, who, hold)
				c.proxy.Stall(o, target)
			}
		case "delay":
			d := time.Duration(5+rng.Intn(120)) * time.Millisecond
			c.fault("delay every link of %s by %v for %v", who, d, hold)
			for _, o := range others(target) {
				c.proxy.Delay(target, o, d)
				c.proxy.Delay(o, target, d)
			}
		case "partition":
			perm := rng.Perm(n)
			minority := perm[:(n-1)/2+rng.Intn(2)*(n/2-(n-1)/2)] // a minority, or half of an even n
			side := map[int]bool{}
			var ids []int
			for _, i := range minority {
				side[i+1] = true
				ids = append(ids, i+1)
			}
			slices.Sort(ids)
			if leader != 0 && side[int(leader)] {
				hit(kind)
			}
			reset := rng.Intn(2) == 0
			c.fault("partition %v from the rest (reset %v) for %v", ids, reset, hold)
			for a := 1; a <= n; a++ {
				for b := a + 1; b <= n; b++ {
					if side[a] != side[b] {
						if reset {
							c.proxy.Cut(a, b)
						} else {
							c.proxy.Stall(a, b)
							c.proxy.Stall(b, a)
						}
					}
				}
			}
		}
		time.Sleep(hold)
		// Now and then the next fault comes on top of this one.
		if !stacked && rng.Intn(4) == 0 {
			stacked = true
			c.fault("(kept: the next fault adds to it)")
			continue
		}
		stacked = false
		c.fault("heal")
		c.proxy.HealAll()
	}
	return lf
}

// ---------------------------------------------------------------------------
// The test.

// TestChaos runs 3 and 5 nodes as processes behind the fault proxy under a
// client workload and a seeded fault schedule, then checks the history for
// linearizability, that no acknowledged write is lost and that all nodes
// agree. See the top of this file.
func TestChaos(t *testing.T) {
	if os.Getenv(chaosEnvChild) == "1" || os.Getenv(procEnvChild) == "1" {
		return
	}
	if testing.Short() {
		t.Skip("starts 3 and 5 processes for about 40s; not with -short")
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	dur := *chaosDuration
	if dur <= 0 {
		dur = chaosDefault
	}
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) { runChaos(t, n, seed, dur) })
	}
}

func runChaos(t *testing.T, n int, seed int64, dur time.Duration) {
	replay := fmt.Sprintf("go test -race ./coord -run 'TestChaos/nodes=%d$' -v -args -coord.chaosseed=%d -coord.chaos=%v", n, seed, dur)
	t.Logf("seed %d, %v of faults; replay: %s", seed, dur, replay)
	rng := rand.New(rand.NewSource(seed + int64(n)))
	c := newChaosCluster(t, n)
	c.seed = seed
	if n == 5 {
		c.snapshotEvery = 32
	}
	h := &chaosHistory{adds: map[string]string{}}
	var visual string
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		var b strings.Builder
		fmt.Fprintf(&b, "FAILED: seed %d; replay (same choices of faults, real-time interleaving): %s\n", seed, replay)
		if visual != "" {
			fmt.Fprintf(&b, "porcupine visualisation: %s\n", visual)
		}
		fmt.Fprintf(&b, "fault log:\n%s\n", strings.Join(c.faults, "\n"))
		if f, err := os.CreateTemp("", fmt.Sprintf("coord-chaos-%d-seed%d-*.log", n, seed)); err == nil {
			fmt.Fprintf(f, "%s\nleader reports:\n", b.String())
			for _, r := range c.leaders {
				fmt.Fprintln(f, r)
			}
			f.Close()
			fmt.Fprintf(&b, "fault log and leader reports: %s", f.Name())
		}
		t.Log(b.String())
	})

	for id := 1; id <= n; id++ {
		c.start(id)
	}
	if !c.allReady(90 * time.Second) {
		t.Fatalf("nodes did not all join within 90s: %s", c.states())
	}
	c.fault("all %d nodes joined", n)
	// Setup before the history: /q (the model's initial state) and /c.
	for _, path := range []string{"/q", "/c"} {
		for try := 0; ; try++ {
			res := c.call(c.ready(1), chaosReq{Op: "create", Client: "setup", Path: path}, chaosCallTimeout)
			if res.Code == "ok" || res.Code == "NodeExists" {
				break
			}
			if try == 50 {
				t.Fatalf("setup: create %s: %s %s", path, res.Code, res.Err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	c.recipesStart()
	stop := make(chan struct{})
	var clients sync.WaitGroup
	nclients := 2 * n
	if n > 3 {
		nclients = 8
	}
	for i := range nclients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			c.client(fmt.Sprintf("c%d", i), i%n+1, seed*1000+int64(i), h, stop)
		}()
	}
	counts := map[string]int{}
	faultStart := time.Now()
	if *chaosDuration > 0 { // a soak: a progress line a minute
		done := make(chan struct{})
		defer close(done)
		go func() {
			tk := time.NewTicker(time.Minute)
			defer tk.Stop()
			for {
				select {
				case <-done:
					return
				case <-tk.C:
				}
				h.mu.Lock()
				calls, pending := h.calls, h.pending
				h.mu.Unlock()
				c.mu.Lock()
				nf := len(c.faults)
				c.mu.Unlock()
				t.Logf("%s: %d calls (%d pending), %d fault log lines", c.since(), calls, pending, nf)
			}
		}()
	}
	lf := c.chaos(rng, faultStart.Add(dur), counts)

	// Heal everything and bring every node back.
	c.fault("end of faults: heal all, SIGCONT and restart every node")
	c.proxy.HealAll()
	for id := 1; id <= n; id++ {
		c.mu.Lock()
		p := c.procs[id-1]
		c.mu.Unlock()
		if p == nil || p.dead {
			c.start(id)
		} else {
			c.signal(id, syscall.SIGCONT)
		}
	}
	// The workload goes on for a while on the healed cluster, and until
	// every recipe made progress (a heavily loaded machine may have let
	// none complete a section during the faults: seed 468814951 at load
	// 50), within the time nodes have to rejoin.
	time.Sleep(time.Second)
	for end := time.Now().Add(90 * time.Second); !c.rec.progressed() && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	c.recipesStop()
	clients.Wait()
	if !c.allReady(90 * time.Second) {
		t.Fatalf("nodes did not all join within 90s of the heal: %s", c.states())
	}
	c.fault("all nodes up; final reads and dumps")

	// Final Sync+read of every key on every node, in the history.
	keys := map[string]bool{}
	h.mu.Lock()
	for _, op := range h.ops {
		keys[op.Input.(sim.Input).Path] = true
	}
	h.mu.Unlock()
	sortedKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	for id := 1; id <= n; id++ {
		pid := h.newClient()
		for _, k := range sortedKeys {
			for try := 0; ; try++ {
				p := c.ready(id)
				if p == nil {
					t.Fatalf("node %d down during the final reads", id)
				}
				call := c.now()
				res := c.call(p, chaosReq{Op: "read", Client: "final", Path: k}, chaosCallTimeout)
				if res.Code == "ok" || res.Code == "NoNode" {
					h.record(pid, sim.Input{Kind: sim.Read, Path: k}, call, c.now(), res)
					break
				}
				if try == 20 {
					t.Fatalf("node %d: final read of %s: %s %s", id, k, res.Code, res.Err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	// Equal data on every node.
	var dumps [][]chaosZnode
	for attempt := 0; ; attempt++ {
		dumps = dumps[:0]
		for id := 1; id <= n; id++ {
			res := c.call(c.ready(id), chaosReq{Op: "dump"}, 30*time.Second)
			if res.Code != "ok" {
				t.Fatalf("node %d: dump: %s %s", id, res.Code, res.Err)
			}
			dumps = append(dumps, res.Nodes)
		}
		same := true
		for _, d := range dumps[1:] {
			same = same && slices.Equal(d, dumps[0])
		}
		if same {
			break
		}
		if attempt == 10 {
			for i, d := range dumps[1:] {
				for j := 0; j < max(len(d), len(dumps[0])); j++ {
					var a, b chaosZnode
					if j < len(dumps[0]) {
						a = dumps[0][j]
					}
					if j < len(d) {
						b = d[j]
					}
					if a != b {
						t.Errorf("node 1 and node %d differ: %+v vs %+v", i+2, a, b)
						break
					}
				}
			}
			t.Fatal("nodes disagree after the heal")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// No acknowledged create under /c lost, nothing unattempted there.
	present := map[string]bool{}
	for _, z := range dumps[0] {
		if name, ok := strings.CutPrefix(z.Path, "/c/"); ok {
			present[name] = true
			if _, attempted := h.adds[name]; !attempted {
				t.Errorf("%s exists, but no client attempted it", z.Path)
			} else if z.Data != name {
				t.Errorf("%s holds %q", z.Path, z.Data)
			}
		}
	}
	acked, lost := 0, 0
	for name, st := range h.adds {
		switch {
		case st == "ok":
			acked++
			if !present[name] {
				lost++
				t.Errorf("acknowledged create /c/%s is lost", name)
			}
		case strings.HasPrefix(st, "fail") && present[name]:
			t.Errorf("create /c/%s failed (%s) yet took effect", name, st)
		}
	}

	c.exitAll()
	c.checkLogs()
	c.readers.Wait() // every report of the recipe workload is in
	c.checkRecipes(t)

	// Linearizability, per key.
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(chaosModel(), ops, 60*time.Second)
	checkTook := time.Since(checkStart)
	if res != porcupine.Ok {
		if f, err := os.CreateTemp("", fmt.Sprintf("coord-chaos-%d-seed%d-*.html", n, seed)); err == nil {
			if err := porcupine.Visualize(chaosModel(), info, f); err == nil {
				visual = f.Name()
			}
			f.Close()
		}
		if res == porcupine.Unknown {
			t.Errorf("porcupine could not decide within 60s (counts as a failure)")
		} else {
			t.Errorf("history is not linearizable:\n%s", chaosExplain(ops, info))
		}
	}

	// Fail-over times: from a fault that hit the leader to the first
	// report of a new leader by another node, and to the first acknowledged
	// set in a later epoch, before the next such fault ("-": none, e.g.
	// the leader kept a quorum through a one-way stall).
	var failovers []string
	h.mu.Lock()
	acks := slices.Clone(h.acks)
	h.mu.Unlock()
	sort.Slice(acks, func(i, j int) bool { return acks[i].at < acks[j].at })
	c.mu.Lock()
	leaders := slices.Clone(c.leaders)
	c.mu.Unlock()
	wroteBy := map[string][]time.Duration{}
	for _, f := range lf {
		elected, wrote := "-", "-"
		for _, r := range leaders {
			if r.at > f.at && r.at < f.until && r.node != int(f.leader) && r.leader != 0 && r.epoch > f.epoch {
				elected = time.Duration(r.at - f.at).Round(time.Millisecond).String()
				break
			}
		}
		for _, a := range acks {
			if a.at > f.at && a.at < f.until && uint32(uint64(a.zxid)>>32) > f.epoch {
				d := time.Duration(a.at - f.at).Round(time.Millisecond)
				wrote = d.String()
				wroteBy[f.what] = append(wroteBy[f.what], d)
				break
			}
		}
		failovers = append(failovers, fmt.Sprintf("%s %s/%s", f.what, elected, wrote))
	}
	if len(failovers) > 12 {
		// A soak: per kind, how many, and the median and maximum time to
		// the first write in a later epoch (some faults leave the leader
		// in place, e.g. a one-way stall of one pair in a 5-node cluster).
		var sum []string
		nBy := map[string]int{}
		for _, f := range lf {
			nBy[f.what]++
		}
		for _, k := range slices.Sorted(maps.Keys(nBy)) {
			ds := wroteBy[k]
			slices.Sort(ds)
			line := fmt.Sprintf("%s: %d faults, %d followed by a write in a new epoch", k, nBy[k], len(ds))
			if len(ds) > 0 {
				line += fmt.Sprintf(" (median %v, max %v)", ds[len(ds)/2], ds[len(ds)-1])
			}
			sum = append(sum, line)
		}
		failovers = sum
	}
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	})
	var kc []string
	for _, k := range kinds {
		kc = append(kc, fmt.Sprintf("%s %d", k, counts[k]))
	}
	c.mu.Lock()
	faultLog := strings.Join(c.faults, "\n")
	c.mu.Unlock()
	if *chaosDuration > 0 {
		if f, err := os.CreateTemp("", fmt.Sprintf("coord-chaos-%d-seed%d-*.faults", n, seed)); err == nil {
			fmt.Fprintln(f, faultLog)
			f.Close()
			t.Logf("fault log: %s", f.Name())
		}
	}
	st := c.proxy.Stats()
	t.Logf("seed %d, %d nodes: %v of faults (%s); %d calls, %d ops checked by porcupine in %v over %d keys (%d pending: outcome unknown; %d dropped: failed or unanswered reads); "+
		"%d unique creates acknowledged, %d lost; %d znodes equal on all nodes; proxy: %d connections (%d with an unidentified dialer), %d refused, %d MiB; "+
		"faults that hit the leader (fault, time to a new leader / to the first write acknowledged in a later epoch, before the next such fault): %v; total %v",
		seed, n, dur, strings.Join(kc, ", "), h.calls, len(ops), checkTook.Round(time.Millisecond), len(keys), h.pending, h.dropped,
		acked, lost, len(dumps[0]), st.Accepted, st.Unidentified, st.Refused, st.Bytes>>20, failovers, time.Since(c.t0).Round(time.Millisecond))
}

// chaosExplain says, for each key whose history is not linearizable, where
// the longest linearizable prefix ends and which operations cannot follow
// it (times are since the cluster was made).
func chaosExplain(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	m := sim.Model()
	desc := func(op porcupine.Operation) string {
		ret := "never"
		if op.Return != chaosPending {
			ret = fmt.Sprintf("%.3fs", time.Duration(op.Return).Seconds())
		}
		return fmt.Sprintf("client %d [%.3fs, %s] %s", op.ClientId, time.Duration(op.Call).Seconds(), ret,
			m.DescribeOperation(op.Input, op.Output))
	}
	parts := chaosModel().Partition(ops)
	partials := info.PartialLinearizationsOperations()
	var b strings.Builder
	for i, part := range parts {
		if i >= len(partials) {
			break
		}
		var best []porcupine.Operation
		for _, p := range partials[i] {
			if len(p) > len(best) {
				best = p
			}
		}
		if len(best) == len(part) {
			continue
		}
		fmt.Fprintf(&b, "key %s: %d ops, the longest linearizable prefix has %d; it ends with:\n",
			part[0].Input.(sim.Input).Path, len(part), len(best))
		for _, op := range best[max(0, len(best)-5):] {
			fmt.Fprintf(&b, "    %s\n", desc(op))
		}
		type id struct {
			client int
			call   int64
		}
		in := map[id]bool{}
		for _, op := range best {
			in[id{op.ClientId, op.Call}] = true
		}
		var rest []porcupine.Operation
		for _, op := range part {
			if !in[id{op.ClientId, op.Call}] {
				rest = append(rest, op)
			}
		}
		sort.Slice(rest, func(i, j int) bool { return rest[i].Return < rest[j].Return })
		fmt.Fprintf(&b, "  and none of these (first to return first) can follow it:\n")
		for _, op := range rest[:min(len(rest), 5)] {
			fmt.Fprintf(&b, "    %s\n", desc(op))
		}
	}
	return b.String()
}
