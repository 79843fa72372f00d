package session

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Entry is a session a Tracker is told about: its id and negotiated timeout.
type Entry struct {
	ID      ID
	Timeout time.Duration
}

// Info is what a Tracker knows about one session.
type Info struct {
	ID      ID
	Timeout time.Duration
	// Expiry is when the session expires unless touched, rounded up to the
	// tracker's tick. Meaningless once Closing is set.
	Expiry time.Time
	// Closing is set once the session was returned by Expired or marked by
	// MarkClosing: its closeSession txn is (about to be) proposed and Touch
	// refuses it.
	Closing bool
}

// Tracker is the leader's table of live sessions, ZooKeeper's
// SessionTrackerImpl and ExpiryQueue in one: it records each session's
// timeout and expiry, refreshes the expiry on every heartbeat, and reports
// sessions whose expiry has passed.
//
// Expiry times are rounded up to the next multiple of the tick (counted from
// the time given to NewTracker), so sessions fall into per-tick buckets:
// Touch moves a session between buckets in O(1) (plus a heap push when it
// opens a new bucket), and Expired visits only the buckets that are due: it
// costs O(k log k) for k expired sessions plus O(log b) per due bucket (b
// buckets pending), independent of the number of live sessions.
// Rounding up only ever makes the leader expire later than the exact
// last-heartbeat + timeout, never earlier, which is the direction safety needs
// (see the package doc).
//
// Times are passed in; the tracker never reads the clock. Pass times from
// one monotonic source (time.Now readings or a simulator's clock). A Tracker
// is not safe for concurrent use: one goroutine (coord's leader loop) owns it.
type Tracker struct {
	tick     time.Duration
	base     time.Time
	sessions map[ID]*tracked
	// buckets maps a bucket index to the sessions expiring at base+index*tick.
	// A bucket emptied by touches stays until it is due (or NextExpiry drops
	// it), so every key has exactly one entry in due.
	buckets map[int64]*bucket
	due     indexHeap // min-heap of the keys of buckets
	scanned int       // entries visited by Expired; tests check it is O(expired)
}

type tracked struct {
	id      ID
	timeout time.Duration
	b       *bucket // the bucket it sits in; nil once closing
	pos     int     // index within b.items
	closing bool
}

// bucket holds the sessions expiring at base+idx*tick.
type bucket struct {
	idx   int64
	items []*tracked
}

// NewTracker returns an empty tracker whose expiry buckets are tick wide,
// counted from now. A tick of the cluster's tick time (or a fraction of it) is
// typical; a larger tick means fewer buckets and up to one tick of extra lease
// for every session.
func NewTracker(tick time.Duration, now time.Time) (*Tracker, error) {
	if tick <= 0 {
		return nil, fmt.Errorf("%w: tracker tick (%v) must be positive", ErrInvalidConfig, tick)
	}
	return &Tracker{
		tick:     tick,
		base:     now,
		sessions: make(map[ID]*tracked),
		buckets:  make(map[int64]*bucket),
	}, nil
}

// Tick returns the bucket width given to NewTracker.
func (t *Tracker) Tick() time.Duration { return t.tick }

// Len returns the number of sessions tracked, closing ones included (they
// stay until Remove, when their closeSession txn has been applied).
func (t *Tracker) Len() int { return len(t.sessions) }

// Add starts tracking session id with the given (negotiated) timeout, expiring
// timeout after now unless touched. Adding a session that is already tracked
// updates its timeout and refreshes it like Touch (this is what applying its
// createSession txn twice means); a closing session stays closing.
func (t *Tracker) Add(id ID, timeout time.Duration, now time.Time) error {
	if !id.Valid() {
		return fmt.Errorf("%w: %s", ErrInvalidID, id)
	}
	if timeout <= 0 {
		return fmt.Errorf("%w: %v for session %s", ErrInvalidTimeout, timeout, id)
	}
	if s, ok := t.sessions[id]; ok {
		s.timeout = timeout
		if !s.closing {
			t.refresh(s, now)
		}
		return nil
	}
	s := &tracked{id: id, timeout: timeout}
	t.sessions[id] = s
	t.place(s, t.bucketFor(now, timeout))
	return nil
}

// Touch records a heartbeat from session id received at now, pushing its
// expiry to timeout after now (rounded up to the tick). An expiry never moves
// earlier, even if now is older than a previous touch.
//
// Touch returns false if the session is unknown or closing: it has expired or
// is being closed, its closeSession txn may already be proposed, and the
// owner must be told the session is gone rather than have it revived (as
// ZooKeeper's touchSession refuses a session marked isClosing).
//
// A session whose expiry has passed but which Expired has not reported yet
// (the leader's timer fired late) is still refreshed, as in ZooKeeper. That is
// safe: nothing was deleted, and the new expiry is later than the lease any
// acknowledgement of this heartbeat can give the owner.
func (t *Tracker) Touch(id ID, now time.Time) bool {
	s, ok := t.sessions[id]
	if !ok || s.closing {
		return false
	}
	t.refresh(s, now)
	return true
}

// MarkClosing marks session id closing without waiting for it to expire, for
// a client that asked to close its session: from now on Touch refuses it and
// Expired does not report it. It returns false if the session is unknown.
func (t *Tracker) MarkClosing(id ID) bool {
	s, ok := t.sessions[id]
	if !ok {
		return false
	}
	if !s.closing {
		t.unplace(s)
		s.closing = true
	}
	return true
}

// Remove forgets session id, once its closeSession txn has been applied. It
// returns false if the session was not tracked.
func (t *Tracker) Remove(id ID) bool {
	s, ok := t.sessions[id]
	if !ok {
		return false
	}
	if !s.closing {
		t.unplace(s)
	}
	delete(t.sessions, id)
	return true
}

// Expired returns the sessions whose expiry is at or before now and marks them
// closing, so a heartbeat that arrives after this call cannot revive them. The
// caller proposes a closeSession txn for each and calls Remove when it is
// applied. Each session is returned once. The order is deterministic: by
// expiry, then by id. The cost is proportional to the number of due buckets
// and sessions in them, not to the number of sessions tracked. It returns nil
// when nothing is due.
func (t *Tracker) Expired(now time.Time) []ID {
	limit := t.nowIndex(now) // buckets with index <= limit are due: index*tick <= now
	var out []ID
	for len(t.due) > 0 && t.due[0] <= limit {
		idx := t.due.pop()
		b := t.buckets[idx]
		delete(t.buckets, idx)
		start := len(out)
		out = slices.Grow(out, len(b.items))
		for _, s := range b.items {
			t.scanned++
			s.closing = true
			s.b = nil
			out = append(out, s.id)
		}
		slices.Sort(out[start:])
	}
	return out
}

// NextExpiry returns the earliest time at which Expired can return a
// session, and false if no session can expire (none tracked, or all closing).
// The leader's driver uses it to arm its timer.
func (t *Tracker) NextExpiry() (time.Time, bool) {
	for len(t.due) > 0 {
		idx := t.due[0]
		if len(t.buckets[idx].items) > 0 {
			return t.indexTime(idx), true
		}
		t.due.pop() // emptied by touches: drop it so the next call is O(1)
		delete(t.buckets, idx)
	}
	return time.Time{}, false
}

// Lookup returns what the tracker knows about session id.
func (t *Tracker) Lookup(id ID) (Info, bool) {
	s, ok := t.sessions[id]
	if !ok {
		return Info{}, false
	}
	st := Info{ID: id, Timeout: s.timeout, Closing: s.closing}
	if !s.closing {
		st.Expiry = t.indexTime(s.b.idx)
	}
	return st, true
}

// Sessions returns the tracked sessions sorted by id, closing ones included.
func (t *Tracker) Sessions() []Info {
	out := make([]Info, 0, len(t.sessions))
	for id := range t.sessions {
		st, _ := t.Lookup(id)
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Info) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Reset replaces everything tracked with sessions, for a leader taking over:
// each session gets a full timeout counted from now (the takeover), as
// ZooKeeper's new leader does, so a failover never expires a session whose
// owner kept heartbeating. Closing marks are dropped: a closeSession that the
// old leader proposed but did not commit is forgotten, and the session lives
// until it expires again. Invalid entries are skipped and reported in the
// returned error (the valid ones are still tracked).
// Reset does not move the tick grid set by NewTracker.
//
// Safety needs now to be no earlier than the send time of any heartbeat an
// earlier leader acknowledged; see the package doc for how coord ensures it.
func (t *Tracker) Reset(sessions []Entry, now time.Time) error {
	clear(t.sessions)
	clear(t.buckets)
	t.due = t.due[:0]
	var errs []error
	for _, e := range sessions {
		if err := t.Add(e.ID, e.Timeout, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// refresh moves a live session to the bucket for now+timeout unless it is
// already there or later.
func (t *Tracker) refresh(s *tracked, now time.Time) {
	idx := t.bucketFor(now, s.timeout)
	if idx <= s.b.idx {
		return
	}
	t.unplace(s)
	t.place(s, idx)
}

func (t *Tracker) place(s *tracked, idx int64) {
	b, ok := t.buckets[idx]
	if !ok {
		b = &bucket{idx: idx}
		t.buckets[idx] = b
		t.due.push(idx)
	}
	s.b, s.pos = b, len(b.items)
	b.items = append(b.items, s)
}

// unplace takes a live session out of its bucket. The bucket stays even if
// empty: it still has its heap entry.
func (t *Tracker) unplace(s *tracked) {
	items := s.b.items
	last := len(items) - 1
	items[s.pos] = items[last]
	items[s.pos].pos = s.pos
	items[last] = nil
	s.b.items = items[:last]
	s.b = nil
}

// bucketFor returns the bucket of a session touched at now with timeout: the
// first multiple of the tick strictly after now+timeout, as ZooKeeper's
// ExpiryQueue.roundToNextInterval.
func (t *Tracker) bucketFor(now time.Time, timeout time.Duration) int64 {
	at := int64(now.Sub(t.base)) + int64(timeout)
	return floorDiv(at, int64(t.tick)) + 1
}

// nowIndex returns the largest bucket index whose time is at or before now.
func (t *Tracker) nowIndex(now time.Time) int64 {
	return floorDiv(int64(now.Sub(t.base)), int64(t.tick))
}

func (t *Tracker) indexTime(idx int64) time.Time {
	return t.base.Add(time.Duration(idx) * t.tick)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// indexHeap is a min-heap of bucket indices. It is written out rather than
// using container/heap so pushing and popping do not box int64s.
type indexHeap []int64

func (h *indexHeap) push(x int64) {
	*h = append(*h, x)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p] <= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *indexHeap) pop() int64 {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(a) && a[l] < a[m] {
			m = l
		}
		if r := l + 1; r < len(a) && a[r] < a[m] {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
