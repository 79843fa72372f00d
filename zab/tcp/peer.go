package tcp

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/zab"
)

// peer is the outbound side of one remote node: its queue, its address and
// the writer goroutine that owns the connection to it.
type peer struct {
	t     *Transport
	id    zab.PeerID
	log   *slog.Logger
	queue chan *zab.Message
	// bulk queues snapshot chunks apart from queue, which always goes
	// first: a heartbeat or proposal never waits behind snapshot bytes
	// queued before it, only behind at most one chunk being written.
	bulk  chan *zab.Message
	kick  chan struct{} // address changed: stop backing off, redial
	ctx   context.Context
	stopF context.CancelFunc

	mu   sync.Mutex
	addr string
	gen  uint64   // incremented on every address change
	conn net.Conn // current outbound connection (dialing included), for stop

	cur          atomic.Pointer[outConn] // the writer's connection, for Stats
	dials        atomic.Uint64
	dialFailures atomic.Uint64
	sent         atomic.Uint64
	drops        atomic.Uint64
}

func newPeer(t *Transport, id zab.PeerID, addr string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	// The queues hold pointers: SendQueueSize (8192 by default) whole
	// Messages would take some 2 MB per peer before anything is sent.
	return &peer{
		t:     t,
		id:    id,
		log:   t.log.With("peer", uint64(id)),
		queue: make(chan *zab.Message, t.cfg.SendQueueSize),
		bulk:  make(chan *zab.Message, bulkQueueSize),
		kick:  make(chan struct{}, 1),
		ctx:   ctx,
		stopF: cancel,
		addr:  addr,
	}
}

func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	changed := addr != p.addr
	if changed {
		p.addr = addr
		p.gen++
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("peer address changed", "addr", addr)
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *peer) address() (string, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr, p.gen
}

// stop ends the writer goroutine and aborts any dial, handshake or write in
// progress.
func (p *peer) stop() {
	p.stopF()
	p.mu.Lock()
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.mu.Unlock()
}

// setConn records c as the current connection so stop can abort it; it
// refuses (and closes c) once the peer is stopped.
func (p *peer) setConn(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		_ = c.Close()
		return false
	}
	p.conn = c
	return true
}

// outConn is an established, authenticated outbound connection.
type outConn struct {
	net.Conn
	seal *frameAEAD // nil without a secret key: frames go in the clear
	gen  uint64
	dead chan struct{} // closed by the watcher when the acceptor closed its end
}

// run is the writer goroutine: it takes queued messages, dials when needed
// and writes them in batches, one frame (one write) per batch.
func (p *peer) run() {
	defer p.t.wg.Done()
	maxPayload := p.t.cfg.MaxFrameSize
	if p.t.hs.key != nil {
		// Room for the tag: a sealed payload stays within MaxFrameSize.
		maxPayload -= SealOverhead
	}
	enc := NewBatchEncoder(maxPayload)
	batch := make([]zab.Message, 0, p.t.cfg.MaxBatch)
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rng := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	var conn *outConn
	failures := 0
	closeConn := func() {
		if conn != nil {
			_ = conn.Close()
			conn = nil
			p.cur.Store(nil)
		}
	}
	defer closeConn()
	// Whatever is still queued when the peer is stopped is lost: count it.
	defer func() { p.drop(len(p.queue) + len(p.bulk)) }()

	for {
		batch = batch[:0]
		select {
		case m := <-p.queue:
			batch = append(batch, *m)
		default:
			select {
			case <-p.ctx.Done():
				return
			case <-p.kick:
				// Address changed while idle: let go of the old connection
				// now rather than at the next message.
				if _, gen := p.address(); conn != nil && conn.gen != gen {
					closeConn()
				}
				continue
			case m := <-p.queue:
				batch = append(batch, *m)
			case m := <-p.bulk:
				batch = append(batch, *m)
			}
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case m := <-p.queue:
				batch = append(batch, *m)
			default:
				break drain
			}
		}
		if len(batch) < cap(batch) && !isBulk(batch[0]) {
			// At most one chunk per frame, after the messages that go first.
			select {
			case m := <-p.bulk:
				batch = append(batch, *m)
			default:
			}
		}

		addr, gen := p.address()
		if conn != nil {
			select {
			case <-conn.dead:
				p.log.Debug("outbound connection closed by peer, redialing")
				closeConn()
			default:
				if conn.gen != gen {
					closeConn()
				}
			}
		}
		if conn == nil {
			c, err := p.connect(addr, gen)
			if err != nil {
				failures++
				p.drop(len(batch))
				if p.ctx.Err() != nil {
					return
				}
				wait := backoff(p.t.cfg.ReconnectBackoffMin, p.t.cfg.ReconnectBackoffMax, failures, rng)
				lvl := slog.LevelDebug
				if failures == 1 || errors.Is(err, ErrAuth) || errors.Is(err, ErrRefused) {
					lvl = slog.LevelWarn
				}
				p.log.Log(p.ctx, lvl, "cannot connect to peer", "addr", addr, "err", err, "failures", failures, "retry_in", wait)
				timer := time.NewTimer(wait)
				select {
				case <-p.ctx.Done():
					timer.Stop()
					return
				case <-p.kick:
					failures = 0
				case <-timer.C:
				}
				timer.Stop()
				continue
			}
			if failures > 0 {
				p.log.Info("connected to peer", "addr", addr, "after_failures", failures)
			}
			failures = 0
			conn = c
			p.cur.Store(c)
		}
		if err := p.write(conn, enc, batch); err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("write to peer failed, will redial", "addr", addr, "err", err)
			closeConn()
		}
	}
}

// bulkQueueSize bounds the snapshot chunks queued for one peer. A leader
// keeps only a window of chunks in flight per learner (zab.Config.SnapWindow),
// so this is far more than it needs; a chunk refused when it is full is
// sent again by the leader's flow control.
const bulkQueueSize = 64

// isBulk reports whether m travels on the low-priority path.
func isBulk(m zab.Message) bool { return m.Type == zab.MsgSnapChunk }

// write sends batch as as few frames as MaxFrameSize allows; on error the
// unsent rest is counted as dropped. A frame in the clear goes out as one
// vector (writev) with its large byte fields, snapshot chunks above all,
// taken from where they lie rather than copied into the frame buffer; a
// sealed frame needs its plaintext in one piece.
func (p *peer) write(conn *outConn, enc *BatchEncoder, batch []zab.Message) error {
	for len(batch) > 0 {
		var (
			frame []byte
			vec   net.Buffers
			size  int
			n     int
			err   error
		)
		if conn.seal != nil {
			if frame, n, err = enc.Encode(batch); err == nil {
				frame, err = conn.seal.seal(frame)
				if err != nil {
					p.drop(len(batch))
					return err
				}
				size = len(frame)
			}
		} else {
			vec, size, n, err = enc.EncodeBuffers(batch)
		}
		if err != nil {
			// The only message-level failure: one message cannot fit a frame.
			p.log.Warn("dropping message", "type", uint8(batch[0].Type), "err", err)
			p.drop(1)
			batch = batch[1:]
			continue
		}
		_ = conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
		if frame != nil {
			_, err = conn.Write(frame)
		} else {
			// The connection itself, not outConn, so that a TCP
			// connection takes the vector in one writev.
			_, err = vec.WriteTo(conn.Conn)
			enc.forget()
		}
		if err != nil {
			p.drop(len(batch))
			return err
		}
		p.sent.Add(uint64(n))
		p.t.st.framesSent.Add(1)
		p.t.st.msgsSent.Add(uint64(n))
		p.t.st.bytesSent.Add(uint64(size))
		batch = batch[n:]
	}
	return nil
}

// connected reports whether the peer has an established connection that
// has not been closed by the other end.
func (p *peer) connected() bool {
	c := p.cur.Load()
	if c == nil {
		return false
	}
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

func (p *peer) drop(n int) {
	p.drops.Add(uint64(n))
	p.t.st.sendDrops.Add(uint64(n))
}

// connect dials addr and runs the dialer handshake. On success it starts the
// connection's watcher goroutine.
func (p *peer) connect(addr string, gen uint64) (*outConn, error) {
	p.dials.Add(1)
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		p.dialFailures.Add(1)
		return nil, err
	}
	if !p.setConn(c) {
		return nil, p.ctx.Err()
	}
	_ = c.SetDeadline(time.Now().Add(p.t.cfg.HandshakeTimeout))
	seal, err := p.t.hs.dial(c, c, p.id)
	if err != nil {
		p.dialFailures.Add(1)
		p.t.st.handshakeFailed(err)
		if errors.Is(err, ErrDuplicateID) {
			p.t.refusedAsDuplicate(p.id, err)
		}
		_ = c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	oc := &outConn{Conn: c, seal: seal, gen: gen, dead: make(chan struct{})}
	p.t.wg.Add(1)
	go p.watch(oc)
	return oc, nil
}

// watch is the per-outbound-connection watcher goroutine. The acceptor never
// writes after the handshake, so Read returns only when the connection ends
// (EOF from a restarted peer, or our own Close). Marking it dead lets the
// writer redial before writing instead of losing a batch into a dead socket.
func (p *peer) watch(c *outConn) {
	defer p.t.wg.Done()
	var b [1]byte
	_, _ = io.ReadFull(c.Conn, b[:])
	close(c.dead)
	_ = c.Close()
}

// backoff returns the wait after the n-th consecutive failure: min·2^(n-1)
// capped at max, with up to 50% jitter so that peers restarting together do
// not dial in lockstep.
func backoff(lo, hi time.Duration, n int, rng *mrand.Rand) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rng.Int64N(half+1))
	}
	return d
}
