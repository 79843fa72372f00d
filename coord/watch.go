package coord

import (
	"context"
	"fmt"
	"sync"

	"github.com/coord-dev/coord/tree"
)

// EventType is the kind of change a watch event reports.
type EventType = tree.EventType

// Event types, as ZooKeeper's.
const (
	EventNodeCreated         = tree.EventNodeCreated
	EventNodeDeleted         = tree.EventNodeDeleted
	EventNodeDataChanged     = tree.EventNodeDataChanged
	EventNodeChildrenChanged = tree.EventNodeChildrenChanged
)

// MaxWatchBacklog is how many undelivered events a persistent watch holds
// for a slow consumer. Beyond it the watch ends with a final event whose Err
// is ErrWatchOverflow: events are never dropped silently.
const MaxWatchBacklog = 10000

// Event is one watch notification. Events reach each watcher in zxid order,
// and a watcher gets an event before any read on its node can return the
// state after the change. The last event of a watch that ends for another
// reason than firing has Type 0 and Err set: ErrSessionExpired (the session
// was lost or closed), ErrClosed (the node or watch was closed) or
// ErrWatchOverflow.
type Event struct {
	Type EventType
	Path string
	Zxid int64
	Err  error
}

// watchSink is a watch that can be ended by its session.
type watchSink interface {
	tree.Watcher
	end(err error)
}

// oneShot delivers one event, then closes its channel.
type oneShot struct {
	s    *Session
	ch   chan Event
	mu   sync.Mutex
	done bool
}

func (s *Session) newOneShot() *oneShot {
	w := &oneShot{s: s, ch: make(chan Event, 1)}
	s.addWatch(w)
	return w
}

// Notify runs under the tree's locks: the buffered send cannot block.
func (w *oneShot) Notify(ev tree.Event) {
	if w.finish(Event{Type: ev.Type, Path: ev.Path, Zxid: ev.Zxid}) {
		w.s.forgetWatch(w)
	}
}

func (w *oneShot) end(err error) { w.finish(Event{Err: err}) }

func (w *oneShot) finish(ev Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.done = true
	w.ch <- ev
	close(w.ch)
	return true
}

// RemoveWatch removes a one-shot watch of this session (set by GetW,
// ExistsW or ChildrenW) that its caller no longer waits for, so an
// abandoned wait does not leave it registered until the node changes
// (ZooKeeper's removeWatches). The channel gets a final event with ErrClosed
// and is closed. It reports whether the watch was still pending: false if it
// had fired or ended already, or ch is not one of this session's watches.
func (s *Session) RemoveWatch(ch <-chan Event) bool {
	var w *oneShot
	s.mu.Lock()
	for sink := range s.watches {
		if o, ok := sink.(*oneShot); ok && o.ch == ch {
			w = o
			break
		}
	}
	s.mu.Unlock()
	if w == nil {
		return false
	}
	s.dropWatch(w)
	return w.finish(Event{Err: ErrClosed})
}

// Watch is a persistent watch: it reports every change until closed. See
// Session.Watch. Its only methods are C and Close: events come from the
// tree, and nothing else can inject one.
type Watch struct{ w *persistentWatch }

// persistentWatch is what the tree notifies for a Watch.
type persistentWatch struct {
	s         *Session
	path      string
	recursive bool
	out       chan Event
	signal    chan struct{}

	mu      sync.Mutex
	backlog []Event
	inHand  int  // events the pump took from backlog and has not delivered
	ended   bool // no more events will be queued
}

// Watch sets a persistent watch on path (which need not exist). It reports
// NodeCreated, NodeDataChanged, NodeDeleted and NodeChildrenChanged of path;
// with recursive, NodeCreated, NodeDataChanged and NodeDeleted of path and
// every node below it (no child events, as in ZooKeeper). Events are queued
// for a slow consumer up to MaxWatchBacklog.
func (s *Session) Watch(ctx context.Context, path string, recursive bool) (*Watch, error) {
	return s.watch(ctx, path, recursive, -1)
}

// WatchFrom is Watch that first delivers every event after zxid the watch
// would have reported, so a consumer that remembers the Zxid of the last
// event it handled can resume after its watch ended (session lost, overflow,
// restart of the consumer) without missing a change, something ZooKeeper
// cannot do. The node keeps the last tree.DefaultWatchHistory events; older
// zxids fail with ErrHistoryCompacted: read the state again and Watch.
func (s *Session) WatchFrom(ctx context.Context, path string, recursive bool, zxid int64) (*Watch, error) {
	if zxid < 0 {
		return nil, fmt.Errorf("%w: negative zxid", ErrBadArguments)
	}
	return s.watch(ctx, path, recursive, zxid)
}

func (s *Session) watch(ctx context.Context, path string, recursive bool, from int64) (*Watch, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	w := &persistentWatch{s: s, path: path, recursive: recursive,
		out: make(chan Event), signal: make(chan struct{}, 1)}
	if err := tree.ValidatePath(path); err != nil {
		return nil, err
	}
	s.addWatch(w)
	var err error
	if from >= 0 {
		err = s.n.tree.AddWatchFrom(path, w, recursive, from)
	} else {
		err = s.n.tree.AddWatch(path, w, recursive)
	}
	if err != nil {
		s.forgetWatch(w)
		return nil, err
	}
	s.n.wg.Add(1)
	go w.pump()
	return &Watch{w}, nil
}

// C returns the channel of events. It is closed after the final event.
func (w *Watch) C() <-chan Event { return w.w.out }

// Close removes the watch; the channel gets a final event with ErrClosed
// (if the consumer reads it) and is closed. Close is idempotent.
func (w *Watch) Close() error {
	w.w.end(ErrClosed)
	return nil
}

// Notify runs under the tree's locks: it only queues.
func (w *persistentWatch) Notify(ev tree.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	if len(w.backlog)+w.inHand >= MaxWatchBacklog {
		w.backlog = append(w.backlog, Event{Err: ErrWatchOverflow})
		w.ended = true
	} else {
		w.backlog = append(w.backlog, Event{Type: ev.Type, Path: ev.Path, Zxid: ev.Zxid})
	}
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *persistentWatch) end(err error) {
	w.mu.Lock()
	if !w.ended {
		w.ended = true
		w.backlog = append(w.backlog, Event{Err: err})
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// pump moves queued events to the consumer. It stops after the final event
// or when the node closes.
func (w *persistentWatch) pump() {
	defer w.s.n.wg.Done()
	defer close(w.out)
	defer func() {
		w.s.forgetWatch(w)
		w.s.n.tree.RemoveWatcher(w)
	}()
	for {
		select {
		case <-w.signal:
		case <-w.s.n.closing:
			return
		}
		w.mu.Lock()
		batch := w.backlog
		w.backlog, w.inHand = nil, len(batch)
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-w.s.n.closing:
				return
			}
			w.mu.Lock()
			w.inHand--
			w.mu.Unlock()
			if ev.Err != nil {
				return
			}
		}
	}
}
