package faultproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The tests' dialers say who they are in a 4-byte prefix "n%03d", which the
// proxy peeks at and forwards like every other byte.
func identify(r *bufio.Reader) (int, error) {
	b, err := r.Peek(4)
	if err != nil {
		return Unknown, err
	}
	if b[0] != 'n' {
		return Unknown, fmt.Errorf("bad prefix %q", b)
	}
	return strconv.Atoi(string(b[1:]))
}

// server accepts connections and hands each to the test.
type server struct {
	ln    net.Listener
	conns chan net.Conn
}

func newServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-s.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return s
}

func (s *server) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached the server")
		return nil
	}
}

// setup returns a proxy for node 2 in front of a server.
func setup(t *testing.T, cfg Config) (*Proxy, *server, string) {
	t.Helper()
	if cfg.Identify == nil {
		cfg.Identify = identify
	}
	cfg.Logf = t.Logf
	p := New(cfg)
	t.Cleanup(func() { p.Close() })
	s := newServer(t)
	addr, err := p.Listen(2, "127.0.0.1:0", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return p, s, addr
}

// dial connects to addr as node from and sends its prefix.
func dial(t *testing.T, addr string, from int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "n%03d", from); err != nil {
		t.Fatal(err)
	}
	return c
}

// expect reads exactly want from c within d.
func expect(t *testing.T, c net.Conn, want string, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, len(want))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %q: %v (got %q)", want, err, b)
	}
	if string(b) != want {
		t.Fatalf("read %q, want %q", b, want)
	}
}

// silent checks that nothing arrives on c for d.
func silent(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, 1)
	n, err := c.Read(b)
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("expected silence for %v, got %q, %v", d, b[:n], err)
	}
}

// closedSoon checks that c is closed (EOF or reset) within d.
func closedSoon(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func TestForwardBothWaysAndHalfClose(t *testing.T) {
	p, s, addr := setup(t, Config{})
	c := dial(t, addr, 1)
	sc := s.accept(t)
	expect(t, sc, "n001", 5*time.Second) // the prefix is forwarded
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	expect(t, sc, "hello", 5*time.Second)
	sc.Write([]byte("world"))
	expect(t, c, "world", 5*time.Second)

	// A half-close passes through; the other direction stays open.
	c.(*net.TCPConn).CloseWrite()
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := sc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("server read after half-close: %d, %v", n, err)
	}
	sc.Write([]byte("bye"))
	expect(t, c, "bye", 5*time.Second)
	if st := p.Stats(); st.Accepted != 1 || st.Live != 1 || st.Bytes < 17 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCutResetsAndRefusesUntilHeal(t *testing.T) {
	p, s, addr := setup(t, Config{})
	c1 := dial(t, addr, 1)
	sc1 := s.accept(t)
	expect(t, sc1, "n001", 5*time.Second)
	c3 := dial(t, addr, 3)
	sc3 := s.accept(t)
	expect(t, sc3, "n003", 5*time.Second)

	p.Cut(2, 1) // either order names the pair
	closedSoon(t, c1, 5*time.Second)
	closedSoon(t, sc1, 5*time.Second)
	// Node 3's link is untouched.
	c3.Write([]byte("x"))
	expect(t, sc3, "x", 5*time.Second)

	// A new connection from 1 is refused and never reaches the server.
	c1b := dial(t, addr, 1)
	closedSoon(t, c1b, 5*time.Second)
	select {
	case <-s.conns:
		t.Fatal("a connection over a cut link reached the server")
	case <-time.After(100 * time.Millisecond):
	}

	p.Heal(1, 2)
	c1c := dial(t, addr, 1)
	sc1c := s.accept(t)
	c1c.Write([]byte("again"))
	expect(t, sc1c, "n001again", 5*time.Second)
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v, want 1 refused", st)
	}
}

func TestStallOneWayHoldsBytesUntilHeal(t *testing.T) {
	p, s, addr := setup(t, Config{})
	c := dial(t, addr, 1)
	sc := s.accept(t)
	expect(t, sc, "n001", 5*time.Second)

	p.Stall(1, 2)
	c.Write([]byte("held"))
	silent(t, sc, 300*time.Millisecond)
	sc.Write([]byte("other way"))
	expect(t, c, "other way", 5*time.Second)
	p.Heal(1, 2)
	expect(t, sc, "held", 5*time.Second) // delivered, in order, not lost

	p.Stall(2, 1)
	sc.Write([]byte("back"))
	silent(t, c, 300*time.Millisecond)
	c.Write([]byte("forth"))
	expect(t, sc, "forth", 5*time.Second)
	p.HealAll()
	expect(t, c, "back", 5*time.Second)

	// A connection made during a stall cannot get its bytes through either.
	p.Stall(1, 2)
	c2 := dial(t, addr, 1)
	sc2 := s.accept(t) // the proxy dials; only the bytes are held
	silent(t, sc2, 300*time.Millisecond)
	p.Heal(2, 1)
	expect(t, sc2, "n001", 5*time.Second)
	_ = c2
}

func TestDelay(t *testing.T) {
	p, s, addr := setup(t, Config{})
	c := dial(t, addr, 1)
	sc := s.accept(t)
	expect(t, sc, "n001", 5*time.Second)

	const d = 200 * time.Millisecond
	p.Delay(1, 2, d)
	for i := range 3 {
		start := time.Now()
		c.Write([]byte{'a' + byte(i)})
		expect(t, sc, string(rune('a'+i)), 5*time.Second)
		if got := time.Since(start); got < d {
			t.Fatalf("chunk %d arrived after %v, want at least %v", i, got, d)
		}
	}
	// Chunks in flight keep their order.
	c.Write([]byte("1"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("2"))
	expect(t, sc, "12", 5*time.Second)
	p.Delay(1, 2, 0)
	start := time.Now()
	c.Write([]byte("z"))
	expect(t, sc, "z", 5*time.Second)
	t.Logf("undelayed round: %v", time.Since(start))
}

func TestBounded(t *testing.T) {
	p, s, addr := setup(t, Config{MaxConns: 2, ChunkSize: 1024, BufferChunks: 4})
	dial(t, addr, 1)
	expect(t, s.accept(t), "n001", 5*time.Second)
	c3 := dial(t, addr, 3)
	sc3 := s.accept(t)
	expect(t, sc3, "n003", 5*time.Second)
	// The third is reset, maybe before its prefix is even written.
	if over, err := net.Dial("tcp", addr); err == nil {
		fmt.Fprintf(over, "n004")
		closedSoon(t, over, 5*time.Second)
		over.Close()
	}

	// A stalled direction stops reading: the sender blocks once the
	// kernel's buffers and the proxy's 4 KiB are full.
	p.Stall(3, 2)
	buf := bytes.Repeat([]byte("x"), 1<<20)
	c3.SetWriteDeadline(time.Now().Add(2 * time.Second))
	written := 0
	var err error
	for written < 256<<20 && err == nil {
		var n int
		n, err = c3.Write(buf)
		written += n
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("wrote %d bytes into a stalled link, err %v; want a write timeout", written, err)
	}
	t.Logf("a stalled link took %d KiB before the sender blocked", written>>10)
	if st := p.Stats(); st.Refused != 1 || st.Live != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLoopbackOnly(t *testing.T) {
	p := New(Config{})
	defer p.Close()
	for _, tc := range []struct{ addr, target string }{
		{"0.0.0.0:0", "127.0.0.1:1"},
		{"127.0.0.1:0", "10.0.0.1:1"},
		{"127.0.0.1:0", "localhost:1"},
		{"192.168.1.1:0", "127.0.0.1:1"},
	} {
		if _, err := p.Listen(1, tc.addr, tc.target); err == nil {
			t.Errorf("Listen(%s -> %s) accepted", tc.addr, tc.target)
		}
	}
}

func TestUnidentifiedDialer(t *testing.T) {
	p, s, addr := setup(t, Config{IdentifyTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No prefix within the timeout: the dialer is Unknown, still proxied.
	sc := s.accept(t)
	c.Write([]byte("late"))
	expect(t, sc, "late", 5*time.Second)
	p.Stall(Unknown, 2)
	c.Write([]byte("x"))
	silent(t, sc, 200*time.Millisecond)
	if st := p.Stats(); st.Unidentified != 1 {
		t.Fatalf("stats %+v, want 1 unidentified", st)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(Config{Identify: identify})
	s := newServer(t)
	addr, err := p.Listen(2, "127.0.0.1:0", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := range 3 {
		c := dial(t, addr, i+3)
		conns = append(conns, c)
		s.accept(t)
	}
	p.Stall(3, 2)
	p.Delay(4, 2, time.Hour)
	conns[0].Write([]byte("held"))
	conns[1].Write([]byte("late"))
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	for _, c := range conns {
		closedSoon(t, c, 5*time.Second)
	}
	if _, err := p.Listen(2, "127.0.0.1:0", s.ln.Addr().String()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Listen after Close: %v", err)
	}
	p.Close() // idempotent
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) { // the server's accept loop and tcp poller
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		fmt.Fprintf(os.Stderr, "%s", buf[:runtime.Stack(buf, true)])
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

// TestTapSeesEveryByteWithItsLink: Tap is handed what crosses each
// direction, labelled with the link, before the destination reads it.
func TestTapSeesEveryByteWithItsLink(t *testing.T) {
	var mu sync.Mutex
	seen := map[[2]int][]byte{}
	_, s, addr := setup(t, Config{Tap: func(from, to int, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		k := [2]int{from, to}
		seen[k] = append(seen[k], b...)
	}})
	c := dial(t, addr, 1)
	sc := s.accept(t)
	if _, err := c.Write([]byte("up")); err != nil {
		t.Fatal(err)
	}
	expect(t, sc, "n001up", 5*time.Second)
	sc.Write([]byte("down"))
	expect(t, c, "down", 5*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if got := string(seen[[2]int{1, 2}]); got != "n001up" {
		t.Fatalf("tapped 1→2 %q", got)
	}
	if got := string(seen[[2]int{2, 1}]); got != "down" {
		t.Fatalf("tapped 2→1 %q", got)
	}
}
