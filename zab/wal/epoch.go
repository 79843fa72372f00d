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

// Names of the epoch files Zab keeps next to the log. They are separate files
// because Zab updates them at different moments (discovery vs NEWLEADER).
// SyncEpochFile marks a synchronisation being written: the driver creates
// it before logging entries of an epoch above currentEpoch and removes it
// once currentEpoch covers them, so recovery can tell that crash state from
// a currentEpoch file that is stale.
const (
	AcceptedEpochFile = "acceptedEpoch"
	CurrentEpochFile  = "currentEpoch"
	SyncEpochFile     = "syncEpoch"
)

// Epoch file layout (little endian), exactly epochFileSize bytes:
//
//	[0:4)  magic "CEPO"
//	[4:8)  epoch uint32
//	[8:12) crc   uint32 CRC32C over [0:8)
const (
	epochMagic    = "CEPO"
	epochFileSize = 12
)

// WriteEpoch durably stores epoch in dir/name, atomically: write a temporary
// file, fsync it, rename it over name, fsync dir. After a crash the file holds
// the old or the new epoch.
func WriteEpoch(dir, name string, epoch uint32) error {
	b := make([]byte, 0, epochFileSize)
	b = append(b, epochMagic...)
	b = binary.LittleEndian.AppendUint32(b, epoch)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if err := writeFileAtomic(dir, name, b); err != nil {
		return fmt.Errorf("wal: writing %s: %w", name, err)
	}
	return nil
}

// ReadEpoch reads an epoch written by WriteEpoch. A missing file returns an
// error matching fs.ErrNotExist (a fresh peer); a file of the wrong size,
// magic or checksum returns a *CorruptError.
func ReadEpoch(dir, name string) (uint32, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, epochFileSize+1) // one more byte detects trailing garbage
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, err
	}
	b = b[:n]
	switch {
	case n != epochFileSize:
		return 0, corruptf(path, 0, "epoch file has %d bytes, want %d", n, epochFileSize)
	case string(b[0:4]) != epochMagic:
		return 0, corruptf(path, 0, "bad epoch file magic")
	case crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:12]):
		return 0, corruptf(path, 8, "epoch file checksum mismatch")
	}
	return binary.LittleEndian.Uint32(b[4:8]), nil
}

// RemoveEpoch durably removes dir/name; a missing file is not an error.
func RemoveEpoch(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("wal: removing %s: %w", name, err)
	}
	return syncDir(dir)
}
