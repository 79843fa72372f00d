package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func payload(zxid uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("tree@%x;", zxid)), 100)
}

func writeSnaps(t *testing.T, s *SnapshotStore, zxids ...uint64) {
	t.Helper()
	for _, z := range zxids {
		_, err := s.WriteFrom(z, bytes.NewReader(payload(z)))
		require.NoError(t, err)
	}
}

func readSnap(t *testing.T, sn *Snapshot) []byte {
	t.Helper()
	b, err := io.ReadAll(sn)
	require.NoError(t, err)
	require.NoError(t, sn.Close())
	require.NoError(t, sn.Close())
	return b
}

func TestSnapshotWriteListOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSnapshotStore(dir, nil)
	require.NoError(t, err)
	_, err = s.OpenNewest()
	require.ErrorIs(t, err, ErrNoSnapshot)

	writeSnaps(t, s, 1<<32|5, 10, 1<<32|900)
	info, err := s.Write(2<<32, func(w io.Writer) error { return nil }) // empty payload is valid
	require.NoError(t, err)
	assert.Equal(t, int64(snapHeaderSize+snapTrailSize), info.Size)

	list, err := s.List()
	require.NoError(t, err)
	var zs []uint64
	for _, i := range list {
		zs = append(zs, i.Zxid)
	}
	assert.Equal(t, []uint64{10, 1<<32 | 5, 1<<32 | 900, 2 << 32}, zs)

	sn, err := s.OpenNewest()
	require.NoError(t, err)
	assert.Equal(t, uint64(2<<32), sn.Info.Zxid)
	assert.Empty(t, readSnap(t, sn))

	sn, err = s.Open(1<<32 | 5)
	require.NoError(t, err)
	assert.Equal(t, int64(len(payload(1<<32|5))), sn.Size())
	assert.Equal(t, payload(1<<32|5), readSnap(t, sn))

	// Replacing a snapshot of the same zxid is atomic too.
	_, err = s.WriteFrom(10, bytes.NewReader([]byte("new")))
	require.NoError(t, err)
	sn, err = s.Open(10)
	require.NoError(t, err)
	assert.Equal(t, []byte("new"), readSnap(t, sn))
}

func TestSnapshotWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSnapshotStore(dir, nil)
	require.NoError(t, err)
	boom := errors.New("encoder failed")
	_, err = s.Write(7, func(w io.Writer) error {
		_, _ = w.Write([]byte("partial"))
		return boom
	})
	require.ErrorIs(t, err, boom)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)

	// A crash mid-write leaves a temporary file; reopening the store removes it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, snapName(8)+tmpSuffix), []byte("CSNP"), 0o644))
	w := &warnLog{}
	_, err = OpenSnapshotStore(dir, slogOf(w))
	require.NoError(t, err)
	entries, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Equal(t, []string{"wal: removing unfinished snapshot"}, w.all())
}

func TestSnapshotFallback(t *testing.T) {
	newest := snapName(30)
	tests := []struct {
		name   string
		mutate func(t *testing.T, path string)
		want   uint64
	}{
		{"newest deleted", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, 20},
		{"newest truncated", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 100)) }, 20},
		{"newest empty", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 0)) }, 20},
		{"newest payload bit flip", func(t *testing.T, p string) { flipByte(t, p, 40) }, 20},
		{"newest header bit flip", func(t *testing.T, p string) { flipByte(t, p, 9) }, 20},
		{"newest trailer bit flip", func(t *testing.T, p string) { flipByte(t, p, -3) }, 20},
		{"newest renamed to another zxid", func(t *testing.T, p string) {
			require.NoError(t, os.Rename(p, filepath.Join(filepath.Dir(p), snapName(40))))
		}, 20},
		{"two newest corrupt", func(t *testing.T, p string) {
			flipByte(t, p, 40)
			flipByte(t, filepath.Join(filepath.Dir(p), snapName(20)), 40)
		}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := &warnLog{}
			s, err := OpenSnapshotStore(dir, slogOf(w))
			require.NoError(t, err)
			writeSnaps(t, s, 10, 20, 30)
			tt.mutate(t, filepath.Join(dir, newest))
			sn, err := s.OpenNewest()
			require.NoError(t, err)
			assert.Equal(t, tt.want, sn.Info.Zxid)
			assert.Equal(t, payload(tt.want), readSnap(t, sn))
			if tt.name != "newest deleted" {
				assert.NotEmpty(t, w.all(), "skipping a snapshot is logged")
			}
		})
	}
}

func TestSnapshotAllCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSnapshotStore(dir, nil)
	require.NoError(t, err)
	writeSnaps(t, s, 10, 20)
	flipByte(t, filepath.Join(dir, snapName(10)), 20)
	flipByte(t, filepath.Join(dir, snapName(20)), 20)
	_, err = s.OpenNewest()
	require.ErrorIs(t, err, ErrNoSnapshot)
	require.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, filepath.Join(dir, snapName(20)), ce.File)
	assert.Equal(t, int64(len(payload(20))+snapHeaderSize+8), ce.Offset, "offset of the checksum that failed")
}

func TestRetain(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(200)
	l := openLog(t, dir, o)
	rs := recs(1, 1, 60)
	for _, r := range rs {
		require.NoError(t, l.Append(r))
	}
	require.NoError(t, l.Sync())
	s, err := OpenSnapshotStore(dir, nil)
	require.NoError(t, err)
	snaps := []uint64{rs[9].Zxid, rs[19].Zxid, rs[29].Zxid, rs[39].Zxid}
	writeSnaps(t, s, snaps...)
	flipByte(t, filepath.Join(dir, snapName(snaps[3])), 30) // newest is corrupt

	res, err := Retain(l, s, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint64{snaps[2], snaps[1]}, res.Kept, "a corrupt snapshot does not count toward keep")
	assert.Equal(t, []uint64{snaps[3]}, res.Skipped)
	assert.Equal(t, []uint64{snaps[0]}, res.Removed)
	assert.Positive(t, res.RemovedSegments)
	list, err := s.List()
	require.NoError(t, err)
	assert.Len(t, list, 3)

	// The log still covers every record after the oldest kept snapshot, so
	// recovery from it (the fallback) can replay.
	assert.LessOrEqual(t, l.FirstZxid(), snaps[1]+1)
	got := readAll(t, l, snaps[1]+1)
	assert.Equal(t, rs[20:], got)
	sn, err := s.OpenNewest()
	require.NoError(t, err)
	assert.Equal(t, snaps[2], sn.Info.Zxid)
	require.NoError(t, sn.Close())

	// Purged segments stay purged after reopening.
	first := l.FirstZxid()
	require.NoError(t, l.Close())
	l2 := openLog(t, dir, o)
	assert.Equal(t, first, l2.FirstZxid())

	_, err = Retain(l2, s, 0)
	assert.Error(t, err)
}

func TestRetainWithoutValidSnapshotKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	rs, files := multiSegLog(t, dir, 200, 30)
	o, _ := testOpts(200)
	l := openLog(t, dir, o)
	s, err := OpenSnapshotStore(dir, nil)
	require.NoError(t, err)
	writeSnaps(t, s, rs[20].Zxid)
	flipByte(t, filepath.Join(dir, snapName(rs[20].Zxid)), 20)
	res, err := Retain(l, s, 1)
	require.NoError(t, err)
	assert.Empty(t, res.Kept)
	assert.Zero(t, res.RemovedSegments)
	assert.Len(t, segFiles(t, dir), len(files))
}

// flipByte flips the low bit of the byte at off (negative: from the end).
func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 1
	require.NoError(t, os.WriteFile(path, b, 0o644))
}
