package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// Fast timers for loopback tests: a dead peer is declared within a few
// seconds and a split is healed within a few heal rounds. Faster probes
// make a loaded 2-CPU machine running -race declare live peers dead.
const (
	testProbe = 100 * time.Millisecond
	testHeal  = 300 * time.Millisecond
)

// logRecords is a slog handler that keeps every record as one line
// (level, message, attributes) for assertions, and prints them when the
// test fails.
type logRecords struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLogRecords() *logRecords {
	return &logRecords{mu: new(sync.Mutex), lines: new([]string)}
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	return nil
}

func (h *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *logRecords) WithGroup(string) slog.Handler { return h }

func (h *logRecords) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.lines)
}

// has reports whether a line starts with level and contains every part.
func (h *logRecords) has(level slog.Level, parts ...string) bool {
	for _, l := range h.all() {
		if !strings.HasPrefix(l, level.String()+" ") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// testNode is a Gossip under test with its captured logs.
type testNode struct {
	*Gossip
	logs *logRecords
}

func testConfig(id uint64, seeds ...string) Config {
	return Config{
		NodeID:        id,
		Cluster:       "test",
		BindAddr:      "127.0.0.1:0",
		Seeds:         seeds,
		Meta:          Meta{ReplicationAddr: fmt.Sprintf("127.0.0.1:%d", 30000+id), Role: RoleVoter},
		ProbeInterval: testProbe,
		HealInterval:  testHeal,
	}
}

// start starts a node for cfg, closed at the end of the test; on failure
// its logs are printed.
func start(t *testing.T, cfg Config) *testNode {
	t.Helper()
	logs := newLogRecords()
	cfg.Logger = slog.New(logs)
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(node %d): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		g.Close()
		if t.Failed() {
			for _, l := range logs.all() {
				if !strings.HasPrefix(l, "DEBUG") {
					t.Logf("node %d: %s", cfg.NodeID, l)
				}
			}
		}
	})
	return &testNode{Gossip: g, logs: logs}
}

// join joins n through its seeds within a bounded time.
func join(t *testing.T, n *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Join(ctx); err != nil {
		t.Fatalf("Join(node %d): %v", n.cfg.NodeID, err)
	}
}

// cluster starts n nodes (ids 1..n) and joins them through node 1.
func cluster(t *testing.T, n int, tweak func(*Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for id := uint64(1); id <= uint64(n); id++ {
		var cfg Config
		if id == 1 {
			cfg = testConfig(id)
		} else {
			cfg = testConfig(id, nodes[0].Addr())
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes = append(nodes, start(t, cfg))
	}
	for _, nd := range nodes[1:] {
		join(t, nd)
	}
	waitFor(t, 10*time.Second, "every node sees every node alive", func() bool {
		for _, nd := range nodes {
			if !seesAlive(nd, nodes...) {
				return false
			}
		}
		return true
	})
	return nodes
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// member returns n's view of id.
func member(n *testNode, id uint64) (Member, bool) {
	for _, m := range n.Members() {
		if m.NodeID == id {
			return m, true
		}
	}
	return Member{}, false
}

// seesAlive reports whether n sees each of others alive (or suspect) at
// its current address.
func seesAlive(n *testNode, others ...*testNode) bool {
	for _, o := range others {
		m, ok := member(n, o.cfg.NodeID)
		if !ok || m.Addr != o.Addr() || (m.State != StateAlive && m.State != StateSuspect) {
			return false
		}
	}
	return true
}

// stateOf returns n's view of id's state, or false if unknown.
func stateOf(n *testNode, id uint64) (State, bool) {
	m, ok := member(n, id)
	return m.State, ok
}

// waitEvent reads n's events until one for id of type typ arrives.
func waitEvent(t *testing.T, n *testNode, typ EventType, id uint64, timeout time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				t.Fatalf("node %d: events closed while waiting for %v of %d", n.cfg.NodeID, typ, id)
			}
			if ev.Type == typ && ev.Member.NodeID == id {
				return ev
			}
		case <-timer.C:
			t.Fatalf("node %d: no %v event for node %d within %v", n.cfg.NodeID, typ, id, timeout)
		}
	}
}

// recorder keeps every event of a node, so a test can look for one without
// consuming (and losing) the others.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

// recordEvents reads n's events until Close closes the channel.
func recordEvents(n *testNode) *recorder {
	r := &recorder{}
	go func() {
		for ev := range n.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

// find returns the first recorded event that matches.
func (r *recorder) find(match func(Event) bool) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if match(ev) {
			return ev, true
		}
	}
	return Event{}, false
}

// partition cuts gossip between groups of addresses. Nodes whose transport
// it wraps drop packets to, and refuse connections to, an address of
// another group, like a network that silently loses them.
type partition struct {
	mu    sync.Mutex
	group map[string]int // address -> group; 0 or absent = connected to all
}

func newPartition() *partition { return &partition{group: make(map[string]int)} }

func (p *partition) set(groups map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.group = groups
}

func (p *partition) heal() { p.set(map[string]int{}) }

func (p *partition) cut(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	gf, gt := p.group[from], p.group[to]
	return gf != 0 && gt != 0 && gf != gt
}

// wrap returns a Config.wrapTransport hook for this partition.
func (p *partition) wrap(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	nt := inner.(*memberlist.NetTransport)
	return &cutTransport{NodeAwareTransport: inner, p: p, self: fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort())}
}

type cutTransport struct {
	memberlist.NodeAwareTransport
	p    *partition
	self string
}

var errCut = fmt.Errorf("test partition: unreachable")

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.p.cut(c.self, addr) {
		return time.Now(), nil
	}
	return c.NodeAwareTransport.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.p.cut(c.self, a.Addr) {
		return time.Now(), nil
	}
	return c.NodeAwareTransport.WriteToAddress(b, a)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.p.cut(c.self, addr) {
		return nil, errCut
	}
	return c.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.p.cut(c.self, a.Addr) {
		return nil, errCut
	}
	return c.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
