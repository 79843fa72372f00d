package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// Segment header layout (little endian), segHeaderSize bytes at offset 0:
//
//	[0:4)   magic    "CWAL"
//	[4:8)   version  uint32 (segVersion)
//	[8:16)  first    uint64 zxid of the segment's first record, equal to the name's
//	[16:20) salt     uint32 random, seeds the CRC of every frame in the segment
//	[20:24) crc      uint32 CRC32C over [0:20)
//
// Frames (see record.go) follow from offset segHeaderSize.
const (
	segHeaderSize = 24
	segMagic      = "CWAL"
	segVersion    = 1
	segPrefix     = "log-"
	segSuffix     = ".wal"
	tmpSuffix     = ".tmp"
)

// segName is the file name of the segment whose first record has zxid first.
// Fixed-width hex sorts lexically in zxid order.
func segName(first uint64) string { return fmt.Sprintf("%s%016x%s", segPrefix, first, segSuffix) }

// parseSegName returns the first zxid encoded in a segment file name.
func parseSegName(name string) (uint64, bool) {
	return parseZxidName(name, segPrefix, segSuffix)
}

func parseZxidName(name, prefix, suffix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	hex := name[len(prefix) : len(name)-len(suffix)]
	if len(hex) != 16 {
		return 0, false
	}
	z, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return 0, false
	}
	return z, true
}

func encodeSegHeader(first uint64, salt uint32) []byte {
	b := make([]byte, 0, segHeaderSize)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, segVersion)
	b = binary.LittleEndian.AppendUint64(b, first)
	b = binary.LittleEndian.AppendUint32(b, salt)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// checkSegHeader validates a segment header against the first zxid of its
// name and returns the segment's salt.
func checkSegHeader(b []byte, first uint64) (uint32, error) {
	switch {
	case len(b) < segHeaderSize:
		return 0, errors.New("segment shorter than its header")
	case string(b[0:4]) != segMagic:
		return 0, errors.New("bad segment magic")
	case crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:24]):
		return 0, errors.New("segment header checksum mismatch")
	case binary.LittleEndian.Uint32(b[4:8]) != segVersion:
		return 0, versionf("", 4, "log segment", binary.LittleEndian.Uint32(b[4:8]), segVersion)
	case binary.LittleEndian.Uint64(b[8:16]) != first:
		return 0, fmt.Errorf("segment header zxid %#x does not match its name", binary.LittleEndian.Uint64(b[8:16]))
	}
	return binary.LittleEndian.Uint32(b[16:20]), nil
}

// scanner reads frames of one segment sequentially between off and limit.
type scanner struct {
	br      *bufio.Reader
	off     int64 // offset of the next frame; after a stop, of the frame that stopped the scan
	limit   int64
	maxData uint32
	salt    uint32
	hdr     [frameHeaderSize]byte
	buf     []byte

	// The frame decoded by the last successful next.
	kind frameKind
	zxid uint64
	data []byte // valid until the next call

	err   error // why the scan stopped at off; nil for a clean end of data
	ioErr error // a read error, not a verdict on the bytes
}

func newScanner(r io.ReaderAt, off, limit int64, maxData, salt uint32) *scanner {
	return &scanner{
		br:      bufio.NewReaderSize(io.NewSectionReader(r, off, limit-off), 256<<10),
		off:     off,
		limit:   limit,
		maxData: maxData,
		salt:    salt,
	}
}

// next decodes the frame at s.off. It returns false at a clean end of data
// (zero header, or only zeros left before limit), on an invalid frame (s.err)
// and on a read error (s.ioErr); s.off then still points at that frame.
func (s *scanner) next() bool {
	avail := s.limit - s.off
	if avail < frameHeaderSize {
		rest := s.hdr[:avail]
		if _, err := io.ReadFull(s.br, rest); err != nil {
			s.ioErr = err
			return false
		}
		for _, c := range rest {
			if c != 0 {
				s.err = errShortFrame
				return false
			}
		}
		return false
	}
	if _, err := io.ReadFull(s.br, s.hdr[:]); err != nil {
		s.ioErr = err
		return false
	}
	h := parseHeader(s.hdr[:])
	if h.isZero() {
		return false
	}
	if err := h.check(s.maxData, avail-frameHeaderSize); err != nil {
		s.err = err
		if err == errBadLength && int64(h.dataLen()) <= avail-frameHeaderSize {
			s.err = s.checkLarge(h)
		}
		return false
	}
	n := h.dataLen()
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.br, s.buf); err != nil {
		s.ioErr = err
		return false
	}
	if err := h.verify(s.hdr[:], s.buf, s.salt); err != nil {
		s.err = err
		return false
	}
	s.kind, s.zxid, s.data = h.kind(), h.zxid, s.buf
	s.off += int64(frameHeaderSize + n)
	return true
}

// checkLarge tells a record written under a larger size limit (valid CRC:
// errAboveLimit) from a damaged length (errBadLength), streaming the data
// through the CRC instead of allocating it.
func (s *scanner) checkLarge(h frameHeader) error {
	var chunk [32 << 10]byte
	c := crc32.Update(s.salt, castagnoli, s.hdr[:12])
	for left := h.dataLen(); left > 0; {
		n, err := s.br.Read(chunk[:min(left, len(chunk))])
		c = crc32.Update(c, castagnoli, chunk[:n])
		left -= n
		if err != nil && left > 0 {
			s.ioErr = err
			return errBadLength
		}
	}
	if c == h.crc {
		return errAboveLimit
	}
	return errBadLength
}

// scanTail looks at every byte offset in [from, size) of r for a valid frame
// (record or seal) whose zxid is above after. Recovery uses it to decide
// whether the place where the last segment stops is its tail: it is only if
// nothing valid follows. It also reports whether any non-zero byte was seen,
// so that leftover garbage can be zeroed.
//
// extent(off) (nil: all data) returns the first extent of r at or after
// off that is not a known hole, [start, end); start is size if none. Holes
// read as zeros, so they are taken as zeros without being read: reopening a
// log reads what was written, not its last segment's preallocated size.
func scanTail(r io.ReaderAt, extent func(off int64) (start, end int64), from, size int64, after uint64, maxData, salt uint32) (validAt int64, found, nonZero bool, err error) {
	const chunk = 1 << 20
	if extent == nil {
		extent = func(off int64) (int64, int64) { return off, size }
	}
	buf := make([]byte, chunk+frameHeaderSize)
	var data []byte
	for base := from; base < size; base += chunk {
		ds, de := extent(base)
		if ds >= size {
			break
		}
		// A header that starts before ds-frameHeaderSize is zeros.
		base = max(base, ds-frameHeaderSize)
		b := buf[:min(int64(len(buf)), size-base)]
		clear(b)
		for lim := base + int64(len(b)); ds < lim; ds, de = extent(de) {
			if _, err := r.ReadAt(b[ds-base:min(de, lim)-base], ds); err != nil && err != io.EOF {
				return 0, false, nonZero, err
			}
			if de >= lim {
				break
			}
		}
		if !nonZero && nextNonZero(b[:min(chunk, len(b))], 0) < min(chunk, len(b)) {
			nonZero = true
		}
		end := min(chunk, len(b)-frameHeaderSize+1) // headers that start in this chunk
		for q := 0; q < end; q++ {
			// A valid header has a non-zero zxid in [q+4, q+12): jump to the
			// first position whose zxid covers the next non-zero byte.
			nz := nextNonZero(b, q+4)
			if nz >= len(b) {
				break
			}
			if nz-11 > q {
				q = nz - 11
				if q >= end {
					break
				}
			}
			h := parseHeader(b[q : q+frameHeaderSize])
			if h.zxid <= after || h.check(maxData, size-(base+int64(q))-frameHeaderSize) != nil {
				continue
			}
			n := h.dataLen()
			d := b[min(q+frameHeaderSize, len(b)):min(q+frameHeaderSize+n, len(b))]
			if len(d) < n {
				if cap(data) < n {
					data = make([]byte, n)
				}
				d = data[:n]
				if _, err := r.ReadAt(d, base+int64(q)+frameHeaderSize); err != nil && err != io.EOF {
					return 0, false, nonZero, err
				}
			}
			if h.verify(b[q:q+frameHeaderSize], d, salt) == nil {
				return base + int64(q), true, true, nil
			}
		}
	}
	return 0, false, nonZero, nil
}

var zeroPage [4096]byte

// nextNonZero returns the index of the first non-zero byte of b at or after
// i, or len(b).
func nextNonZero(b []byte, i int) int {
	// Whole zero pages first: bytes.Equal is one vectorised call (and one
	// race-detector check), so a preallocated 64 MiB segment scans fast.
	for i+len(zeroPage) <= len(b) && bytes.Equal(b[i:i+len(zeroPage)], zeroPage[:]) {
		i += len(zeroPage)
	}
	for ; i < len(b) && i%8 != 0; i++ {
		if b[i] != 0 {
			return i
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return len(b)
}
