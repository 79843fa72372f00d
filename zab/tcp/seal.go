package tcp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/coord-dev/coord/zab"
)

// ErrOpen means a sealed frame did not open: it was tampered with, replayed,
// reordered, cut, or sealed with another key. The connection is closed and
// the frame counted in Stats.AuthFailures and Stats.BadFrames.
var ErrOpen = errors.New("zab/tcp: sealed frame failed authentication")

// Key derivation labels (HKDF-SHA256 info strings). Each use of the secret
// key has its own label, so that no key serves two purposes: the handshake
// proofs use one key, each connection's frames another (fresh per
// connection, see frameKey), and coord's gossip layer derives its own with
// a label of its own (internal/gossip).
const (
	labelHandshake = "coord zab/tcp v2 handshake"
	labelFrames    = "coord zab/tcp v2 frames"
)

// keySize is the size of every derived key: AES-256.
const keySize = 32

// SealOverhead is what sealing adds to a frame's payload: the AES-GCM tag.
// With a secret key the sender packs at most Config.MaxFrameSize -
// SealOverhead payload bytes per frame, so a sealed frame's payload stays
// within MaxFrameSize.
const SealOverhead = 16

// handshakeKey derives the key of the handshake proofs from the secret key.
func handshakeKey(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, labelHandshake, keySize)
	if err != nil {
		// Only a keySize beyond 255 hash lengths fails.
		panic(err)
	}
	return k
}

// Directions of a connection, bound into its frame keys: each direction of
// each connection has its own key. Connections carry frames from the dialer
// to the acceptor only (see the package documentation), so only dirDialer's
// key is in use.
const (
	dirDialer   = 'd' // frames written by the dialer
	dirAcceptor = 'a' // frames written by the acceptor
)

// frameKey derives the AES-256-GCM key of one direction of one connection:
// HKDF-SHA256 with the secret key, salt nD || nA (both sides' fresh
// handshake nonces, so every connection gets new keys however many times a
// pair reconnects) and info labelFrames || direction || len(cluster) ||
// cluster || dialer id || acceptor id.
func frameKey(secret []byte, dir byte, cluster string, dialer, acceptor zab.PeerID, nd, na []byte) []byte {
	salt := make([]byte, 0, len(nd)+len(na))
	salt = append(append(salt, nd...), na...)
	info := make([]byte, 0, len(labelFrames)+1+4+len(cluster)+16)
	info = append(info, labelFrames...)
	info = append(info, dir)
	info = binary.BigEndian.AppendUint32(info, uint32(len(cluster)))
	info = append(info, cluster...)
	info = binary.BigEndian.AppendUint64(info, uint64(dialer))
	info = binary.BigEndian.AppendUint64(info, uint64(acceptor))
	k, err := hkdf.Key(sha256.New, secret, salt, string(info), keySize)
	if err != nil {
		panic(err)
	}
	return k
}

// frameAEAD is one direction's cipher state: AES-256-GCM with a 96-bit
// nonce holding the count of frames sealed (or opened) so far. The nonce is
// never sent: the receiver counts too, so a replayed, dropped or reordered
// frame is opened with the wrong nonce and fails.
type frameAEAD struct {
	aead cipher.AEAD
	ctr  uint64
	buf  []byte // the sealer's output buffer, reused
	// n and hb hold the nonce and the additional data (the header) of
	// the frame at hand; kept here, they do not escape per frame.
	n  [12]byte
	hb [HeaderSize]byte
}

func newFrameAEAD(key []byte) (*frameAEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &frameAEAD{aead: a}, nil
}

// nonce returns the next nonce and advances the counter. The counter cannot
// wrap in practice (2^64 frames); should it, the connection fails rather
// than reuse a nonce.
func (f *frameAEAD) nonce() ([]byte, error) {
	if f.ctr == ^uint64(0) {
		return nil, fmt.Errorf("%w: frame counter exhausted", ErrOpen)
	}
	binary.BigEndian.PutUint64(f.n[4:], f.ctr)
	f.ctr++
	return f.n[:], nil
}

// seal turns frame, a whole KindBatch frame (header and payload), into a
// KindSealed frame whose payload is the AES-GCM sealing of the batch
// payload, with the new header as additional data. The result is valid
// until the next call.
func (f *frameAEAD) seal(frame []byte) ([]byte, error) {
	n, err := f.nonce()
	if err != nil {
		return nil, err
	}
	pt := frame[HeaderSize:]
	PutHeader(f.hb[:], Header{Version: Version, Kind: KindSealed, Length: uint32(len(pt) + SealOverhead)})
	f.buf = append(f.buf[:0], f.hb[:]...)
	f.buf = f.aead.Seal(f.buf, n, pt, f.hb[:])
	return f.buf, nil
}

// open checks and decrypts the payload of a KindSealed frame with header h,
// in place; it returns the batch payload. Any failure wraps ErrOpen.
func (f *frameAEAD) open(h Header, payload []byte) ([]byte, error) {
	if h.Kind != KindSealed {
		return nil, fmt.Errorf("%w: unexpected %s frame on an encrypted connection", ErrOpen, h.Kind)
	}
	if len(payload) < SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the tag", ErrOpen, len(payload))
	}
	n, err := f.nonce()
	if err != nil {
		return nil, err
	}
	PutHeader(f.hb[:], h)
	pt, err := f.aead.Open(payload[:0], n, payload, f.hb[:])
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d: %v", ErrOpen, f.ctr-1, err)
	}
	return pt, nil
}
