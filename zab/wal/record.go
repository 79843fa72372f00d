package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
)

// Record is one transaction in the log: its zxid (epoch<<32 | counter) and the
// opaque bytes the caller encoded.
type Record struct {
	Zxid uint64 // non-zero, strictly increasing along the log
	Data []byte // opaque; at most Options.MaxRecordSize bytes
	// Meta marks a record the log's user keeps for itself rather than for
	// its state machine (zab's configuration entries). It is stored in the
	// frame's length field, so it costs nothing.
	Meta bool
}

// Frame layout (little endian), frameHeaderSize bytes followed by the data:
//
//	[0:4)   length  uint32  data length, with metaFlag set for a Meta record;
//	                        sealLength marks a seal frame (no data)
//	[4:12)  zxid    uint64  record zxid; for a seal, the first zxid of the next segment
//	[12:16) crc     uint32  CRC32C (Castagnoli) over bytes [0:12) and the data,
//	                        seeded with the segment's random salt
//
// The salt (segment header) makes frames unforgeable by record payloads: a
// client could otherwise store bytes that encode a valid frame, and recovery,
// which looks for valid frames after a damaged one, would be misled. It also
// keeps frames of another segment file from validating here.
//
// A header of 16 zero bytes is "end of data": preallocated space reads as
// zeros and can never form a valid frame (zxid 0 is invalid and the CRC of
// zeros is not zero).
const (
	frameHeaderSize = 16
	sealLength      = math.MaxUint32
	metaFlag        = 1 << 31 // record lengths stay below it (MaxRecordSize)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type frameKind int

const (
	frameEnd    frameKind = iota // zero header: no more data
	frameRecord                  // a transaction record
	frameSeal                    // end-of-segment marker naming the next segment
	frameMeta                    // a Meta record
)

// isRecord reports whether k carries a Record (plain or Meta).
func (k frameKind) isRecord() bool { return k == frameRecord || k == frameMeta }

var (
	errShortFrame = errors.New("frame extends past the end of the data")
	errBadLength  = errors.New("frame length above the record size limit")
	errBadCRC     = errors.New("frame checksum mismatch")
	errZeroZxid   = errors.New("frame zxid is zero")
	// errAboveLimit: a frame with a valid CRC whose length exceeds the
	// configured limit, i.e. written with a larger Options.MaxRecordSize.
	errAboveLimit = errors.New("valid record above the record size limit")
)

type frameHeader struct {
	length uint32
	zxid   uint64
	crc    uint32
}

func parseHeader(h []byte) frameHeader {
	return frameHeader{
		length: binary.LittleEndian.Uint32(h[0:4]),
		zxid:   binary.LittleEndian.Uint64(h[4:12]),
		crc:    binary.LittleEndian.Uint32(h[12:16]),
	}
}

func (h frameHeader) isZero() bool { return h.length == 0 && h.zxid == 0 && h.crc == 0 }

// check validates everything that does not need the data. avail is how many
// bytes exist after the header; it bounds the length before anything is
// allocated or read.
func (h frameHeader) check(maxData uint32, avail int64) error {
	if h.zxid == 0 {
		return errZeroZxid
	}
	if h.length == sealLength {
		return nil
	}
	if uint32(h.dataLen()) > maxData {
		return errBadLength
	}
	if int64(h.dataLen()) > avail {
		return errShortFrame
	}
	return nil
}

func (h frameHeader) dataLen() int {
	if h.length == sealLength {
		return 0
	}
	return int(h.length &^ metaFlag)
}

func (h frameHeader) kind() frameKind {
	if h.length == sealLength {
		return frameSeal
	}
	if h.length&metaFlag != 0 {
		return frameMeta
	}
	return frameRecord
}

// verify checks the CRC of header bytes hb (16 bytes) and data.
func (h frameHeader) verify(hb, data []byte, salt uint32) error {
	c := crc32.Update(salt, castagnoli, hb[:12])
	c = crc32.Update(c, castagnoli, data)
	if c != h.crc {
		return errBadCRC
	}
	return nil
}

// decodeFrame decodes the frame at the start of b. data aliases b. n is the
// frame's total size. It never panics and never allocates.
func decodeFrame(b []byte, maxData, salt uint32) (kind frameKind, zxid uint64, data []byte, n int, err error) {
	if len(b) < frameHeaderSize {
		return 0, 0, nil, 0, errShortFrame
	}
	h := parseHeader(b)
	if h.isZero() {
		return frameEnd, 0, nil, 0, nil
	}
	if err := h.check(maxData, int64(len(b)-frameHeaderSize)); err != nil {
		return 0, 0, nil, 0, err
	}
	n = frameHeaderSize + h.dataLen()
	data = b[frameHeaderSize:n]
	if err := h.verify(b, data, salt); err != nil {
		return 0, 0, nil, 0, err
	}
	return h.kind(), h.zxid, data, n, nil
}

// appendFrame appends the encoding of a record frame to b.
func appendFrame(b []byte, salt uint32, zxid uint64, data []byte, meta bool) []byte {
	n := uint32(len(data))
	if meta {
		n |= metaFlag
	}
	return appendFrameLen(b, salt, n, zxid, data)
}

// appendSeal appends a seal frame whose zxid names the next segment.
func appendSeal(b []byte, salt uint32, next uint64) []byte {
	return appendFrameLen(b, salt, sealLength, next, nil)
}

func appendFrameLen(b []byte, salt, length uint32, zxid uint64, data []byte) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, length)
	b = binary.LittleEndian.AppendUint64(b, zxid)
	c := crc32.Update(salt, castagnoli, b[start:start+12])
	c = crc32.Update(c, castagnoli, data)
	b = binary.LittleEndian.AppendUint32(b, c)
	return append(b, data...)
}
