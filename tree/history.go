package tree

import (
	"errors"
	"fmt"
)

// ErrHistoryCompacted means AddWatchFrom asked for events older than the
// tree still keeps: read the current state and watch from now.
var ErrHistoryCompacted = errors.New("tree: watch history compacted")

// eventRing keeps the most recent events, oldest first, and the zxid below
// which events are no longer all kept.
type eventRing struct {
	buf   []Event
	start int   // index of the oldest event
	n     int   // events held
	floor int64 // every event with zxid > floor is held (if the ring is enabled)
}

func (r *eventRing) init(size int) {
	switch {
	case size == 0:
		size = DefaultWatchHistory
	case size < 0:
		size = 0
	}
	r.buf = make([]Event, size)
}

func (r *eventRing) add(evs []Event) {
	if len(r.buf) == 0 {
		if len(evs) > 0 {
			r.floor = evs[len(evs)-1].Zxid
		}
		return
	}
	for _, ev := range evs {
		if r.n == len(r.buf) {
			// Dropping the oldest: events at its zxid are no longer complete.
			r.floor = r.buf[r.start].Zxid
			r.start = (r.start + 1) % len(r.buf)
			r.n--
		}
		r.buf[(r.start+r.n)%len(r.buf)] = ev
		r.n++
	}
}

// reset forgets everything up to zxid.
func (r *eventRing) reset(zxid int64) {
	clear(r.buf)
	r.start, r.n, r.floor = 0, 0, zxid
}

// since calls fn for every kept event with zxid > from, in order.
func (r *eventRing) since(from int64, fn func(Event)) error {
	if from < r.floor {
		return fmt.Errorf("%w: events after zxid %d are gone (kept from %d)", ErrHistoryCompacted, from, r.floor)
	}
	for i := 0; i < r.n; i++ {
		if ev := r.buf[(r.start+i)%len(r.buf)]; ev.Zxid > from {
			fn(ev)
		}
	}
	return nil
}

// AddWatchFrom is AddWatch that first replays to w, in order, every event
// after zxid that the watch would have reported, then keeps it registered
// with nothing missed in between (a watcher that records the zxid of the
// last event it handled resumes exactly where it left off). It returns
// ErrHistoryCompacted if events after zxid are no longer kept, and an error
// if zxid is beyond the last applied txn.
func (t *Tree) AddWatchFrom(path string, w Watcher, recursive bool, zxid int64) error {
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
	// The write lock: no txn may slip between the replay and the registration.
	t.mu.Lock()
	defer t.mu.Unlock()
	if zxid > t.lastZxid {
		return fmt.Errorf("%w: zxid %d is beyond the last applied %d", ErrBadArguments, zxid, t.lastZxid)
	}
	var replay []Event
	if err := t.history.since(zxid, func(ev Event) {
		if matches(ev, path, recursive) {
			replay = append(replay, ev)
		}
	}); err != nil {
		return err
	}
	for _, ev := range replay {
		w.Notify(ev)
	}
	t.watches.add(path, w, k)
	return nil
}

// matches reports whether a persistent watch at path would report ev.
func matches(ev Event, path string, recursive bool) bool {
	if !recursive {
		return ev.Path == path
	}
	if ev.Type == EventNodeChildrenChanged {
		return false
	}
	return ev.Path == path || path == "/" || (len(ev.Path) > len(path) && ev.Path[:len(path)] == path && ev.Path[len(path)] == '/')
}
