package zab

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	ident  wal.Identity
	// syncMark is the epoch of the synchronisation marker on disk (zero:
	// none), see wal.SyncEpochFile.
	syncMark uint32

	mu     sync.Mutex // guards fsyncs
	fsyncs []time.Duration
}

// openDiskLog opens the data directory of node id in cluster and checks
// whose it is: a directory with an identity must name this node and this
// cluster; one without must hold nothing else (a new node: its identity is
// written first, before anything else can be).
func openDiskLog(dir, cluster string, id PeerID, retain int, logger *slog.Logger) (*diskLog, error) {
	ident, err := checkIdentity(dir, cluster, id)
	if err != nil {
		return nil, err
	}
	l, err := wal.Open(dir, wal.Options{Logger: logger})
	if err != nil {
		return nil, versionErr(dir, err)
	}
	s, err := wal.OpenSnapshotStore(dir, logger)
	if err != nil {
		l.Close()
		return nil, versionErr(dir, err)
	}
	return &diskLog{dir: dir, retain: retain, wal: l, snaps: s, ident: ident}, nil
}

// notMigrated is what a data directory written by another version of the
// format needs: it is refused, never migrated.
const notMigrated = "data directories are not migrated between format versions: " +
	"move this one aside and start the node with an empty data directory (a voter then syncs " +
	"everything from the established leader; see the lost-disk rule), or move a whole cluster " +
	"by backup and restore (coord: Node.Backup, then coord.Restore)"

// versionErr adds to err, if a file of dir is in a format version this
// one does not read (wal.ErrVersion), ErrDataDir and what to do.
func versionErr(dir string, err error) error {
	if !errors.Is(err, wal.ErrVersion) {
		return err
	}
	return fmt.Errorf("%w: %s: %w; %s", ErrDataDir, dir, err, notMigrated)
}

// dataFiles returns the files of dir that hold durable state (log
// segments, snapshots, epochs, the log base), not locks or unfinished
// temporary files.
func dataFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".tmp"):
		case strings.HasPrefix(n, "log-") && strings.HasSuffix(n, ".wal"),
			strings.HasPrefix(n, "snap-") && strings.HasSuffix(n, ".snap"),
			n == wal.AcceptedEpochFile, n == wal.CurrentEpochFile, n == wal.SyncEpochFile, n == wal.BaseFile:
			out = append(out, n)
		}
	}
	return out, nil
}

// CheckDataDir reports whether dir may be opened as node id of cluster,
// without changing it: a directory that does not exist or holds no data
// is a new node's; one with an identity must name this node and cluster
// (ErrDataDirMismatch); one with data but no identity is incomplete
// (ErrDataDir). StartNode checks the same and everything else; this lets
// a caller fail before it joins anything.
func CheckDataDir(dir, cluster string, id PeerID) error {
	_, err := readIdentity(dir, cluster, id)
	return err
}

// checkIdentity reads (or, for a new directory, writes) the identity of
// dir and checks it names cluster and id.
func checkIdentity(dir, cluster string, id PeerID) (wal.Identity, error) {
	ident, err := readIdentity(dir, cluster, id)
	if err != nil || ident != (wal.Identity{}) {
		return ident, err
	}
	ident = wal.Identity{Cluster: cluster, NodeID: uint64(id)}
	if err := wal.WriteIdentity(dir, ident); err != nil {
		return wal.Identity{}, err
	}
	return ident, nil
}

// readIdentity returns dir's identity after checking it names cluster and
// id, or the zero Identity for a new directory.
func readIdentity(dir, cluster string, id PeerID) (wal.Identity, error) {
	ident, err := wal.ReadIdentity(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		files, ferr := dataFiles(dir)
		if ferr != nil {
			return wal.Identity{}, ferr
		}
		if len(files) > 0 {
			return wal.Identity{}, fmt.Errorf("%w: %s has no %s file but holds %s: it is incomplete, or it was "+
				"written by a version older than data directory format 1 (which added the %s file); %s",
				ErrDataDir, dir, wal.IdentityFile, strings.Join(files, ", "), wal.IdentityFile, notMigrated)
		}
		return wal.Identity{}, nil
	case errors.Is(err, wal.ErrVersion):
		return wal.Identity{}, versionErr(dir, err)
	case err != nil:
		return wal.Identity{}, fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	path := filepath.Join(dir, wal.IdentityFile)
	if ident.NodeID != uint64(id) {
		return wal.Identity{}, fmt.Errorf("%w: %s belongs to node %d, not to node %d",
			ErrDataDirMismatch, path, ident.NodeID, id)
	}
	if ident.Cluster != cluster {
		return wal.Identity{}, fmt.Errorf("%w: %s belongs to cluster %q, not to cluster %q",
			ErrDataDirMismatch, path, ident.Cluster, cluster)
	}
	return ident, nil
}

// recover loads the newest valid snapshot, the epochs and the log after the
// snapshot into mem, and returns the snapshot (zero if none). It refuses a
// directory that is incomplete or inconsistent: a log whose front was
// removed without a valid snapshot to replace it, epochs missing next to
// a log or snapshot, epochs behind what the log holds.
func (d *diskLog) recover(mem *MemoryStorage) (Snapshot, error) {
	hs := HardState{ClusterID: d.ident.ClusterID, Member: d.ident.Member, Fixed: d.ident.Fixed}
	var have [2]bool
	for i, f := range []struct {
		name string
		dst  *uint32
	}{{wal.AcceptedEpochFile, &hs.AcceptedEpoch}, {wal.CurrentEpochFile, &hs.CurrentEpoch}} {
		e, err := wal.ReadEpoch(d.dir, f.name)
		switch {
		case err == nil:
			*f.dst, have[i] = e, true
		case !errors.Is(err, fs.ErrNotExist):
			return Snapshot{}, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
	}
	switch e, err := wal.ReadEpoch(d.dir, wal.SyncEpochFile); {
	case err == nil:
		d.syncMark = e
	case !errors.Is(err, fs.ErrNotExist):
		return Snapshot{}, fmt.Errorf("%w: %w", ErrDataDir, err)
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
	if base := Zxid(d.wal.Base()); snap.Zxid < base {
		// Records up to base were removed from the log's front, so only a
		// snapshot at or after base can stand in for them.
		return Snapshot{}, fmt.Errorf("%w: the log in %s lacks every entry up to %v (purged or replaced by a snapshot) "+
			"but no valid snapshot at or after it exists (%s): %w",
			ErrDataDir, d.dir, base, d.snapshotFiles(snap.Zxid), wal.ErrCorrupt)
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
	if err := d.checkEpochs(have, max(snap.Zxid, Zxid(d.wal.LastZxid()))); err != nil {
		return Snapshot{}, err
	}
	var batch []Entry
	err = d.wal.Iterate(uint64(snap.Zxid)+1, func(r wal.Record) error {
		e, err := entryOf(r)
		if err != nil {
			return err
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

// checkEpochs checks the epochs against the history on disk, whose last
// zxid is last: a node that holds history has accepted and synced an epoch
// (both files exist), acceptedEpoch >= currentEpoch, and both are at least
// the epoch of the last zxid — except that currentEpoch may lag behind a
// synchronisation that was being written when the node stopped (the marker
// file says so; the entries of it were never acknowledged).
func (d *diskLog) checkEpochs(have [2]bool, last Zxid) error {
	hs := d.hs
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrDataDir, d.dir}, a...)...)
	}
	if last != 0 && !have[0] {
		return bad("history up to %v but no %s file", last, wal.AcceptedEpochFile)
	}
	if last != 0 && !have[1] && d.syncMark == 0 {
		return bad("history up to %v but no %s file", last, wal.CurrentEpochFile)
	}
	if hs.CurrentEpoch > hs.AcceptedEpoch {
		return bad("%s %d is above %s %d", wal.CurrentEpochFile, hs.CurrentEpoch, wal.AcceptedEpochFile, hs.AcceptedEpoch)
	}
	if e := last.Epoch(); e > hs.AcceptedEpoch {
		return bad("the last zxid %v is of epoch %d, above %s %d", last, e, wal.AcceptedEpochFile, hs.AcceptedEpoch)
	}
	if e := last.Epoch(); e > hs.CurrentEpoch && (d.syncMark == 0 || e > d.syncMark) {
		return bad("the last zxid %v is of epoch %d, above %s %d", last, e, wal.CurrentEpochFile, hs.CurrentEpoch)
	}
	return nil
}

// snapshotFiles describes the snapshot files for an error: which exist and
// which of them is valid (at valid, zero if none).
func (d *diskLog) snapshotFiles(valid Zxid) string {
	list, err := d.snaps.List()
	if err != nil {
		return err.Error()
	}
	if len(list) == 0 {
		return "no snapshot files"
	}
	var names []string
	for _, in := range list {
		state := "invalid"
		if valid != 0 && Zxid(in.Zxid) == valid {
			state = "valid"
		}
		names = append(names, fmt.Sprintf("%s (%s)", filepath.Base(in.Path), state))
	}
	return "snapshot files: " + strings.Join(names, ", ")
}

// persist appends entries and writes changed epochs, durably: one fsync
// covers every entry of the Ready. A changed cluster id or membership goes
// to the identity file first: epochs never exist without the id, and a
// leader is a member on disk before its first entry of the epoch is.
func (d *diskLog) persist(ents []Entry, hs HardState) error {
	if !hs.IsEmpty() && (hs.ClusterID != d.ident.ClusterID || hs.Member != d.ident.Member || hs.Fixed != d.ident.Fixed) {
		id := d.ident
		id.ClusterID, id.Member, id.Fixed = hs.ClusterID, hs.Member, hs.Fixed
		if err := wal.WriteIdentity(d.dir, id); err != nil {
			return err
		}
		d.ident = id
	}
	if len(ents) > 0 {
		if err := d.markSync(ents[len(ents)-1].Zxid.Epoch()); err != nil {
			return err
		}
		recs := make([]wal.Record, len(ents))
		for i, e := range ents {
			recs[i] = wal.Record{Zxid: uint64(e.Zxid), Data: e.Data}
			if e.IsConfig() {
				recs[i] = wal.Record{Zxid: uint64(e.Zxid), Data: appendVoters(nil, e.Voters), Meta: true}
			}
		}
		start := time.Now()
		if err := d.wal.Commit(recs...); err != nil {
			return err
		}
		d.recordFsync(time.Since(start))
	}
	if hs.IsEmpty() {
		return nil
	}
	if hs.CurrentEpoch < d.hs.CurrentEpoch && d.syncMark < d.hs.CurrentEpoch {
		// currentEpoch goes back (to zero: Peer.Resync) while the log
		// still holds its history: the synchronisation marker keeps that
		// state readable until the log is wiped or synced again.
		if err := wal.WriteEpoch(d.dir, wal.SyncEpochFile, d.hs.CurrentEpoch); err != nil {
			return err
		}
		d.syncMark = d.hs.CurrentEpoch
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
	if d.syncMark != 0 && hs.CurrentEpoch >= d.syncMark {
		if err := wal.RemoveEpoch(d.dir, wal.SyncEpochFile); err != nil {
			return err
		}
		d.syncMark = 0
	}
	return nil
}

// markSync records, before history of epoch e is written while the durable
// currentEpoch is below it (a synchronisation: NEWLEADER's currentEpoch
// follows the entries), that such a write is under way, so recovery can
// tell that state from a stale currentEpoch.
func (d *diskLog) markSync(e uint32) error {
	if e <= d.hs.CurrentEpoch || e <= d.syncMark {
		return nil
	}
	if err := wal.WriteEpoch(d.dir, wal.SyncEpochFile, e); err != nil {
		return err
	}
	d.syncMark = e
	return nil
}

// entryOf returns the entry a log record holds.
func entryOf(r wal.Record) (Entry, error) {
	if !r.Meta {
		return Entry{Zxid: Zxid(r.Zxid), Data: r.Data}, nil
	}
	v, rest, err := readVoters(r.Data)
	if err != nil || len(v) == 0 || len(rest) > 0 {
		return Entry{}, fmt.Errorf("zab: configuration record %v: %w", Zxid(r.Zxid), wal.ErrCorrupt)
	}
	return Entry{Zxid: Zxid(r.Zxid), Voters: v}, nil
}

// errEnough stops an iteration of the log that has read what it needs.
var errEnough = errors.New("zab: enough entries read")

// readBack reads the entries after after back from the log, about
// maxBytes of data (one entry at least), for a Ready.Fetch. It runs off
// the driver's goroutine, beside its appends (wal.Log allows it).
func (d *diskLog) readBack(after Zxid, maxBytes int) ([]Entry, error) {
	var out []Entry
	size := 0
	err := d.wal.Iterate(uint64(after)+1, func(r wal.Record) error {
		if len(out) > 0 && size+len(r.Data) > maxBytes {
			return errEnough
		}
		e, err := entryOf(r)
		if err != nil {
			return err
		}
		out, size = append(out, e), size+len(r.Data)
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return out, err
}

func (d *diskLog) truncateAfter(z Zxid) error { return d.wal.TruncateAfter(uint64(z)) }

// installSnapshot makes a SNAP from the leader durable: the snapshot first,
// then an empty log whose base is the snapshot (wal's documented order).
func (d *diskLog) installSnapshot(s Snapshot) error {
	if err := d.saveSNAP(s); err != nil {
		return err
	}
	return d.resetLog(s.Zxid)
}

// saveSNAP is installSnapshot's first step: the snapshot file.
func (d *diskLog) saveSNAP(s Snapshot) error {
	if err := d.markSync(s.Zxid.Epoch()); err != nil {
		return err
	}
	if _, err := d.snaps.Write(uint64(s.Zxid), snapshotWriter(s.Voters, s.Data)); err != nil {
		return fmt.Errorf("zab: saving SNAP at %v: %w", s.Zxid, err)
	}
	return nil
}

// resetLog is installSnapshot's second step: an empty log based at the
// snapshot.
func (d *diskLog) resetLog(base Zxid) error { return d.wal.Reset(uint64(base)) }

// wipe drops the whole history (Ready.Reset): the log's records and base
// first, then every snapshot, newest first, so that a crash midway leaves
// a log with the snapshot it needs (or nothing at all).
func (d *diskLog) wipe() error {
	if err := d.wal.Wipe(); err != nil {
		return err
	}
	list, err := d.snaps.List()
	if err != nil {
		return err
	}
	slices.SortFunc(list, func(a, b wal.SnapshotInfo) int { return cmp.Compare(b.Zxid, a.Zxid) })
	for _, in := range list {
		if err := d.snaps.Remove(in.Zxid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("zab: removing snapshot %s: %w", in.Path, err)
		}
	}
	return nil
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
