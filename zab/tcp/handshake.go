package tcp

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/coord-dev/coord/zab"
)

// Handshake errors, comparable with errors.Is.
var (
	// ErrHandshake wraps every handshake failure that is not one of the more
	// specific errors below (bad frame, cluster or id mismatch, ...).
	ErrHandshake = errors.New("zab/tcp: handshake failed")
	// ErrAuth means the other end did not prove knowledge of the secret key,
	// or the two ends disagree on whether a key is in use.
	ErrAuth = errors.New("zab/tcp: authentication failed")
	// ErrRefused means the other end refused the handshake; the error text
	// carries the reason it gave.
	ErrRefused = errors.New("zab/tcp: refused by peer")
	// ErrDuplicateID means another live process holds a connection under
	// the dialer's id: two nodes are configured with one id.
	ErrDuplicateID = errors.New("zab/tcp: another live node uses this id")
)

// nonceSize is the size of each side's fresh handshake nonce.
const nonceSize = 32

// maxHandshakePayload bounds handshake frames. It is far below MaxFrameSize:
// an unauthenticated connection cannot make us allocate more than this.
const maxHandshakePayload = 1024

// maxClusterLen bounds Config.Cluster so a hello always fits in a frame.
const maxClusterLen = 255

// hello is the dialer's first frame.
type hello struct {
	Cluster string `msgpack:"c"`
	From    uint64 `msgpack:"f"` // the dialer's id
	To      uint64 `msgpack:"o"` // the id the dialer expects to reach
	Nonce   []byte `msgpack:"n"`
	Auth    bool   `msgpack:"a"` // the dialer has a secret key
	// Instance is random per dialing Transport: two live processes that
	// claim one id differ in it.
	Instance uint64 `msgpack:"i,omitempty"`
}

// PeekHello returns the dialer's id from the hello frame at the head of r
// without consuming it (r.Peek), so a proxy in front of a transport (the
// fault-injecting proxy of the multi-node tests) can tell who dialed and
// still forward every byte. The id is as claimed: only the handshake
// authenticates it.
func PeekHello(r *bufio.Reader) (zab.PeerID, error) {
	hb, err := r.Peek(HeaderSize)
	if err != nil {
		return 0, err
	}
	h, err := ParseHeader(hb, maxHandshakePayload)
	if err != nil {
		return 0, err
	}
	if h.Kind != KindHello {
		return 0, fmt.Errorf("%w: first frame is %v, not a hello", ErrHandshake, h.Kind)
	}
	b, err := r.Peek(HeaderSize + int(h.Length))
	if err != nil {
		return 0, err
	}
	var hi hello
	if err := DecodePayload(b[HeaderSize:], &hi); err != nil {
		return 0, err
	}
	return zab.PeerID(hi.From), nil
}

// welcome is the acceptor's answer: its nonce and, with a key, its proof.
type welcome struct {
	From  uint64 `msgpack:"f"`
	Nonce []byte `msgpack:"n"`
	Auth  bool   `msgpack:"a"`
	MAC   []byte `msgpack:"m,omitempty"`
}

// authProof is the dialer's proof (an empty MAC without a key).
type authProof struct {
	MAC []byte `msgpack:"m,omitempty"`
}

// refusal tells the other end why the handshake failed, so both logs say it.
type refusal struct {
	Reason string `msgpack:"r"`
	// Instance and Started are set when the refusal says the dialer
	// claims the acceptor's own id (a probe, ProbeSameID): they identify
	// the acceptor's process.
	Instance uint64 `msgpack:"i,omitempty"`
	Started  int64  `msgpack:"s,omitempty"`
	Joined   bool   `msgpack:"j,omitempty"`
	// MAC, with a secret key, proves that the process answering a probe
	// knows the key (claimProof): a stranger cannot pose as a live process
	// with the prober's id.
	MAC []byte `msgpack:"m,omitempty"`
}

// claimProof is the MAC of a probe's answer: proof with role roleClaim,
// the claimed id as both dialer and acceptor, the prober's fresh nonce
// (so an answer cannot be replayed) and, in the place of the acceptor's
// nonce, the answer's Instance, Started and Joined (so none can be
// altered).
func claimProof(secret []byte, cluster string, id zab.PeerID, nd []byte, rf *refusal) []byte {
	var b [17]byte
	binary.BigEndian.PutUint64(b[0:8], rf.Instance)
	binary.BigEndian.PutUint64(b[8:16], uint64(rf.Started))
	if rf.Joined {
		b[16] = 1
	}
	return proof(secret, roleClaim, cluster, id, id, nd, b[:])
}

// handshaker holds what both handshake sides need from the transport.
type handshaker struct {
	id      zab.PeerID
	cluster string
	key     []byte    // the secret key; nil: no authentication, hello only, plain frames
	rand    io.Reader // crypto/rand.Reader in production
	// instance identifies this process in its hellos (see hello.Instance).
	instance uint64
	// started is when this process's transport started (UnixNano): of two
	// live processes with one id, the later start is the duplicate.
	started int64
	// joined is set by Transport.SetJoined.
	joined *atomic.Bool
}

// Proof roles: the two directions use different labels so that one side's MAC
// can never be reflected back as the other side's.
const (
	roleAcceptor = 'A'
	roleDialer   = 'D'
	roleClaim    = 'C' // the answer to a probe of the acceptor's own id
)

// proof is HMAC-SHA256(handshakeKey(secret), label || role || len(cluster)
// || cluster || dialer id || acceptor id || dialer nonce || acceptor nonce).
// Both nonces are fresh, so a recorded handshake cannot be replayed; the ids
// and the cluster name are bound, so a proof for one pair or cluster is
// useless for another.
func proof(secret []byte, role byte, cluster string, dialer, acceptor zab.PeerID, nd, na []byte) []byte {
	m := hmac.New(sha256.New, handshakeKey(secret))
	var b [8]byte
	m.Write([]byte(labelHandshake))
	m.Write([]byte{role})
	binary.BigEndian.PutUint32(b[:4], uint32(len(cluster)))
	m.Write(b[:4])
	m.Write([]byte(cluster))
	binary.BigEndian.PutUint64(b[:], uint64(dialer))
	m.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(acceptor))
	m.Write(b[:])
	m.Write(nd)
	m.Write(na)
	return m.Sum(nil)
}

func (h *handshaker) nonce() ([]byte, error) {
	n := make([]byte, nonceSize)
	if _, err := io.ReadFull(h.rand, n); err != nil {
		return nil, fmt.Errorf("%w: nonce: %v", ErrHandshake, err)
	}
	return n, nil
}

// writeFrame writes one small handshake frame.
func writeFrame(w io.Writer, kind Kind, v any) error {
	b, err := AppendFrame(nil, kind, v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// refuse tells the other end why, best effort, and returns err.
func refuse(w io.Writer, err error) error {
	_ = writeFrame(w, KindRefuse, &refusal{Reason: err.Error()})
	return err
}

// readHandshakeFrame reads a frame of kind want (or a refusal) and decodes its
// payload into v.
func readHandshakeFrame(r io.Reader, want Kind, v any) error {
	h, payload, err := ReadFrame(r, maxHandshakePayload, nil)
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrHandshake, want, err)
	}
	if h.Kind == KindRefuse {
		var rf refusal
		if err := DecodePayload(payload, &rf); err != nil {
			return fmt.Errorf("%w (unreadable reason: %v)", ErrRefused, err)
		}
		if strings.Contains(rf.Reason, ErrDuplicateID.Error()) {
			// The peer holds a live connection from another process
			// under our id: this process is the duplicate.
			return fmt.Errorf("%w: %w: %q", ErrRefused, ErrDuplicateID, rf.Reason)
		}
		return fmt.Errorf("%w: %q", ErrRefused, rf.Reason)
	}
	if h.Kind != want {
		return fmt.Errorf("%w: got %s frame, want %s", ErrHandshake, h.Kind, want)
	}
	if v == nil {
		if len(payload) != 0 {
			return fmt.Errorf("%w: %s frame with %d payload bytes", ErrHandshake, want, len(payload))
		}
		return nil
	}
	if err := DecodePayload(payload, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrHandshake, want, err)
	}
	return nil
}

// dial runs the dialer's side of the handshake on a fresh connection to the
// peer expected to be want. It returns once the acceptor has proved itself
// (with a key) and accepted us; only then may message frames follow. With a
// key it returns the sealer of this connection's frames (nil without: frames
// go in the clear).
//
//	dialer                                   acceptor
//	hello{cluster, D, A, nD, auth}   ──►
//	                                 ◄──     welcome{A, nA, auth, MAC_A}   (or refuse)
//	auth{MAC_D}                      ──►
//	                                 ◄──     accept{}                      (or refuse)
func (h *handshaker) dial(r io.Reader, w io.Writer, want zab.PeerID) (*frameAEAD, error) {
	nd, err := h.nonce()
	if err != nil {
		return nil, err
	}
	hi := hello{Cluster: h.cluster, From: uint64(h.id), To: uint64(want), Nonce: nd, Auth: h.key != nil,
		Instance: h.instance}
	if err := writeFrame(w, KindHello, &hi); err != nil {
		return nil, fmt.Errorf("%w: writing hello: %w", ErrHandshake, err)
	}
	var wl welcome
	if err := readHandshakeFrame(r, KindWelcome, &wl); err != nil {
		return nil, err
	}
	if zab.PeerID(wl.From) != want {
		return nil, refuse(w, fmt.Errorf("%w: reached peer %d, expected %d", ErrHandshake, wl.From, want))
	}
	if len(wl.Nonce) != nonceSize {
		return nil, refuse(w, fmt.Errorf("%w: acceptor nonce of %d bytes", ErrHandshake, len(wl.Nonce)))
	}
	var ap authProof
	if h.key != nil {
		if !wl.Auth {
			return nil, refuse(w, fmt.Errorf("%w: peer %d has no secret key", ErrAuth, want))
		}
		exp := proof(h.key, roleAcceptor, h.cluster, h.id, want, nd, wl.Nonce)
		if !hmac.Equal(exp, wl.MAC) {
			return nil, refuse(w, fmt.Errorf("%w: peer %d did not prove the secret key", ErrAuth, want))
		}
		ap.MAC = proof(h.key, roleDialer, h.cluster, h.id, want, nd, wl.Nonce)
	} else if wl.Auth {
		return nil, refuse(w, fmt.Errorf("%w: peer %d requires a secret key and we have none", ErrAuth, want))
	}
	if err := writeFrame(w, KindAuth, &ap); err != nil {
		return nil, fmt.Errorf("%w: writing auth: %w", ErrHandshake, err)
	}
	if err := readHandshakeFrame(r, KindAccept, nil); err != nil {
		return nil, err
	}
	if h.key == nil {
		return nil, nil
	}
	return newFrameAEAD(frameKey(h.key, dirDialer, h.cluster, h.id, want, nd, wl.Nonce))
}

// accept runs the acceptor's side of the handshake and returns the
// authenticated id of the dialer and, with a key, the opener of the frames
// it will send (nil without: frames come in the clear). No message frame is
// read before it returns successfully.
func (h *handshaker) accept(r io.Reader, w io.Writer) (zab.PeerID, *frameAEAD, error) {
	return h.acceptWith(r, w, nil)
}

// acceptWith is accept with a last check: admit, if set, may refuse the
// authenticated dialer (id and hello.Instance) before it is accepted.
func (h *handshaker) acceptWith(r io.Reader, w io.Writer, admit func(zab.PeerID, uint64) error) (zab.PeerID, *frameAEAD, error) {
	var hi hello
	if err := readHandshakeFrame(r, KindHello, &hi); err != nil {
		return 0, nil, err
	}
	from := zab.PeerID(hi.From)
	switch {
	case hi.Cluster != h.cluster:
		return 0, nil, refuse(w, fmt.Errorf("%w: dialer %d is in cluster %q, not ours", ErrHandshake, from, hi.Cluster))
	case zab.PeerID(hi.To) != h.id:
		return 0, nil, refuse(w, fmt.Errorf("%w: dialer %d wants peer %d, this is %d", ErrHandshake, from, hi.To, h.id))
	case from == 0:
		return 0, nil, refuse(w, fmt.Errorf("%w: invalid dialer id %d", ErrHandshake, from))
	case from == h.id:
		// Another process claims our id (ProbeSameID asks exactly this):
		// say who we are, so it can tell which of the two started later.
		err := fmt.Errorf("%w: node %d answers at this address (instance %x)", ErrDuplicateID, h.id, h.instance)
		rf := refusal{Reason: err.Error(), Instance: h.instance, Started: h.started,
			Joined: h.joined != nil && h.joined.Load()}
		if h.key != nil && len(hi.Nonce) == nonceSize {
			rf.MAC = claimProof(h.key, h.cluster, h.id, hi.Nonce, &rf)
		}
		_ = writeFrame(w, KindRefuse, &rf)
		return 0, nil, err
	case len(hi.Nonce) != nonceSize:
		return 0, nil, refuse(w, fmt.Errorf("%w: dialer nonce of %d bytes", ErrHandshake, len(hi.Nonce)))
	case h.key != nil && !hi.Auth:
		return 0, nil, refuse(w, fmt.Errorf("%w: dialer %d has no secret key", ErrAuth, from))
	case h.key == nil && hi.Auth:
		return 0, nil, refuse(w, fmt.Errorf("%w: dialer %d uses a secret key and we have none", ErrAuth, from))
	}
	na, err := h.nonce()
	if err != nil {
		return 0, nil, err
	}
	wl := welcome{From: uint64(h.id), Nonce: na, Auth: h.key != nil}
	if h.key != nil {
		wl.MAC = proof(h.key, roleAcceptor, h.cluster, from, h.id, hi.Nonce, na)
	}
	if err := writeFrame(w, KindWelcome, &wl); err != nil {
		return 0, nil, fmt.Errorf("%w: writing welcome: %w", ErrHandshake, err)
	}
	var ap authProof
	if err := readHandshakeFrame(r, KindAuth, &ap); err != nil {
		if errors.Is(err, ErrRefused) {
			// The dialer checked our welcome, which names the peer it
			// asked for with a well-formed nonce: it refused our proof of
			// the key (or its absence), so the keys differ.
			return 0, nil, fmt.Errorf("%w: dialer %d refused our key proof: %w", ErrAuth, from, err)
		}
		return 0, nil, err
	}
	if h.key != nil {
		exp := proof(h.key, roleDialer, h.cluster, from, h.id, hi.Nonce, na)
		if !hmac.Equal(exp, ap.MAC) {
			return 0, nil, refuse(w, fmt.Errorf("%w: dialer %d did not prove the secret key", ErrAuth, from))
		}
	} else if len(ap.MAC) != 0 {
		return 0, nil, refuse(w, fmt.Errorf("%w: unexpected MAC from dialer %d", ErrAuth, from))
	}
	if admit != nil {
		if err := admit(from, hi.Instance); err != nil {
			return 0, nil, refuse(w, err)
		}
	}
	if err := writeFrame(w, KindAccept, nil); err != nil {
		return 0, nil, fmt.Errorf("%w: writing accept: %w", ErrHandshake, err)
	}
	if h.key == nil {
		return from, nil, nil
	}
	f, err := newFrameAEAD(frameKey(h.key, dirDialer, h.cluster, from, h.id, hi.Nonce, na))
	if err != nil {
		return 0, nil, err
	}
	return from, f, nil
}
