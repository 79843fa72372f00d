package zab

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab/wal"
)

const testCluster = "disk-test"

// diskDir is a data directory built with package wal directly (small
// segments, so that purging happens with few entries), in the layout a
// diskLog writes.
type diskDir struct {
	t   *testing.T
	dir string
}

func newDiskDir(t *testing.T) *diskDir {
	d := &diskDir{t: t, dir: t.TempDir()}
	require.NoError(t, wal.WriteIdentity(d.dir, wal.Identity{Cluster: testCluster, NodeID: 1, ClusterID: 7}))
	return d
}

// log appends entries with counters from..to of epoch e, in segments of a
// few records each.
func (d *diskDir) log(e uint32, from, to uint32) {
	l, err := wal.Open(d.dir, wal.Options{SegmentSize: 512})
	require.NoError(d.t, err)
	defer l.Close()
	for c := from; c <= to; c++ {
		require.NoError(d.t, l.Commit(wal.Record{Zxid: uint64(NewZxid(e, c)), Data: make([]byte, 100)}))
	}
}

func (d *diskDir) epochs(accepted, current uint32) {
	require.NoError(d.t, wal.WriteEpoch(d.dir, wal.AcceptedEpochFile, accepted))
	require.NoError(d.t, wal.WriteEpoch(d.dir, wal.CurrentEpochFile, current))
}

// snapshot writes a snapshot at z and applies the retention rule (which
// purges the log it covers).
func (d *diskDir) snapshot(z Zxid, keep int) {
	s, err := wal.OpenSnapshotStore(d.dir, nil)
	require.NoError(d.t, err)
	_, err = s.Write(uint64(z), snapshotWriter([]PeerID{1, 2, 3}, []byte("state")))
	require.NoError(d.t, err)
	l, err := wal.Open(d.dir, wal.Options{SegmentSize: 512})
	require.NoError(d.t, err)
	defer l.Close()
	_, err = wal.Retain(l, s, keep)
	require.NoError(d.t, err)
}

// corruptSnapshots flips a byte in every snapshot file.
func (d *diskDir) corruptSnapshots() {
	names, err := filepath.Glob(filepath.Join(d.dir, "snap-*.snap"))
	require.NoError(d.t, err)
	require.NotEmpty(d.t, names)
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(d.t, err)
		b[20] ^= 0xff
		require.NoError(d.t, os.WriteFile(n, b, 0o644))
	}
}

// setVersion writes version v into the format version field (bytes 4:8)
// of every file matching glob, fixing a header checksum over [0:crcAt)
// stored at crcAt (none if crcAt is 0), as another version would have
// written it.
func (d *diskDir) setVersion(glob string, v uint32, crcAt int) {
	names, err := filepath.Glob(filepath.Join(d.dir, glob))
	require.NoError(d.t, err)
	require.NotEmpty(d.t, names)
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(d.t, err)
		binary.LittleEndian.PutUint32(b[4:8], v)
		if crcAt > 0 {
			binary.LittleEndian.PutUint32(b[crcAt:], crc32.Checksum(b[:crcAt], crc32.MakeTable(crc32.Castagnoli)))
		}
		require.NoError(d.t, os.WriteFile(n, b, 0o644))
	}
}

func (d *diskDir) remove(name string) { require.NoError(d.t, os.Remove(filepath.Join(d.dir, name))) }

// open opens the directory as node id of cluster and recovers it.
func (d *diskDir) open(cluster string, id PeerID) (*MemoryStorage, error) {
	dl, err := openDiskLog(d.dir, cluster, id, 3, nil)
	if err != nil {
		return nil, err
	}
	defer dl.close()
	mem := NewMemoryStorage()
	_, err = dl.recover(mem)
	return mem, err
}

// TestDataDirRefusedWhenIncomplete: a data directory is opened only if it is
// complete and consistent (issue 10 item 3). Before, the purged log without
// a valid snapshot started a node holding only the log's entries, missing
// epoch files were taken for a new node and epochs behind the log passed.
func TestDataDirRefusedWhenIncomplete(t *testing.T) {
	tests := []struct {
		name  string
		build func(d *diskDir)
		want  error
		msg   string // a part of the error text
	}{
		{"complete", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 40); d.snapshot(NewZxid(1, 30), 1) }, nil, ""},
		{"purged log, every snapshot invalid", func(d *diskDir) {
			d.epochs(1, 1)
			d.log(1, 1, 40)
			d.snapshot(NewZxid(1, 30), 1)
			d.corruptSnapshots()
		}, ErrDataDir, "(invalid)"},
		{"purged log, snapshots removed", func(d *diskDir) {
			d.epochs(1, 1)
			d.log(1, 1, 40)
			d.snapshot(NewZxid(1, 30), 1)
			names, _ := filepath.Glob(filepath.Join(d.dir, "snap-*"))
			for _, n := range names {
				require.NoError(t, os.Remove(n))
			}
		}, ErrDataDir, "no snapshot files"},
		{"only the older snapshot is valid, log purged past it", func(d *diskDir) {
			d.epochs(1, 1)
			d.log(1, 1, 40)
			d.snapshot(NewZxid(1, 10), 1)
			d.snapshot(NewZxid(1, 30), 1) // purges through the segments 30 covers
			s, err := wal.OpenSnapshotStore(d.dir, nil)
			require.NoError(t, err)
			_, err = s.Write(uint64(NewZxid(1, 10)), snapshotWriter([]PeerID{1, 2, 3}, []byte("old")))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("snap-%016x.snap", uint64(NewZxid(1, 30)))))
			require.NoError(t, err)
			b[20] ^= 1
			require.NoError(t, os.WriteFile(filepath.Join(d.dir, fmt.Sprintf("snap-%016x.snap", uint64(NewZxid(1, 30)))), b, 0o644))
		}, ErrDataDir, "(valid)"},
		{"never purged, no snapshot", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 40) }, nil, ""},
		{"log without currentEpoch", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 5); d.remove(wal.CurrentEpochFile) },
			ErrDataDir, "no currentEpoch file"},
		{"log without acceptedEpoch", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 5); d.remove(wal.AcceptedEpochFile) },
			ErrDataDir, "no acceptedEpoch file"},
		{"log without any epoch", func(d *diskDir) {
			d.epochs(1, 1)
			d.log(1, 1, 5)
			d.remove(wal.AcceptedEpochFile)
			d.remove(wal.CurrentEpochFile)
		}, ErrDataDir, "no acceptedEpoch file"},
		{"snapshot without epochs", func(d *diskDir) {
			d.epochs(1, 1)
			d.snapshot(NewZxid(1, 3), 1)
			d.remove(wal.AcceptedEpochFile)
			d.remove(wal.CurrentEpochFile)
		}, ErrDataDir, "no acceptedEpoch file"},
		{"currentEpoch behind the log", func(d *diskDir) { d.epochs(2, 1); d.log(1, 1, 3); d.log(2, 1, 3) },
			ErrDataDir, "above currentEpoch 1"},
		{"acceptedEpoch behind the log", func(d *diskDir) { d.epochs(1, 1); d.log(2, 1, 3) },
			ErrDataDir, "above acceptedEpoch 1"},
		{"currentEpoch above acceptedEpoch", func(d *diskDir) { d.epochs(1, 2); d.log(1, 1, 3) },
			ErrDataDir, "currentEpoch 2 is above acceptedEpoch 1"},
		{"synchronisation cut short", func(d *diskDir) {
			d.epochs(3, 1)
			d.log(1, 1, 3)
			d.log(2, 1, 3)
			require.NoError(t, wal.WriteEpoch(d.dir, wal.SyncEpochFile, 3))
		}, nil, ""},
		{"data without identity", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 3); d.remove(wal.IdentityFile) },
			ErrDataDir, "has no identity file"},
		// Old (or newer) data directories are refused, not migrated, and
		// the error says what was found and what to do.
		{"written before the identity file", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 3); d.remove(wal.IdentityFile) },
			ErrDataDir, "older than data directory format 1 (which added the identity file); data directories are not migrated"},
		{"identity of another format version", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 3); d.setVersion(wal.IdentityFile, 2, 0) },
			ErrDataDir, "identity file format version 2, but this version reads version 1 only"},
		{"log segment of another format version", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 3); d.setVersion("log-*.wal", 2, 20) },
			ErrDataDir, "log segment format version 2, but this version reads version 1 only"},
		{"advice for another format version", func(d *diskDir) { d.epochs(1, 1); d.log(1, 1, 3); d.setVersion("log-*.wal", 0, 20) },
			ErrDataDir, "not migrated between format versions: move this one aside and start the node with an empty data directory"},
		{"epochs only, without identity", func(d *diskDir) { d.epochs(1, 1); d.remove(wal.IdentityFile) },
			ErrDataDir, "acceptedEpoch, currentEpoch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDiskDir(t)
			tt.build(d)
			_, err := d.open(testCluster, 1)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, d.dir, "the error names the directory")
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

// TestDataDirIdentity: a data directory records its cluster and node and
// is refused for another (issue 10 item 4: "a data directory from another
// cluster or another node is accepted").
func TestDataDirIdentity(t *testing.T) {
	d := newDiskDir(t)
	d.epochs(1, 1)
	d.log(1, 1, 3)
	mem, err := d.open(testCluster, 1)
	require.NoError(t, err)
	hs, _ := mem.InitialState()
	require.Equal(t, uint64(7), hs.ClusterID, "the cluster id is recovered")

	_, err = d.open(testCluster, 2)
	require.ErrorIs(t, err, ErrDataDirMismatch)
	require.ErrorContains(t, err, "belongs to node 1, not to node 2")
	_, err = d.open("other", 1)
	require.ErrorIs(t, err, ErrDataDirMismatch)
	require.ErrorContains(t, err, `belongs to cluster "disk-test", not to cluster "other"`)

	// A new directory gets an identity at once, before anything else.
	dir := t.TempDir()
	dl, err := openDiskLog(dir, testCluster, 5, 3, nil)
	require.NoError(t, err)
	dl.close()
	id, err := wal.ReadIdentity(dir)
	require.NoError(t, err)
	require.Equal(t, wal.Identity{Cluster: testCluster, NodeID: 5}, id)
}

// TestDiskLogSyncMarker: entries of an epoch above the durable currentEpoch
// (a synchronisation) are written after a marker that NEWLEADER's
// currentEpoch removes, so a crash in between recovers, while the same
// files without the marker are refused.
func TestDiskLogSyncMarker(t *testing.T) {
	dir := t.TempDir()
	dl, err := openDiskLog(dir, testCluster, 1, 3, nil)
	require.NoError(t, err)
	_, err = dl.recover(NewMemoryStorage())
	require.NoError(t, err)
	require.NoError(t, dl.persist(nil, HardState{AcceptedEpoch: 1, CurrentEpoch: 1, ClusterID: 9}))
	require.NoError(t, dl.persist([]Entry{{Zxid: NewZxid(1, 1), Data: []byte("a")}}, HardState{}))
	require.NoFileExists(t, filepath.Join(dir, wal.SyncEpochFile), "own epoch: no marker")
	// Synchronising with the leader of epoch 3, which sends epoch 2's
	// history first.
	require.NoError(t, dl.persist(nil, HardState{AcceptedEpoch: 3, CurrentEpoch: 1, ClusterID: 9}))
	require.NoError(t, dl.persist([]Entry{{Zxid: NewZxid(2, 1), Data: []byte("b")}}, HardState{}))
	require.FileExists(t, filepath.Join(dir, wal.SyncEpochFile))
	dl.close() // the crash

	dl, err = openDiskLog(dir, testCluster, 1, 3, nil)
	require.NoError(t, err)
	mem := NewMemoryStorage()
	_, err = dl.recover(mem)
	require.NoError(t, err, "a synchronisation cut short recovers")
	hs, _ := mem.InitialState()
	require.Equal(t, HardState{AcceptedEpoch: 3, CurrentEpoch: 1, ClusterID: 9}, hs)
	require.NoError(t, dl.persist([]Entry{{Zxid: NewZxid(2, 2), Data: []byte("c")}}, HardState{AcceptedEpoch: 3, CurrentEpoch: 3, ClusterID: 9}))
	require.NoFileExists(t, filepath.Join(dir, wal.SyncEpochFile), "NEWLEADER's currentEpoch removes the marker")
	dl.close()

	// A SNAP of a newer epoch is marked the same way.
	dl, err = openDiskLog(dir, testCluster, 1, 3, nil)
	require.NoError(t, err)
	_, err = dl.recover(NewMemoryStorage())
	require.NoError(t, err)
	require.NoError(t, dl.persist(nil, HardState{AcceptedEpoch: 5, CurrentEpoch: 3, ClusterID: 9}))
	require.NoError(t, dl.installSnapshot(Snapshot{Zxid: NewZxid(4, 2), Data: []byte("s"), Voters: []PeerID{1}}))
	require.FileExists(t, filepath.Join(dir, wal.SyncEpochFile))
	dl.close()
	dl, err = openDiskLog(dir, testCluster, 1, 3, nil)
	require.NoError(t, err)
	snap, err := dl.recover(NewMemoryStorage())
	require.NoError(t, err)
	require.Equal(t, NewZxid(4, 2), snap.Zxid)
	dl.close()
	require.Equal(t, uint64(NewZxid(4, 2)), func() uint64 {
		l, err := wal.Open(dir, wal.Options{})
		require.NoError(t, err)
		defer l.Close()
		return l.Base()
	}(), "the SNAP is the log's base")

	// Without the marker, the same files are refused.
	require.NoError(t, os.Remove(filepath.Join(dir, wal.SyncEpochFile)))
	_, err = (&diskDir{t: t, dir: dir}).open(testCluster, 1)
	require.ErrorIs(t, err, ErrDataDir)
}
