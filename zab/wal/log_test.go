package wal

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendIterateReopen(t *testing.T) {
	tests := []struct {
		name    string
		segSize int64
		batch   int
		n       int
	}{
		{"one segment, single appends", 1 << 20, 1, 200},
		{"one segment, batches", 1 << 20, 37, 500},
		{"many segments, single appends", 256, 1, 200},
		{"many segments, batches spanning segments", 300, 50, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o, w := testOpts(tt.segSize)
			l := openLog(t, dir, o)
			want := recs(1, 1, tt.n)
			for i := 0; i < len(want); i += tt.batch {
				require.NoError(t, l.Append(want[i:min(i+tt.batch, len(want))]...))
			}
			require.NoError(t, l.Sync())
			assert.Equal(t, want, readAll(t, l, 0))
			assert.Equal(t, want[0].Zxid, l.FirstZxid())
			assert.Equal(t, want[len(want)-1].Zxid, l.LastZxid())
			assert.Equal(t, want[tt.n/2:], readAll(t, l, want[tt.n/2].Zxid))
			assert.Equal(t, want[tt.n/2+1:], readAll(t, l, want[tt.n/2].Zxid+1), "from between zxids")
			assert.Empty(t, readAll(t, l, want[len(want)-1].Zxid+1))
			require.NoError(t, l.Close())

			l2 := openLog(t, dir, o)
			assert.Equal(t, want, readAll(t, l2, 0))
			assert.Equal(t, want[len(want)-1].Zxid, l2.LastZxid())
			assert.Empty(t, w.all(), "a clean log recovers without warnings")
			more := recs(2, 1, 10)
			require.NoError(t, l2.Commit(more...))
			assert.Equal(t, append(want, more...), readAll(t, l2, 0))
			if tt.segSize < 1000 {
				assert.Greater(t, l2.Stats().Segments, 1)
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	o, _ := testOpts(4096)
	o.MaxRecordSize = 100
	l := openLog(t, t.TempDir(), o)
	require.NoError(t, l.Append(Record{Zxid: 10, Data: []byte("a")}))
	tests := []struct {
		name string
		recs []Record
		want error
	}{
		{"zero zxid", []Record{{Zxid: 0}}, ErrOutOfOrder},
		{"equal to last", []Record{{Zxid: 10}}, ErrOutOfOrder},
		{"below last", []Record{{Zxid: 9}}, ErrOutOfOrder},
		{"not increasing inside a batch", []Record{{Zxid: 11}, {Zxid: 11}}, ErrOutOfOrder},
		{"too large", []Record{{Zxid: 11, Data: make([]byte, 101)}}, ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, l.Append(tt.recs...), tt.want)
			assert.Equal(t, uint64(10), l.LastZxid(), "a rejected batch writes nothing")
		})
	}
	require.NoError(t, l.Append(Record{Zxid: 11, Data: make([]byte, 100)}))
	require.NoError(t, l.Append())
}

func TestOptionsValidate(t *testing.T) {
	assert.NoError(t, Options{}.Validate())
	assert.ErrorContains(t, Options{SegmentSize: 10}.Validate(), "SegmentSize")
	assert.ErrorContains(t, Options{SegmentSize: 1024, MaxRecordSize: 2000}.Validate(), "MaxRecordSize")
	assert.ErrorContains(t, Options{MaxRecordSize: -1}.Validate(), "MaxRecordSize")
	o, err := Options{SegmentSize: 1024}.resolve()
	require.NoError(t, err)
	assert.Equal(t, 1024-segHeaderSize-2*frameHeaderSize, o.MaxRecordSize, "default lowered to fit the segment")
}

// writeLog creates a log with the given records and closes it.
func writeLog(t *testing.T, dir string, o Options, rs []Record) {
	t.Helper()
	l, err := Open(dir, o)
	require.NoError(t, err)
	require.NoError(t, l.Commit(rs...))
	require.NoError(t, l.Close())
}

// TestCutLastRecordEveryOffset simulates a crash in the middle of writing the
// last record: the file keeps the bytes of that record before the cut and
// zeros (preallocation) or nothing (a shorter file) after it. Every cut inside
// the record recovers exactly the previous records with a warning; a cut at
// its first byte is a clean end (nothing of it was written) without warning.
func TestCutLastRecordEveryOffset(t *testing.T) {
	o, _ := testOpts(4096)
	base := t.TempDir()
	rs := recs(1, 1, 5)
	writeLog(t, base, o, rs)
	seg := segFiles(t, base)[0]
	offs := frameOffsets(t, seg)
	require.Len(t, offs, 5)
	start := offs[4]
	end := start + frameHeaderSize + int64(len(rs[4].Data))
	orig, err := os.ReadFile(seg)
	require.NoError(t, err)

	for _, mode := range []string{"zeroed", "shortened"} {
		for cut := start; cut < end; cut++ {
			dir := t.TempDir()
			b := append([]byte(nil), orig...)
			if mode == "zeroed" {
				clear(b[cut:])
			} else {
				b = b[:cut]
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(seg)), b, 0o644))
			o, w := testOpts(4096)
			l, err := Open(dir, o)
			require.NoError(t, err, "%s cut at %d", mode, cut)
			assert.Equal(t, rs[:4], readAll(t, l, 0), "%s cut at %d", mode, cut)
			if cut == start {
				assert.Empty(t, w.all(), "%s cut at %d", mode, cut)
			} else {
				assert.Equal(t, []string{"wal: truncating torn tail of the log"}, w.all(), "%s cut at %d", mode, cut)
			}
			// The repaired log takes new records and reopens clean.
			require.NoError(t, l.Commit(recs(2, 1, 3)...))
			require.NoError(t, l.Close())
			o2, w2 := testOpts(4096)
			l2, err := Open(dir, o2)
			require.NoError(t, err)
			assert.Equal(t, append(append([]Record(nil), rs[:4]...), recs(2, 1, 3)...), readAll(t, l2, 0))
			assert.Empty(t, w2.all())
			require.NoError(t, l2.Close())
		}
	}
}

// TestFlipBits flips one bit in every byte of a record in the middle of the
// log (hard error naming the file and the record's offset) and of the last
// record (treated as a torn tail: truncated with a warning, the previous
// records kept).
func TestFlipBits(t *testing.T) {
	o, _ := testOpts(4096)
	base := t.TempDir()
	rs := recs(1, 1, 6)
	writeLog(t, base, o, rs)
	seg := segFiles(t, base)[0]
	offs := frameOffsets(t, seg)
	orig, err := os.ReadFile(seg)
	require.NoError(t, err)
	size := func(i int) int64 { return frameHeaderSize + int64(len(rs[i].Data)) }

	tests := []struct {
		name   string
		record int
		torn   bool
	}{
		{"first record", 0, false},
		{"middle record", 3, false},
		{"second to last record", 4, false},
		{"last record", 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for pos := offs[tt.record]; pos < offs[tt.record]+size(tt.record); pos++ {
				for _, bit := range []byte{0x01, 0x80} {
					dir := t.TempDir()
					b := append([]byte(nil), orig...)
					b[pos] ^= bit
					path := filepath.Join(dir, filepath.Base(seg))
					require.NoError(t, os.WriteFile(path, b, 0o644))
					o, w := testOpts(4096)
					l, err := Open(dir, o)
					if tt.torn {
						require.NoError(t, err, "byte %d", pos)
						assert.Equal(t, rs[:tt.record], readAll(t, l, 0))
						assert.Equal(t, []string{"wal: truncating torn tail of the log"}, w.all())
						require.NoError(t, l.Close())
						continue
					}
					require.ErrorIs(t, err, ErrCorrupt, "byte %d", pos)
					var ce *CorruptError
					require.ErrorAs(t, err, &ce)
					assert.Equal(t, path, ce.File)
					assert.Equal(t, offs[tt.record], ce.Offset, "byte %d bit %#x: %v", pos, bit, err)
					assert.Nil(t, l)
				}
			}
		})
	}
}

// multiSegLog writes n records into segments of segSize bytes and returns
// the records and the segment files.
func multiSegLog(t *testing.T, dir string, segSize int64, n int) ([]Record, []string) {
	t.Helper()
	o, _ := testOpts(segSize)
	rs := recs(1, 1, n)
	l, err := Open(dir, o)
	require.NoError(t, err)
	for _, r := range rs {
		require.NoError(t, l.Append(r))
	}
	require.NoError(t, l.Close())
	return rs, segFiles(t, dir)
}

func TestCorruptionInEarlierSegment(t *testing.T) {
	base := t.TempDir()
	_, files := multiSegLog(t, base, 200, 30)
	require.Greater(t, len(files), 3)
	name := filepath.Base(files[1])
	orig, err := os.ReadFile(files[1])
	require.NoError(t, err)
	offs := frameOffsets(t, files[1])
	last := offs[len(offs)-1]
	lastEnd := last + frameHeaderSize + int64(len("txn-1-00"))
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		offset int64
	}{
		{"bit flip in the last record of a sealed segment", func(b []byte) []byte { b[last+frameHeaderSize] ^= 1; return b }, last},
		{"bit flip in the segment header", func(b []byte) []byte { b[10] ^= 1; return b }, 0},
		{"seal zeroed", func(b []byte) []byte { clear(b[lastEnd:]); return b }, lastEnd},
		{"seal damaged", func(b []byte) []byte { b[lastEnd+5] ^= 1; return b }, lastEnd},
		{"tail cut off", func(b []byte) []byte { return b[:lastEnd-3] }, last},
		{"records zeroed", func(b []byte) []byte { clear(b[segHeaderSize:]); return b }, segHeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, tt.mutate(append([]byte(nil), orig...)), 0o644))
			o, _ := testOpts(200)
			_, err := Open(dir, o)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, path, ce.File)
			assert.Equal(t, tt.offset, ce.Offset, "%v", err)
		})
	}
}

// TestGarbageTail covers a torn write that left non-zero bytes: a record whose
// tail is random garbage and garbage after a zero header.
func TestGarbageTail(t *testing.T) {
	base := t.TempDir()
	o, _ := testOpts(4096)
	rs := recs(1, 1, 4)
	writeLog(t, base, o, rs)
	seg := segFiles(t, base)[0]
	offs := frameOffsets(t, seg)
	orig, err := os.ReadFile(seg)
	require.NoError(t, err)
	tests := []struct {
		name   string
		mutate func(b []byte)
		want   []Record
		warn   string
	}{
		{"garbage over the last record's data", func(b []byte) {
			copy(b[offs[3]+frameHeaderSize:], "\xde\xad\xbe\xef\xde\xad\xbe\xef\xde")
		}, rs[:3], "wal: truncating torn tail of the log"},
		{"garbage after a zero header", func(b []byte) {
			end := offs[3] + frameHeaderSize + int64(len(rs[3].Data))
			copy(b[end+100:], "garbage")
		}, rs, "wal: zeroing garbage after the end of the log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b := append([]byte(nil), orig...)
			tt.mutate(b)
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(seg)), b, 0o644))
			o, w := testOpts(4096)
			l := openLog(t, dir, o)
			assert.Equal(t, tt.want, readAll(t, l, 0))
			assert.Equal(t, []string{tt.warn}, w.all())
			require.NoError(t, l.Close())
			o2, w2 := testOpts(4096)
			l2 := openLog(t, dir, o2)
			assert.Equal(t, tt.want, readAll(t, l2, 0))
			assert.Empty(t, w2.all(), "the repair was durable")
		})
	}
}

// TestZeroedGapBeforeValidRecord: zeros in the middle of the last segment
// followed by a valid record are corruption, not an end of data.
func TestZeroedGapBeforeValidRecord(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(4096)
	rs := recs(1, 1, 5)
	writeLog(t, dir, o, rs)
	seg := segFiles(t, dir)[0]
	offs := frameOffsets(t, seg)
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	clear(b[offs[2]:offs[3]])
	require.NoError(t, os.WriteFile(seg, b, 0o644))
	_, err = Open(dir, o)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, offs[2], ce.Offset)
	assert.Contains(t, ce.Reason, "followed by a valid frame")
}

// TestValidFrameFarInPreallocatedSpace: the tail scan skips the holes of a
// preallocated segment, not the data in them. The log stops after its first
// record (the other two zeroed in place), and the second record's frame is
// written again deep in the never-written space of a 64 MiB segment, after
// the whole file was read (its zero pages cached): Open still finds it and
// refuses the log as corrupt.
func TestValidFrameFarInPreallocatedSpace(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(DefaultSegmentSize)
	writeLog(t, dir, o, recs(1, 1, 3))
	seg := segFiles(t, dir)[0]
	offs := frameOffsets(t, seg)
	f, err := os.OpenFile(seg, os.O_RDWR, 0) // in place: the rest stays unwritten
	require.NoError(t, err)
	frame := make([]byte, offs[2]-offs[1]) // records 2 and 3 are the same size
	_, err = f.ReadAt(frame, offs[1])
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, 2*len(frame)), offs[1])
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, f)
	require.NoError(t, err)
	const far = 48<<20 + 1000
	_, err = f.WriteAt(frame, far)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = Open(dir, o)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, offs[1], ce.Offset)
	assert.Contains(t, ce.Reason, "followed by a valid frame at offset 50332648")
}

// TestReopenReadsOnlyWrittenSpace: reopening a log of three records in a
// 64 MiB preallocated segment reads what was written, not the megabytes of
// zeros after it (it read all 64 MiB: under a loaded scheduler, seconds of a
// node's restart; coord's TestDefaultSessionRenewedAfterLoss timed out in
// it). Counted by the kernel (/proc/self/io rchar), so Linux only.
func TestReopenReadsOnlyWrittenSpace(t *testing.T) {
	if _, err := readChars(); err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	dir := t.TempDir()
	o, _ := testOpts(DefaultSegmentSize)
	writeLog(t, dir, o, recs(1, 1, 3))
	before, err := readChars()
	require.NoError(t, err)
	l := openLog(t, dir, o)
	after, err := readChars()
	require.NoError(t, err)
	assert.Len(t, readAll(t, l, 0), 3)
	t.Logf("Open read %d bytes", after-before)
	// The tail scan reads a chunk (1 MiB) past the end; the bound leaves
	// room for other tests' reads, not for the segment's 64 MiB.
	assert.Less(t, after-before, int64(8<<20), "Open read the preallocated space")
}

// readChars returns the bytes this process has read (rchar).
func readChars() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no rchar in /proc/self/io")
}

func TestTruncateAfter(t *testing.T) {
	base := t.TempDir()
	rs, files := multiSegLog(t, base, 200, 40)
	require.Greater(t, len(files), 4)
	// zxids at segment boundaries
	firstOf := func(i int) uint64 { z, _ := parseSegName(filepath.Base(files[i])); return z }
	tests := []struct {
		name string
		at   uint64
	}{
		{"before everything", 0},
		{"after the first record", rs[0].Zxid},
		{"inside the second segment", firstOf(1) + 1},
		{"last record of a segment", firstOf(2) - 1},
		{"first record of a segment", firstOf(3)},
		{"inside the last segment", rs[len(rs)-2].Zxid},
		{"at the last record", rs[len(rs)-1].Zxid},
		{"after the last record", rs[len(rs)-1].Zxid + 100},
		{"between zxids of an older epoch", 1<<32 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			o, w := testOpts(200)
			l := openLog(t, dir, o)
			var want []Record
			for _, r := range rs {
				if r.Zxid <= tt.at {
					want = append(want, r)
				}
			}
			require.NoError(t, l.TruncateAfter(tt.at))
			assert.Equal(t, want, readAll(t, l, 0))
			wantLast := uint64(0)
			if len(want) > 0 {
				wantLast = want[len(want)-1].Zxid
			}
			assert.Equal(t, wantLast, l.LastZxid())
			require.NoError(t, l.Close())

			// Reopen after truncate: the cut is durable and nothing stale returns.
			l2 := openLog(t, dir, o)
			assert.Equal(t, want, readAll(t, l2, 0))
			assert.Empty(t, w.all())
			// A new epoch continues after the cut, also across segments.
			more := recs(7, 1, 15)
			for _, r := range more {
				require.NoError(t, l2.Append(r))
			}
			require.NoError(t, l2.Sync())
			require.NoError(t, l2.Close())
			l3 := openLog(t, dir, o)
			assert.Equal(t, append(want, more...), readAll(t, l3, 0))
			assert.Empty(t, w.all())
		})
	}
}

func TestTruncateThenAppendBelowOldTail(t *testing.T) {
	o, _ := testOpts(4096)
	l := openLog(t, t.TempDir(), o)
	require.NoError(t, l.Commit(recs(1, 1, 10)...))
	require.NoError(t, l.TruncateAfter(recs(1, 5, 1)[0].Zxid))
	// The zxid after the cut may be reused (Zab only truncates uncommitted txns).
	require.NoError(t, l.Commit(recs(1, 6, 1)...))
	assert.Equal(t, recs(1, 1, 6), readAll(t, l, 0))
}

// TestCrashDuringRollAndTruncate reproduces the states a crash can leave
// between the steps of a segment roll or a multi-segment truncate.
func TestCrashDuringRollAndTruncate(t *testing.T) {
	base := t.TempDir()
	rs, files := multiSegLog(t, base, 200, 30)
	n := len(files)
	lastFirst, _ := parseSegName(filepath.Base(files[n-1]))
	var beforeLast []Record
	for _, r := range rs {
		if r.Zxid < lastFirst {
			beforeLast = append(beforeLast, r)
		}
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   []Record
		warn   []string
	}{
		{"sealed, next segment never created (or removed by truncate)", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, filepath.Base(files[n-1]))))
		}, beforeLast, []string{"wal: removing seal of a segment that has no successor"}},
		{"next segment created, first record not written", func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.Base(files[n-1]))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			clear(b[segHeaderSize:])
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, beforeLast, []string{"wal: removing empty last segment"}},
		{"next segment's first record torn", func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.Base(files[n-1]))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			clear(b[segHeaderSize+frameHeaderSize+2:])
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, beforeLast, []string{"wal: truncating torn tail of the log", "wal: removing empty last segment"}},
		{"next segment still a temporary file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.Base(files[n-1]))
			require.NoError(t, os.Rename(p, p+tmpSuffix))
		}, beforeLast, []string{"wal: removing unfinished segment", "wal: removing seal of a segment that has no successor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			tt.mutate(t, dir)
			o, w := testOpts(200)
			l := openLog(t, dir, o)
			assert.Equal(t, tt.want, readAll(t, l, 0))
			assert.Equal(t, tt.warn, w.all())
			more := recs(2, 1, 12)
			require.NoError(t, l.Commit(more...))
			require.NoError(t, l.Close())
			o2, w2 := testOpts(200)
			l2 := openLog(t, dir, o2)
			assert.Equal(t, append(append([]Record(nil), tt.want...), more...), readAll(t, l2, 0))
			assert.Empty(t, w2.all())
		})
	}
}

func TestPurgeThrough(t *testing.T) {
	dir := t.TempDir()
	rs, files := multiSegLog(t, dir, 200, 40)
	o, _ := testOpts(200)
	l := openLog(t, dir, o)
	second, _ := parseSegName(filepath.Base(files[1]))
	third, _ := parseSegName(filepath.Base(files[2]))

	n, err := l.PurgeThrough(second) // the second segment still has records above
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, second, l.FirstZxid())
	n, err = l.PurgeThrough(third - 1) // exactly the second segment's last record
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, third, l.FirstZxid())
	var want []Record
	for _, r := range rs {
		if r.Zxid >= third {
			want = append(want, r)
		}
	}
	assert.Equal(t, want, readAll(t, l, 0))
	n, err = l.PurgeThrough(rs[len(rs)-1].Zxid)
	require.NoError(t, err)
	assert.Equal(t, len(files)-3, n)
	assert.Len(t, segFiles(t, dir), 1, "the last segment always stays")
	require.NoError(t, l.Close())
	l2 := openLog(t, dir, o)
	assert.Equal(t, segFiles(t, dir), []string{files[len(files)-1]})
	assert.Equal(t, rs[len(rs)-1].Zxid, l2.LastZxid())
}

func TestGroupCommitConcurrent(t *testing.T) {
	for _, noGroup := range []bool{false, true} {
		t.Run(map[bool]string{false: "group", true: "no group"}[noGroup], func(t *testing.T) {
			o, _ := testOpts(1 << 14)
			o.NoGroupCommit = noGroup
			l := openLog(t, t.TempDir(), o)
			const writers, each = 16, 20
			var mu sync.Mutex
			next := uint64(0)
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for range each {
						mu.Lock()
						next++
						err := l.Append(Record{Zxid: next, Data: []byte("x")})
						mu.Unlock()
						if !assert.NoError(t, err) {
							return
						}
						assert.NoError(t, l.Sync())
					}
				})
			}
			wg.Wait()
			got := readAll(t, l, 0)
			require.Len(t, got, writers*each)
			for i, r := range got {
				require.Equal(t, uint64(i+1), r.Zxid)
			}
			st := l.Stats()
			t.Logf("records %d, fsyncs %d", st.Records, st.Syncs)
			if noGroup {
				assert.Equal(t, uint64(writers*each), st.Syncs, "one fsync per record")
			} else {
				assert.LessOrEqual(t, st.Syncs, uint64(writers*each))
			}
		})
	}
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	o, _ := testOpts(4096)
	l, err := Open(t.TempDir(), o)
	require.NoError(t, err)
	require.NoError(t, l.Append(recs(1, 1, 3)...)) // not synced: Close syncs it
	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Append(recs(1, 4, 1)...), ErrClosed)
	assert.ErrorIs(t, l.Sync(), ErrClosed)
	assert.ErrorIs(t, l.TruncateAfter(0), ErrClosed)
	assert.ErrorIs(t, l.Iterate(0, func(Record) error { return nil }), ErrClosed)
	_, err = l.PurgeThrough(0)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestIterateStopsOnCallbackError(t *testing.T) {
	o, _ := testOpts(4096)
	l := openLog(t, t.TempDir(), o)
	require.NoError(t, l.Commit(recs(1, 1, 10)...))
	stop := errors.New("stop")
	n := 0
	err := l.Iterate(0, func(Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 3, n)
}

// TestIterateDuringAppends checks an iteration sees a consistent prefix while
// appends and rolls continue (run with -race).
func TestIterateDuringAppends(t *testing.T) {
	o, _ := testOpts(256)
	l := openLog(t, t.TempDir(), o)
	all := recs(1, 1, 400)
	require.NoError(t, l.Commit(all[:50]...))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, r := range all[50:] {
			if !assert.NoError(t, l.Append(r)) {
				return
			}
		}
	}()
	for range 20 {
		got := readAll(t, l, 0)
		require.GreaterOrEqual(t, len(got), 50)
		require.Equal(t, all[:len(got)], got)
	}
	<-done
	assert.Equal(t, all, readAll(t, l, 0))
}

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(4096)
	l, err := Open(dir, o)
	require.NoError(t, err)
	_, err = Open(dir, o)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, l.Close())
	l2, err := Open(dir, o)
	require.NoError(t, err, "Close releases the lock")
	require.NoError(t, l2.Close())
}

func TestNoGoroutinesLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	o, _ := testOpts(256)
	l, err := Open(t.TempDir(), o)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	z := uint64(0)
	for range 8 {
		wg.Go(func() {
			for range 10 {
				mu.Lock()
				z++
				err := l.Append(Record{Zxid: z, Data: []byte("abc")})
				mu.Unlock()
				assert.NoError(t, err)
				assert.NoError(t, l.Sync())
			}
		})
	}
	wg.Wait()
	require.NoError(t, l.Close())
	// The writers' goroutines may still be exiting after wg.Wait returns.
	// (Not assert.Eventually: it polls from a goroutine of its own.)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines before %d, after Close %d:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestEmbeddedFrameInTornRecord: a record's payload that encodes a frame
// (here with every salt a client could guess cheaply) must not make a torn
// copy of that record look like mid-log corruption. The per-segment salt in
// the frame CRC is what prevents it.
func TestEmbeddedFrameInTornRecord(t *testing.T) {
	var evil []byte
	for _, salt := range []uint32{0, 1, 0xffffffff} {
		evil = appendFrame(evil, salt, 1<<60, []byte("forged"), false)
	}
	evil = append(evil, "tail of the payload"...)
	dir := t.TempDir()
	o, _ := testOpts(4096)
	rs := append(recs(1, 1, 3), Record{Zxid: 1<<32 | 4, Data: evil})
	writeLog(t, dir, o, rs)
	seg := segFiles(t, dir)[0]
	offs := frameOffsets(t, seg)
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	clear(b[offs[3]+frameHeaderSize+int64(len(evil))-5:]) // torn just before the end
	require.NoError(t, os.WriteFile(seg, b, 0o644))
	o2, w := testOpts(4096)
	l := openLog(t, dir, o2)
	assert.Equal(t, rs[:3], readAll(t, l, 0))
	assert.Equal(t, []string{"wal: truncating torn tail of the log"}, w.all())
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "node1")
	o, _ := testOpts(4096)
	l := openLog(t, dir, o)
	require.NoError(t, l.Commit(recs(1, 1, 2)...))
	s, err := OpenSnapshotStore(filepath.Join(dir, "snaps"), nil)
	require.NoError(t, err)
	_, err = s.WriteFrom(1, strings.NewReader("x"))
	require.NoError(t, err)
	assert.Equal(t, uint64(0), (&Log{}).lastZxid(), "an empty log has last zxid 0")
}

// TestReopenWithSmallerRecordLimit: a valid record above a lowered
// MaxRecordSize is an error, never mistaken for a torn tail and truncated.
func TestReopenWithSmallerRecordLimit(t *testing.T) {
	dir := t.TempDir()
	big := Options{SegmentSize: 1 << 16, MaxRecordSize: 1 << 15}
	rs := []Record{{Zxid: 1, Data: []byte("small")}, {Zxid: 2, Data: bytes.Repeat([]byte("B"), 40<<10/2)}}
	writeLog(t, dir, big, rs)
	_, err := Open(dir, Options{SegmentSize: 1 << 16, MaxRecordSize: 100})
	require.ErrorIs(t, err, ErrRecordTooLarge)
	assert.NotErrorIs(t, err, ErrCorrupt)
	l := openLog(t, dir, big)
	assert.Equal(t, rs, readAll(t, l, 0), "nothing was truncated")
}

// TestIterateFromMarks: Iterate starts reading from the mark before the
// record asked for, so a read of recent records does not scan the segment
// from its start; from every zxid it returns exactly the records from
// there, after appends, a truncation and a reopen (which rebuilds marks).
func TestIterateFromMarks(t *testing.T) {
	dir := t.TempDir()
	o, _ := testOpts(4 << 20)
	l := openLog(t, dir, o)
	big := func(epoch uint32, from, n int) []Record {
		rs := recs(epoch, from, n)
		for i := range rs {
			rs[i].Data = append(bytes.Repeat([]byte{'x'}, 30<<10), rs[i].Data...)
		}
		return rs
	}
	want := big(1, 1, 300) // about 9 MiB: three segments, marks every 8 records or so
	for i := 0; i < len(want); i += 7 {
		require.NoError(t, l.Append(want[i:min(i+7, len(want))]...))
	}
	require.NoError(t, l.Sync())
	check := func(l *Log, want []Record) {
		t.Helper()
		require.Greater(t, len(l.segs[0].marks), 4, "a segment holds marks")
		for i := 0; i < len(want); i += 13 {
			got := readAll(t, l, want[i].Zxid)
			require.Equal(t, len(want)-i, len(got), "from record %d", i)
			require.Equal(t, want[i:], got, "from record %d", i)
		}
	}
	check(l, want)
	// Marks are what the read starts from: the last mark at or before it.
	seg := l.segs[len(l.segs)-1]
	m := seg.marks[len(seg.marks)-1]
	require.Equal(t, m.off, seg.startFor(m.zxid))
	require.Equal(t, m.off, seg.startFor(want[len(want)-1].Zxid))
	require.Equal(t, int64(segHeaderSize), seg.startFor(seg.first-1))

	require.NoError(t, l.TruncateAfter(want[250].Zxid))
	want = append(want[:251], big(2, 1, 40)...)
	require.NoError(t, l.Commit(want[251:]...))
	check(l, want)
	require.NoError(t, l.Close())
	check(openLog(t, dir, o), want)
}
