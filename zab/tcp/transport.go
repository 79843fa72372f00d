package tcp

import (
	"bufio"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/zab"
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("zab/tcp: transport closed")

// Transport is the TCP implementation of zab.Transport. See the package
// documentation for the connection model, the wire format and the goroutines
// it runs.
type Transport struct {
	cfg  Config
	log  *slog.Logger
	hs   handshaker
	ln   net.Listener
	recv chan zab.Message

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport starts
	once   sync.Once

	// hsSlots bounds inbound connections still in the handshake.
	hsSlots chan struct{}
	// hsByHost counts them per source IP (under mu).
	hsByHost map[string]int

	mu      sync.RWMutex
	closed  bool
	peers   map[zab.PeerID]*peer
	inbound map[*inConn]struct{}   // every accepted connection
	byPeer  map[zab.PeerID]*inConn // the authenticated inbound connection of each peer

	st counters
	// dup is the latest refusal of our handshake as a duplicate id
	// (DuplicateID).
	dup atomic.Pointer[error]
}

var _ zab.Transport = (*Transport)(nil)

// New validates cfg, binds the listener and starts accepting connections.
// The Transport owns the listener until Close.
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", uint64(cfg.ID), "component", "zab/tcp")
	lc := net.ListenConfig{KeepAlive: 15 * time.Second}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg: cfg,
		log: logger,
		hs: handshaker{id: cfg.ID, cluster: cfg.Cluster, key: cfg.SecretKey, rand: crand.Reader,
			instance: randomInstance(), started: time.Now().UnixNano(),
			joined: new(atomic.Bool)},
		ln:       ln,
		recv:     make(chan zab.Message, cfg.RecvBufferSize),
		ctx:      ctx,
		cancel:   cancel,
		hsSlots:  make(chan struct{}, cfg.MaxPendingHandshakes),
		hsByHost: make(map[string]int),
		peers:    make(map[zab.PeerID]*peer),
		inbound:  make(map[*inConn]struct{}),
		byPeer:   make(map[zab.PeerID]*inConn),
	}
	if cfg.SecretKey == nil {
		logger.Warn("no secret key: peer connections are not authenticated")
	}
	logger.Info("listening", "addr", ln.Addr().String())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the listener is bound to (with the real port when
// Config.BindAddr asked for port 0).
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// ID returns this node's peer id.
func (t *Transport) ID() zab.PeerID { return t.cfg.ID }

// Receive returns the channel of messages from authenticated peers. Every
// message on it has From equal to the authenticated id of the connection it
// came on and To equal to this node's id. It is closed by Close.
func (t *Transport) Receive() <-chan zab.Message { return t.recv }

// Send queues m for m.To without blocking. It returns zab.ErrUnknownPeer when
// SetPeer was never called for m.To (or it was removed), zab.ErrQueueFull
// when that peer's queue is full, and ErrClosed after Close. A queued message
// may still be lost (broken connection, peer down): it is then counted in
// Stats.SendDrops. Send does not set m.From; the receiver drops messages whose
// From is not this node's id. Snapshot chunks (zab.MsgSnapChunk) wait in a
// small queue of their own that yields to every other message, so
// heartbeats and proposals never queue behind snapshot bytes; a chunk may
// thus be overtaken by messages sent after it.
func (t *Transport) Send(m zab.Message) error {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return ErrClosed
	}
	p := t.peers[m.To]
	t.mu.RUnlock()
	if p == nil {
		return zab.ErrUnknownPeer
	}
	q := p.queue
	if isBulk(m) {
		q = p.bulk
	}
	select {
	case q <- &m: // a pointer: a queue of SendQueueSize Messages would be MBs
		return nil
	default:
		t.st.queueFull.Add(1)
		return zab.ErrQueueFull
	}
}

// SetPeer records or updates the address of peer id. A changed address makes
// the peer's writer drop its current connection and dial the new address
// (this is how a peer that restarted on a new port is reached); queued
// messages are kept. SetPeer for this node's own id, after Close, or with an
// empty address is ignored.
func (t *Transport) SetPeer(id zab.PeerID, addr string) {
	if id == t.cfg.ID || id == 0 || addr == "" {
		t.log.Warn("SetPeer ignored", "peer", uint64(id), "addr", addr)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p := t.peers[id]; p != nil {
		p.setAddr(addr)
		return
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
}

// RemovePeer forgets peer id: its writer stops, its queued messages are
// dropped, its outbound connection and its current inbound connection are
// closed. The peer may connect again later (authentication, not the peer
// list, decides who may send to us).
func (t *Transport) RemovePeer(id zab.PeerID) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	ic := t.byPeer[id]
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
	if ic != nil {
		ic.kill()
	}
}

// Close stops the listener, every writer and reader goroutine, closes every
// connection, waits for all of them and then closes the Receive channel. It is
// idempotent and always returns nil.
func (t *Transport) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
		peers := t.peers
		t.peers = map[zab.PeerID]*peer{}
		var conns []*inConn
		for ic := range t.inbound {
			conns = append(conns, ic)
		}
		t.mu.Unlock()

		t.cancel()
		_ = t.ln.Close()
		for _, p := range peers {
			p.stop()
		}
		for _, ic := range conns {
			ic.kill()
		}
		t.wg.Wait()
		close(t.recv)
		t.log.Info("closed")
	})
	return nil
}

// acceptLoop accepts inbound connections until the listener is closed and
// starts one serveInbound goroutine per connection.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var tempDelay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: back off and retry, as
			// net/http does, rather than spin or give up.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else if tempDelay = 2 * tempDelay; tempDelay > time.Second {
				tempDelay = time.Second
			}
			t.log.Warn("accept failed", "err", err, "retry_in", tempDelay)
			select {
			case <-time.After(tempDelay):
				continue
			case <-t.ctx.Done():
				return
			}
		}
		tempDelay = 0
		host := remoteHost(c)
		t.mu.Lock()
		if t.hsByHost[host] >= t.cfg.MaxPendingHandshakesPerHost {
			t.mu.Unlock()
			t.st.handshakeFailures.Add(1)
			t.log.Warn("too many pending handshakes from one host, closing inbound connection", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		select {
		case t.hsSlots <- struct{}{}:
		default:
			t.mu.Unlock()
			t.st.handshakeFailures.Add(1)
			t.log.Warn("too many pending handshakes, closing inbound connection", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		ic := &inConn{conn: c, host: host, done: make(chan struct{}), gone: make(chan struct{})}
		if t.closed {
			t.mu.Unlock()
			_ = c.Close()
			<-t.hsSlots
			return
		}
		t.hsByHost[host]++
		t.inbound[ic] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serveInbound(ic)
	}
}

// inConn is one accepted connection.
type inConn struct {
	conn     net.Conn
	instance uint64        // the dialer's hello.Instance
	heard    atomic.Int64  // UnixNano of the last frame read (or of the handshake)
	host     string        // source IP, for the per-host handshake bound
	peer     zab.PeerID    // set once authenticated
	done     chan struct{} // closed when its goroutine has returned
	gone     chan struct{} // closed by kill
	killOnce sync.Once
}

// kill closes the connection and tells its reader to stop delivering.
func (ic *inConn) kill() {
	ic.killOnce.Do(func() {
		close(ic.gone)
		_ = ic.conn.Close()
	})
}

// serveInbound runs the acceptor side of the handshake and then reads batch
// frames until the connection fails or is killed.
func (t *Transport) serveInbound(ic *inConn) {
	defer t.wg.Done()
	defer close(ic.done)
	defer ic.kill()
	remote := ic.conn.RemoteAddr().String()
	log := t.log.With("remote", remote)

	_ = ic.conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(ic.conn, 64<<10)
	id, open, err := t.hs.acceptWith(br, ic.conn, func(id zab.PeerID, instance uint64) error {
		ic.instance = instance
		return t.admit(id, instance, remote)
	})
	t.handshakeDone(ic)
	if err != nil {
		t.st.handshakeFailed(err)
		if errors.Is(err, ErrDuplicateID) {
			t.st.duplicateIDs.Add(1)
			log.Error("inbound handshake refused", "err", err)
		} else {
			log.Warn("inbound handshake refused", "err", err)
		}
		t.forget(ic)
		return
	}
	ic.heard.Store(time.Now().UnixNano())
	_ = ic.conn.SetDeadline(time.Time{})
	log = log.With("peer", uint64(id))

	// One inbound connection per peer: a newer one means the peer redialed,
	// so the old one is dead on its side. Wait for the old reader to finish
	// so that messages from the two connections cannot interleave.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	ic.peer = id
	old := t.byPeer[id]
	t.byPeer[id] = ic
	t.mu.Unlock()
	defer t.forget(ic)
	if old != nil {
		old.kill()
		select {
		case <-old.done:
		case <-ic.gone:
			return
		}
	}
	log.Debug("inbound connection authenticated")

	var buf []byte
	warnedForged := false
	for {
		h, payload, err := ReadFrame(br, t.cfg.MaxFrameSize, buf)
		buf = payload
		if err != nil {
			select {
			case <-ic.gone:
				log.Debug("inbound connection closed")
			default:
				if errors.Is(err, io.EOF) {
					log.Debug("peer closed inbound connection")
				} else {
					t.st.badFrames.Add(1)
					log.Warn("closing inbound connection", "reason", err)
				}
			}
			return
		}
		if open != nil {
			// With a key every frame is sealed; one that does not open
			// (tampered, replayed, reordered, dropped, plain) ends the
			// connection.
			if payload, err = open.open(h, payload); err != nil {
				t.st.badFrames.Add(1)
				t.st.authFailures.Add(1)
				log.Warn("closing inbound connection", "reason", err)
				return
			}
		} else if h.Kind != KindBatch {
			t.st.badFrames.Add(1)
			log.Warn("closing inbound connection", "reason", "unexpected "+h.Kind.String()+" frame")
			return
		}
		msgs, err := DecodeBatch(payload)
		if err != nil {
			t.st.badFrames.Add(1)
			log.Warn("closing inbound connection", "reason", err)
			return
		}
		ic.heard.Store(time.Now().UnixNano())
		t.st.framesRecv.Add(1)
		t.st.bytesRecv.Add(uint64(HeaderSize + int(h.Length)))
		for _, m := range msgs {
			if m.From != id || m.To != t.cfg.ID {
				t.st.forgedDrops.Add(1)
				if !warnedForged {
					warnedForged = true
					log.Warn("dropping message with wrong sender or recipient (further ones counted only)",
						"from", uint64(m.From), "to", uint64(m.To))
				}
				continue
			}
			select {
			case t.recv <- m:
				t.st.msgsRecv.Add(1)
			case <-ic.gone:
				return
			}
		}
	}
}

// forget removes ic from the connection sets.
func (t *Transport) forget(ic *inConn) {
	t.mu.Lock()
	delete(t.inbound, ic)
	if ic.peer != 0 && t.byPeer[ic.peer] == ic {
		delete(t.byPeer, ic.peer)
	}
	t.mu.Unlock()
}

// handshakeDone frees ic's handshake slots.
func (t *Transport) handshakeDone(ic *inConn) {
	t.mu.Lock()
	if t.hsByHost[ic.host]--; t.hsByHost[ic.host] <= 0 {
		delete(t.hsByHost, ic.host)
	}
	t.mu.Unlock()
	<-t.hsSlots
}

// remoteHost returns the IP a connection comes from (its whole remote
// address if that is not IP:port).
func remoteHost(c net.Conn) string {
	a := c.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// admit refuses a dialer whose id another process (another hello.Instance)
// holds a live inbound connection under. A peer that restarted has a new
// instance too, but its old connection is closed (or silent, if its host
// died); it is accepted and replaces the old one.
//
// Live means a frame arrived on it after this hello did. A connection
// heard from within HandshakeTimeout is watched for a quarter of it (at
// most admitWatch, well within the dialer's own handshake timeout): the
// connection of a process that was just killed looks live until its reader
// has read the last frames and the end of the stream, which on a loaded
// machine (or with a full receive channel) takes a while, and refusing
// then made a node restarted at once fail its Join as a duplicate of
// itself (TestChaos at load 46).
func (t *Transport) admit(id zab.PeerID, instance uint64, remote string) error {
	t.mu.RLock()
	old := t.byPeer[id]
	t.mu.RUnlock()
	if old == nil || old.instance == instance || instance == 0 || old.instance == 0 {
		return nil
	}
	arrived := time.Now()
	if arrived.Sub(time.Unix(0, old.heard.Load())) >= t.cfg.HandshakeTimeout {
		return nil // silent
	}
	watch := time.NewTimer(min(t.cfg.HandshakeTimeout/4, admitWatch))
	defer watch.Stop()
	select {
	case <-old.gone:
		return nil
	case <-old.done:
		return nil
	case <-watch.C:
	}
	if heard := time.Unix(0, old.heard.Load()); heard.After(arrived) {
		return fmt.Errorf("%w: peer %d is connected from %s (another process, heard %v ago); %s claims the same id",
			ErrDuplicateID, id, old.conn.RemoteAddr(), time.Since(heard).Round(time.Millisecond), remote)
	}
	return nil
}

// admitWatch bounds how long admit watches an old connection for a sign of
// life: a live peer sends frames every tick (zab's pings and their
// answers), several times within it.
const admitWatch = 500 * time.Millisecond

// refusedAsDuplicate records that peer refused our handshake because
// another live process holds a connection to it under our id.
func (t *Transport) refusedAsDuplicate(peer zab.PeerID, err error) {
	if t.dup.Swap(&err) == nil {
		t.log.Error("a peer refused this node: another live process uses this node's id", "refused_by", peer, "err", err)
	}
}

// DuplicateID returns the latest refusal (wrapping ErrDuplicateID) by a
// peer that holds a live connection from another process under this
// node's id, or nil if no peer refused so. This process is then the
// duplicate: it should stop rather than take part.
func (t *Transport) DuplicateID() error {
	if p := t.dup.Load(); p != nil {
		return *p
	}
	return nil
}

// Claimant is another live process that answered ProbeSameID under this
// node's id.
type Claimant struct {
	// Addr is the address it answered at.
	Addr string
	// Instance is its random per-process instance.
	Instance uint64
	// Started is when its transport started, by its own clock.
	Started time.Time
	// Joined: it had called SetJoined (it is a member, not a process
	// still checking whether it may join).
	Joined bool
}

// SetJoined marks this process as a member of the cluster that passed its
// duplicate-id check; ProbeSameID answers from it say so (Claimant.Joined).
func (t *Transport) SetJoined() { t.hs.joined.Store(true) }

// ProbeSameID dials addr (a replication address gossip reports for this
// node's id) and asks, with a hello from this node's id to this node's id,
// whether a live process of this cluster with this id answers there. It
// returns that process, or nil with the reason when none does: nothing
// listens there or it does not answer within DialTimeout plus
// HandshakeTimeout (the old address of a restarted process), this very
// process answers, or another id does. Detection thus does not depend on
// the other process having talked to anyone: only on it being alive. With
// a SecretKey the answer must prove the key (an HMAC under the handshake's
// key over this probe's fresh nonce and the answer), or it is refused with
// ErrAuth: a stranger cannot make this process yield or fail its Join.
func (t *Transport) ProbeSameID(ctx context.Context, addr string) (*Claimant, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	nd, err := t.hs.nonce()
	if err != nil {
		return nil, err
	}
	hi := hello{Cluster: t.hs.cluster, From: uint64(t.cfg.ID), To: uint64(t.cfg.ID), Nonce: nd,
		Auth: t.hs.key != nil, Instance: t.hs.instance}
	if err := writeFrame(c, KindHello, &hi); err != nil {
		return nil, err
	}
	h, payload, err := ReadFrame(bufio.NewReader(c), maxHandshakePayload, nil)
	if err != nil {
		return nil, err
	}
	var rf refusal
	if h.Kind != KindRefuse {
		return nil, fmt.Errorf("%w: probe of %s answered with a %s frame", ErrHandshake, addr, h.Kind)
	}
	if err := DecodePayload(payload, &rf); err != nil {
		return nil, fmt.Errorf("%w: probe of %s: %w", ErrHandshake, addr, err)
	}
	if rf.Instance == 0 {
		return nil, fmt.Errorf("%w: probe of %s: %q", ErrRefused, addr, rf.Reason)
	}
	if rf.Instance == t.hs.instance {
		return nil, fmt.Errorf("probe of %s reached this process", addr)
	}
	if t.hs.key != nil && !hmac.Equal(rf.MAC, claimProof(t.hs.key, t.hs.cluster, t.cfg.ID, nd, &rf)) {
		// Only a process that knows the cluster's key may make this one
		// yield (or fail Join) as a duplicate.
		return nil, fmt.Errorf("%w: probe of %s: the answer does not prove the secret key", ErrAuth, addr)
	}
	return &Claimant{Addr: addr, Instance: rf.Instance, Started: time.Unix(0, rf.Started), Joined: rf.Joined}, nil
}

// StartedAfter reports whether this process is the later of itself and c
// (by start time, then instance): of two live processes with one id, that
// one is the duplicate. Both sides compute the same answer from the same
// two (start, instance) pairs, so exactly one of them yields; clocks only
// decide which.
func (t *Transport) StartedAfter(c *Claimant) bool {
	s := c.Started.UnixNano()
	if t.hs.started != s {
		return t.hs.started > s
	}
	return t.hs.instance > c.Instance
}

// randomInstance returns a random non-zero hello.Instance.
func randomInstance() uint64 {
	var b [8]byte
	for {
		if _, err := crand.Read(b[:]); err != nil {
			return uint64(time.Now().UnixNano()) | 1
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}
