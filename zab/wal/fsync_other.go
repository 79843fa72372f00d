//go:build !linux

package wal

import "os"

// datasync flushes f to stable storage.
func datasync(f *os.File) error { return f.Sync() }

// preallocate sizes f to size bytes; the new space reads back as zeros.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// tryLock is a no-op where flock is not wired up.
func tryLock(*os.File) error { return nil }
