package wal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Log is the transaction log of one peer: a directory of preallocated segment
// files holding checksummed records in strictly increasing zxid order.
//
// Concurrency: every method is safe for concurrent use. Append calls are
// serialized; Sync calls coalesce (group commit): while one fsync runs, later
// callers wait and the next fsync covers all of them. Iterate runs without
// blocking Append or Sync, but TruncateAfter, PurgeThrough and Close wait for
// running iterations (an iteration stops with ErrClosed once Close starts).
//
// Durability: a record is durable once a Sync (or Commit) that started after
// its Append returned nil. After any write or fsync error the Log fails
// permanently (ErrFailed); reopen it to recover.
type Log struct {
	dir    string
	opts   Options
	closed atomic.Bool

	// structMu is held shared by Iterate and exclusively by operations that
	// remove or shrink files, so readers never see a file change under them.
	structMu sync.RWMutex

	mu       sync.Mutex
	cond     sync.Cond // signalled when an fsync ends or the Log closes
	segs     []*segment
	active   *handle  // read-write handle of the last segment; nil when segs is empty
	lock     *os.File // holds the directory lock until Close
	buf      []byte
	appended uint64 // Append calls that wrote something
	synced   uint64 // appended value covered by a completed fsync
	syncing  bool
	failed   error
	stats    Stats
	base     uint64 // see Base
}

// Stats are counters since Open.
type Stats struct {
	Records  uint64 // records appended
	Bytes    uint64 // frame bytes appended
	Syncs    uint64 // fsyncs issued by Sync and Commit
	Segments int    // segment files currently in the log
}

type segment struct {
	name  string
	first uint64 // zxid of its first record (also in the name and header)
	last  uint64 // zxid of its last record; 0 only transiently during a roll
	end   int64  // offset just past the last record
	size  int64  // file size: the capacity for frames
	salt  uint32 // seeds frame CRCs (segment header)
	// marks index where records start, one about every markEvery bytes,
	// in zxid order, so Iterate reads from near where it is asked to
	// rather than from the segment's start. Only appended to, and cut
	// back by TruncateAfter (which waits for every Iterate).
	marks []mark
}

// mark is where the record zxid starts in its segment.
type mark struct {
	zxid uint64
	off  int64
}

// markEvery is the spacing of a segment's marks: reading from any record
// scans at most this many bytes before it.
const markEvery = 256 << 10

// note records that a record with zxid starts at off, as a mark if the
// last mark is far enough behind.
func (seg *segment) note(zxid uint64, off int64) {
	if n := len(seg.marks); n == 0 || off-seg.marks[n-1].off >= markEvery {
		seg.marks = append(seg.marks, mark{zxid: zxid, off: off})
	}
}

// startFor returns the offset to scan from for the records with zxid >=
// from: the last mark at or before from, or the first record.
func (seg *segment) startFor(from uint64) int64 {
	i := sort.Search(len(seg.marks), func(i int) bool { return seg.marks[i].zxid > from })
	if i == 0 {
		return segHeaderSize
	}
	return seg.marks[i-1].off
}

// handle is an open segment file that an in-flight fsync may still use after
// the Log moved on to a new segment; the last user closes it.
type handle struct {
	f       *os.File
	users   int
	retired bool
}

// Open opens (creating if needed) the log in dir and recovers it: it validates
// every record of every segment and repairs the tail of the last segment. See
// the package documentation for the exact rules.
func Open(dir string, opts Options) (*Log, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := tryLock(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("wal: locking %s: %w", dir, err)
	}
	l := &Log{dir: dir, opts: o, lock: lock}
	l.cond.L = &l.mu
	if err := l.recover(); err != nil {
		if l.active != nil {
			l.active.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return l, nil
}

// lockName is the file Open flocks so that one directory has one writer.
const lockName = "wal.lock"

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

func (l *Log) maxData() uint32 { return uint32(l.opts.MaxRecordSize) }

// listSegments returns segment names in zxid order and removes temporary
// files of segments whose creation never completed.
func (l *Log) listSegments() ([]string, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, segPrefix) && strings.HasSuffix(name, segSuffix+tmpSuffix) {
			l.opts.Logger.Warn("wal: removing unfinished segment", "file", l.path(name))
			if err := os.Remove(l.path(name)); err != nil {
				return nil, err
			}
			continue
		}
		if _, ok := parseSegName(name); ok && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (l *Log) recover() error {
	base, err := readBase(l.dir)
	if err != nil {
		return err
	}
	l.base = base
	names, err := l.listSegments()
	if err != nil {
		return err
	}
	var prev uint64 // zxid of the last valid record so far
	for i, name := range names {
		first, _ := parseSegName(name)
		seg, err := l.scanSegment(name, first, &prev, i == len(names)-1, nextFirst(names, i))
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	if n := len(l.segs); n > 0 && l.segs[n-1].last == 0 {
		// Crash after a segment was created but before its first record was
		// durable (or its only record was torn): drop it, and the seal that
		// points to it from the previous segment.
		seg := l.segs[n-1]
		l.opts.Logger.Warn("wal: removing empty last segment", "file", l.path(seg.name))
		if err := os.Remove(l.path(seg.name)); err != nil {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
		l.segs = l.segs[:n-1]
		if n > 1 {
			p := l.segs[n-2]
			if err := zeroFrom(l.path(p.name), p.end, p.size); err != nil {
				return err
			}
		}
	}
	if n := len(l.segs); n > 0 {
		f, err := os.OpenFile(l.path(l.segs[n-1].name), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		l.active = &handle{f: f}
	}
	l.stats.Segments = len(l.segs)
	return nil
}

func nextFirst(names []string, i int) uint64 {
	if i+1 >= len(names) {
		return 0
	}
	z, _ := parseSegName(names[i+1])
	return z
}

// scanSegment validates one segment. prev is the last valid zxid before it and
// is advanced. For the last segment it repairs the tail.
func (l *Log) scanSegment(name string, first uint64, prev *uint64, isLast bool, next uint64) (*segment, error) {
	path := l.path(name)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	seg := &segment{name: name, first: first, end: segHeaderSize, size: st.Size()}
	hdr := make([]byte, segHeaderSize)
	if seg.size < segHeaderSize {
		return nil, corruptf(path, 0, "segment shorter than its header (%d bytes)", seg.size)
	}
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	if seg.salt, err = checkSegHeader(hdr, first); err != nil {
		if ve := (*CorruptError)(nil); errors.As(err, &ve) {
			ve.File = path
			return nil, ve
		}
		return nil, corruptf(path, 0, "%v", err)
	}
	if first <= *prev {
		return nil, corruptf(path, 0, "segment first zxid %#x not above previous zxid %#x", first, *prev)
	}
	s := newScanner(f, segHeaderSize, seg.size, l.maxData(), seg.salt)
	sealed := false
	for s.next() {
		if s.kind == frameSeal {
			sealed = true
			break
		}
		if s.zxid <= *prev {
			return nil, corruptf(path, seg.end, "record zxid %#x not above previous zxid %#x", s.zxid, *prev)
		}
		if seg.last == 0 && s.zxid != first {
			return nil, corruptf(path, seg.end, "first record zxid %#x does not match the segment name", s.zxid)
		}
		seg.note(s.zxid, seg.end)
		*prev, seg.last, seg.end = s.zxid, s.zxid, s.off
	}
	if s.ioErr != nil {
		return nil, fmt.Errorf("wal: reading %s at offset %d: %w", path, s.off, s.ioErr)
	}
	if s.err == errAboveLimit { // a configuration problem, not damage: never truncate it
		return nil, fmt.Errorf("%w: %s at offset %d holds a valid record above Options.MaxRecordSize %d; reopen with a larger limit",
			ErrRecordTooLarge, path, seg.end, l.opts.MaxRecordSize)
	}
	stop := seg.end // the scan stopped at a seal, a zero header or an invalid frame here
	if !isLast {
		switch {
		case s.err != nil:
			return nil, corruptf(path, stop, "invalid frame before the last segment: %v", s.err)
		case seg.last == 0:
			return nil, corruptf(path, stop, "empty segment before the last")
		case !sealed:
			return nil, corruptf(path, stop, "segment ends without a seal although %s follows", segName(next))
		case s.zxid != next:
			return nil, corruptf(path, stop, "seal names %#x but the next segment starts at %#x", s.zxid, next)
		}
		return seg, nil
	}

	// Last segment: the stop is the tail only if no valid frame follows.
	from := stop + 1
	if sealed {
		from = stop + frameHeaderSize
	}
	extent := func(off int64) (int64, int64) { return dataExtent(f, off, seg.size) }
	at, found, nonZero, err := scanTail(f, extent, from, seg.size, *prev, l.maxData(), seg.salt)
	if err != nil {
		return nil, err
	}
	switch {
	case found && s.err != nil:
		return nil, corruptf(path, stop, "invalid frame (%v) followed by a valid frame at offset %d", s.err, at)
	case found:
		return nil, corruptf(path, stop, "end of data followed by a valid frame at offset %d", at)
	case sealed:
		l.opts.Logger.Warn("wal: removing seal of a segment that has no successor",
			"file", path, "offset", stop, "last_zxid", *prev)
	case s.err != nil:
		l.opts.Logger.Warn("wal: truncating torn tail of the log",
			"file", path, "offset", stop, "reason", s.err.Error(), "last_zxid", *prev)
	case nonZero:
		l.opts.Logger.Warn("wal: zeroing garbage after the end of the log",
			"file", path, "offset", stop, "last_zxid", *prev)
	default:
		return seg, nil
	}
	if err := zeroFrom(path, stop, seg.size); err != nil {
		return nil, err
	}
	return seg, nil
}

// zeroFrom durably replaces bytes [off, size) of the file with zeros by
// shrinking and re-extending it, so that stale frames can never reappear.
func zeroFrom(path string, off, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = zeroFile(f, off, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func zeroFile(f *os.File, off, size int64) error {
	if err := f.Truncate(off); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// usable returns why the Log cannot be used, or nil. Callers hold mu.
func (l *Log) usable() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.failed
}

// fail records the first I/O error; the Log is unusable afterwards.
func (l *Log) fail(err error) error {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return l.failed
}

func (l *Log) lastZxid() uint64 {
	if n := len(l.segs); n > 0 {
		return l.segs[n-1].last
	}
	return 0
}

// LastZxid returns the zxid of the last record appended, or 0 when the log is
// empty. The record may not be durable yet.
func (l *Log) LastZxid() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastZxid()
}

// FirstZxid returns the zxid of the oldest record still in the log, or 0 when
// the log is empty.
func (l *Log) FirstZxid() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) == 0 {
		return 0
	}
	return l.segs[0].first
}

// Stats returns the counters since Open.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Segments = len(l.segs)
	return s
}

// Append writes records after the last one without waiting for fsync (unless
// Options.NoGroupCommit); call Sync (or use Commit) before acknowledging them. Zxids must be non-zero and
// strictly increasing, also across calls; otherwise nothing is written and the
// error wraps ErrOutOfOrder. Append does not retain recs.
func (l *Log) Append(recs ...Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	prev := l.lastZxid()
	for _, r := range recs {
		if r.Zxid <= prev {
			return fmt.Errorf("%w: %#x after %#x", ErrOutOfOrder, r.Zxid, prev)
		}
		if len(r.Data) > l.opts.MaxRecordSize {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(r.Data), l.opts.MaxRecordSize)
		}
		prev = r.Zxid
	}
	if len(recs) == 0 {
		return nil
	}
	for i := 0; i < len(recs); {
		if l.active == nil || !fits(l.segs[len(l.segs)-1], recs[i]) {
			if err := l.roll(recs[i].Zxid); err != nil {
				return l.fail(err)
			}
		}
		seg := l.segs[len(l.segs)-1]
		l.buf = l.buf[:0]
		j := i
		for j < len(recs) && fits(seg, recs[j]) && (j == i || !l.opts.NoGroupCommit) {
			if int64(len(l.buf)+frameHeaderSize+len(recs[j].Data)) > seg.size-seg.end-frameHeaderSize {
				break
			}
			seg.note(recs[j].Zxid, seg.end+int64(len(l.buf)))
			l.buf = appendFrame(l.buf, seg.salt, recs[j].Zxid, recs[j].Data, recs[j].Meta)
			j++
		}
		if _, err := l.active.f.WriteAt(l.buf, seg.end); err != nil {
			return l.fail(err)
		}
		if l.opts.NoGroupCommit { // one record per write and fsync
			if err := datasync(l.active.f); err != nil {
				return l.fail(err)
			}
			l.stats.Syncs++
		}
		seg.end += int64(len(l.buf))
		seg.last = recs[j-1].Zxid
		l.stats.Records += uint64(j - i)
		l.stats.Bytes += uint64(len(l.buf))
		i = j
	}
	l.appended++
	if l.opts.NoGroupCommit {
		l.synced = l.appended
	}
	return nil
}

// fits reports whether r fits in seg while leaving room for the seal.
func fits(seg *segment, r Record) bool {
	return seg.end+int64(2*frameHeaderSize+len(r.Data)) <= seg.size
}

// roll seals the active segment, makes it durable and starts a new segment
// whose first record will be first. A later segment therefore always implies a
// fully synced, sealed predecessor. Callers hold mu.
func (l *Log) roll(first uint64) error {
	if l.active != nil {
		seg := l.segs[len(l.segs)-1]
		if _, err := l.active.f.WriteAt(appendSeal(nil, seg.salt, first), seg.end); err != nil {
			return err
		}
		if err := datasync(l.active.f); err != nil {
			return err
		}
		l.stats.Syncs++
		l.synced = max(l.synced, l.appended)
		l.retire(l.active)
		l.active = nil
	}
	name := segName(first)
	salt := newSalt()
	tmp := l.path(name + tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = preallocate(f, l.opts.SegmentSize)
	if err == nil {
		_, err = f.WriteAt(encodeSegHeader(first, salt), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, l.path(name))
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	l.segs = append(l.segs, &segment{name: name, first: first, end: segHeaderSize, size: l.opts.SegmentSize, salt: salt})
	l.active = &handle{f: f}
	return nil
}

// newSalt returns a random frame CRC seed for a new segment.
func newSalt() uint32 {
	var b [4]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return binary.LittleEndian.Uint32(b[:])
}

// retire closes h once no fsync uses it. Callers hold mu.
func (l *Log) retire(h *handle) {
	h.retired = true
	if h.users == 0 {
		h.f.Close()
	}
}

func (l *Log) release(h *handle) {
	h.users--
	if h.retired && h.users == 0 {
		h.f.Close()
	}
}

// Sync makes every record appended before the call durable. Concurrent calls
// share fsyncs: a caller whose records an fsync already covered returns
// without issuing one. (With Options.NoGroupCommit, Append already fsynced
// every record and Sync returns at once.) To learn which zxid is
// durable, read LastZxid before calling Sync: after a nil return it is.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	target := l.appended
	for {
		if err := l.usable(); err != nil {
			return err
		}
		if l.synced >= target {
			return nil
		}
		if !l.syncing {
			break
		}
		l.cond.Wait()
	}
	if l.active == nil { // empty log: nothing to make durable
		l.synced = max(l.synced, target)
		return nil
	}
	h, upto := l.active, l.appended
	h.users++
	l.syncing = true
	l.mu.Unlock()
	err := datasync(h.f)
	l.mu.Lock()
	l.syncing = false
	l.release(h)
	l.stats.Syncs++
	l.cond.Broadcast()
	if err != nil {
		return l.fail(err)
	}
	l.synced = max(l.synced, upto)
	return l.usable()
}

// Commit appends recs and waits until they are durable: Append then Sync.
// Concurrent Commits are group-committed.
func (l *Log) Commit(recs ...Record) error {
	if err := l.Append(recs...); err != nil {
		return err
	}
	return l.Sync()
}

// Iterate calls fn for every record with zxid >= from, in zxid order, until fn
// returns an error (which Iterate returns). It sees the records appended
// before it started, including ones not yet synced. fn owns each Record.Data
// (nil for an empty record).
func (l *Log) Iterate(from uint64, fn func(Record) error) error {
	l.structMu.RLock()
	defer l.structMu.RUnlock()
	l.mu.Lock()
	if err := l.usable(); err != nil {
		l.mu.Unlock()
		return err
	}
	segs := make([]segment, len(l.segs))
	for i, s := range l.segs {
		segs[i] = *s
	}
	l.mu.Unlock()

	i := max(sort.Search(len(segs), func(i int) bool { return segs[i].first > from })-1, 0)
	for ; i < len(segs); i++ {
		if err := l.iterateSegment(segs[i], from, fn); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) iterateSegment(seg segment, from uint64, fn func(Record) error) error {
	path := l.path(seg.name)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := newScanner(f, seg.startFor(from), seg.end, l.maxData(), seg.salt)
	for s.next() {
		if l.closed.Load() {
			return ErrClosed
		}
		if !s.kind.isRecord() {
			return corruptf(path, s.off, "unexpected seal inside the log")
		}
		if s.zxid < from {
			continue
		}
		var data []byte // nil for an empty record
		if len(s.data) > 0 {
			data = bytes.Clone(s.data)
		}
		if err := fn(Record{Zxid: s.zxid, Data: data, Meta: s.kind == frameMeta}); err != nil {
			return err
		}
	}
	switch {
	case s.ioErr != nil:
		return fmt.Errorf("wal: reading %s at offset %d: %w", path, s.off, s.ioErr)
	case s.err != nil:
		return corruptf(path, s.off, "invalid frame: %v", s.err)
	case s.off != seg.end:
		return corruptf(path, s.off, "data ends before offset %d", seg.end)
	}
	return nil
}

// TruncateAfter durably removes every record with zxid > zxid (Zab's TRUNC),
// across segment boundaries. Later segments are removed newest first, so a
// crash midway leaves a prefix of the old log, never a log with a hole.
func (l *Log) TruncateAfter(zxid uint64) error {
	l.structMu.Lock()
	defer l.structMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.syncing {
		l.cond.Wait()
	}
	if err := l.usable(); err != nil {
		return err
	}
	if l.lastZxid() <= zxid {
		return nil
	}
	removed := false
	for n := len(l.segs); n > 0 && l.segs[n-1].first > zxid; n = len(l.segs) {
		if l.active != nil {
			l.retire(l.active)
			l.active = nil
		}
		if err := os.Remove(l.path(l.segs[n-1].name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return l.fail(err)
		}
		l.segs = l.segs[:n-1]
		removed = true
	}
	if removed {
		if err := syncDir(l.dir); err != nil {
			return l.fail(err)
		}
	}
	l.synced = l.appended // nothing unsynced is left past the cut
	if len(l.segs) == 0 {
		return nil
	}
	seg := l.segs[len(l.segs)-1]
	path := l.path(seg.name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return l.fail(err)
	}
	cut, last := int64(segHeaderSize), uint64(0)
	s := newScanner(f, segHeaderSize, seg.end, l.maxData(), seg.salt)
	for s.next() && s.kind.isRecord() && s.zxid <= zxid {
		cut, last = s.off, s.zxid
	}
	if s.ioErr != nil || s.err != nil {
		f.Close()
		return l.fail(corruptf(path, s.off, "reading for truncate: %v", errors.Join(s.ioErr, s.err)))
	}
	if err := zeroFile(f, cut, seg.size); err != nil {
		f.Close()
		return l.fail(err)
	}
	seg.end, seg.last = cut, last
	k := sort.Search(len(seg.marks), func(i int) bool { return seg.marks[i].zxid > zxid })
	seg.marks = seg.marks[:k:k] // a copy on the next append: no Iterate sees a mark change
	if l.active == nil {
		l.active = &handle{f: f}
	} else {
		f.Close()
	}
	return nil
}

// PurgeThrough removes whole segments whose records all have zxid <= zxid,
// oldest first; the last segment always stays. It returns how many segment
// files it removed. Use it once a retained snapshot covers zxid. It first
// records the last removed zxid as the log's Base.
func (l *Log) PurgeThrough(zxid uint64) (int, error) {
	l.structMu.Lock()
	defer l.structMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	// Record the new base first: a crash midway must not leave a log that
	// looks complete from its first record.
	k := 0
	for k < len(l.segs)-1 && l.segs[k].last <= zxid {
		k++
	}
	if k == 0 {
		return 0, nil
	}
	if err := l.setBaseLocked(l.segs[k-1].last); err != nil {
		return 0, err
	}
	n := 0
	for len(l.segs) > 1 && l.segs[0].last <= zxid {
		if err := os.Remove(l.path(l.segs[0].name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, l.fail(err)
		}
		l.segs = l.segs[1:]
		n++
	}
	if n > 0 {
		if err := syncDir(l.dir); err != nil {
			return n, l.fail(err)
		}
	}
	return n, nil
}

// Close syncs records appended since the last Sync and closes the files. It
// waits for running iterations, which stop with ErrClosed. Close is
// idempotent; the Log starts no goroutines.
func (l *Log) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	l.structMu.Lock()
	defer l.structMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.syncing {
		l.cond.Wait()
	}
	var err error
	if l.active != nil {
		if l.failed == nil && l.synced < l.appended {
			err = datasync(l.active.f)
		}
		l.retire(l.active)
		l.active = nil
	}
	l.lock.Close() // releases the flock
	l.cond.Broadcast()
	return err
}
