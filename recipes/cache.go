package recipes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
)

// ErrCacheClosed is returned by Cache.Start on a closed cache, and is what
// Cache.Err reports after Close.
var ErrCacheClosed = errors.New("recipes: cache closed")

// CacheEventType says what a CacheEvent reports.
type CacheEventType uint8

// Cache event types.
const (
	// CacheCreated: a node appeared in the cache (also for every node of the
	// initial load, before CacheInitialized).
	CacheCreated CacheEventType = iota + 1
	// CacheChanged: a cached node's data changed.
	CacheChanged
	// CacheDeleted: a node left the cache.
	CacheDeleted
	// CacheInitialized: the initial load is complete; sent once.
	CacheInitialized
)

// String returns the event type's name.
func (t CacheEventType) String() string {
	switch t {
	case CacheCreated:
		return "created"
	case CacheChanged:
		return "changed"
	case CacheDeleted:
		return "deleted"
	case CacheInitialized:
		return "initialized"
	}
	return fmt.Sprintf("CacheEventType(%d)", t)
}

// CacheEntry is a cached node.
type CacheEntry struct {
	Path string
	Data []byte // shared: do not modify
	Stat coord.Stat
}

// CacheEvent is a change of the cache. For CacheDeleted, Entry is the node
// as last cached; for CacheChanged, Old is the previous entry.
type CacheEvent struct {
	Type  CacheEventType
	Entry CacheEntry
	Old   CacheEntry
}

// CacheOptions configure a Cache.
type CacheOptions struct {
	// SingleNode caches the root alone, not its descendants (Curator's
	// SINGLE_NODE_CACHE).
	SingleNode bool
}

// Cache is a local view of a subtree kept current by a persistent recursive
// watch (Curator's CuratorCache). After the initial load (ended by a
// CacheInitialized event) every create, data change and delete under the
// root reaches the listeners, in the order coord applied them.
//
// Each node's entry only moves forward: it is replaced only by a state with
// a higher Mzxid (or a re-creation, with a higher Czxid). When its watch
// ends (the session was lost, or the cache fell MaxWatchBacklog events
// behind), the cache takes a session from its factory, makes the replica
// catch up with Sync, and resumes with WatchFrom from the last event it
// handled; if the node no longer keeps that history (coord.ErrHistoryCompacted)
// it lists the subtree again and reports the difference as events.
//
// Listeners run one at a time on the cache's goroutine: a slow listener
// delays the cache, never loses an event.
type Cache struct {
	sessions SessionFactory
	root     string
	opts     CacheOptions

	mu        sync.Mutex
	entries   map[string]CacheEntry
	listeners map[int]func(CacheEvent)
	nextID    int
	started   bool
	err       error

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewCache returns a cache of the subtree at root (which need not exist).
// Add listeners, then Start it.
func NewCache(sessions SessionFactory, root string, opts CacheOptions) *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	if root != "/" {
		root = strings.TrimRight(root, "/")
	}
	return &Cache{sessions: sessions, root: root, opts: opts,
		entries: map[string]CacheEntry{}, listeners: map[int]func(CacheEvent){},
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Listen adds a listener of the cache's events and returns a function that
// removes it. A listener added after Start misses the events before.
func (c *Cache) Listen(fn func(CacheEvent)) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextID
	c.nextID++
	c.listeners[id] = fn
	return func() {
		c.mu.Lock()
		delete(c.listeners, id)
		c.mu.Unlock()
	}
}

// Start loads the subtree, sends CacheInitialized, and returns; the cache
// then keeps itself current until Close. ctx bounds the initial load only.
// If it fails, the cache is closed.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return fmt.Errorf("recipes: cache of %s started twice", c.root)
	}
	c.started = true
	c.mu.Unlock()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { // Close ends the initial load too
		select {
		case <-c.ctx.Done():
			stop()
		case <-ctx.Done():
		}
	}()
	s, err := c.sessions(ctx)
	if err != nil {
		c.fail(err)
		return err
	}
	w, err := s.Watch(ctx, c.root, !c.opts.SingleNode)
	if err != nil {
		c.fail(err)
		return err
	}
	if err := c.relist(ctx, s); err != nil {
		stopWatch(w)
		if c.ctx.Err() != nil {
			err = ErrCacheClosed
		}
		c.fail(err)
		return err
	}
	c.emit([]CacheEvent{{Type: CacheInitialized}})
	go c.run(s, w)
	return nil
}

// Get returns the cached entry of path.
func (c *Cache) Get(path string) (CacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	return e, ok
}

// Entries returns every cached entry, sorted by path.
func (c *Cache) Entries() []CacheEntry {
	c.mu.Lock()
	out := make([]CacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Done is closed when the cache stops: after Close, or when it can no
// longer follow the subtree (see Err).
func (c *Cache) Done() <-chan struct{} { return c.done }

// Err returns why the cache stopped (ErrCacheClosed after Close; the
// factory's error: coord.ErrClosed or coord.ErrFailed once the node is
// gone, coord.ErrSessionExpired with a FixedSession), or nil while it runs.
func (c *Cache) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close stops the cache and removes its watch; it waits for the cache's
// goroutine (and so for a running listener: do not call it from one).
// Idempotent.
func (c *Cache) Close() error {
	c.cancel()
	c.mu.Lock()
	started := c.started
	c.started = true // a Start after Close fails
	c.mu.Unlock()
	if !started {
		c.fail(ErrCacheClosed)
	}
	<-c.done
	return nil
}

func (c *Cache) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.mu.Unlock()
	c.cancel()
}

// run follows the watch until Close, resuming after every interruption.
func (c *Cache) run(s Session, w *coord.Watch) {
	var last int64 // zxid of the last event handled; 0: none since the last listing
	for {
		err := c.follow(s, w, &last)
		stopWatch(w)
		if c.ctx.Err() != nil {
			c.fail(ErrCacheClosed)
			return
		}
		s, w, err = c.resume(s, err, &last)
		if err != nil {
			if c.ctx.Err() != nil {
				err = ErrCacheClosed
			}
			c.fail(err)
			return
		}
	}
}

// follow applies w's events until it ends, returning its final error.
func (c *Cache) follow(s Session, w *coord.Watch, last *int64) error {
	for {
		select {
		case ev, ok := <-w.C():
			if !ok {
				return coord.ErrClosed
			}
			if ev.Err != nil {
				return ev.Err
			}
			if ev.Type == coord.EventNodeChildrenChanged {
				continue // a SingleNode watch reports these; the view has no use for them
			}
			if err := c.apply(s, ev); err != nil {
				return err
			}
			*last = ev.Zxid
		case <-c.ctx.Done():
			return ErrCacheClosed
		}
	}
}

// apply brings the entry of ev's path up to date by reading it.
func (c *Cache) apply(s Session, ev coord.Event) error {
	c.mu.Lock()
	old, had := c.entries[ev.Path]
	c.mu.Unlock()
	var evs []CacheEvent
	if ev.Type == coord.EventNodeDeleted {
		// An entry created after the delete (read while handling an earlier
		// event) stays.
		if had && old.Stat.Czxid < ev.Zxid {
			evs = c.remove(ev.Path)
		}
		c.emit(evs)
		return nil
	}
	if had && old.Stat.Mzxid >= ev.Zxid {
		return nil // already read at or past this change
	}
	evs, err := c.read(c.ctx, s, ev.Path)
	if err != nil {
		return err
	}
	c.emit(evs)
	return nil
}

// read refreshes one path's entry from the replica.
func (c *Cache) read(ctx context.Context, s Session, path string) ([]CacheEvent, error) {
	data, st, err := s.Get(ctx, path)
	if errors.Is(err, coord.ErrNoNode) {
		return c.remove(path), nil
	}
	if err != nil {
		return nil, err
	}
	return c.put(CacheEntry{Path: path, Data: data, Stat: st}), nil
}

// put stores e if it is newer than the cached entry.
func (c *Cache) put(e CacheEntry) []CacheEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.entries[e.Path]
	switch {
	case !had:
		c.entries[e.Path] = e
		return []CacheEvent{{Type: CacheCreated, Entry: e}}
	case e.Stat.Czxid > old.Stat.Czxid:
		// Re-created since it was cached: the old one was deleted.
		c.entries[e.Path] = e
		return []CacheEvent{{Type: CacheDeleted, Entry: old}, {Type: CacheCreated, Entry: e}}
	case e.Stat.Czxid == old.Stat.Czxid && e.Stat.Mzxid > old.Stat.Mzxid:
		c.entries[e.Path] = e
		return []CacheEvent{{Type: CacheChanged, Entry: e, Old: old}}
	}
	return nil
}

func (c *Cache) remove(path string) []CacheEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.entries[path]
	if !had {
		return nil
	}
	delete(c.entries, path)
	return []CacheEvent{{Type: CacheDeleted, Entry: old}}
}

// emit calls the listeners, outside the lock, in order.
func (c *Cache) emit(evs []CacheEvent) {
	if len(evs) == 0 {
		return
	}
	c.mu.Lock()
	ids := make([]int, 0, len(c.listeners))
	for id := range c.listeners {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	fns := make([]func(CacheEvent), len(ids))
	for i, id := range ids {
		fns[i] = c.listeners[id]
	}
	c.mu.Unlock()
	for _, ev := range evs {
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// relist reads the whole subtree and reports how it differs from the
// cache. The watch is set before, so nothing changed after the listing is
// missed.
func (c *Cache) relist(ctx context.Context, s Session) error {
	seen := map[string]bool{}
	var evs []CacheEvent
	queue := []string{c.root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		data, st, err := s.Get(ctx, p)
		if errors.Is(err, coord.ErrNoNode) {
			continue // deleted since its parent was listed: its event follows
		}
		if err != nil {
			return err
		}
		seen[p] = true
		evs = append(evs, c.put(CacheEntry{Path: p, Data: data, Stat: st})...)
		if c.opts.SingleNode || st.NumChildren == 0 {
			continue
		}
		kids, _, err := s.Children(ctx, p)
		if errors.Is(err, coord.ErrNoNode) {
			continue
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			queue = append(queue, childPath(p, k))
		}
	}
	c.mu.Lock()
	var gone []string
	for p := range c.entries {
		if !seen[p] {
			gone = append(gone, p)
		}
	}
	c.mu.Unlock()
	sort.Strings(gone)
	for _, p := range gone {
		evs = append(evs, c.remove(p)...)
	}
	c.emit(evs)
	return nil
}

// resume sets the watch again after it ended with why: from the last
// handled event if the replica still has the history, else with a fresh
// listing. A lost session is replaced through the factory.
func (c *Cache) resume(s Session, why error, last *int64) (Session, *coord.Watch, error) {
	backoff := 10 * time.Millisecond
	for {
		ns, w, err := c.resumeOnce(s, why, last)
		if err == nil {
			return ns, w, nil
		}
		if c.ctx.Err() != nil || nodeGone(err) {
			return nil, nil, err
		}
		if ns == s && errors.Is(err, coord.ErrSessionExpired) && errors.Is(why, coord.ErrSessionExpired) {
			return nil, nil, err // the factory has no other session to give
		}
		why = err
		select {
		case <-time.After(backoff):
		case <-c.ctx.Done():
			return nil, nil, ErrCacheClosed
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *Cache) resumeOnce(s Session, why error, last *int64) (Session, *coord.Watch, error) {
	ctx := c.ctx
	ns, err := c.sessions(ctx)
	if err != nil {
		return s, nil, err
	}
	if ns != s {
		// Another session, perhaps on another node: let its replica catch
		// up with everything this cache has seen before reading.
		if err := syncRetry(ctx, ns); err != nil {
			return ns, nil, err
		}
	}
	if *last > 0 {
		// Resume just before the last handled zxid: a multi's events share
		// a zxid, and reading a node twice is harmless.
		w, err := ns.WatchFrom(ctx, c.root, !c.opts.SingleNode, *last-1)
		if err == nil {
			return ns, w, nil
		}
		if !errors.Is(err, coord.ErrHistoryCompacted) && !errors.Is(err, coord.ErrBadArguments) {
			return ns, nil, err
		}
	}
	// No resumable point: list again.
	w, err := ns.Watch(ctx, c.root, !c.opts.SingleNode)
	if err != nil {
		return ns, nil, err
	}
	if err := c.relist(ctx, ns); err != nil {
		stopWatch(w)
		return ns, nil, err
	}
	*last = 0
	return ns, w, nil
}

func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// stopWatch closes w and drains it: coord's watch stays registered until
// its consumer has taken the final event.
func stopWatch(w *coord.Watch) {
	w.Close()
	for range w.C() {
	}
}
