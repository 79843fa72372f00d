package tree

import (
	"bufio"
	"hash/crc32"
	"io"
	"sort"
)

// Restore replaces the tree's contents with a snapshot (as a follower does
// when its leader sends a whole snapshot), keeping the watch registrations.
// Watchers hear what changed for them between the old and the new state, as
// ZooKeeper clients do when they re-register watches after a reconnect:
// NodeCreated, NodeDeleted, NodeDataChanged or NodeChildrenChanged at the
// snapshot's zxid. On error the tree is unchanged.
func (t *Tree) Restore(r io.Reader) error {
	fresh := New(Options{})
	fresh.limits = t.limits
	sr := &snapReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	if err := fresh.readSnapshot(sr); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	oldRoot := t.root
	t.root, t.count, t.lastZxid, t.lastTime, t.digest = fresh.root, fresh.count, fresh.lastZxid, fresh.lastTime, fresh.digest
	t.sessions, t.reapable = fresh.sessions, fresh.reapable
	t.dedup, t.dedupOrder, t.dedupFloor, t.dedupDead = fresh.dedup, fresh.dedupOrder, fresh.dedupFloor, fresh.dedupDead

	t.events = t.events[:0]
	t.watches.mu.Lock()
	paths := make([]string, 0, len(t.watches.byPath))
	recursive := map[string]bool{}
	for p, ws := range t.watches.byPath {
		paths = append(paths, p)
		for _, e := range ws {
			if e.kinds&WatchPersistentRecursive != 0 {
				recursive[p] = true
			}
		}
	}
	t.watches.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range paths {
		t.diffPath(p, lookupFrom(oldRoot, p), t.lookup(p), seen)
		if recursive[p] {
			t.diffBelow(p, lookupFrom(oldRoot, p), t.lookup(p), seen)
		}
	}
	// The history cannot span a restore: resuming across it must re-read.
	t.history.reset(t.lastZxid)
	if len(t.events) > 0 {
		t.watches.fire(t.events)
		clear(t.events)
	}
	return nil
}

// diffPath queues the events that turn old into new at path p.
func (t *Tree) diffPath(p string, old, cur *node, seen map[string]bool) {
	if seen[p] {
		return
	}
	seen[p] = true
	z := t.lastZxid
	switch {
	case old == nil && cur == nil:
	case old == nil:
		t.events = append(t.events, Event{Type: EventNodeCreated, Path: p, Zxid: z})
	case cur == nil:
		t.events = append(t.events, Event{Type: EventNodeDeleted, Path: p, Zxid: z})
	default:
		if old.mzxid != cur.mzxid || old.czxid != cur.czxid {
			t.events = append(t.events, Event{Type: EventNodeDataChanged, Path: p, Zxid: z})
		}
		if old.pzxid != cur.pzxid || old.cversion != cur.cversion {
			t.events = append(t.events, Event{Type: EventNodeChildrenChanged, Path: p, Zxid: z})
		}
	}
}

// diffBelow queues events for every node below p that differs, for
// recursive watchers.
func (t *Tree) diffBelow(p string, old, cur *node, seen map[string]bool) {
	names := map[string][2]*node{}
	if old != nil {
		for _, c := range old.children() {
			e := names[c.name]
			e[0] = c
			names[c.name] = e
		}
	}
	if cur != nil {
		for _, c := range cur.children() {
			e := names[c.name]
			e[1] = c
			names[c.name] = e
		}
	}
	keys := make([]string, 0, len(names))
	for name := range names {
		keys = append(keys, name)
	}
	sort.Strings(keys)
	for _, name := range keys {
		pair := names[name]
		cp := joinPath(p, name)
		t.diffPath(cp, pair[0], pair[1], seen)
		t.diffBelow(cp, pair[0], pair[1], seen)
	}
}
