//go:build !linux

package wal

import "os"

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }

// preallocate sizes f to size bytes; the new space reads back as zeros.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// dataExtent returns [off, size): without SEEK_DATA, every byte is data.
func dataExtent(_ *os.File, off, size int64) (start, end int64) { return off, size }

// tryLock is a no-op where flock is not wired up.
func tryLock(*os.File) error { return nil }
