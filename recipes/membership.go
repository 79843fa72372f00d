package recipes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
)

// ErrLeft is what Member.Err reports after Leave.
var ErrLeft = errors.New("recipes: member left the group")

// errRetrySession: the factory gave a session whose loss its owner has not
// seen yet; ask again shortly.
var errRetrySession = errors.New("recipes: session not replaced yet")

// Member is this process's registration in a group (ZooKeeper's group
// membership, Curator's PersistentNode): an ephemeral node dir/name whose
// data is the member's metadata. It keeps the node there: when the node
// disappears (its session was lost and the leader expired it, or someone
// deleted it) it takes a fresh session from its factory and creates the
// node again with the newest metadata. A worker can report its progress by
// Update-ing its own node (ZooKeeper's work-reporting pattern).
type Member struct {
	sessions SessionFactory
	dir      string
	path     string

	mu      sync.Mutex
	data    []byte
	gen     uint64  // bumped by every Update
	s       Session // the session registering the node
	err     error
	wake    chan struct{} // an Update could not write: re-check
	regOnce sync.Once
	reg     chan struct{} // closed at the first registration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// JoinGroup registers name in the group under dir (created as a container
// if missing) with data as its metadata, and returns once the node exists.
// If ctx ends first it returns ctx's error and leaves nothing behind. Call
// Leave to unregister.
func JoinGroup(ctx context.Context, sessions SessionFactory, dir, name string, data []byte) (*Member, error) {
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: member name %q", coord.ErrBadArguments, name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir = strings.TrimRight(dir, "/")
	bctx, cancel := context.WithCancel(context.Background())
	m := &Member{sessions: sessions, dir: dir, path: dir + "/" + name, data: data,
		wake: make(chan struct{}, 1), reg: make(chan struct{}),
		ctx: bctx, cancel: cancel, done: make(chan struct{})}
	go m.keep()
	select {
	case <-m.reg:
		return m, nil
	case <-m.done:
		err := m.Err()
		m.Leave(context.WithoutCancel(ctx))
		return nil, err
	case <-ctx.Done():
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		defer lcancel()
		m.Leave(lctx)
		return nil, ctx.Err()
	}
}

// Path is the member's node.
func (m *Member) Path() string { return m.path }

// Done is closed when the member stops keeping its node: after Leave, or
// when its factory can give no live session (see Err).
func (m *Member) Done() <-chan struct{} { return m.done }

// Err reports why the member stopped (ErrLeft after Leave), nil while it
// keeps its node.
func (m *Member) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Update replaces the member's metadata. While the node is being
// registered again the new data goes with the new node.
func (m *Member) Update(ctx context.Context, data []byte) error {
	m.mu.Lock()
	m.data = data
	m.gen++
	s := m.s
	m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-m.done:
		return m.Err()
	default:
	}
	if s != nil {
		_, err := s.Set(ctx, m.path, data, coord.AnyVersion)
		if err == nil {
			return nil
		}
		if !errors.Is(err, coord.ErrNoNode) && !errors.Is(err, coord.ErrSessionExpired) && !errors.Is(err, coord.ErrClosed) {
			return err
		}
	}
	// Not registered right now: the keeper writes the data when it is.
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// Leave stops keeping the node and deletes it. Idempotent.
func (m *Member) Leave(ctx context.Context) error {
	m.cancel()
	<-m.done
	m.mu.Lock()
	s := m.s
	if m.err == nil {
		m.err = ErrLeft
	}
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	// Delete only a node of this member's last session (not a successor's
	// of the same name), even one whose create was cut short by Leave.
	st, ok, err := s.Exists(ctx, m.path)
	if err != nil || !ok || st.EphemeralOwner != s.ID() {
		return ignoreGone(err)
	}
	return ignoreGone(s.Delete(ctx, m.path, coord.AnyVersion))
}

func ignoreGone(err error) error {
	if errors.Is(err, coord.ErrNoNode) || errors.Is(err, coord.ErrSessionExpired) || errors.Is(err, coord.ErrClosed) {
		return nil
	}
	return err
}

// keep registers the node and registers it again whenever it goes.
func (m *Member) keep() {
	defer close(m.done)
	var last Session // the session that was lost, not to be used again
	backoff := 10 * time.Millisecond
	for m.ctx.Err() == nil {
		s, err := m.sessions(m.ctx)
		if err == nil && s == last {
			// The factory gives the lost session again. Its owner may not
			// have seen the loss yet (the leader expired it first): wait.
			// If it has, the factory has no other (FixedSession): stop.
			if _, _, perr := s.Exists(m.ctx, "/"); perr != nil && (errors.Is(perr, coord.ErrSessionExpired) || nodeGone(perr)) {
				err = fmt.Errorf("recipes: member %s: no live session: %w", m.path, coord.ErrSessionExpired)
			} else {
				s, err = nil, errRetrySession
			}
		}
		if err != nil {
			if nodeGone(err) || errors.Is(err, coord.ErrSessionExpired) {
				m.stop(err)
				return
			}
		} else {
			err = m.keepWith(s)
			if errors.Is(err, coord.ErrSessionExpired) || nodeGone(err) {
				last, backoff = s, 10*time.Millisecond
				continue
			}
		}
		select {
		case <-time.After(backoff):
		case <-m.ctx.Done():
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (m *Member) stop(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
}

// keepWith keeps the node with session s until s is lost (or another
// error, or Leave).
func (m *Member) keepWith(s Session) error {
	ctx := m.ctx
	m.mu.Lock()
	m.s = s
	m.mu.Unlock()
	w, err := s.Watch(ctx, m.path, false)
	if err != nil {
		return err
	}
	defer stopWatch(w)
	for {
		if err := m.register(ctx, s); err != nil {
			return err
		}
		// Wait for the node to go (a stale node of a lost session goes when
		// the leader expires it), or for an Update that found no node.
		for again := false; !again; {
			select {
			case ev, ok := <-w.C():
				if !ok {
					return coord.ErrClosed
				}
				if ev.Err != nil {
					return ev.Err
				}
				again = ev.Type == coord.EventNodeDeleted
			case <-m.wake:
				again = true
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// register makes sure the node exists and is this member's, through s, with
// the newest data. It returns without registering if a node of another
// session is in the way: the caller waits for it to go.
func (m *Member) register(ctx context.Context, s Session) error {
	for {
		m.mu.Lock()
		data, gen := m.data, m.gen
		m.mu.Unlock()
		// Leave waits for this create's outcome (see settled), so it finds
		// and deletes the node even if it cancelled the create in flight.
		cctx, cancel := settled(ctx)
		_, err := s.Create(cctx, m.path, data, coord.Ephemeral)
		cancel()
		switch {
		case err == nil:
			m.registered()
			return m.catchUp(ctx, s, gen)
		case errors.Is(err, coord.ErrNoNode):
			if err := ensureDir(ctx, s, m.dir); err != nil {
				return err
			}
			continue
		case !errors.Is(err, coord.ErrNodeExists):
			return err
		}
		st, ok, err := s.Exists(ctx, m.path)
		if err != nil {
			return err
		}
		if !ok {
			continue // went meanwhile
		}
		if st.EphemeralOwner == s.ID() {
			// Ours already (a retried create, or registered before).
			m.registered()
			return m.catchUp(ctx, s, gen)
		}
		return nil
	}
}

func (m *Member) registered() { m.regOnce.Do(func() { close(m.reg) }) }

// catchUp writes data that an Update made after gen was read.
func (m *Member) catchUp(ctx context.Context, s Session, gen uint64) error {
	for {
		m.mu.Lock()
		data, now := m.data, m.gen
		m.mu.Unlock()
		if now == gen {
			return nil
		}
		if _, err := s.Set(ctx, m.path, data, coord.AnyVersion); err != nil && !errors.Is(err, coord.ErrNoNode) {
			return err
		}
		gen = now
	}
}

// MemberEventType says what a MemberEvent reports.
type MemberEventType uint8

// Member event types.
const (
	// MemberJoined: a member registered (also for every member of the
	// initial load, before MembersLoaded).
	MemberJoined MemberEventType = iota + 1
	// MemberUpdated: a member changed its metadata.
	MemberUpdated
	// MemberLeft: a member's node went (it left, or its session was lost).
	MemberLeft
	// MembersLoaded: the initial load is complete; sent once.
	MembersLoaded
)

// String returns the event type's name.
func (t MemberEventType) String() string {
	switch t {
	case MemberJoined:
		return "joined"
	case MemberUpdated:
		return "updated"
	case MemberLeft:
		return "left"
	case MembersLoaded:
		return "loaded"
	}
	return fmt.Sprintf("MemberEventType(%d)", t)
}

// MemberInfo is one member as the group sees it.
type MemberInfo struct {
	Name string
	Data []byte // shared: do not modify
	Stat coord.Stat
}

// MemberEvent is a change of the group.
type MemberEvent struct {
	Type   MemberEventType
	Member MemberInfo
}

// Group is a live view of the members registered under a directory (the
// service-registry side of Member), kept current by a Cache: Members lists
// them, listeners hear of joins, updates and departures in the order coord
// applied them.
type Group struct {
	dir   string
	cache *Cache
}

// NewGroup returns a view of the group under dir. Add listeners, then
// Start it.
func NewGroup(sessions SessionFactory, dir string) *Group {
	dir = strings.TrimRight(dir, "/")
	return &Group{dir: dir, cache: NewCache(sessions, dir, CacheOptions{})}
}

// Listen adds a listener of the group's events (see Cache.Listen).
func (g *Group) Listen(fn func(MemberEvent)) (remove func()) {
	return g.cache.Listen(func(ev CacheEvent) {
		if ev.Type == CacheInitialized {
			fn(MemberEvent{Type: MembersLoaded})
			return
		}
		info, ok := g.member(ev.Entry)
		if !ok {
			return
		}
		switch ev.Type {
		case CacheCreated:
			fn(MemberEvent{Type: MemberJoined, Member: info})
		case CacheChanged:
			fn(MemberEvent{Type: MemberUpdated, Member: info})
		case CacheDeleted:
			fn(MemberEvent{Type: MemberLeft, Member: info})
		}
	})
}

// member reports whether e is a member's node (a child of the directory).
func (g *Group) member(e CacheEntry) (MemberInfo, bool) {
	rest, ok := strings.CutPrefix(e.Path, g.dir+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return MemberInfo{}, false
	}
	return MemberInfo{Name: rest, Data: e.Data, Stat: e.Stat}, true
}

// Start loads the members and keeps the view current until Close (see
// Cache.Start).
func (g *Group) Start(ctx context.Context) error { return g.cache.Start(ctx) }

// Members returns the current members, sorted by name.
func (g *Group) Members() []MemberInfo {
	var out []MemberInfo
	for _, e := range g.cache.Entries() {
		if info, ok := g.member(e); ok {
			out = append(out, info)
		}
	}
	return out
}

// Done is closed when the view stops (see Cache.Done).
func (g *Group) Done() <-chan struct{} { return g.cache.Done() }

// Err reports why the view stopped, nil while it runs.
func (g *Group) Err() error { return g.cache.Err() }

// Close stops the view. Idempotent.
func (g *Group) Close() error { return g.cache.Close() }
