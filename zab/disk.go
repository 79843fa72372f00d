package zab

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/coord-dev/coord/zab/wal"
)

// diskLog persists a Node's Readys with package wal: entries in the log
// (one fsync per Ready), epochs in their files, snapshots in the store.
type diskLog struct {
	dir    string
	retain int
	wal    *wal.Log
	snaps  *wal.SnapshotStore
	hs     HardState
	// noGroup fsyncs each entry separately (benchmarks only).
	noGroup bool

	mu     sync.Mutex // guards fsyncs
	fsyncs []time.Duration
}

func openDiskLog(dir string, retain int, logger *slog.Logger) (*diskLog, error) {
	l, err := wal.Open(dir, wal.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	s, err := wal.OpenSnapshotStore(dir, logger)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &diskLog{dir: dir, retain: retain, wal: l, snaps: s}, nil
}

// recover loads the newest valid snapshot, the epochs and the log after the
// snapshot into mem, and returns the snapshot (zero if none).
func (d *diskLog) recover(mem *MemoryStorage) (Snapshot, error) {
	var hs HardState
	for _, f := range []struct {
		name string
		dst  *uint32
	}{{wal.AcceptedEpochFile, &hs.AcceptedEpoch}, {wal.CurrentEpochFile, &hs.CurrentEpoch}} {
		e, err := wal.ReadEpoch(d.dir, f.name)
		switch {
		case err == nil:
			*f.dst = e
		case !errors.Is(err, fs.ErrNotExist):
			return Snapshot{}, err
		}
	}
	d.hs = hs
	mem.SetHardState(hs)

	var snap Snapshot
	sn, err := d.snaps.OpenNewest()
	switch {
	case err == nil:
		data, rerr := io.ReadAll(sn)
		sn.Close()
		if rerr != nil {
			return Snapshot{}, rerr
		}
		voters, rest, verr := readVoters(data)
		if verr != nil {
			return Snapshot{}, fmt.Errorf("zab: snapshot %s: %w: %w", sn.Info.Path, wal.ErrCorrupt, verr)
		}
		snap = Snapshot{Zxid: Zxid(sn.Info.Zxid), Data: rest, Voters: voters}
		mem.ApplySnapshot(snap)
	case !errors.Is(err, wal.ErrNoSnapshot):
		return Snapshot{}, err
	}
	if Zxid(d.wal.LastZxid()) < snap.Zxid {
		// A crash fell between writing a SNAP's snapshot and emptying the log.
		if err := d.wal.TruncateAfter(0); err != nil {
			return Snapshot{}, err
		}
	}
	if first := Zxid(d.wal.FirstZxid()); snap.Zxid != 0 && first > snap.Zxid+1 && first.Counter() != 1 {
		// The log starts after the snapshot we could load (a newer one was
		// corrupt and the log it needed is purged): entries are missing.
		// (A log starting with a new epoch's first zxid may follow any
		// snapshot, so that case cannot be told from a gap here.)
		return Snapshot{}, fmt.Errorf("zab: log starts at %v but the newest valid snapshot is at %v: %w",
			first, snap.Zxid, wal.ErrCorrupt)
	}
	var batch []Entry
	err = d.wal.Iterate(uint64(snap.Zxid)+1, func(r wal.Record) error {
		e := Entry{Zxid: Zxid(r.Zxid), Data: r.Data}
		if r.Meta {
			v, rest, err := readVoters(r.Data)
			if err != nil || len(v) == 0 || len(rest) > 0 {
				return fmt.Errorf("zab: configuration record %v: %w", e.Zxid, wal.ErrCorrupt)
			}
			e = Entry{Zxid: e.Zxid, Voters: v}
		}
		batch = append(batch, e)
		if len(batch) == 4096 {
			err := mem.Append(batch)
			batch = batch[:0]
			return err
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = mem.Append(batch)
	}
	return snap, err
}

// persist appends entries and writes changed epochs, durably: one fsync
// covers every entry of the Ready.
func (d *diskLog) persist(ents []Entry, hs HardState) error {
	if len(ents) > 0 {
		recs := make([]wal.Record, len(ents))
		for i, e := range ents {
			recs[i] = wal.Record{Zxid: uint64(e.Zxid), Data: e.Data}
			if e.IsConfig() {
				recs[i] = wal.Record{Zxid: uint64(e.Zxid), Data: appendVoters(nil, e.Voters), Meta: true}
			}
		}
		start := time.Now()
		if d.noGroup {
			for _, r := range recs {
				if err := d.wal.Commit(r); err != nil {
					return err
				}
			}
		} else if err := d.wal.Commit(recs...); err != nil {
			return err
		}
		d.recordFsync(time.Since(start))
	}
	if hs.IsEmpty() {
		return nil
	}
	// acceptedEpoch first: currentEpoch never exceeds it on disk.
	if hs.AcceptedEpoch != d.hs.AcceptedEpoch {
		if err := wal.WriteEpoch(d.dir, wal.AcceptedEpochFile, hs.AcceptedEpoch); err != nil {
			return err
		}
	}
	if hs.CurrentEpoch != d.hs.CurrentEpoch {
		if err := wal.WriteEpoch(d.dir, wal.CurrentEpochFile, hs.CurrentEpoch); err != nil {
			return err
		}
	}
	d.hs = hs
	return nil
}

func (d *diskLog) truncateAfter(z Zxid) error { return d.wal.TruncateAfter(uint64(z)) }

// installSnapshot makes a SNAP from the leader durable: the snapshot first,
// then an empty log (wal's documented order).
func (d *diskLog) installSnapshot(s Snapshot) error {
	if _, err := d.snaps.Write(uint64(s.Zxid), snapshotWriter(s.Voters, s.Data)); err != nil {
		return fmt.Errorf("zab: saving SNAP at %v: %w", s.Zxid, err)
	}
	return d.wal.TruncateAfter(0)
}

// saveSnapshot stores a snapshot taken locally and purges what the retained
// snapshots no longer need. It runs on the snapshotter goroutine.
func (d *diskLog) saveSnapshot(z Zxid, voters []PeerID, data []byte) error {
	if _, err := d.snaps.Write(uint64(z), snapshotWriter(voters, data)); err != nil {
		return err
	}
	_, err := wal.Retain(d.wal, d.snaps, d.retain)
	return err
}

// snapshotWriter writes a snapshot file's payload: the configuration at the
// snapshot (appendVoters), then the state machine's bytes.
func snapshotWriter(voters []PeerID, data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		if _, err := w.Write(appendVoters(nil, voters)); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
}

func (d *diskLog) recordFsync(dt time.Duration) {
	d.mu.Lock()
	if len(d.fsyncs) == 256 {
		d.fsyncs = d.fsyncs[1:]
	}
	d.fsyncs = append(d.fsyncs, dt)
	d.mu.Unlock()
}

func (d *diskLog) fsyncPercentiles() (p50, p99 time.Duration) {
	d.mu.Lock()
	s := slices.Clone(d.fsyncs)
	d.mu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}

func (d *diskLog) close() {
	d.wal.Close()
}
