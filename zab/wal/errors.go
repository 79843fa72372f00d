package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors of package wal, comparable with errors.Is.
var (
	// ErrCorrupt matches every *CorruptError: bytes on disk that fail validation
	// somewhere recovery may not repair them.
	ErrCorrupt = errors.New("wal: corrupt data")
	// ErrClosed is returned by operations on a closed Log.
	ErrClosed = errors.New("wal: closed")
	// ErrOutOfOrder is returned by Append when a zxid is zero or not greater than
	// the zxid before it.
	ErrOutOfOrder = errors.New("wal: zxid not strictly increasing")
	// ErrRecordTooLarge is returned by Append for a record above Options.MaxRecordSize.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrFailed wraps the first write or fsync error of a Log: after it the
	// on-disk state is unknown (a failed fsync may have dropped dirty pages), so
	// every later call fails until the Log is reopened and recovered.
	ErrFailed = errors.New("wal: log failed")
	// ErrLocked is returned by Open when another Log (in this or another
	// process) has the directory open: two writers would corrupt the log.
	ErrLocked = errors.New("wal: directory locked by another Log")
	// ErrNoSnapshot is returned by SnapshotStore.OpenNewest when no valid
	// snapshot exists.
	ErrNoSnapshot = errors.New("wal: no valid snapshot")
	// ErrVersion matches a *CorruptError for a file in a format version
	// this package does not read (written by another version of it: data
	// directories are refused, never migrated). It matches ErrCorrupt too.
	ErrVersion = errors.New("wal: unsupported format version")
)

// CorruptError names the file and byte offset where validation failed. It
// matches ErrCorrupt with errors.Is.
type CorruptError struct {
	File   string // path of the damaged file
	Offset int64  // offset of the first invalid byte range (frame, header or trailer)
	Reason string // what check failed
	// Version is the format version found in a file whose version this
	// package does not read (then the error matches ErrVersion too).
	Version uint32
	version bool
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt data in %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool {
	return target == ErrCorrupt || (e.version && target == ErrVersion)
}

// versionf reports a file of kind what (a segment, a snapshot, ...) in
// format version found where this package reads only want.
func versionf(file string, off int64, what string, found, want uint32) *CorruptError {
	return &CorruptError{File: file, Offset: off, Version: found, version: true,
		Reason: fmt.Sprintf("%s format version %d, but this version reads version %d only (written by another version, which it does not migrate)",
			what, found, want)}
}

func corruptf(file string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
