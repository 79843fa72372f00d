package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// BaseFile is the name of the file in which a Log records its base: the
// zxid through which records may be missing from the front of the log
// because PurgeThrough removed them or Reset emptied the log for a
// snapshot. A log without the file has never lost a record at its front.
const BaseFile = "logBase"

// Base file layout (little endian), exactly baseFileSize bytes:
//
//	[0:4)   magic "CBAS"
//	[4:12)  base zxid uint64
//	[12:16) crc uint32 CRC32C over [0:12)
const (
	baseMagic    = "CBAS"
	baseFileSize = 16
)

func encodeBase(z uint64) []byte {
	b := make([]byte, 0, baseFileSize)
	b = append(b, baseMagic...)
	b = binary.LittleEndian.AppendUint64(b, z)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeBase(path string, b []byte) (uint64, error) {
	switch {
	case len(b) != baseFileSize:
		return 0, corruptf(path, 0, "base file has %d bytes, want %d", len(b), baseFileSize)
	case string(b[0:4]) != baseMagic:
		return 0, corruptf(path, 0, "bad base file magic")
	case crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]):
		return 0, corruptf(path, 12, "base file checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b[4:12]), nil
}

// readBase returns the base recorded in dir, zero if there is none.
func readBase(dir string) (uint64, error) {
	path := filepath.Join(dir, BaseFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, baseFileSize+1))
	if err != nil {
		return 0, err
	}
	return decodeBase(path, b)
}

// setBaseLocked durably records base z if it is above the current one.
// l.mu must be held.
func (l *Log) setBaseLocked(z uint64) error {
	if z <= l.base {
		return nil
	}
	if err := writeFileAtomic(l.dir, BaseFile, encodeBase(z)); err != nil {
		return l.fail(fmt.Errorf("wal: writing %s: %w", BaseFile, err))
	}
	l.base = z
	return nil
}

// Base returns the zxid through which records may be missing from the front
// of the log (zero if none ever were): recovery needs a valid snapshot at or
// after it. It only grows.
func (l *Log) Base() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.base
}

// Reset durably empties the log and records base as its base: use it to
// install a snapshot at base received from elsewhere, once that snapshot is
// durable (Base then says the log needs it).
func (l *Log) Reset(base uint64) error {
	l.mu.Lock()
	err := l.usable()
	if err == nil {
		err = l.setBaseLocked(base)
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.TruncateAfter(0)
}

// Wipe durably empties the log and forgets its base, so that it starts
// again from zero like a new node's: for a replica that throws its state
// away to synchronise afresh. The records go first, then the base (a crash
// between the two leaves an empty log that still needs a snapshot at or
// after its base, which the snapshots not yet removed provide).
func (l *Log) Wipe() error {
	if err := l.TruncateAfter(0); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if l.base == 0 {
		return nil
	}
	if err := os.Remove(filepath.Join(l.dir, BaseFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l.fail(fmt.Errorf("wal: removing %s: %w", BaseFile, err))
	}
	if err := syncDir(l.dir); err != nil {
		return l.fail(err)
	}
	l.base = 0
	return nil
}
