// Command bench measures coord with the workloads of the ZooKeeper / etcd
// load generator in ../shared/peers/load, so the three can be compared side
// by side on one machine in one sitting.
//
// It starts a coord cluster in this process on 127.0.0.1 (3 nodes by default,
// LocalConfig, data directories in a temporary directory so every write is
// fsynced before it is acknowledged, as ZooKeeper's forceSync and etcd do).
// Every client is its own coord Session, and clients are spread over the nodes
// round-robin (client i on node i mod n) as the peers' clients are spread over
// the servers. Clients call the coord API directly: there is no client hop,
// which is the point of an embedded library.
//
// Every measurement prints one JSON line of the peers' shape (appended to
// -out when given), so one file can hold coord, ZooKeeper and etcd results;
// the peers' `load -summarize` lists coord's rows in its per-run tables, and
// `bench -summarize FILE` prints the three systems side by side.
//
// Workloads (-workload), as the peers':
//
//	write      N sessions, each Set of a 64-byte value on its own znode /bench/w/kNNNN
//	read       N sessions, Get of their own znode from the local replica (ZooKeeper getData);
//	           -read-mode linearizable does Sync + Get (compare with etcd's linearizable Get)
//	ephemeral  N sessions, Create(/bench/e/n-, EphemeralSequential) + Delete; one pair = one op
//	lock       N sessions contend for one recipes.Lock (ephemeral-sequential child, watch
//	           on the predecessor), -lock-total acquisitions; checks mutual exclusion and
//	           that fencing tokens strictly increase
//	failover   4 writers (Set, sleep 10 ms); after 3 s the leader node is crash-stopped
//	           (Node.Shutdown: no hand-off, sessions not closed, as a killed process); time to
//	           recovery; -trials restarts the stopped node and repeats
//	mem        process RSS and Go heap empty, after -keys znodes (multi of 250 creates,
//	           8 sessions), and after a forced GC
//	suite      one fresh cluster: unrecorded 5 s write warm-up (N=16), then write N=1,16,128,
//	           read N=16,128 (local and linearizable), ephemeral N=16, lock N=16 (run_all.sh's perf suite)
//
// With -procs the nodes run as separate processes (this binary again), each
// with the clients homed on its node, and the parent merges what they
// measured (write, read and ephemeral workloads; see procs.go).
//
// It exits by itself; every operation is bounded by a deadline.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

var (
	flagWorkload   = flag.String("workload", "", "write|read|ephemeral|lock|failover|mem|suite")
	flagNodes      = flag.Int("nodes", 3, "coord nodes in the cluster (all in this process)")
	flagClients    = flag.Int("clients", 1, "concurrent clients (each its own coord Session)")
	flagDuration   = flag.Duration("duration", 10*time.Second, "measured duration of timed workloads")
	flagWarmup     = flag.Duration("warmup", 2*time.Second, "warm-up before the measured window")
	flagValueSize  = flag.Int("value-size", 64, "value size in bytes")
	flagReadMode   = flag.String("read-mode", "local", "reads: local (Get from the local replica, like ZooKeeper getData) or linearizable (Sync + Get)")
	flagLockTotal  = flag.Int("lock-total", 2000, "measured lock acquisitions (lock workload)")
	flagLockWarm   = flag.Int("lock-warmup", 100, "warm-up lock acquisitions (lock workload)")
	flagKeys       = flag.Int("keys", 100000, "znodes to store (mem workload)")
	flagFOClients  = flag.Int("fo-clients", 4, "failover: writer clients")
	flagFOPause    = flag.Duration("fo-pause", 10*time.Millisecond, "failover: pause between writes per client")
	flagFOTimeout  = flag.Duration("fo-op-timeout", 250*time.Millisecond, "failover: per-write timeout")
	flagTrials     = flag.Int("trials", 1, "failover: trials on one cluster (the stopped node is restarted between trials)")
	flagInMemory   = flag.Bool("in-memory", false, "no DataDir (no fsync); the default keeps DataDirs in a temp dir, like the peers")
	flagSessionTO  = flag.Duration("session-timeout", 10*time.Second, "session timeout (the peers' ZooKeeper sessions use 10 s)")
	flagOut        = flag.String("out", "", "append the JSON result lines to this file")
	flagLabel      = flag.String("label", "", "cluster label stored in the result (default \"<nodes>node\")")
	flagRun        = flag.Int("run", 0, "run number stored in the result")
	flagCPUProf    = flag.String("cpuprofile", "", "write a CPU profile of the measured workload(s) to this file")
	flagMemSettle  = flag.Duration("mem-settle", 0, "mem workload: also measure after this long plus one more write (coord remembers the results of retried writes, and of the last ones no later request has finished, for tree.DedupWindow, 120 s, pruned on the next write); 0 skips")
	flagTrace      = flag.String("trace", "", "write a runtime/trace execution trace of the run to this file (goroutine wake-ups, syscalls, network and sync blocking)")
	flagBlockProf  = flag.String("blockprofile", "", "write a block profile of the run to this file (every blocking event recorded)")
	flagMutexProf  = flag.String("mutexprofile", "", "write a mutex contention profile of the run to this file (every event recorded)")
	flagMemProf    = flag.String("memprofile", "", "mem workload: write a heap profile (after the forced GC with the znodes loaded) to this file")
	flagLog        = flag.String("log", "", "write the nodes' logs to stderr at this level (debug, info, warn); empty discards them")
	flagStats      = flag.Bool("stats", false, "print every node's Stats to stderr after each measurement")
	flagProcs      = flag.Bool("procs", false, "run each node in its own process (this binary again), with the clients homed on it; write, read and ephemeral workloads")
	flagChildIndex = flag.Int("child-index", -1, "internal to -procs: run node i's process")
	flagChildSeeds = flag.String("child-seeds", "", "internal to -procs: the nodes' gossip addresses")
	flagChildDir   = flag.String("child-dir", "", "internal to -procs: the directory of the nodes' data directories")
	flagSummarize  = flag.String("summarize", "", "print Markdown tables of coord, ZooKeeper and etcd side by side from this results file and exit")
)

// Result is one JSON line, the peers' load generator's shape.
type Result struct {
	Time      string         `json:"time"`
	Sys       string         `json:"sys"`
	Label     string         `json:"label"`
	Run       int            `json:"run"`
	Workload  string         `json:"workload"`
	Mode      string         `json:"mode,omitempty"`
	Clients   int            `json:"clients"`
	Seconds   float64        `json:"seconds"`
	Ops       int64          `json:"ops"`
	Errors    int64          `json:"errors"`
	OpsPerSec float64        `json:"ops_per_s"`
	P50Ms     float64        `json:"p50_ms"`
	P99Ms     float64        `json:"p99_ms"`
	Extra     map[string]any `json:"extra,omitempty"`
}

func main() {
	flag.Parse()
	if *flagSummarize != "" {
		if err := summarize(*flagSummarize); err != nil {
			fatalf("summarize: %v", err)
		}
		return
	}
	if *flagLabel == "" {
		*flagLabel = fmt.Sprintf("%dnode", *flagNodes)
	}
	if *flagReadMode == "serializable" {
		*flagReadMode = "local"
	}
	if *flagReadMode != "local" && *flagReadMode != "linearizable" {
		fatalf("-read-mode must be local or linearizable")
	}
	if err := run(); err != nil {
		fatalf("%s: %v", *flagWorkload, err)
	}
}

func run() error {
	value := make([]byte, *flagValueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	switch *flagWorkload {
	case "write", "read", "ephemeral", "lock", "failover", "mem", "suite":
	default:
		return fmt.Errorf("unknown -workload %q", *flagWorkload)
	}
	switch {
	case *flagChildIndex >= 0:
		return runChild(value)
	case *flagProcs:
		return runProcs(value)
	}
	c, err := startCluster(*flagNodes)
	if err != nil {
		return err
	}
	defer c.close()
	statsOf = c
	if *flagCPUProf != "" {
		f, err := os.Create(*flagCPUProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	stop, err := startDiagnostics()
	if err != nil {
		return err
	}
	defer stop()
	switch *flagWorkload {
	case "write", "read", "ephemeral":
		mode := ""
		if *flagWorkload == "read" && *flagReadMode == "linearizable" {
			mode = "linearizable"
		}
		return timed(c, *flagWorkload, mode, *flagClients, *flagWarmup, *flagDuration, value, true)
	case "lock":
		return lock(c, *flagClients, *flagLockWarm, *flagLockTotal)
	case "failover":
		for t := 1; t <= *flagTrials; t++ {
			if err := failover(c, t, value); err != nil {
				return err
			}
		}
		return nil
	case "mem":
		return mem(c, value)
	case "suite":
		// run_all.sh's perf suite on one fresh cluster
		if err := timed(c, "write", "", 16, 0, 5*time.Second, value, false); err != nil {
			return err
		}
		for _, n := range []int{1, 16, 128} {
			if err := timed(c, "write", "", n, *flagWarmup, *flagDuration, value, true); err != nil {
				return err
			}
		}
		for _, n := range []int{16, 128} {
			for _, mode := range []string{"", "linearizable"} {
				if err := timed(c, "read", mode, n, *flagWarmup, *flagDuration, value, true); err != nil {
					return err
				}
			}
		}
		if err := timed(c, "ephemeral", "", 16, *flagWarmup, *flagDuration, value, true); err != nil {
			return err
		}
		return lock(c, 16, *flagLockWarm, *flagLockTotal)
	}
	return nil
}

// ---------------------------------------------------------------------------
// the in-process cluster

type cluster struct {
	dir    string
	cfgs   []coord.Config
	nodes  []*coord.Node // nil while stopped
	mu     sync.Mutex
	leadAt map[uint64][]time.Time // per node: when it reported itself leader
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startCluster(n int) (*cluster, error) {
	dir, err := os.MkdirTemp("", "coord-bench-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, nodes: make([]*coord.Node, n), leadAt: map[uint64][]time.Time{}, stop: make(chan struct{})}
	var seeds []string
	var voters []uint64
	for i := 1; i <= n; i++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, addr)
		voters = append(voters, uint64(i))
	}
	for i := range n {
		cfg, err := nodeConfig(i, seeds, voters, dir)
		if err != nil {
			return nil, err
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(ctx, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// nodeConfig is node i's config of a cluster gossiping on seeds (one per
// node), with its data directory under dir unless -in-memory.
func nodeConfig(i int, seeds []string, voters []uint64, dir string) (coord.Config, error) {
	cfg := coord.LocalConfig(uint64(i + 1))
	cfg.GossipBindAddr = seeds[i]
	cfg.Seeds = seeds
	cfg.Voters = voters
	if !*flagInMemory {
		cfg.DataDir = fmt.Sprintf("%s/node%d", dir, i+1)
	}
	if *flagLog != "" {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*flagLog)); err != nil {
			return cfg, fmt.Errorf("-log: %w", err)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	// sessions of 10 s, as the peers' ZooKeeper sessions
	cfg.MaxSessionTimeout = max(cfg.MaxSessionTimeout, *flagSessionTO)
	return cfg, nil
}

// startNode joins node i (again) and follows its leader changes.
func (c *cluster) startNode(ctx context.Context, i int) error {
	node, err := coord.JoinContext(ctx, c.cfgs[i])
	if err != nil {
		return fmt.Errorf("node %d: %w", i+1, err)
	}
	c.mu.Lock()
	c.nodes[i] = node
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		id := node.ID()
		for {
			select {
			case ev, ok := <-node.Events():
				if !ok {
					return
				}
				if ev.Type == coord.EventLeaderChanged && ev.Leader == id {
					c.mu.Lock()
					c.leadAt[id] = append(c.leadAt[id], time.Now())
					c.mu.Unlock()
				}
			case <-c.stop:
				return
			}
		}
	}()
	return nil
}

func (c *cluster) node(i int) *coord.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i%len(c.nodes)]
}

// leader returns the index of the node that leads (as node 'from' sees it).
func (c *cluster) leader() (int, error) {
	for i := range c.nodes {
		n := c.node(i)
		if n == nil {
			continue
		}
		id, _ := n.Leader()
		if id == 0 {
			continue
		}
		for j, cfg := range c.cfgs {
			if cfg.NodeID == id {
				return j, nil
			}
		}
	}
	return -1, errors.New("no leader")
}

func (c *cluster) close() {
	c.mu.Lock()
	nodes := append([]*coord.Node(nil), c.nodes...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n.Close(ctx)
			}()
		}
	}
	wg.Wait()
	close(c.stop)
	c.wg.Wait()
	os.RemoveAll(c.dir)
}

// session opens client i's session on node i mod n.
func (c *cluster) session(ctx context.Context, i int) (*coord.Session, error) {
	n := c.node(i)
	if n == nil {
		return nil, fmt.Errorf("node %d is stopped", i%len(c.nodes)+1)
	}
	return n.Session(ctx, coord.SessionOptions{Timeout: *flagSessionTO})
}

// ensure creates path and its missing parents (the last one with data).
func ensure(ctx context.Context, s *coord.Session, path string, data []byte) error {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	p := ""
	for j, part := range parts {
		p += "/" + part
		d := []byte{}
		if j == len(parts)-1 {
			d = data
		}
		if _, err := s.Create(ctx, p, d, coord.Persistent); err != nil && !errors.Is(err, coord.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// timed workloads (write, read, ephemeral)

func timed(c *cluster, workload, mode string, n int, warm, dur time.Duration, value []byte, record bool) error {
	clients := make([]int, n)
	for i := range clients {
		clients[i] = i
	}
	run, err := runClients(c, workload, mode, clients, warm, dur, value, func() (time.Time, error) { return time.Now(), nil })
	if err != nil || !record {
		return err
	}
	return emit(run.result(workload, mode, n, dur))
}

// clientRun is what a timed workload's clients measured.
type clientRun struct {
	Lats     []time.Duration `json:"lats_ns"` // latencies of the successful ops in the window
	Errors   int64           `json:"errors"`  // failed ops in the window
	FirstErr string          `json:"first_error,omitempty"`
}

func (r *clientRun) result(workload, mode string, n int, dur time.Duration) Result {
	res := newResult(workload, n)
	res.Mode = mode
	res.Errors = r.Errors
	res.Seconds = dur.Seconds()
	res.Ops = int64(len(r.Lats))
	res.OpsPerSec = float64(res.Ops) / res.Seconds
	res.P50Ms, res.P99Ms = pcts(r.Lats)
	if r.FirstErr != "" {
		res.Extra["first_error"] = r.FirstErr
	}
	return res
}

// runClients opens a session for each of clients (client i on node i mod
// n), prepares its op, calls start for the time the run starts (the same
// for every process of a -procs run), then runs the ops until warm+dur
// after it, measuring those that start and end within the last dur.
func runClients(c *cluster, workload, mode string, clients []int, warm, dur time.Duration, value []byte, start func() (time.Time, error)) (*clientRun, error) {
	n := len(clients)
	ctx, cancel := context.WithTimeout(context.Background(), warm+dur+2*time.Minute)
	defer cancel()
	sess := make([]*coord.Session, n)
	ops := make([]func() error, n)
	defer closeSessions(sess)
	{
		var wg sync.WaitGroup
		errc := make(chan error, n)
		sem := make(chan struct{}, 16)
		for k, i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				s, err := c.session(ctx, i)
				if err != nil {
					errc <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				sess[k] = s
				op, err := newOp(ctx, s, workload, mode, i, value)
				if err != nil {
					errc <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				ops[k] = op
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return nil, err
		}
	}
	t, err := start()
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Until(t))
	measureFrom := t.Add(warm)
	measureTo := measureFrom.Add(dur)
	lats := make([][]time.Duration, n)
	errs := make([]int64, n)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(measureTo) {
					break
				}
				err := ops[k]()
				t1 := time.Now()
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					if !t0.Before(measureFrom) && !t1.After(measureTo) {
						errs[k]++
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if !t0.Before(measureFrom) && !t1.After(measureTo) {
					l = append(l, t1.Sub(t0))
				}
			}
			lats[k] = l
		}()
	}
	wg.Wait()
	run := &clientRun{}
	for k := range lats {
		run.Lats = append(run.Lats, lats[k]...)
		run.Errors += errs[k]
	}
	if e := firstErr.Load(); e != nil {
		run.FirstErr = e.(string)
	}
	return run, nil
}

func newOp(ctx context.Context, s *coord.Session, workload, mode string, i int, value []byte) (func() error, error) {
	switch workload {
	case "write":
		path := fmt.Sprintf("/bench/w/k%04d", i)
		if err := ensure(ctx, s, path, value); err != nil {
			return nil, err
		}
		return func() error { _, err := s.Set(ctx, path, value, coord.AnyVersion); return err }, nil
	case "read":
		path := fmt.Sprintf("/bench/r/k%04d", i)
		if err := ensure(ctx, s, path, value); err != nil {
			return nil, err
		}
		return func() error {
			if mode == "linearizable" {
				if err := s.Sync(ctx); err != nil {
					return err
				}
			}
			d, _, err := s.Get(ctx, path)
			if err == nil && len(d) != len(value) {
				err = fmt.Errorf("short read %d", len(d))
			}
			return err
		}, nil
	case "ephemeral":
		if err := ensure(ctx, s, "/bench/e", nil); err != nil {
			return nil, err
		}
		return func() error {
			p, err := s.Create(ctx, "/bench/e/n-", value, coord.EphemeralSequential)
			if err != nil {
				return err
			}
			return s.Delete(ctx, p, coord.AnyVersion)
		}, nil
	}
	return nil, fmt.Errorf("no workload %q", workload)
}

func closeSessions(ss []*coord.Session) {
	var wg sync.WaitGroup
	for _, s := range ss {
		if s != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Close(ctx)
			}()
		}
	}
	wg.Wait()
}

func pcts(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		idx := int(math.Ceil(p*float64(len(d)))) - 1 // nearest-rank
		idx = max(0, min(idx, len(d)-1))
		return float64(d[idx]) / 1e6
	}
	return q(0.50), q(0.99)
}

// ---------------------------------------------------------------------------
// lock: recipes.Lock (ZooKeeper's lock recipe, what an application uses)

func lock(c *cluster, n, warm, total int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sess := make([]*coord.Session, n)
	defer closeSessions(sess)
	ls := make([]*recipes.Lock, n)
	for i := range n {
		s, err := c.session(ctx, i)
		if err != nil {
			return err
		}
		sess[i] = s
		ls[i] = recipes.NewLock(s, "/bench/lock", nil)
	}
	var inCS, violations int32
	var lastToken atomic.Int64 // fencing tokens must strictly increase
	phase := func(target int) (time.Duration, []time.Duration, error) {
		var count int64
		var doneAt atomic.Int64
		lats := make([][]time.Duration, n)
		var firstErr atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for atomic.LoadInt64(&count) < int64(target) {
					t0 := time.Now()
					lease, err := ls[i].Acquire(ctx)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					wait := time.Since(t0)
					if atomic.AddInt32(&inCS, 1) != 1 {
						atomic.AddInt32(&violations, 1)
					}
					if lastToken.Swap(lease.Token()) >= lease.Token() {
						atomic.AddInt32(&violations, 1)
					}
					k := atomic.AddInt64(&count, 1)
					atomic.AddInt32(&inCS, -1)
					if err := lease.Release(ctx); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					if k <= int64(target) {
						lats[i] = append(lats[i], wait)
					}
					if k == int64(target) {
						doneAt.Store(int64(time.Since(start)))
					}
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			return 0, nil, e.(error)
		}
		var all []time.Duration
		for _, l := range lats {
			all = append(all, l...)
		}
		return time.Duration(doneAt.Load()), all, nil
	}
	if warm > 0 {
		if _, _, err := phase(warm); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	el, lats, err := phase(total)
	if err != nil {
		return err
	}
	res := newResult("lock", n)
	res.Seconds = el.Seconds()
	res.Ops = int64(len(lats))
	res.OpsPerSec = float64(res.Ops) / res.Seconds
	res.P50Ms, res.P99Ms = pcts(lats)
	res.Extra["latency_is"] = "time blocked in Acquire()"
	res.Extra["mutual_exclusion_violations"] = violations
	res.Extra["recipe"] = "recipes.Lock"
	if violations != 0 {
		return fmt.Errorf("lock: %d mutual-exclusion or fencing-token violations", violations)
	}
	return emit(res)
}

// ---------------------------------------------------------------------------
// failover

// failover runs one trial: light write load from -fo-clients sessions, then
// the leader node is crash-stopped with Node.Shutdown, as a killed process:
// it hands off nothing, closes no session through the quorum and does not
// leave the gossip; the others notice its silence after SyncLimit. The
// figures count from the moment Shutdown has returned (t0); stop_call_ms
// says how long it took.
// Writers whose session lived on the stopped node die with it, as an
// embedded client dies with its process; the recovery figures are of the
// writers on the surviving nodes. Then the node is restarted on its data
// directory and the cluster gets 5 s, as the peers' trials do.
func failover(c *cluster, trial int, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := *flagFOClients
	sess := make([]*coord.Session, n)
	home := make([]int, n)
	defer closeSessions(sess)
	paths := make([]string, n)
	for i := range n {
		k := 1000 + i // the peers' failover writers are clients 1000+i
		s, err := c.session(ctx, k)
		if err != nil {
			return err
		}
		sess[i], home[i] = s, k%len(c.nodes)
		paths[i] = fmt.Sprintf("/bench/w/k%04d", k)
		if err := ensure(ctx, s, paths[i], value); err != nil {
			return err
		}
	}
	type ok struct{ start, end time.Time }
	var mu sync.Mutex
	succ := make([][]ok, n)
	var errCount int64
	var firstErr atomic.Value
	var killedIdx atomic.Int64
	killedIdx.Store(-1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if int(killedIdx.Load()) == home[i] {
					return // its node (its process) is gone
				}
				t0 := time.Now()
				octx, ocancel := context.WithTimeout(ctx, *flagFOTimeout)
				_, err := sess[i].Set(octx, paths[i], value, coord.AnyVersion)
				ocancel()
				t1 := time.Now()
				if err != nil {
					if int(killedIdx.Load()) != home[i] {
						atomic.AddInt64(&errCount, 1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				} else {
					mu.Lock()
					succ[i] = append(succ[i], ok{t0, t1})
					mu.Unlock()
				}
				time.Sleep(*flagFOPause)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	li, err := c.leader()
	if err != nil {
		close(stop)
		wg.Wait()
		return err
	}
	killedID := c.cfgs[li].NodeID
	victim := c.node(li)
	tStop := time.Now()
	killedIdx.Store(int64(li))
	c.mu.Lock()
	c.nodes[li] = nil
	c.mu.Unlock()
	// Crash-stop, as a killed process: no leadership hand-off, no session
	// close, no gossip leave; the others notice by silence (SyncLimit).
	victim.Shutdown()
	// t0 is when the stopped node is gone (its loop and sockets closed).
	tKill := time.Now()
	atomic.StoreInt64(&errCount, 0)
	closeTook := tKill.Sub(tStop)
	survivors := 0
	for i := range n {
		if home[i] != li {
			survivors++
		}
	}
	recovered := func() (first, all time.Duration, done bool) {
		mu.Lock()
		defer mu.Unlock()
		first, done = -1, true
		for i := range n {
			if home[i] == li {
				continue
			}
			var got time.Duration = -1
			for _, s := range succ[i] {
				if !s.start.Before(tKill) {
					got = s.end.Sub(tKill)
					break
				}
			}
			if got < 0 {
				done = false
				continue
			}
			if first < 0 || got < first {
				first = got
			}
			all = max(all, got)
		}
		return
	}
	deadline := tKill.Add(60 * time.Second)
	for {
		if _, _, done := recovered(); done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	first, all, done := recovered()
	var ends []time.Time
	mu.Lock()
	for i := range succ {
		for _, s := range succ[i] {
			ends = append(ends, s.end)
		}
	}
	mu.Unlock()
	sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
	var gap time.Duration
	for j := 1; j < len(ends); j++ {
		if ends[j].Before(tKill) {
			continue
		}
		gap = max(gap, ends[j].Sub(ends[j-1]))
	}
	newIdx, _ := c.leader()
	res := newResult("failover", n)
	res.Seconds = first.Seconds()
	res.Errors = atomic.LoadInt64(&errCount)
	res.Extra["trial"] = trial
	res.Extra["killed_endpoint"] = fmt.Sprintf("coord%d", killedID)
	res.Extra["stop_is"] = "Node.Shutdown (crash-stop in-process: no hand-off, no session close, no gossip leave)"
	res.Extra["stop_call_ms"] = ms(closeTook)
	res.Extra["writers_on_stopped_node"] = n - survivors
	res.Extra["first_write_ok_ms"] = ms(first)
	res.Extra["all_clients_write_ok_ms"] = ms(all)
	res.Extra["all_recovered"] = done
	res.Extra["max_gap_ms"] = ms(gap)
	res.Extra["kill_at"] = tKill.UTC().Format(time.RFC3339Nano)
	if newIdx >= 0 {
		id := c.cfgs[newIdx].NodeID
		res.Extra["new_leader"] = fmt.Sprintf("coord%d", id)
		c.mu.Lock()
		for _, t := range c.leadAt[id] {
			if t.After(tKill) {
				res.Extra["new_leader_in_log_ms"] = ms(t.Sub(tKill))
				break
			}
		}
		c.mu.Unlock()
	}
	if e := firstErr.Load(); e != nil {
		res.Extra["first_error"] = e
	}
	if err := emit(res); err != nil {
		return err
	}
	// restart the stopped node on its data dir, let it catch up, pause 5 s
	closeSessions(sess)
	for i := range sess {
		sess[i] = nil
	}
	if err := c.startNode(ctx, li); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	time.Sleep(5 * time.Second)
	return nil
}

// ---------------------------------------------------------------------------
// memory

type memStat struct {
	rss, anon, file uint64 // KiB, from /proc/self/status
	heapInuse       uint64 // KiB: Go heap spans in use
	heapAlloc       uint64 // KiB: live + not yet collected objects
	sys             uint64 // KiB: memory obtained from the OS by the Go runtime
}

func readMem() memStat {
	var m memStat
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				m.rss = kb
			case "RssAnon":
				m.anon = kb
			case "RssFile":
				m.file = kb
			}
		}
		f.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heapInuse, m.heapAlloc, m.sys = ms.HeapInuse/1024, ms.HeapAlloc/1024, ms.Sys/1024
	return m
}

func mem(c *cluster, value []byte) error {
	emitMem := func(phase string) error {
		m := readMem()
		res := newResult("rss", 0)
		res.Extra["phase"] = phase
		res.Extra["server"] = fmt.Sprintf("coord (%d nodes in 1 process)", len(c.nodes))
		res.Extra["pid"] = os.Getpid()
		res.Extra["rss_kb"] = m.rss
		res.Extra["rss_anon_kb"] = m.anon
		res.Extra["rss_file_kb"] = m.file
		res.Extra["jvm_heap_used_kb"] = 0
		res.Extra["go_heap_inuse_kb"] = m.heapInuse
		res.Extra["go_heap_alloc_kb"] = m.heapAlloc
		res.Extra["go_sys_kb"] = m.sys
		res.Extra["nodes_in_process"] = len(c.nodes)
		return emit(res)
	}
	time.Sleep(5 * time.Second)
	if err := emitMem("empty"); err != nil {
		return err
	}
	runtime.GC()
	debug.FreeOSMemory()
	if err := emitMem("empty, after full GC"); err != nil {
		return err
	}
	keys := *flagKeys
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	s0, err := c.session(ctx, 0)
	if err != nil {
		return err
	}
	if err := ensure(ctx, s0, "/mem", nil); err != nil {
		return err
	}
	const par, batch = 8, 250
	next := int64(-batch)
	var wg sync.WaitGroup
	errc := make(chan error, par)
	sess := make([]*coord.Session, par)
	for w := range par {
		s, err := c.session(ctx, w)
		if err != nil {
			return err
		}
		sess[w] = s
	}
	for w := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(atomic.AddInt64(&next, batch))
				if lo >= keys {
					return
				}
				hi := min(lo+batch, keys)
				ops := make([]coord.Op, 0, hi-lo)
				for k := lo; k < hi; k++ {
					ops = append(ops, coord.CreateOp(fmt.Sprintf("/mem/k%06d", k), value, coord.Persistent))
				}
				if _, err := sess[w].Multi(ctx, ops...); err != nil {
					errc <- fmt.Errorf("multi at %d: %w", lo, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	el := time.Since(t0)
	// count on every node after a Sync
	for i := range c.nodes {
		s := c.node(i)
		if err := s.Sync(ctx); err != nil {
			return err
		}
		st, _, err := s.Exists(ctx, "/mem")
		if err != nil {
			return err
		}
		if int(st.NumChildren) != keys {
			return fmt.Errorf("fill: node %d has %d children of /mem, want %d", i+1, st.NumChildren, keys)
		}
	}
	closeSessions(sess)
	closeSessions([]*coord.Session{s0})
	res := newResult("fill", 0)
	res.Seconds = el.Seconds()
	res.Ops = int64(keys)
	res.OpsPerSec = float64(keys) / el.Seconds()
	res.Extra["note"] = "batched: multi of 250 creates, 8 sessions"
	if err := emit(res); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	if err := emitMem(fmt.Sprintf("%dk keys", keys/1000)); err != nil {
		return err
	}
	runtime.GC()
	debug.FreeOSMemory()
	if err := emitMem(fmt.Sprintf("%dk keys, after full GC", keys/1000)); err != nil {
		return err
	}
	if *flagMemSettle > 0 {
		time.Sleep(*flagMemSettle)
		s, err := c.session(ctx, 0)
		if err != nil {
			return err
		}
		if _, err := s.Set(ctx, "/mem", nil, coord.AnyVersion); err != nil {
			return err
		}
		closeSessions([]*coord.Session{s})
		runtime.GC()
		debug.FreeOSMemory()
		if err := emitMem(fmt.Sprintf("%dk keys, %v later + 1 write, after full GC", keys/1000, *flagMemSettle)); err != nil {
			return err
		}
	}
	if *flagMemProf != "" {
		f, err := os.Create(*flagMemProf)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("heap").WriteTo(f, 0)
	}
	return nil
}

// ---------------------------------------------------------------------------
// output

func newResult(workload string, clients int) Result {
	return Result{Sys: "coord", Label: *flagLabel, Run: *flagRun, Workload: workload, Clients: clients,
		Extra: map[string]any{"fsync": !*flagInMemory, "gomaxprocs": runtime.GOMAXPROCS(0)}}
}

// statsOf is the cluster whose Stats -stats prints.
var statsOf *cluster

func emit(res Result) error {
	if *flagStats && statsOf != nil {
		for i := range statsOf.nodes {
			if n := statsOf.node(i); n != nil {
				st, _ := json.Marshal(n.Stats())
				fmt.Fprintf(os.Stderr, "stats after %s/%d: %s\n", res.Workload, res.Clients, st)
			}
		}
	}
	res.Time = time.Now().UTC().Format(time.RFC3339)
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	if *flagOut == "" {
		return nil
	}
	f, err := os.OpenFile(*flagOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...)
	os.Exit(1)
}

// freeAddr returns a 127.0.0.1 address whose port is free for both TCP and
// UDP right now (gossip listens on both with one port). Examples import only
// public packages, so this is not internal/loopback's.
func freeAddr() (string, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
}

// startDiagnostics starts what -trace, -blockprofile and -mutexprofile ask
// for; the returned function stops them and writes the files.
func startDiagnostics() (func(), error) {
	var stops []func()
	stop := func() {
		for _, f := range stops {
			f()
		}
	}
	if *flagTrace != "" {
		f, err := os.Create(*flagTrace)
		if err != nil {
			return stop, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return stop, err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	profile := func(path, name string, off func()) {
		stops = append(stops, func() {
			off()
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		})
	}
	if *flagBlockProf != "" {
		runtime.SetBlockProfileRate(1)
		profile(*flagBlockProf, "block", func() { runtime.SetBlockProfileRate(0) })
	}
	if *flagMutexProf != "" {
		runtime.SetMutexProfileFraction(1)
		profile(*flagMutexProf, "mutex", func() { runtime.SetMutexProfileFraction(0) })
	}
	return stop, nil
}
