package zab

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrCompacted is returned by Storage when the requested zxid lies before the
// snapshot, i.e. its entries were compacted away.
var ErrCompacted = errors.New("zab: requested entries are compacted")

// HardState is what a peer must persist besides its log: ZooKeeper's
// acceptedEpoch (the last epoch it acknowledged in discovery) and
// currentEpoch (the last epoch whose history it synced with). They are
// persisted separately because a peer may accept an epoch it never syncs
// with.
type HardState struct {
	AcceptedEpoch uint32 `msgpack:"a"`
	CurrentEpoch  uint32 `msgpack:"c"`
	// ClusterID is the random id the cluster chose when it was first
	// established (zero until this peer learns it; it may change until
	// Member is set).
	ClusterID uint64 `msgpack:"id,omitempty"`
	// Member is set once this peer's state is part of the cluster's
	// history: it acknowledged NEWLEADER, or led an established epoch.
	// A member ignores empty voters (current epoch zero, as after a lost
	// disk) until an established leader has synced them.
	Member bool `msgpack:"m,omitempty"`
	// Fixed is set once this peer knows an epoch was established under
	// ClusterID: the id can no longer change, and a leader or peer with
	// another fixed id belongs to another cluster.
	Fixed bool `msgpack:"f,omitempty"`
}

// IsEmpty reports whether hs is the zero state (nothing to persist).
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// Snapshot is an opaque state-machine snapshot that reflects every committed
// entry up to and including Zxid. zab never interprets Data.
type Snapshot struct {
	Zxid Zxid   `msgpack:"z"`
	Data []byte `msgpack:"d"`
	// Voters is the configuration in force at Zxid; nil when the snapshot
	// predates any (the peers' configured Voters then apply).
	Voters []PeerID `msgpack:"v,omitempty"`
}

// Storage is the read-only view of a peer's durable state that the protocol
// core reads (like etcd's raft.Storage). The driver writes to it from Ready
// before calling Advance; the core never writes. The log is a base zxid (the
// last compacted entry) followed by entries in increasing zxid order; the
// latest snapshot lies between the base and the last entry, so a peer can
// still serve DIFFs from before its snapshot until it compacts.
//
// Methods return ErrCompacted for zxids before the base; any other error
// is a storage failure the core cannot recover from, and it panics with it
// (the driver should stop the node).
type Storage interface {
	// InitialState returns the persisted epochs.
	InitialState() (HardState, error)
	// LastZxid returns the zxid of the last entry, or the base when there are
	// no entries.
	LastZxid() (Zxid, error)
	// Floor returns the largest zxid in the log (entries or base) that is at
	// most z. ErrCompacted if z is before the base.
	Floor(z Zxid) (Zxid, error)
	// Entries returns at most max entries with after < zxid <= upTo, in order.
	// ErrCompacted if after is before the base.
	Entries(after, upTo Zxid, max int) ([]Entry, error)
	// Snapshot returns the latest snapshot (zero Snapshot if none).
	Snapshot() (Snapshot, error)
}

// MemoryStorage is a Storage kept in memory. It is complete (snapshots,
// compaction, truncation) and safe for concurrent use; the simulator uses it
// as the durable state of a peer, and production drivers can use it as the
// in-memory cache in front of a write-ahead log.
type MemoryStorage struct {
	mu   sync.Mutex
	hs   HardState
	snap Snapshot
	base Zxid    // last compacted zxid; base <= snap.Zxid
	ents []Entry // zxid > base, strictly increasing

	// With release enabled (EnableRelease), the entries up to released
	// are served by the driver's read-back, not by Entries (which answers
	// ErrUnavailable for them); dropData says their data is gone from
	// here (a Node: it is in the data directory's log). held is the data
	// of the entries after released.
	releasing bool
	dropData  bool
	released  Zxid
	held      int
}

var _ Storage = (*MemoryStorage)(nil)

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{} }

// InitialState implements Storage.
func (s *MemoryStorage) InitialState() (HardState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hs, nil
}

// LastZxid implements Storage.
func (s *MemoryStorage) LastZxid() (Zxid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLocked(), nil
}

func (s *MemoryStorage) lastLocked() Zxid {
	if n := len(s.ents); n > 0 {
		return s.ents[n-1].Zxid
	}
	return s.base
}

// search returns the index of the first entry with zxid > z.
func (s *MemoryStorage) search(z Zxid) int {
	i, found := slices.BinarySearchFunc(s.ents, z, func(e Entry, z Zxid) int { return cmpZxid(e.Zxid, z) })
	if found {
		i++
	}
	return i
}

func cmpZxid(a, b Zxid) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Floor implements Storage.
func (s *MemoryStorage) Floor(z Zxid) (Zxid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z < s.base {
		return 0, ErrCompacted
	}
	if i := s.search(z); i > 0 {
		return s.ents[i-1].Zxid, nil
	}
	return s.base, nil
}

// Entries implements Storage.
func (s *MemoryStorage) Entries(after, upTo Zxid, max int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries(after, upTo, max, true)
}

// entries is Entries, with released entries refused unless all; with s.mu
// held.
func (s *MemoryStorage) entries(after, upTo Zxid, max int, honourRelease bool) ([]Entry, error) {
	if after < s.base {
		return nil, ErrCompacted
	}
	lo := s.search(after)
	hi := s.search(upTo)
	if hi < lo {
		hi = lo
	}
	if max > 0 && hi-lo > max {
		hi = lo + max
	}
	if honourRelease && lo < hi && s.ents[lo].Zxid <= s.released {
		return nil, ErrUnavailable
	}
	return slices.Clone(s.ents[lo:hi]), nil
}

// EnableRelease lets Release mark entries as served by a read-back
// (Ready.Fetch). With dropData their data is dropped from memory too: a
// Node with a data directory reads it back from its log. Without it (the
// simulator) the data stays and Released reads it, so the asynchronous
// read-back is exercised without a disk.
func (s *MemoryStorage) EnableRelease(dropData bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releasing, s.dropData, s.released = true, dropData, s.base
	s.recount()
}

// Release marks the entries up to z (the driver passes what is durable and
// applied, so committed and never truncated) as read back when asked for,
// but for the newest ones that hold at most keep bytes of data: those keep
// serving learners a little behind from memory. It does nothing unless
// EnableRelease ran.
func (s *MemoryStorage) Release(z Zxid, keep int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.releasing || s.held <= keep || z <= s.released {
		return
	}
	for i := s.search(s.released); i < len(s.ents) && s.ents[i].Zxid <= z && s.held > keep; i++ {
		s.held -= len(s.ents[i].Data)
		if s.dropData && !s.ents[i].IsConfig() {
			s.ents[i].Data = nil
		}
		s.released = s.ents[i].Zxid
	}
}

// Released returns the released entries after after, data included, up to
// about maxBytes of data (one entry at least): the simulator's read-back.
// Without data (EnableRelease(true)) it returns nil.
func (s *MemoryStorage) Released(after Zxid, maxBytes int) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropData || after < s.base {
		return nil
	}
	var out []Entry
	size := 0
	for _, e := range s.ents[s.search(after):] {
		if e.Zxid > s.released || (len(out) > 0 && size+len(e.Data) > maxBytes) {
			break
		}
		out = append(out, e)
		size += len(e.Data)
	}
	return out
}

// Inspect returns the entries with after < zxid <= upTo as Entries would
// without Release (data included, if EnableRelease kept it): for checks
// that read a peer's log (the simulator's).
func (s *MemoryStorage) Inspect(after, upTo Zxid) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries(after, upTo, 0, false)
}

// HeldBytes returns how much entry data s holds in memory for entries it
// serves itself (after the released ones).
func (s *MemoryStorage) HeldBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// recount recomputes held (and bounds released) after entries were
// dropped or replaced; with s.mu held.
func (s *MemoryStorage) recount() {
	if n := len(s.ents); n == 0 || s.released < s.ents[0].Zxid {
		s.released = s.base
	} else if s.released > s.ents[n-1].Zxid {
		s.released = s.ents[n-1].Zxid
	}
	s.held = 0
	for _, e := range s.ents[s.search(s.released):] {
		s.held += len(e.Data)
	}
}

// Snapshot implements Storage.
func (s *MemoryStorage) Snapshot() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

var _ LogWriter = (*MemoryStorage)(nil)

// SetHardState persists hs (LogWriter). It never fails.
func (s *MemoryStorage) SetHardState(hs HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs = hs
	return nil
}

// ApplySnapshot replaces the whole log with snap: SaveSnapshot, then
// ResetLog.
func (s *MemoryStorage) ApplySnapshot(snap Snapshot) {
	_ = s.SaveSnapshot(snap)
	_ = s.ResetLog(snap.Zxid)
}

// SaveSnapshot records snap as the latest snapshot and leaves the entries
// alone (LogWriter: the first step of installing a SNAP). Until ResetLog,
// the snapshot may lie beyond the last entry, as on disk after a crash
// between the two steps; RecoverSnapshot resolves that.
func (s *MemoryStorage) SaveSnapshot(snap Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = Snapshot{Zxid: snap.Zxid, Data: slices.Clone(snap.Data), Voters: slices.Clone(snap.Voters)}
	return nil
}

// adoptSnapshot is SaveSnapshot without the copy, for a caller that hands
// snap's slices over and never modifies them: a Node installing a SNAP
// from its leader, whose bytes were read back from its spool (or decoded
// from a frame) for it alone. The copy would hold a second image of the
// whole state for as long as the snapshot is the newest.
func (s *MemoryStorage) adoptSnapshot(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = snap
}

// ResetLog drops every entry; the log goes on after base (LogWriter).
func (s *MemoryStorage) ResetLog(base Zxid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = base
	s.ents = nil
	s.recount()
	return nil
}

// Wipe drops every entry and the snapshot: the log starts again from zero
// (LogWriter, Ready.Reset).
func (s *MemoryStorage) Wipe() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap, s.base, s.ents = Snapshot{}, 0, nil
	s.recount()
	return nil
}

// RecoverSnapshot completes, at start-up, a SNAP whose installation a crash
// cut between SaveSnapshot and ResetLog (the snapshot lies beyond the last
// entry): the log is dropped, as the data directory's recovery does. It
// reports whether it did.
func (s *MemoryStorage) RecoverSnapshot() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastLocked() >= s.snap.Zxid {
		return false
	}
	s.base = s.snap.Zxid
	s.ents = nil
	s.recount()
	return true
}

// TruncateAfter drops every entry after z (Ready.Truncate). It returns
// ErrCompacted if z is before the snapshot: committed state is never
// truncated.
func (s *MemoryStorage) TruncateAfter(z Zxid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z < s.snap.Zxid {
		return ErrCompacted
	}
	s.ents = s.ents[:s.search(z)]
	s.recount()
	return nil
}

// Append adds ents (in increasing zxid order) to the log. Existing entries
// at or after ents[0] are replaced, as a resynchronised log requires.
func (s *MemoryStorage) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := ents[0].Zxid
	if first <= s.snap.Zxid {
		return fmt.Errorf("zab: append %v at or before snapshot %v: %w", first, s.snap.Zxid, ErrCompacted)
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].Zxid <= ents[i-1].Zxid {
			return fmt.Errorf("zab: append out of order at %v", ents[i].Zxid)
		}
	}
	i, _ := slices.BinarySearchFunc(s.ents, first, func(e Entry, z Zxid) int { return cmpZxid(e.Zxid, z) })
	if i < len(s.ents) {
		// Replacing a suffix: copy, since callers may hold slices of it.
		s.ents = slices.Clone(s.ents[:i])
		s.recount()
	}
	s.ents = append(s.ents, ents...)
	for _, e := range ents {
		s.held += len(e.Data)
	}
	return nil
}

// CreateSnapshot records data as the snapshot at z, which must be in the log
// (or equal the current snapshot) and committed. Entries are kept; call
// Compact to drop them. Snapshots older than the current one are refused.
func (s *MemoryStorage) CreateSnapshot(z Zxid, data []byte) error {
	return s.createSnapshot(z, slices.Clone(data))
}

// adoptCreatedSnapshot is CreateSnapshot without the copy, for a caller
// that hands data over and never modifies it (a Node's own snapshot
// buffer).
func (s *MemoryStorage) adoptCreatedSnapshot(z Zxid, data []byte) error {
	return s.createSnapshot(z, data)
}

func (s *MemoryStorage) createSnapshot(z Zxid, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z < s.snap.Zxid {
		return ErrCompacted
	}
	if z > s.lastLocked() {
		return fmt.Errorf("zab: snapshot %v beyond last zxid %v", z, s.lastLocked())
	}
	s.snap = Snapshot{Zxid: z, Data: data, Voters: s.votersAtLocked(z)}
	return nil
}

// VotersAt returns the configuration in force at z: the newest
// configuration entry at or before z, else the snapshot's (nil if it has
// none). ErrCompacted if z is before the snapshot.
func (s *MemoryStorage) VotersAt(z Zxid) ([]PeerID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z < s.snap.Zxid {
		return nil, ErrCompacted
	}
	return slices.Clone(s.votersAtLocked(z)), nil
}

func (s *MemoryStorage) votersAtLocked(z Zxid) []PeerID {
	for i := s.search(z) - 1; i >= 0 && s.ents[i].Zxid > s.snap.Zxid; i-- {
		if s.ents[i].IsConfig() {
			return s.ents[i].Voters
		}
	}
	return s.snap.Voters
}

// Compact drops the entries up to z, which must not be after the snapshot.
// Peers behind the new base then need a SNAP to catch up.
func (s *MemoryStorage) Compact(z Zxid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z > s.snap.Zxid {
		return fmt.Errorf("zab: compact %v beyond snapshot %v", z, s.snap.Zxid)
	}
	if z <= s.base {
		return nil
	}
	i := s.search(z)
	if i > 0 {
		s.base = s.ents[i-1].Zxid
	}
	s.ents = slices.Clone(s.ents[i:])
	s.recount()
	return nil
}

// Clone returns an independent copy of s (the simulator uses it to model the
// durable state that survives a crash).
func (s *MemoryStorage) Clone() *MemoryStorage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &MemoryStorage{hs: s.hs, snap: s.snap, base: s.base, ents: slices.Clone(s.ents),
		releasing: s.releasing, dropData: s.dropData, released: s.released, held: s.held}
}

// Len returns the number of entries after the base.
func (s *MemoryStorage) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ents)
}
