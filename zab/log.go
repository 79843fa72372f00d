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

	// The read-back of entries the storage no longer serves
	// (ErrUnavailable): fetched holds the entries after fetchedAfter that
	// the driver read back last (Peer.Fetched); fetchSeq numbers the
	// requests, fetching says the last one is outstanding, and wantFetch
	// asks for one after fetchAfter in the next Ready.
	fetched      []Entry
	fetchedAfter Zxid
	fetchSeq     uint64
	fetching     bool
	wantFetch    bool
	fetchAfter   Zxid
}

func mustStorage(err error) {
	if err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
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
			if errors.Is(err, ErrUnavailable) {
				// Read back: what it holds ends before the unstable
				// entries, so it is all this call returns.
				return l.readBack(after, limit, max)
			}
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

// readBack returns entries after after from what the driver read back, or
// ErrUnavailable and asks for them (one read-back outstanding at a time).
func (l *zlog) readBack(after, upTo Zxid, max int) ([]Entry, error) {
	if n := len(l.fetched); n > 0 && l.fetchedAfter <= after && after < l.fetched[n-1].Zxid {
		lo := searchEntries(l.fetched, after)
		hi := searchEntries(l.fetched, upTo)
		if max > 0 && hi-lo > max {
			hi = lo + max
		}
		return l.fetched[lo:hi:hi], nil
	}
	if !l.fetching && !l.wantFetch {
		l.wantFetch, l.fetchAfter = true, after
	}
	return nil, ErrUnavailable
}

// takeFetch returns the read-back to ask for in this Ready, if any.
func (l *zlog) takeFetch() *FetchRequest {
	if !l.wantFetch {
		return nil
	}
	l.wantFetch, l.fetching = false, true
	l.fetchSeq++
	return &FetchRequest{Seq: l.fetchSeq, After: l.fetchAfter}
}

// dropFetched forgets what was read back and any read-back outstanding:
// the log changed under it.
func (l *zlog) dropFetched() {
	l.fetched, l.fetchedAfter = nil, 0
	l.fetching, l.wantFetch = false, false
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
	l.dropFetched()
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
	l.dropFetched()
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
	l.dropFetched()
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
