// Package faultproxy is a TCP proxy for tests that puts faults on the links
// between the nodes of a cluster running on 127.0.0.1: it can cut a link,
// stall it one way, delay it, and heal it.
//
// Each node's advertised address is a proxy listener (Listen) that forwards
// to the node's real address. A link is a direction between two node ids,
// from → to; the bytes of a proxied connection flow on two links, the
// dialer's to the acceptor's and back. The proxy learns the acceptor from
// the listener and the dialer from Config.Identify, which peeks at the first
// bytes the dialer sends (for zab/tcp, the hello frame).
//
// Faults, all undone by Heal or HealAll:
//
//   - Cut(a, b): both directions are reset: the pair's connections are
//     closed and new ones are closed as soon as they are identified, as a
//     firewall rejecting packets would.
//   - Stall(from, to): bytes from → to are held, neither delivered nor
//     dropped, and the proxy stops reading them once a bounded buffer is
//     full, so TCP flow control pushes back on the sender. This is how a
//     one-way cut looks over TCP: dropping bytes mid-stream would corrupt
//     the framing rather than lose messages. Stall both ways is a
//     partition that blackholes packets instead of resetting connections.
//     On Heal the held bytes are delivered in order.
//   - Delay(from, to, d): every chunk read from → to is delivered d after
//     it was read, in order.
//
// Bounds: listeners and targets must be loopback IP addresses, the number
// of proxied connections is capped (Config.MaxConns), and each direction of
// a connection holds at most Config.BufferChunks chunks of ChunkSize bytes.
// Close stops every goroutine the proxy started.
package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Unknown is the dialer id of a connection Identify could not attribute.
const Unknown = -1

// ErrClosed is returned by Listen after Close.
var ErrClosed = errors.New("faultproxy: closed")

// Config configures a Proxy. Zero fields take the defaults shown.
type Config struct {
	// Identify returns the id of the node that dialed, reading at most the
	// first bytes of the connection through r with Peek (whatever it reads
	// with Read is lost to the acceptor). Nil, or an error, makes the
	// dialer Unknown.
	Identify func(r *bufio.Reader) (int, error)
	// IdentifyTimeout bounds waiting for the bytes Identify needs
	// (default 5s).
	IdentifyTimeout time.Duration
	// MaxConns caps live proxied connections; more are closed at once
	// (default 256).
	MaxConns int
	// ChunkSize is the largest read, and BufferChunks the number of chunks
	// a direction holds while stalled or delayed (defaults 32 KiB and 64).
	ChunkSize    int
	BufferChunks int
	// Logf, if set, receives one line per connection event and fault.
	Logf func(format string, args ...any)
	// Tap, if set, sees every chunk forwarded from → to, just before it is
	// written (a test capturing what crosses the network). It is called
	// from the pump goroutines, concurrently; b is valid only during the
	// call.
	Tap func(from, to int, b []byte)
}

func (c Config) withDefaults() Config {
	if c.IdentifyTimeout <= 0 {
		c.IdentifyTimeout = 5 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 32 << 10
	}
	if c.BufferChunks <= 0 {
		c.BufferChunks = 64
	}
	return c
}

// link is a direction between two node ids.
type link struct{ from, to int }

// fault is the state of one direction.
type fault struct {
	cut   bool
	stall bool
	delay time.Duration
}

// Stats counts what the proxy did.
type Stats struct {
	Accepted     int   // connections accepted
	Unidentified int   // of which Identify could not name the dialer
	Refused      int   // closed at once: cut link, too many connections, dial failure
	Live         int   // proxied connections open now
	Bytes        int64 // handed to a destination (counted before the write)
}

// Proxy forwards connections from its listeners to their targets, applying
// the faults set on each link. Its methods are safe for concurrent use.
type Proxy struct {
	cfg  Config
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	faults  map[link]fault
	changed chan struct{} // closed and replaced on every fault change
	lns     []net.Listener
	conns   map[*pconn]struct{}
	st      Stats
}

// New returns a proxy with no listeners and no faults.
func New(cfg Config) *Proxy {
	return &Proxy{
		cfg:     cfg.withDefaults(),
		done:    make(chan struct{}),
		faults:  make(map[link]fault),
		changed: make(chan struct{}),
		conns:   make(map[*pconn]struct{}),
	}
}

func (p *Proxy) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}

// loopback checks that addr is a loopback IP:port.
func loopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("faultproxy: %q is not a loopback address", addr)
	}
	return nil
}

// Listen starts a listener for node to on addr (a loopback IP:port; port 0
// picks one) that forwards every connection to target (a loopback IP:port)
// and returns the bound address.
func (p *Proxy) Listen(to int, addr, target string) (string, error) {
	if err := loopback(addr); err != nil {
		return "", err
	}
	if err := loopback(target); err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return "", ErrClosed
	}
	p.lns = append(p.lns, ln)
	p.wg.Add(1)
	p.mu.Unlock()
	go p.accept(ln, to, target)
	return ln.Addr().String(), nil
}

func (p *Proxy) accept(ln net.Listener, to int, target string) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A closed listener (Close) or a persistent error: stop.
			return
		}
		p.mu.Lock()
		if p.closed || len(p.conns) >= p.cfg.MaxConns {
			p.st.Refused++
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.st.Accepted++
		pc := &pconn{p: p, client: c, to: to, from: Unknown}
		p.conns[pc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go pc.serve(target)
	}
}

// reset closes c with an RST rather than a FIN where it can.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// state returns the fault of l and a channel closed at its next change.
func (p *Proxy) state(l link) (fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[l], p.changed
}

// update applies f to the faults of the given links and wakes every pump.
func (p *Proxy) update(f func(m map[link]fault), cutPairs ...link) {
	p.mu.Lock()
	f(p.faults)
	close(p.changed)
	p.changed = make(chan struct{})
	var kill []*pconn
	for pc := range p.conns {
		for _, l := range cutPairs {
			if pc.from == l.from && pc.to == l.to || pc.from == l.to && pc.to == l.from {
				kill = append(kill, pc)
				break
			}
		}
	}
	p.mu.Unlock()
	for _, pc := range kill {
		pc.kill()
	}
}

// Cut resets the link between a and b both ways until Heal: their open
// connections are closed and new ones are refused.
func (p *Proxy) Cut(a, b int) {
	p.logf("faultproxy: cut %d<->%d", a, b)
	p.update(func(m map[link]fault) {
		for _, l := range []link{{a, b}, {b, a}} {
			f := m[l]
			f.cut = true
			m[l] = f
		}
	}, link{a, b})
}

// Stall holds the bytes from → to (one way) until Heal.
func (p *Proxy) Stall(from, to int) {
	p.logf("faultproxy: stall %d->%d", from, to)
	p.update(func(m map[link]fault) {
		f := m[link{from, to}]
		f.stall = true
		m[link{from, to}] = f
	})
}

// Delay delivers the bytes from → to d after they were read; 0 removes the
// delay.
func (p *Proxy) Delay(from, to int, d time.Duration) {
	p.logf("faultproxy: delay %d->%d %v", from, to, d)
	p.update(func(m map[link]fault) {
		f := m[link{from, to}]
		f.delay = d
		m[link{from, to}] = f
	})
}

// Heal removes every fault between a and b, both ways.
func (p *Proxy) Heal(a, b int) {
	p.logf("faultproxy: heal %d<->%d", a, b)
	p.update(func(m map[link]fault) {
		delete(m, link{a, b})
		delete(m, link{b, a})
	})
}

// HealAll removes every fault.
func (p *Proxy) HealAll() {
	p.logf("faultproxy: heal all")
	p.update(func(m map[link]fault) { clear(m) })
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.st
	s.Live = len(p.conns)
	return s
}

// Close stops the listeners, closes every proxied connection and waits for
// every goroutine of the proxy. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	close(p.done)
	lns := p.lns
	var conns []*pconn
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, pc := range conns {
		pc.kill()
	}
	p.wg.Wait()
	return nil
}

// pconn is one proxied connection: client is the accepted side (the
// dialer), server the side the proxy dialed (the acceptor).
type pconn struct {
	p        *Proxy
	client   net.Conn
	to, from int // from is set once, before the pumps start

	mu     sync.Mutex
	server net.Conn
	killed bool
	gone   chan struct{}
	once   sync.Once
}

// kill closes both sides at once (an RST on each).
func (pc *pconn) kill() {
	pc.mu.Lock()
	pc.killed = true
	s := pc.server
	pc.mu.Unlock()
	reset(pc.client)
	if s != nil {
		reset(s)
	}
}

func (pc *pconn) serve(target string) {
	p := pc.p
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	br := bufio.NewReaderSize(pc.client, p.cfg.ChunkSize)
	from := Unknown
	if p.cfg.Identify != nil {
		_ = pc.client.SetReadDeadline(time.Now().Add(p.cfg.IdentifyTimeout))
		if id, err := p.cfg.Identify(br); err == nil {
			from = id
		} else {
			p.mu.Lock()
			p.st.Unidentified++
			p.mu.Unlock()
			p.logf("faultproxy: ->%d: cannot identify dialer: %v", pc.to, err)
		}
		_ = pc.client.SetReadDeadline(time.Time{})
	}
	p.mu.Lock()
	pc.from = from
	f, g := p.faults[link{from, pc.to}], p.faults[link{pc.to, from}]
	refuse := f.cut || g.cut || p.closed
	if refuse {
		p.st.Refused++
	}
	p.mu.Unlock()
	if refuse {
		p.logf("faultproxy: %d->%d: refused (cut)", from, pc.to)
		reset(pc.client)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	s, err := d.Dial("tcp", target)
	if err != nil {
		p.mu.Lock()
		p.st.Refused++
		p.mu.Unlock()
		p.logf("faultproxy: %d->%d: dial %s: %v", from, pc.to, target, err)
		reset(pc.client)
		return
	}
	pc.mu.Lock()
	pc.server = s
	killed := pc.killed
	pc.mu.Unlock()
	if killed {
		reset(s)
		reset(pc.client)
		return
	}
	p.logf("faultproxy: %d->%d: connected", from, pc.to)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pc.pump(br, s, link{from, pc.to}) }()
	go func() { defer wg.Done(); pc.pump(s, pc.client, link{pc.to, from}) }()
	wg.Wait()
	_ = pc.client.Close()
	_ = s.Close()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pump copies src to dst on link l: a reader goroutine stamps chunks into a
// bounded queue, and this goroutine writes each one when l's faults allow.
// EOF is passed on as a half-close once the held bytes are delivered; any
// other error closes both sides.
func (pc *pconn) pump(src io.Reader, dst net.Conn, l link) {
	p := pc.p
	q := make(chan chunk, p.cfg.BufferChunks)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	// The reader ends once src is closed (kill) or returned an error.
	defer func() {
		close(stop)
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		defer close(q)
		for {
			b := make([]byte, p.cfg.ChunkSize)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case q <- chunk{b: b[:n], at: time.Now()}:
				case <-stop:
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	for c := range q {
		if !pc.hold(l, c.at) {
			pc.kill()
			return
		}
		// Counted before the write, so whoever reads these bytes at the
		// other end sees them in Stats.
		p.mu.Lock()
		p.st.Bytes += int64(len(c.b))
		p.mu.Unlock()
		if p.cfg.Tap != nil {
			p.cfg.Tap(l.from, l.to, c.b)
		}
		if _, err := dst.Write(c.b); err != nil {
			pc.kill()
			return
		}
	}
	if err := <-readErr; errors.Is(err, io.EOF) {
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
			return
		}
	}
	pc.kill()
}

// hold waits until a chunk read at "at" may be delivered on l; false means
// the connection must end (cut or proxy closed).
func (pc *pconn) hold(l link, at time.Time) bool {
	for {
		f, changed := pc.p.state(l)
		if f.cut {
			return false
		}
		if !f.stall {
			wait := time.Until(at.Add(f.delay))
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop()
			case <-pc.p.done:
				t.Stop()
				return false
			}
			continue
		}
		select {
		case <-changed:
		case <-pc.p.done:
			return false
		}
	}
}
