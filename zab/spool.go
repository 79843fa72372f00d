package zab

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
)

// ErrSpoolDamaged is returned by a SnapSpool whose bytes read back differ
// from those written (size or checksum): the streamed snapshot is not
// installed and the learner asks for it again.
var ErrSpoolDamaged = errors.New("zab: streamed snapshot spool damaged")

// SnapSpool holds the bytes of a snapshot a learner receives streamed in
// chunks (see snapstream.go) until the SNAP itself installs it
// (Config.SnapSpool). The core calls it from Step, in order, for one
// image at a time: Reset when a new image begins (or the learner starts
// over), Append for each chunk taken in order, and Bytes once every byte
// arrived. An error from Append or Bytes drops what is held: the leader's
// stream rewinds to what the learner acknowledges, or the learner asks
// for a new synchronisation.
//
// A spool is scratch space, never durable state: a crash loses it, and a
// snapshot is installed only through Ready's two durable steps
// (LogWriter.SaveSnapshot, then ResetLog), from the bytes Bytes returned.
type SnapSpool interface {
	// Reset drops every byte held.
	Reset() error
	// Append adds p after the bytes held. p is not retained.
	Append(p []byte) error
	// Len returns how many bytes are held.
	Len() uint64
	// Bytes returns every byte held, in one slice the caller owns, after
	// checking them against what Append was given (ErrSpoolDamaged).
	Bytes() ([]byte, error)
}

// memSpool is the default SnapSpool: the bytes in memory.
type memSpool struct{ buf []byte }

func (s *memSpool) Reset() error           { s.buf = nil; return nil }
func (s *memSpool) Append(p []byte) error  { s.buf = append(s.buf, p...); return nil }
func (s *memSpool) Len() uint64            { return uint64(len(s.buf)) }
func (s *memSpool) Bytes() ([]byte, error) { return s.buf, nil }

// spoolFile is the name of a Node's SnapSpool in its data directory.
const spoolFile = "snapstream.tmp"

// fileSpool is a SnapSpool in a file, which a Node with a DataDir uses:
// a learner's memory does not grow with the snapshot it receives, and
// Bytes reads the image back in one slice of its exact size. It keeps a CRC32C of what it was given and
// checks the file against it (and against the size) when read back. The
// file is never synced: it is scratch space, which a restart removes
// (removeSpool).
type fileSpool struct {
	path string
	f    *os.File
	n    uint64
	crc  uint32
	tab  *crc32.Table
}

var _ SnapSpool = (*fileSpool)(nil)

// newFileSpool returns a spool writing to path, which it creates (or
// truncates) on first use.
func newFileSpool(path string) *fileSpool {
	return &fileSpool{path: path, tab: crc32.MakeTable(crc32.Castagnoli)}
}

// Reset implements SnapSpool.
func (s *fileSpool) Reset() error {
	s.n, s.crc = 0, 0
	if s.f == nil {
		return nil
	}
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("zab: spool %s: %w", s.path, err)
	}
	return nil
}

// Append implements SnapSpool.
func (s *fileSpool) Append(p []byte) error {
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("zab: spool: %w", err)
		}
		s.f, s.n, s.crc = f, 0, 0
	}
	if _, err := s.f.WriteAt(p, int64(s.n)); err != nil {
		return fmt.Errorf("zab: spool %s: %w", s.path, err)
	}
	s.n += uint64(len(p))
	s.crc = crc32.Update(s.crc, s.tab, p)
	return nil
}

// Len implements SnapSpool.
func (s *fileSpool) Len() uint64 { return s.n }

// Bytes implements SnapSpool.
func (s *fileSpool) Bytes() ([]byte, error) {
	if s.n == 0 {
		return nil, nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("zab: spool %s: %w", s.path, err)
	}
	if uint64(fi.Size()) != s.n {
		return nil, fmt.Errorf("%w: %s holds %d bytes, %d were written", ErrSpoolDamaged, s.path, fi.Size(), s.n)
	}
	buf := make([]byte, s.n)
	if _, err := s.f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("zab: spool %s: %w", s.path, err)
	}
	if crc32.Checksum(buf, s.tab) != s.crc {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrSpoolDamaged, s.path)
	}
	return buf, nil
}

// Close closes and removes the file.
func (s *fileSpool) Close() error {
	if s.f == nil {
		return removeSpool(s.path)
	}
	err := s.f.Close()
	s.f, s.n, s.crc = nil, 0, 0
	return errors.Join(err, removeSpool(s.path))
}

// removeSpool removes a spool file left at path (by a crash), if any.
func removeSpool(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("zab: removing spool: %w", err)
	}
	return nil
}
