package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// mirror rebuilds a subtree from a Cache's events alone, checking that
// they make sense (a create of an absent node, a change or delete of a
// present one, Mzxid moving forward).
type mirror struct {
	t     *testing.T
	mu    sync.Mutex
	nodes map[string]recipes.CacheEntry
	init  bool
}

func newMirror(t *testing.T, c *recipes.Cache) *mirror {
	m := &mirror{t: t, nodes: map[string]recipes.CacheEntry{}}
	c.Listen(m.on)
	return m
}

func (m *mirror) on(ev recipes.CacheEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.nodes[ev.Entry.Path]
	switch ev.Type {
	case recipes.CacheInitialized:
		if m.init {
			m.t.Error("initialized twice")
		}
		m.init = true
	case recipes.CacheCreated:
		if had {
			m.t.Errorf("created %s twice", ev.Entry.Path)
		}
		m.nodes[ev.Entry.Path] = ev.Entry
	case recipes.CacheChanged:
		if !had || ev.Entry.Stat.Mzxid <= old.Stat.Mzxid || ev.Old.Stat.Mzxid != old.Stat.Mzxid {
			m.t.Errorf("change of %s out of order: had %v at %d, now %d (old %d)", ev.Entry.Path, had, old.Stat.Mzxid, ev.Entry.Stat.Mzxid, ev.Old.Stat.Mzxid)
		}
		m.nodes[ev.Entry.Path] = ev.Entry
	case recipes.CacheDeleted:
		if !had {
			m.t.Errorf("deleted %s that was not there", ev.Entry.Path)
		}
		delete(m.nodes, ev.Entry.Path)
	}
}

func (m *mirror) snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for p, e := range m.nodes {
		out[p] = string(e.Data)
	}
	return out
}

func entries(c *recipes.Cache) map[string]string {
	out := map[string]string{}
	for _, e := range c.Entries() {
		out[e.Path] = string(e.Data)
	}
	return out
}

// subtree reads root's subtree through s after a Sync.
func subtree(t *testing.T, s recipes.Session, root string) map[string]string {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	require.NoError(t, s.Sync(ctx))
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		data, _, err := s.Get(ctx, p)
		if errors.Is(err, coord.ErrNoNode) {
			return
		}
		require.NoError(t, err)
		out[p] = string(data)
		kids, _, err := s.Children(ctx, p)
		require.NoError(t, err)
		for _, k := range kids {
			walk(p + "/" + k)
		}
	}
	walk(root)
	return out
}

// requireConverges waits until the cache and its event mirror both equal
// the subtree.
func requireConverges(t *testing.T, c *recipes.Cache, m *mirror, s recipes.Session, root string) {
	t.Helper()
	want := subtree(t, s, root)
	require.Eventually(t, func() bool {
		return fmt.Sprint(entries(c)) == fmt.Sprint(want) && fmt.Sprint(m.snapshot()) == fmt.Sprint(want)
	}, 10*time.Second, 5*time.Millisecond, "cache never matched the tree: want %v\ncache %v\nevents %v", want, entries(c), m.snapshot())
}

// churn has workers create, change and delete nodes under root.
func churn(t *testing.T, nodes []*coord.Node, root string, n, k int, seed uint64, afterFirst func()) {
	ctx := testCtx(t, 60*time.Second)
	var once sync.Once
	workers(t, nodes, n, func(i int, s *coord.Session) {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		for j := range k {
			p := fmt.Sprintf("%s/w%d/n%d", root, i%4, rng.IntN(6))
			var err error
			switch rng.IntN(3) {
			case 0:
				_, err = s.Create(ctx, p, fmt.Appendf(nil, "%d-%d", i, j), coord.Persistent)
				if errors.Is(err, coord.ErrNoNode) {
					_, err = s.Create(ctx, fmt.Sprintf("%s/w%d", root, i%4), nil, coord.Persistent)
				}
			case 1:
				_, err = s.Set(ctx, p, fmt.Appendf(nil, "%d-%d", i, j), coord.AnyVersion)
			default:
				err = s.Delete(ctx, p, coord.AnyVersion)
			}
			if err != nil && !errors.Is(err, coord.ErrNoNode) && !errors.Is(err, coord.ErrNodeExists) {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if afterFirst != nil {
				once.Do(afterFirst)
			}
		}
	})
}

var cacheSeed = uint64(time.Now().UnixNano())

// TestCacheFollowsChurn: a cache on every node follows 16 workers over 3
// nodes creating, changing and deleting nodes; each ends equal to the tree,
// and its events alone rebuild the same tree. Then again across a leader
// crash. Then Close leaves no watch behind.
func TestCacheFollowsChurn(t *testing.T) {
	t.Logf("seed %d", cacheSeed)
	nodes := cluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	const root = "/svc"
	_, err := nodes[0].Create(ctx, root, []byte("root"), coord.Persistent)
	require.NoError(t, err)
	before := watches(nodes)
	caches := make([]*recipes.Cache, len(nodes))
	mirrors := make([]*mirror, len(nodes))
	for i, n := range nodes {
		caches[i] = recipes.NewCache(recipes.NodeSessions(n), root, recipes.CacheOptions{})
		mirrors[i] = newMirror(t, caches[i])
		require.NoError(t, caches[i].Start(ctx))
		t.Cleanup(func() { caches[i].Close() })
		require.True(t, mirrors[i].init)
	}
	churn(t, nodes, root, 16, 30, cacheSeed, nil)
	s := workSession(t, nodes[0])
	for i := range nodes {
		requireConverges(t, caches[i], mirrors[i], s, root)
	}

	old, alive := splitLeader(t, nodes)
	churn(t, alive, root, 16, 15, cacheSeed+1, old.Shutdown)
	s = workSession(t, alive[0])
	for i, n := range nodes {
		if n != old {
			requireConverges(t, caches[i], mirrors[i], s, root)
			require.NoError(t, caches[i].Err())
		}
	}
	var kept []int
	for i, n := range nodes {
		if n != old {
			require.NoError(t, caches[i].Close())
			require.ErrorIs(t, caches[i].Err(), recipes.ErrCacheClosed)
			kept = append(kept, before[i])
		}
	}
	requireWatchesBack(t, alive, kept)
}

// recording counts how a cache sets its watches.
type recording struct {
	*coord.Session
	watch, watchFrom atomic.Int32
}

func (r *recording) Watch(ctx context.Context, path string, recursive bool) (*coord.Watch, error) {
	r.watch.Add(1)
	return r.Session.Watch(ctx, path, recursive)
}

func (r *recording) WatchFrom(ctx context.Context, path string, recursive bool, zxid int64) (*coord.Watch, error) {
	r.watchFrom.Add(1)
	return r.Session.WatchFrom(ctx, path, recursive, zxid)
}

// gatedSessions hands out one session until it is closed, then a new one
// once the gate is open.
type gatedSessions struct {
	node *coord.Node
	mu   sync.Mutex
	cur  *recording
	gate chan struct{} // closed: open
}

func (g *gatedSessions) get(ctx context.Context) (recipes.Session, error) {
	g.mu.Lock()
	cur, gate := g.cur, g.gate
	g.mu.Unlock()
	if cur != nil && !closed(cur.Session) {
		return cur, nil
	}
	select {
	case <-gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s, err := g.node.Session(ctx, coord.SessionOptions{})
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.cur = &recording{Session: s}
	g.mu.Unlock()
	return g.cur, nil
}

// interrupt closes the current session with the gate shut and returns a
// function that opens it.
func (g *gatedSessions) interrupt(t *testing.T) (open func()) {
	g.mu.Lock()
	gate := make(chan struct{})
	g.gate = gate
	cur := g.cur
	g.mu.Unlock()
	require.NoError(t, cur.Close(testCtx(t, 5*time.Second)))
	return func() { close(gate) }
}

// newGated returns gatedSessions on n with the gate open.
func newGated(n *coord.Node) *gatedSessions {
	open := make(chan struct{})
	close(open)
	return &gatedSessions{node: n, gate: open}
}

// gatedCache returns a cache of root on gated sessions of n, with a
// mirror of its events; it is closed when the test ends.
func gatedCache(t *testing.T, n *coord.Node, root string) (*gatedSessions, *recipes.Cache, *mirror) {
	g := newGated(n)
	c := recipes.NewCache(g.get, root, recipes.CacheOptions{})
	t.Cleanup(func() { c.Close() })
	return g, c, newMirror(t, c)
}

func (g *gatedSessions) current() *recording {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// TestCacheResumes: when its session ends, a cache resumes from the last
// event it handled with WatchFrom and misses nothing that changed in
// between; when more changed than the node keeps (coord.ErrHistoryCompacted),
// it lists the subtree again and reports the difference.
func TestCacheResumes(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	ctx := testCtx(t, 60*time.Second)
	g, c, m := gatedCache(t, n, "/r")
	for _, p := range []string{"/r", "/r/a", "/r/b", "/r/c"} {
		_, err := n.Create(ctx, p, []byte(p), coord.Persistent)
		require.NoError(t, err)
	}
	require.NoError(t, c.Start(ctx))
	_, err := n.Set(ctx, "/r/a", []byte("a1"), coord.AnyVersion) // an event to resume from
	require.NoError(t, err)
	requireConverges(t, c, m, workSession(t, n), "/r")
	first := g.current()

	// A short gap: WatchFrom replays it.
	release := g.interrupt(t)
	_, err = n.Create(ctx, "/r/d", []byte("d"), coord.Persistent)
	require.NoError(t, err)
	_, err = n.Set(ctx, "/r/a", []byte("a2"), coord.AnyVersion)
	require.NoError(t, err)
	require.NoError(t, n.Delete(ctx, "/r/b", coord.AnyVersion))
	release()
	requireConverges(t, c, m, workSession(t, n), "/r")
	second := g.current()
	require.NotSame(t, first, second)
	require.Equal(t, int32(1), second.watchFrom.Load(), "resumed with WatchFrom")
	require.Zero(t, second.watch.Load(), "without listing again")

	// A gap longer than the history: listed again.
	release = g.interrupt(t)
	var ops []coord.Op
	for i := range 1000 { // within coord.MaxMultiOps
		ops = append(ops, coord.SetOp("/r/c", fmt.Appendf(nil, "c%d", i), coord.AnyVersion))
	}
	for range 18 { // 18,000 events > tree.DefaultWatchHistory
		_, err = n.Multi(ctx, ops...)
		require.NoError(t, err)
	}
	require.NoError(t, n.Delete(ctx, "/r/d", coord.AnyVersion))
	_, err = n.Create(ctx, "/r/e", []byte("e"), coord.Persistent)
	require.NoError(t, err)
	release()
	s := workSession(t, n)
	requireConverges(t, c, m, s, "/r")
	third := g.current()
	require.NotSame(t, second, third)
	require.Equal(t, int32(1), third.watchFrom.Load(), "tried to resume")
	require.Equal(t, int32(1), third.watch.Load(), "then listed again")
	require.NoError(t, c.Err())
}

// TestCacheSlowListenerOverflows: a listener too slow for the watch's
// backlog makes the watch overflow (coord.ErrWatchOverflow); the cache
// resumes from its last event with WatchFrom, on the same session, and
// still ends equal to the tree.
func TestCacheSlowListenerOverflows(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	ctx := testCtx(t, 60*time.Second)
	g, c, m := gatedCache(t, n, "/o")
	blocked, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.Listen(func(ev recipes.CacheEvent) {
		if ev.Entry.Path == "/o/slow" {
			once.Do(func() {
				close(blocked)
				<-unblock
			})
		}
	})
	require.NoError(t, c.Start(ctx))
	_, err := n.Create(ctx, "/o", nil, coord.Persistent)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/o/c", nil, coord.Persistent)
	require.NoError(t, err)
	_, err = n.Create(ctx, "/o/slow", nil, coord.Persistent)
	require.NoError(t, err)
	<-blocked
	var ops []coord.Op
	for i := range 1000 { // within coord.MaxMultiOps
		ops = append(ops, coord.SetOp("/o/c", fmt.Appendf(nil, "c%d", i), coord.AnyVersion))
	}
	for range 12 { // 12,000 events > coord.MaxWatchBacklog, < the history kept
		_, err = n.Multi(ctx, ops...)
		require.NoError(t, err)
	}
	close(unblock)
	requireConverges(t, c, m, workSession(t, n), "/o")
	rec := g.current()
	// The view is current before the cache reaches the overflow at the end
	// of the backlog (the first event's read already saw the last change).
	require.Eventually(t, func() bool { return rec.watchFrom.Load() == 1 }, 10*time.Second, time.Millisecond, "resumed with WatchFrom after the overflow")
	require.Equal(t, int32(1), rec.watch.Load(), "the first watch only: no listing again")
	require.NoError(t, c.Err())
}

// TestCacheCancelAndFixedSession: a cancelled Start leaves no watch; a
// cache on a FixedSession stops when the session ends.
func TestCacheCancelAndFixedSession(t *testing.T) {
	nodes := cluster(t, 1)
	n := nodes[0]
	ctx := testCtx(t, 20*time.Second)
	s := workSession(t, n)
	before := watches(nodes)

	// A cancelled Start leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c := recipes.NewCache(recipes.FixedSession(s), "/x", recipes.CacheOptions{})
	require.ErrorIs(t, c.Start(cctx), context.Canceled)
	<-c.Done()
	requireWatchesBack(t, nodes, before)

	// With a FixedSession, the cache stops when its session ends.
	c = recipes.NewCache(recipes.FixedSession(s), "/x", recipes.CacheOptions{})
	require.NoError(t, c.Start(ctx))
	require.NoError(t, s.Close(ctx))
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("cache outlived its fixed session")
	}
	require.Error(t, c.Err())
	requireWatchesBack(t, nodes, before)
	require.NoError(t, c.Close())
}
