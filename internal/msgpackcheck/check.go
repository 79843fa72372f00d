// Package msgpackcheck validates msgpack bytes before they are decoded.
//
// vmihailenco/msgpack v5.4.1 preallocates a slice from an array's declared
// length without a cap (decode_slice.go: its alloc-limit test is always
// true), so five hostile bytes can make the decoder ask for gigabytes. Every
// decoder of msgpack from a peer or a disk runs Check first: it walks the
// value once, checking each length prefix against the bytes that remain, so
// the decode that follows allocates at most in proportion to the input.
//
// It also holds the small helpers (Writer, Fields, Slice, Count) of the
// hand-written codecs of the types encoded on every write, which replace
// the library's reflection there (issue 13).
package msgpackcheck

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error Check returns.
var ErrMalformed = errors.New("msgpack: malformed")

// Check verifies that b is exactly one well-formed msgpack value whose
// every length prefix fits in the bytes that remain and whose nesting is at
// most maxDepth. msgpack v5.4.1 preallocates slices from the declared array
// length without a cap (decode_slice.go: its alloc-limit test is always
// true), so without this check five bytes could ask for gigabytes.
func Check(b []byte, maxDepth int) error {
	rest, err := skipValue(b, 0, maxDepth)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return nil
}

var errTruncated = fmt.Errorf("%w: truncated msgpack", ErrMalformed)

// skipValue returns b after its first msgpack value.
func skipValue(b []byte, depth, maxDepth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, maxDepth)
	}
	if len(b) == 0 {
		return nil, errTruncated
	}
	c, b := b[0], b[1:]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		return b, nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		return skipN(b, 2*int(c&0x0f), depth, maxDepth)
	case c >= 0x90 && c <= 0x9f: // fixarray
		return skipN(b, int(c&0x0f), depth, maxDepth)
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return skipBytes(b, int(c&0x1f))
	}
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return skipBytes(b, 1)
	case 0xcd, 0xd1: // uint16, int16
		return skipBytes(b, 2)
	case 0xce, 0xd2, 0xca: // uint32, int32, float32
		return skipBytes(b, 4)
	case 0xcf, 0xd3, 0xcb: // uint64, int64, float64
		return skipBytes(b, 8)
	case 0xc4, 0xd9: // bin8, str8
		n, b, err := readLen(b, 1)
		if err != nil {
			return nil, err
		}
		return skipBytes(b, n)
	case 0xc5, 0xda: // bin16, str16
		n, b, err := readLen(b, 2)
		if err != nil {
			return nil, err
		}
		return skipBytes(b, n)
	case 0xc6, 0xdb: // bin32, str32
		n, b, err := readLen(b, 4)
		if err != nil {
			return nil, err
		}
		return skipBytes(b, n)
	case 0xdc: // array16
		n, b, err := readLen(b, 2)
		if err != nil {
			return nil, err
		}
		return skipN(b, n, depth, maxDepth)
	case 0xdd: // array32
		n, b, err := readLen(b, 4)
		if err != nil {
			return nil, err
		}
		return skipN(b, n, depth, maxDepth)
	case 0xde: // map16
		n, b, err := readLen(b, 2)
		if err != nil {
			return nil, err
		}
		return skipN(b, 2*n, depth, maxDepth)
	case 0xdf: // map32
		n, b, err := readLen(b, 4)
		if err != nil {
			return nil, err
		}
		return skipN(b, 2*n, depth, maxDepth)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return skipBytes(b, 1+(1<<(c-0xd4)))
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type byte, data
		n, b, err := readLen(b, 1<<(c-0xc7))
		if err != nil {
			return nil, err
		}
		return skipBytes(b, 1+n)
	}
	return nil, fmt.Errorf("%w: invalid msgpack code 0x%02x", ErrMalformed, c)
}

// skipN skips n nested values. Every value takes at least one byte, so a
// count larger than what remains is rejected before walking.
func skipN(b []byte, n, depth, maxDepth int) ([]byte, error) {
	if n > len(b) {
		return nil, errTruncated
	}
	var err error
	for range n {
		if b, err = skipValue(b, depth+1, maxDepth); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func skipBytes(b []byte, n int) ([]byte, error) {
	if n > len(b) {
		return nil, errTruncated
	}
	return b[n:], nil
}

// readLen reads a big-endian length of size 1, 2 or 4 bytes.
func readLen(b []byte, size int) (int, []byte, error) {
	if len(b) < size {
		return 0, nil, errTruncated
	}
	var n uint64
	for _, x := range b[:size] {
		n = n<<8 | uint64(x)
	}
	return int(n), b[size:], nil
}
