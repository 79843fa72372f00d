package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/zab"
	"github.com/vmihailenco/msgpack/v5"
)

// The frame codec in this file is pure: it reads and writes bytes and never
// touches a connection, a clock or a logger, so it can be fuzzed directly.

// Version is the wire protocol version carried in every frame header. A frame
// with another version closes the connection, and the handshake fails with
// ErrBadVersion naming both versions: nodes of coord versions whose
// replicas would not apply the same log alike never connect. Version 2:
// requests carry the ReqIDs their proposer finished
// (proposal.Request.Forget), which a version 1 replica would ignore, so
// its dedup table and digest would differ.
const Version = 2

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 8

// magic opens every frame so that a connection from something that does not
// speak this protocol (an HTTP probe, a port scanner, a memberlist packet) is
// refused on its first bytes with a clear reason.
var magic = [2]byte{'Z', 'B'}

// Kind says what a frame carries.
type Kind uint8

// Frame kinds. The handshake kinds appear only before a connection is
// authenticated, KindMessages only after.
const (
	KindHello   Kind = 1 // dialer → acceptor: cluster, ids, dialer nonce
	KindWelcome Kind = 2 // acceptor → dialer: acceptor nonce and proof
	KindAuth    Kind = 3 // dialer → acceptor: dialer proof
	KindAccept  Kind = 4 // acceptor → dialer: handshake done (empty payload)
	KindRefuse  Kind = 5 // either way during the handshake: reason, then close
	KindBatch   Kind = 6 // dialer → acceptor: msgpack array of zab.Message
	// KindSealed is a KindBatch payload sealed with AES-256-GCM, dialer →
	// acceptor, the only kind after a handshake with a secret key.
	KindSealed Kind = 7
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindWelcome:
		return "welcome"
	case KindAuth:
		return "auth"
	case KindAccept:
		return "accept"
	case KindRefuse:
		return "refuse"
	case KindBatch:
		return "batch"
	case KindSealed:
		return "sealed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) known() bool { return k >= KindHello && k <= KindSealed }

// Codec errors, comparable with errors.Is. Every decode failure wraps one of
// them.
var (
	// ErrBadMagic means the first two bytes of a frame are not "ZB".
	ErrBadMagic = errors.New("zab/tcp: bad frame magic")
	// ErrBadVersion means the frame header carries an unsupported version.
	ErrBadVersion = errors.New("zab/tcp: unsupported protocol version")
	// ErrBadKind means the frame kind is unknown.
	ErrBadKind = errors.New("zab/tcp: unknown frame kind")
	// ErrFrameTooLarge means a frame payload exceeds the configured limit.
	ErrFrameTooLarge = errors.New("zab/tcp: frame too large")
	// ErrMalformed means a payload is not the msgpack it should be.
	ErrMalformed = errors.New("zab/tcp: malformed payload")
	// ErrMessageTooLarge is returned by the encoder for a single message that
	// cannot fit in a frame of the configured size.
	ErrMessageTooLarge = errors.New("zab/tcp: message larger than max frame size")
)

// Header is the fixed 8-byte frame header:
//
//	offset 0..1  magic "ZB"
//	offset 2     protocol version (Version)
//	offset 3     frame kind (Kind)
//	offset 4..7  payload length, big-endian uint32
type Header struct {
	Version uint8  // protocol version
	Kind    Kind   // what the payload is
	Length  uint32 // payload length in bytes
}

// PutHeader writes h into b, which must be at least HeaderSize long.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	b[0], b[1] = magic[0], magic[1]
	b[2] = h.Version
	b[3] = byte(h.Kind)
	binary.BigEndian.PutUint32(b[4:8], h.Length)
}

// ParseHeader decodes and checks a frame header: magic, version, kind, and a
// payload length of at most maxPayload. It is called before any payload
// buffer is allocated, so a peer cannot make us allocate more than
// maxPayload bytes.
func ParseHeader(b []byte, maxPayload int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short header (%d bytes)", ErrMalformed, len(b))
	}
	if b[0] != magic[0] || b[1] != magic[1] {
		return Header{}, fmt.Errorf("%w: % x", ErrBadMagic, b[0:2])
	}
	h := Header{Version: b[2], Kind: Kind(b[3]), Length: binary.BigEndian.Uint32(b[4:8])}
	if h.Version != Version {
		return h, fmt.Errorf("%w: %d (want %d): the peer runs another coord version (a whole-cluster restart upgrades)",
			ErrBadVersion, h.Version, Version)
	}
	if !h.Kind.known() {
		return h, fmt.Errorf("%w: %d", ErrBadKind, uint8(h.Kind))
	}
	if uint64(h.Length) > uint64(maxPayload) {
		return h, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, h.Length, maxPayload)
	}
	return h, nil
}

// ReadFrame reads one frame from r. The header is checked with ParseHeader
// before the payload is read; the payload is read into buf when it fits (buf
// is reused across calls by the connection reader) and is only valid until
// the next call. Errors from r are returned as they are (io.EOF on a clean
// close before a header, io.ErrUnexpectedEOF on a truncated frame).
func ReadFrame(r io.Reader, maxPayload int, buf []byte) (Header, []byte, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, buf, err
	}
	h, err := ParseHeader(hb[:], maxPayload)
	if err != nil {
		return h, buf, err
	}
	n := int(h.Length)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, buf, err
	}
	return h, buf, nil
}

// AppendFrame appends a frame of the given kind carrying the msgpack encoding
// of v (nil v means an empty payload). It is used for the small handshake
// frames; batches of messages go through BatchEncoder.
func AppendFrame(dst []byte, kind Kind, v any) ([]byte, error) {
	var payload []byte
	if v != nil {
		var err error
		if payload, err = msgpack.Marshal(v); err != nil {
			return dst, fmt.Errorf("zab/tcp: encode %s: %w", kind, err)
		}
	}
	var hb [HeaderSize]byte
	PutHeader(hb[:], Header{Version: Version, Kind: kind, Length: uint32(len(payload))})
	dst = append(dst, hb[:]...)
	return append(dst, payload...), nil
}

// BatchEncoder packs Messages into KindBatch frames of at most maxPayload
// payload bytes, each message as the msgpack map of its struct tags
// (encodeMessage: a field added to zab.Message needs its line there and in
// decodeMessage; TestMessageCodecMatchesReflection fails until it has them).
// Not safe for concurrent use: each
// peer's writer goroutine owns one.
type BatchEncoder struct {
	buf        bytes.Buffer
	enc        *msgpack.Encoder
	maxPayload int

	// While EncodeBuffers encodes, byte fields of at least extMin bytes
	// stay where they are: buf holds their msgpack headers, ext where
	// each one's bytes go, extLen their sum.
	extOn  bool
	ext    []extBytes
	extLen int
	vec    net.Buffers
}

// extBytes is a byte field left out of the encoder's buffer: b goes after
// buf[:at].
type extBytes struct {
	at int
	b  []byte
}

// extMin is the smallest byte field EncodeBuffers leaves out of the frame
// buffer. Below it the copy costs less than a vector element; snapshot
// chunks (zab.Config.MaxMsgBytes, 1 MiB by default) and large entries are
// far above.
const extMin = 32 << 10

// NewBatchEncoder returns an encoder for frames of at most maxPayload payload
// bytes.
func NewBatchEncoder(maxPayload int) *BatchEncoder {
	e := &BatchEncoder{maxPayload: maxPayload}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}

// array32Size is the size of a msgpack array32 header. The encoder always uses
// the 5-byte form so it can patch the count after packing.
const array32Size = 5

// Encode packs a prefix of msgs, as long as fits, into one frame and returns
// the frame bytes (valid until the next call) and how many messages it holds.
// It returns ErrMessageTooLarge, with n == 0, when msgs[0] alone does not fit;
// the caller drops that message and carries on with the rest.
func (e *BatchEncoder) Encode(msgs []zab.Message) (frame []byte, n int, err error) {
	if n, err = e.encode(msgs, false); err != nil || n == 0 {
		return nil, n, err
	}
	return e.buf.Bytes(), n, nil
}

// EncodeBuffers is Encode for a writer that takes a vector (net.Buffers,
// one writev): the same frame, byte for byte, in pieces, with the byte
// fields of at least extMin bytes (snapshot chunks, large entries) not
// copied but referenced where they are. The pieces are valid until the
// next call and alias msgs' byte slices, which must not change until the
// frame is written. size is the frame's length in bytes.
func (e *BatchEncoder) EncodeBuffers(msgs []zab.Message) (frame net.Buffers, size, n int, err error) {
	if n, err = e.encode(msgs, true); err != nil || n == 0 {
		return nil, 0, n, err
	}
	b := e.buf.Bytes()
	e.vec = e.vec[:0]
	prev := 0
	for _, x := range e.ext {
		if x.at > prev {
			e.vec = append(e.vec, b[prev:x.at])
		}
		e.vec = append(e.vec, x.b)
		prev = x.at
	}
	if prev < len(b) {
		e.vec = append(e.vec, b[prev:])
	}
	return e.vec, len(b) + e.extLen, n, nil
}

// forget drops what EncodeBuffers' last frame referenced (a snapshot
// image, say), once it is written: an idle encoder keeps nothing alive.
func (e *BatchEncoder) forget() {
	clear(e.ext[:cap(e.ext)])
	clear(e.vec[:cap(e.vec)])
	e.ext, e.vec = e.ext[:0], e.vec[:0]
}

// encode packs a prefix of msgs into e.buf (leaving out large byte fields
// when ext is set) and writes the frame header.
func (e *BatchEncoder) encode(msgs []zab.Message, ext bool) (n int, err error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	e.buf.Reset()
	e.extOn, e.ext, e.extLen = ext, e.ext[:0], 0
	var pre [HeaderSize + array32Size]byte
	e.buf.Write(pre[:])
	for n < len(msgs) && n < MaxMessagesPerFrame {
		mark, markExt, markLen := e.buf.Len(), len(e.ext), e.extLen
		if err := encodeMessage(e.enc, &msgs[n], e); err != nil {
			e.forget()
			return 0, fmt.Errorf("zab/tcp: encode message: %w", err)
		}
		if e.buf.Len()+e.extLen-HeaderSize > e.maxPayload {
			e.buf.Truncate(mark)
			clear(e.ext[markExt:])
			e.ext, e.extLen = e.ext[:markExt], markLen
			break
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%w (limit %d bytes)", ErrMessageTooLarge, e.maxPayload)
	}
	b := e.buf.Bytes()
	PutHeader(b, Header{Version: Version, Kind: KindBatch, Length: uint32(len(b) + e.extLen - HeaderSize)})
	b[HeaderSize] = 0xdd // msgpack array32
	binary.BigEndian.PutUint32(b[HeaderSize+1:], uint32(n))
	return n, nil
}

// bytesField writes k and v through w, leaving v's bytes out of the
// buffer (EncodeBuffers) when e is set and v large enough.
func (e *BatchEncoder) bytesField(w *msgpackcheck.Writer, k string, v []byte) {
	if e == nil || !e.extOn || len(v) < extMin {
		w.Bytes(k, v)
		return
	}
	if w.Key(k) {
		// EncodeBytes(v) is this header, then v.
		if w.Err = w.Enc.EncodeBytesLen(len(v)); w.Err == nil {
			e.ext = append(e.ext, extBytes{at: e.buf.Len(), b: v})
			e.extLen += len(v)
		}
	}
}

// MaxMessagesPerFrame bounds the number of messages in one KindBatch frame,
// on both the encoding and the decoding side.
const MaxMessagesPerFrame = 1 << 16

// maxDepth bounds msgpack nesting. zab.Message nests three levels deep; the
// slack leaves room for new fields while keeping a hostile payload from
// driving the decoder's recursion.
const maxDepth = 16

// DecodeBatch decodes the payload of a KindBatch frame into fresh Messages
// (nothing in them aliases payload). It first walks the payload's msgpack
// structure, checking every length prefix against the bytes that remain and
// bounding nesting, so a hostile length prefix can never make the msgpack
// library allocate beyond what the payload could hold. Trailing bytes are an
// error.
func DecodeBatch(payload []byte) ([]zab.Message, error) {
	if err := checkMsgpack(payload); err != nil {
		return nil, err
	}
	dec := msgpack.NewDecoder(bytes.NewReader(payload))
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, fmt.Errorf("%w: batch: %v", ErrMalformed, err)
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	if n > MaxMessagesPerFrame {
		return nil, fmt.Errorf("%w: %d messages in one frame (limit %d)", ErrMalformed, n, MaxMessagesPerFrame)
	}
	msgs := make([]zab.Message, n)
	for i := range msgs {
		if err := decodeMessage(dec, &msgs[i]); err != nil {
			return nil, fmt.Errorf("%w: message %d: %v", ErrMalformed, i, err)
		}
	}
	return msgs, nil
}

// DecodePayload decodes a handshake payload into v, rejecting trailing bytes.
func DecodePayload(payload []byte, v any) error {
	if err := checkMsgpack(payload); err != nil {
		return err
	}
	if err := msgpack.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// checkMsgpack verifies that b is exactly one well-formed msgpack value
// whose length prefixes fit the bytes that remain and whose nesting is at
// most maxDepth; see package msgpackcheck for why.
func checkMsgpack(b []byte) error {
	if err := msgpackcheck.Check(b, maxDepth); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
