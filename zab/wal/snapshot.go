package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Snapshot file layout (little endian):
//
//	[0:4)        magic   "CSNP"
//	[4:8)        version uint32 (snapVersion)
//	[8:16)       zxid    uint64, equal to the zxid in the file name
//	[16:16+n)    payload, opaque bytes encoded by the caller (the tree)
//	[16+n:24+n)  n       uint64 payload length
//	[24+n:28+n)  crc     uint32 CRC32C over [0:16+n)
//	[28+n:32+n)  magic   "CEND"
//
// The trailer comes last because the payload is streamed and its length is
// unknown until the writer finishes. A file is valid only if the trailer's
// length matches the file size and the checksum matches.
const (
	snapMagic      = "CSNP"
	snapEndMagic   = "CEND"
	snapVersion    = 1
	snapHeaderSize = 16
	snapTrailSize  = 16
	snapPrefix     = "snap-"
	snapSuffix     = ".snap"
)

func snapName(zxid uint64) string { return fmt.Sprintf("%s%016x%s", snapPrefix, zxid, snapSuffix) }

// SnapshotStore keeps snapshot files in a directory (normally the log's).
// Its methods are safe for concurrent use as long as no two calls write or
// remove the same zxid at once.
type SnapshotStore struct {
	dir    string
	logger *slog.Logger
}

// SnapshotInfo describes one snapshot file.
type SnapshotInfo struct {
	Zxid uint64 // last zxid applied when the snapshot started
	Path string
	Size int64 // file size, container included
}

// OpenSnapshotStore opens (creating if needed) the snapshot store in dir and
// removes temporary files of snapshots whose writing never completed. A nil
// logger discards warnings.
func OpenSnapshotStore(dir string, logger *slog.Logger) (*SnapshotStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), snapPrefix) && strings.HasSuffix(e.Name(), snapSuffix+tmpSuffix) {
			p := filepath.Join(dir, e.Name())
			logger.Warn("wal: removing unfinished snapshot", "file", p)
			if err := os.Remove(p); err != nil {
				return nil, err
			}
		}
	}
	return &SnapshotStore{dir: dir, logger: logger}, nil
}

// Write creates the snapshot for zxid from what write writes, atomically: the
// file appears under its final name, fsynced, only if write returns nil and
// every byte reached disk. An existing snapshot for zxid is replaced.
func (s *SnapshotStore) Write(zxid uint64, write func(io.Writer) error) (SnapshotInfo, error) {
	name := snapName(zxid)
	path := filepath.Join(s.dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return SnapshotInfo{}, err
	}
	size, err := writeSnapshot(f, zxid, write)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return SnapshotInfo{}, fmt.Errorf("wal: writing snapshot %s: %w", name, err)
	}
	return SnapshotInfo{Zxid: zxid, Path: path, Size: size}, nil
}

// WriteFrom is Write with the payload read from r until EOF.
func (s *SnapshotStore) WriteFrom(zxid uint64, r io.Reader) (SnapshotInfo, error) {
	return s.Write(zxid, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// hashWriter checksums and counts what passes through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash32
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func writeSnapshot(f io.Writer, zxid uint64, write func(io.Writer) error) (int64, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	hw := &hashWriter{w: bw, h: crc32.New(castagnoli)}
	hdr := make([]byte, 0, snapHeaderSize)
	hdr = append(hdr, snapMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, snapVersion)
	hdr = binary.LittleEndian.AppendUint64(hdr, zxid)
	if _, err := hw.Write(hdr); err != nil {
		return 0, err
	}
	if err := write(hw); err != nil {
		return 0, err
	}
	payload := hw.n - snapHeaderSize
	tr := make([]byte, 0, snapTrailSize)
	tr = binary.LittleEndian.AppendUint64(tr, uint64(payload))
	tr = binary.LittleEndian.AppendUint32(tr, hw.h.Sum32())
	tr = append(tr, snapEndMagic...)
	if _, err := bw.Write(tr); err != nil {
		return 0, err
	}
	return hw.n + snapTrailSize, bw.Flush()
}

// List returns the snapshot files in ascending zxid order without validating
// their content.
func (s *SnapshotStore) List() ([]SnapshotInfo, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	for _, e := range entries {
		z, ok := parseZxidName(e.Name(), snapPrefix, snapSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, SnapshotInfo{Zxid: z, Path: filepath.Join(s.dir, e.Name()), Size: info.Size()})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int {
		switch {
		case a.Zxid < b.Zxid:
			return -1
		case a.Zxid > b.Zxid:
			return 1
		}
		return 0
	})
	return out, nil
}

// Snapshot is a validated snapshot opened for reading its payload.
type Snapshot struct {
	Info SnapshotInfo // the file; Info.Zxid is where log replay resumes (after it)
	f    *os.File
	r    *io.SectionReader
}

// Read reads the payload.
func (sn *Snapshot) Read(p []byte) (int, error) { return sn.r.Read(p) }

// Size returns the payload size.
func (sn *Snapshot) Size() int64 { return sn.r.Size() }

// Close closes the file. It is idempotent.
func (sn *Snapshot) Close() error {
	if sn.f == nil {
		return nil
	}
	err := sn.f.Close()
	sn.f = nil
	return err
}

// Open validates the snapshot for zxid (reading it once in full to check the
// checksum) and opens its payload. Damage returns a *CorruptError.
func (s *SnapshotStore) Open(zxid uint64) (*Snapshot, error) {
	path := filepath.Join(s.dir, snapName(zxid))
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	payload, got, err := verifySnapshot(f, st.Size())
	if err == nil && got != zxid {
		err = &CorruptError{Offset: 8, Reason: fmt.Sprintf("header zxid %#x does not match the file name", got)}
	}
	if err != nil {
		f.Close()
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.File = path
		}
		return nil, err
	}
	return &Snapshot{
		Info: SnapshotInfo{Zxid: zxid, Path: path, Size: st.Size()},
		f:    f,
		r:    io.NewSectionReader(f, snapHeaderSize, payload),
	}, nil
}

// OpenNewest opens the newest valid snapshot. A newer snapshot that is
// corrupt or vanished is skipped with a warning, falling back to the previous
// one. With no valid snapshot it returns an error matching ErrNoSnapshot.
func (s *SnapshotStore) OpenNewest() (*Snapshot, error) {
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	var skipped []error
	for i := len(list) - 1; i >= 0; i-- {
		sn, err := s.Open(list[i].Zxid)
		if err == nil {
			return sn, nil
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		s.logger.Warn("wal: skipping invalid snapshot", "file", list[i].Path, "err", err.Error())
		skipped = append(skipped, err)
	}
	return nil, errors.Join(append([]error{ErrNoSnapshot}, skipped...)...)
}

// Remove deletes the snapshot for zxid, durably.
func (s *SnapshotStore) Remove(zxid uint64) error {
	if err := os.Remove(filepath.Join(s.dir, snapName(zxid))); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// verifySnapshot checks the container of a snapshot of size bytes read from
// r. It returns the payload length and the zxid in the header. Errors about
// the bytes are *CorruptError without File. It never panics and reads in
// bounded chunks.
func verifySnapshot(r io.ReaderAt, size int64) (payload int64, zxid uint64, err error) {
	bad := func(off int64, format string, args ...any) (int64, uint64, error) {
		return 0, 0, corruptf("", off, format, args...)
	}
	if size < snapHeaderSize+snapTrailSize {
		return bad(0, "snapshot has %d bytes, shorter than its header and trailer", size)
	}
	var hdr [snapHeaderSize]byte
	var tr [snapTrailSize]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, 0, err
	}
	if _, err := r.ReadAt(tr[:], size-snapTrailSize); err != nil {
		return 0, 0, err
	}
	payload = size - snapHeaderSize - snapTrailSize
	switch {
	case string(hdr[0:4]) != snapMagic:
		return bad(0, "bad snapshot magic")
	case binary.LittleEndian.Uint32(hdr[4:8]) != snapVersion:
		return 0, 0, versionf("", 4, "snapshot", binary.LittleEndian.Uint32(hdr[4:8]), snapVersion)
	case string(tr[12:16]) != snapEndMagic:
		return bad(size-snapTrailSize, "missing snapshot trailer (incomplete file?)")
	case binary.LittleEndian.Uint64(tr[0:8]) != uint64(payload):
		return bad(size-snapTrailSize, "trailer length %d does not match payload length %d",
			binary.LittleEndian.Uint64(tr[0:8]), payload)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size-snapTrailSize)); err != nil {
		return 0, 0, err
	}
	if h.Sum32() != binary.LittleEndian.Uint32(tr[8:12]) {
		return bad(size-snapTrailSize+8, "snapshot checksum mismatch")
	}
	return payload, binary.LittleEndian.Uint64(hdr[8:16]), nil
}
