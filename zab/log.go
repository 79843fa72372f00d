package zab

import (
	"errors"
	"fmt"
	"slices"
)

// zlog is the core's view of its log: the durable Storage plus the changes
// decided since the last Advance (the unstable part, handed to the driver in
// the next Ready). Applied in order, the changes are: replace everything by
// snap; drop durable entries after truncAt; append ents.
type zlog struct {
	storage Storage

	wiped     bool // everything durable goes first (Ready.Reset): the log starts from zero
	snap      *Snapshot
	truncated bool
	truncAt   Zxid
	ents      []Entry

	committed Zxid // highest zxid known committed
	applied   Zxid // highest zxid handed to the driver for applying
}

func mustStorage(err error) {
	if err != nil && !errors.Is(err, ErrCompacted) {
		panic(fmt.Errorf("zab: storage failure: %w", err))
	}
}

// baseLast returns the last zxid of the log before its unstable entries.
func (l *zlog) baseLast() Zxid {
	if l.snap != nil {
		return l.snap.Zxid
	}
	if l.wiped {
		return 0
	}
	if l.truncated {
		z, err := l.storage.Floor(l.truncAt)
		mustStorage(err)
		return z
	}
	z, err := l.storage.LastZxid()
	mustStorage(err)
	return z
}

func (l *zlog) last() Zxid {
	if n := len(l.ents); n > 0 {
		return l.ents[n-1].Zxid
	}
	return l.baseLast()
}

// floor returns the largest zxid held that is at most z, or ErrCompacted.
func (l *zlog) floor(z Zxid) (Zxid, error) {
	if n := len(l.ents); n > 0 && z >= l.ents[0].Zxid {
		i := searchEntries(l.ents, z)
		return l.ents[i-1].Zxid, nil
	}
	if l.snap != nil {
		if z < l.snap.Zxid {
			return 0, ErrCompacted
		}
		return l.snap.Zxid, nil
	}
	if l.wiped {
		return 0, nil
	}
	if l.truncated && z > l.truncAt {
		z = l.truncAt
	}
	f, err := l.storage.Floor(z)
	mustStorage(err)
	return f, err
}

// contains reports whether z is a point of the log (an entry or the base).
func (l *zlog) contains(z Zxid) bool {
	f, err := l.floor(z)
	return err == nil && f == z
}

// searchEntries returns the index of the first entry with zxid > z.
func searchEntries(ents []Entry, z Zxid) int {
	lo, hi := 0, len(ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ents[m].Zxid <= z {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// entries returns up to max entries with after < zxid <= upTo.
func (l *zlog) entries(after, upTo Zxid, max int) ([]Entry, error) {
	if upTo <= after {
		return nil, nil
	}
	var out []Entry
	if l.snap == nil && !l.wiped {
		limit := upTo
		if l.truncated && l.truncAt < limit {
			limit = l.truncAt
		}
		if len(l.ents) > 0 && l.ents[0].Zxid <= limit {
			limit = l.ents[0].Zxid - 1
		}
		if after < limit {
			es, err := l.storage.Entries(after, limit, max)
			mustStorage(err)
			if err != nil {
				return nil, err
			}
			out = es
		}
	} else if l.snap != nil && after < l.snap.Zxid {
		return nil, ErrCompacted
	}
	if max > 0 && len(out) >= max {
		return out[:max], nil
	}
	lo := searchEntries(l.ents, after)
	hi := searchEntries(l.ents, upTo)
	if lo < hi {
		if out == nil && (max <= 0 || hi-lo <= max) {
			return l.ents[lo:hi:hi], nil // shared: callers never modify entries
		}
		for _, e := range l.ents[lo:hi] {
			if max > 0 && len(out) >= max {
				break
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// snapshot returns the newest snapshot the log holds.
func (l *zlog) snapshot() Snapshot {
	if l.snap != nil {
		return *l.snap
	}
	if l.wiped {
		return Snapshot{}
	}
	s, err := l.storage.Snapshot()
	mustStorage(err)
	return s
}

func (l *zlog) append(ents ...Entry) {
	l.ents = append(l.ents, ents...)
}

// truncate drops every entry after z. Committed entries are never dropped:
// it refuses (returns false) to truncate below the commit point.
func (l *zlog) truncate(z Zxid) bool {
	if z >= l.last() {
		return true
	}
	if z < l.committed {
		return false
	}
	if n := len(l.ents); n > 0 && z >= l.ents[0].Zxid {
		// Copy: earlier slices of ents may still travel in messages.
		l.ents = slices.Clone(l.ents[:searchEntries(l.ents, z)])
		return true
	}
	l.ents = nil
	if l.snap != nil || l.wiped {
		return true
	}
	if !l.truncated || z < l.truncAt {
		l.truncated, l.truncAt = true, z
	}
	return true
}

func (l *zlog) installSnapshot(s Snapshot) {
	l.snap = &s
	l.truncated, l.truncAt = false, 0
	l.ents = nil
	if s.Zxid > l.committed {
		l.committed = s.Zxid
	}
	l.applied = s.Zxid
}

// wipe drops the whole log, durable part included (Peer.Resync).
func (l *zlog) wipe() {
	l.wiped = true
	l.snap, l.truncated, l.truncAt, l.ents = nil, false, 0, nil
	l.committed, l.applied = 0, 0
}

func (l *zlog) hasUnstable() bool { return l.wiped || l.snap != nil || l.truncated || len(l.ents) > 0 }

func (l *zlog) stable() {
	l.wiped = false
	l.snap = nil
	l.truncated, l.truncAt = false, 0
	l.ents = nil
}
