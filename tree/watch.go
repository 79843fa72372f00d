package tree

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Watcher receives watch events. Notify is called while the tree holds its
// locks, before any read can observe the change, in zxid order; it must not
// block and must not call back into the tree. Implementations queue the event
// (coord delivers them on channels). Watchers are compared by identity, so use
// pointer types.
type Watcher interface {
	Notify(Event)
}

// WatchKind selects kinds of watch registrations; kinds combine as bit flags.
type WatchKind uint8

// Watch kinds, as ZooKeeper's.
const (
	// WatchData is a one-shot watch set by Get or Exists: it fires on the
	// node's creation, data change or deletion.
	WatchData WatchKind = 1 << iota
	// WatchChildren is a one-shot watch set by Children: it fires when a
	// child is created or deleted, or the node itself is deleted.
	WatchChildren
	// WatchPersistent stays after firing and reports every change to the
	// node: creation, data change, deletion and child changes.
	WatchPersistent
	// WatchPersistentRecursive stays after firing and reports creation, data
	// change and deletion of the node and of every node below it (not child
	// changes, as in ZooKeeper).
	WatchPersistentRecursive
	// WatchAny selects every kind, for RemoveWatches.
	WatchAny = WatchData | WatchChildren | WatchPersistent | WatchPersistentRecursive
)

type watchTable struct {
	mu        sync.Mutex
	byPath    map[string]map[Watcher]watchEntry
	byWatcher map[Watcher]map[string]struct{}
	recursive int    // registrations with WatchPersistentRecursive
	seq       uint64 // registration counter: watchers hear an event in registration order
	matched   []match
	notified  map[Watcher]struct{}
}

type watchEntry struct {
	kinds WatchKind
	seq   uint64
}

type match struct {
	w   Watcher
	seq uint64
}

func (wt *watchTable) init() {
	wt.byPath = make(map[string]map[Watcher]watchEntry)
	wt.byWatcher = make(map[Watcher]map[string]struct{})
	wt.notified = make(map[Watcher]struct{})
}

func (wt *watchTable) add(path string, w Watcher, k WatchKind) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	ws := wt.byPath[path]
	if ws == nil {
		ws = make(map[Watcher]watchEntry)
		wt.byPath[path] = ws
	}
	e, ok := ws[w]
	if !ok {
		wt.seq++
		e.seq = wt.seq
	}
	if k&WatchPersistentRecursive != 0 && e.kinds&WatchPersistentRecursive == 0 {
		wt.recursive++
	}
	e.kinds |= k
	ws[w] = e
	ps := wt.byWatcher[w]
	if ps == nil {
		ps = make(map[string]struct{})
		wt.byWatcher[w] = ps
	}
	ps[path] = struct{}{}
}

// clear removes kinds k of w at path and reports what was removed. Caller holds mu.
func (wt *watchTable) clear(path string, w Watcher, k WatchKind) WatchKind {
	ws := wt.byPath[path]
	e, ok := ws[w]
	old := e.kinds
	if !ok || old&k == 0 {
		return 0
	}
	if old&k&WatchPersistentRecursive != 0 {
		wt.recursive--
	}
	if rest := old &^ k; rest != 0 {
		ws[w] = watchEntry{kinds: rest, seq: e.seq}
		return old & k
	}
	delete(ws, w)
	if len(ws) == 0 {
		delete(wt.byPath, path)
	}
	if ps := wt.byWatcher[w]; ps != nil {
		delete(ps, path)
		if len(ps) == 0 {
			delete(wt.byWatcher, w)
		}
	}
	return old & k
}

// fire delivers events in order. For each event a watcher is notified at
// most once, however many of its registrations match, and watchers are
// notified in the order they registered, so replicas behave identically.
func (wt *watchTable) fire(events []Event) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for _, ev := range events {
		wt.matched = wt.matched[:0]
		var oneShot, persistent WatchKind
		switch ev.Type {
		case EventNodeChildrenChanged:
			oneShot, persistent = WatchChildren, WatchPersistent
		case EventNodeDeleted:
			oneShot, persistent = WatchData|WatchChildren, WatchPersistent|WatchPersistentRecursive
		default:
			oneShot, persistent = WatchData, WatchPersistent|WatchPersistentRecursive
		}
		for w, e := range wt.byPath[ev.Path] {
			if e.kinds&(oneShot|persistent) == 0 {
				continue
			}
			if e.kinds&oneShot != 0 {
				wt.clear(ev.Path, w, oneShot)
			}
			wt.matched = append(wt.matched, match{w, e.seq})
		}
		direct := len(wt.matched)
		if wt.recursive > 0 && ev.Type != EventNodeChildrenChanged {
			for p := ev.Path; p != "/"; {
				p, _ = splitPath(p)
				for w, e := range wt.byPath[p] {
					if e.kinds&WatchPersistentRecursive != 0 {
						wt.matched = append(wt.matched, match{w, e.seq})
					}
				}
			}
		}
		if len(wt.matched) > 1 {
			slices.SortFunc(wt.matched, func(a, b match) int { return cmp.Compare(a.seq, b.seq) })
		}
		if direct == len(wt.matched) {
			// Only this path's registrations: each watcher once already.
			for _, m := range wt.matched {
				m.w.Notify(ev)
			}
			continue
		}
		clear(wt.notified)
		for _, m := range wt.matched {
			if _, dup := wt.notified[m.w]; !dup {
				wt.notified[m.w] = struct{}{}
				m.w.Notify(ev)
			}
		}
	}
	clear(wt.matched)
}

// AddWatch sets a persistent watch (recursive or not) for w at path. The node
// need not exist. Adding a watch that exists already is a no-op.
func (t *Tree) AddWatch(path string, w Watcher, recursive bool) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	if w == nil {
		return fmt.Errorf("%w: nil watcher", ErrBadArguments)
	}
	k := WatchPersistent
	if recursive {
		k = WatchPersistentRecursive
	}
	// Under the read lock, so the watch takes effect at a definite zxid.
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.watches.add(path, w, k)
	return nil
}

// RemoveWatches removes w's registrations of the given kinds at path. It
// returns ErrNoWatcher if there were none.
func (t *Tree) RemoveWatches(path string, w Watcher, kinds WatchKind) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	t.watches.mu.Lock()
	defer t.watches.mu.Unlock()
	if t.watches.clear(path, w, kinds) == 0 {
		return fmt.Errorf("%w: %s", ErrNoWatcher, path)
	}
	return nil
}

// RemoveWatcher removes every registration of w, as when its session ends.
func (t *Tree) RemoveWatcher(w Watcher) {
	t.watches.mu.Lock()
	defer t.watches.mu.Unlock()
	for p := range t.watches.byWatcher[w] {
		t.watches.clear(p, w, WatchAny)
	}
}

// WatchCount returns the number of (path, watcher) registrations.
func (t *Tree) WatchCount() int {
	t.watches.mu.Lock()
	defer t.watches.mu.Unlock()
	n := 0
	for _, ws := range t.watches.byPath {
		n += len(ws)
	}
	return n
}
