//go:build linux

package wal

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data and the metadata needed to read it back. The
// segment size is fixed by preallocation, so fdatasync skips the mtime-only
// inode write that fsync would add to every commit.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// preallocate reserves size bytes of zeros for f, so appends do not allocate
// blocks on the commit path and a full disk fails the roll, not a commit.
// Filesystems without fallocate get a sparse file, which reads back as zeros
// all the same.
func preallocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), 0, 0, size)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch {
	case ferr == nil:
		return nil
	case errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS):
		return f.Truncate(size) // no fallocate here: sparse, still zeros
	default: // ENOSPC and friends: fail now, not on a later commit
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: ferr}
	}
}

// dataExtent returns the first extent [start, end) of f at or after off
// that the filesystem holds as data rather than as a hole (space never
// written, preallocated or sparse, which reads back as zeros); start is
// size when only holes follow, and [off, size) is returned when the
// filesystem cannot tell (SEEK_DATA unsupported).
//
// A hole's pages that something read (readahead included) sit in the page
// cache and count as data until evicted, so it first drops f's clean
// cached pages from off on (dirty ones are data and stay): they are found
// again on disk if they held data.
func dataExtent(f *os.File, off, size int64) (start, end int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return off, size
	}
	start, end = off, size
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_ = unix.Fadvise(int(fd), off, 0, unix.FADV_DONTNEED) // advice: a failure costs reads only
		var s int64
		if s, serr = unix.Seek(int(fd), off, unix.SEEK_DATA); serr != nil {
			return
		}
		start = s
		if e, herr := unix.Seek(int(fd), s, unix.SEEK_HOLE); herr == nil {
			end = e
		}
	}); err != nil {
		return off, size
	}
	switch {
	case serr == nil:
		start = min(max(start, off), size)
		return start, min(max(end, start), size)
	case errors.Is(serr, unix.ENXIO): // nothing but holes from off on
		return size, size
	default: // EINVAL and friends: no answer, so all of it is data
		return off, size
	}
}

// tryLock takes an exclusive advisory lock on f without blocking.
func tryLock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(lerr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(lerr, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return lerr
}
