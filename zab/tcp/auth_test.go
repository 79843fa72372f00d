package tcp

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/coord-dev/coord/zab"
	"github.com/stretchr/testify/require"
)

const (
	key1 = "0123456789abcdef-cluster-key-one"
	key2 = "0123456789abcdef-cluster-key-two"
)

// pipeHandshake runs both handshake sides over an in-memory pipe; with keys
// it also returns the dialer's sealer and the acceptor's opener.
func pipeHandshake(d, a handshaker, want zab.PeerID) (dialErr error, got zab.PeerID, acceptErr error, seal, open *frameAEAD) {
	cd, ca := net.Pipe()
	defer cd.Close()
	defer ca.Close()
	_ = cd.SetDeadline(time.Now().Add(wait))
	_ = ca.SetDeadline(time.Now().Add(wait))
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, open, acceptErr = a.accept(ca, ca)
		if acceptErr != nil {
			_ = ca.Close()
		}
	}()
	seal, dialErr = d.dial(cd, cd, want)
	if dialErr != nil {
		_ = cd.Close()
	}
	<-done
	return dialErr, got, acceptErr, seal, open
}

func hsr(id zab.PeerID, cluster, key string) handshaker {
	h := handshaker{id: id, cluster: cluster, rand: crand.Reader}
	if key != "" {
		h.key = []byte(key)
	}
	return h
}

func TestHandshake(t *testing.T) {
	cases := []struct {
		name         string
		d, a         handshaker
		want         zab.PeerID
		dialErr, acc error // nil: success expected
	}{
		{"same key", hsr(1, "c", key1), hsr(2, "c", key1), 2, nil, nil},
		{"no key", hsr(1, "c", ""), hsr(2, "c", ""), 2, nil, nil},
		{"wrong key", hsr(1, "c", key1), hsr(2, "c", key2), 2, ErrAuth, ErrRefused},
		{"dialer without key", hsr(1, "c", ""), hsr(2, "c", key1), 2, ErrRefused, ErrAuth},
		{"acceptor without key", hsr(1, "c", key1), hsr(2, "c", ""), 2, ErrRefused, ErrAuth},
		{"other cluster", hsr(1, "c", key1), hsr(2, "d", key1), 2, ErrRefused, ErrHandshake},
		{"dialed the wrong node", hsr(1, "c", key1), hsr(3, "c", key1), 2, ErrRefused, ErrHandshake},
		{"dialer claims acceptor's id", hsr(2, "c", key1), hsr(2, "c", key1), 2, ErrRefused, ErrDuplicateID}, // what ProbeSameID asks
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dErr, got, aErr, seal, open := pipeHandshake(c.d, c.a, c.want)
			if c.dialErr == nil {
				require.NoError(t, dErr)
				require.NoError(t, aErr)
				require.Equal(t, c.d.id, got)
				if c.d.key == nil {
					require.Nil(t, seal, "no key: frames in the clear")
					require.Nil(t, open)
					return
				}
				// Both ends derived the same fresh key for the dialer's
				// frames.
				frame := batchFrame(t, msg(1, 2, 7))
				sealed, err := seal.seal(frame)
				require.NoError(t, err)
				h, err := ParseHeader(sealed, 1<<20)
				require.NoError(t, err)
				pt, err := open.open(h, sealed[HeaderSize:])
				require.NoError(t, err)
				require.Equal(t, frame[HeaderSize:], pt)
				return
			}
			require.ErrorIs(t, dErr, c.dialErr)
			require.ErrorIs(t, aErr, c.acc)
		})
	}
}

// TestHandshakeReplayRefused: a recorded dialer transcript replayed against a
// fresh acceptor fails, because the acceptor's nonce is fresh.
func TestHandshakeReplayRefused(t *testing.T) {
	var rec bytes.Buffer
	d, a := hsr(1, "c", key1), hsr(2, "c", key1)
	cd, ca := net.Pipe()
	go func() { _, _, _ = a.accept(ca, ca); _ = ca.Close() }()
	_, err := d.dial(cd, io.MultiWriter(cd, &rec), 2)
	require.NoError(t, err)
	_ = cd.Close()

	// Replay the dialer's bytes (hello, auth) to a new acceptor.
	var out bytes.Buffer
	_, _, err = a.accept(bytes.NewReader(rec.Bytes()), &out)
	require.ErrorIs(t, err, ErrAuth)
}

func TestAuthRightKey(t *testing.T) {
	a, b := newTransport(t, 1, withKey(key1)), newTransport(t, 2, withKey(key1))
	connect(a, b)
	require.NoError(t, a.Send(msg(1, 2, 1)))
	require.NoError(t, b.Send(msg(2, 1, 2)))
	require.Equal(t, msg(1, 2, 1), recvN(t, b, 1, wait)[0])
	require.Equal(t, msg(2, 1, 2), recvN(t, a, 1, wait)[0])
}

// refusedBothWays checks that neither node delivers anything to the other,
// that both count handshake failures, and that both logs say why.
func refusedBothWays(t *testing.T, ka, kb, logA, logB string) {
	la, lb := &logBuf{}, &logBuf{}
	a := newTransport(t, 1, withKey(ka), withLog(la))
	b := newTransport(t, 2, withKey(kb), withLog(lb))
	connect(a, b)
	require.NoError(t, a.Send(msg(1, 2, 0)))
	require.NoError(t, b.Send(msg(2, 1, 0)))
	// Each dialer fails, each acceptor refuses: two failures per node.
	eventually(t, wait, func() bool {
		return a.Stats().HandshakeFailures >= 2 && b.Stats().HandshakeFailures >= 2
	}, "handshake failures: a=%d b=%d", a.Stats().HandshakeFailures, b.Stats().HandshakeFailures)
	require.Positive(t, a.Stats().AuthFailures, "authentication failures counted")
	require.Positive(t, b.Stats().AuthFailures, "authentication failures counted")
	eventually(t, wait, func() bool { return la.has(logA) && lb.has(logB) },
		"logs lack the reason:\nA: %s\nB: %s", la, lb)
	require.True(t, la.has("node=1"), "node id on log lines")
	require.True(t, lb.has("node=2"), "node id on log lines")
	noMessage(t, a)
	noMessage(t, b)
	// Dialers keep retrying, so handshakes may be in flight; none succeeds.
	require.Zero(t, a.Stats().AuthenticatedInbound)
	require.Zero(t, b.Stats().AuthenticatedInbound)
}

func TestAuthWrongKeyRefused(t *testing.T) {
	refusedBothWays(t, key1, key2, "did not prove the secret key", "did not prove the secret key")
}

func TestAuthMissingKeyRefused(t *testing.T) {
	refusedBothWays(t, key1, "", "has no secret key", "we have none")
}

// TestAuthForgedFromDropped: a node authenticated as 2 that sends messages
// claiming to be from 3 (or addressed to someone else) has them dropped;
// its genuine messages still arrive.
func TestAuthForgedFromDropped(t *testing.T) {
	lb := &logBuf{}
	a := newTransport(t, 2, withKey(key1))
	b := newTransport(t, 1, withKey(key1), withLog(lb))
	a.SetPeer(1, b.Addr().String())
	require.NoError(t, a.Send(zab.Message{Type: 1, From: 3, To: 1, Zxid: 1}))
	require.NoError(t, a.Send(zab.Message{Type: 1, From: 3, To: 1, Zxid: 2}))
	require.NoError(t, a.Send(zab.Message{Type: 1, From: 2, To: 1, Zxid: 3}))
	// Per-connection order: once the genuine one arrives, the forged ones
	// have been processed.
	got := recvN(t, b, 1, wait)
	require.Equal(t, zab.Message{Type: 1, From: 2, To: 1, Zxid: 3}, got[0])
	require.Equal(t, uint64(2), b.Stats().ForgedDrops)
	require.True(t, lb.has("wrong sender"))
	select {
	case m := <-b.Receive():
		t.Fatalf("unexpected message %+v", m)
	default:
	}
}

// rawClient opens a plain TCP connection to tr.
func rawClient(t *testing.T, tr *Transport) net.Conn {
	c, err := net.DialTimeout("tcp", tr.Addr().String(), wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	return c
}

// requireClosedByServer reads until the server closes the connection; a
// deadline error means it did not.
func requireClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not close the connection")
	}
}

// authedClient runs a genuine dialer handshake as id 2 over a raw connection.
func authedClient(t *testing.T, tr *Transport, key string) net.Conn {
	c := rawClient(t, tr)
	h := hsr(2, tr.cfg.Cluster, key)
	f, err := h.dial(c, c, tr.ID())
	require.NoError(t, err)
	return sealing(c, f)
}

// sealingConn is a hostile test client's connection after a genuine
// keyed handshake: every whole KindBatch frame in a Write is sealed as
// the Transport's writer would seal it; anything else (other kinds,
// headers the receiver refuses, truncated frames, garbage) goes out as it
// is, so that the receiver's checks before and after opening are reached.
type sealingConn struct {
	*net.TCPConn
	f *frameAEAD
}

// sealing wraps c when f is not nil (a keyed handshake).
func sealing(c net.Conn, f *frameAEAD) net.Conn {
	if f == nil {
		return c
	}
	return &sealingConn{TCPConn: c.(*net.TCPConn), f: f}
}

func (c *sealingConn) Write(b []byte) (int, error) {
	var out []byte
	rest := b
	for len(rest) >= HeaderSize {
		h, err := ParseHeader(rest, 1<<31)
		if err != nil || h.Kind != KindBatch || len(rest) < HeaderSize+int(h.Length) {
			break
		}
		n := HeaderSize + int(h.Length)
		sealed, err := c.f.seal(rest[:n])
		if err != nil {
			return 0, err
		}
		out = append(out, sealed...)
		rest = rest[n:]
	}
	if _, err := c.TCPConn.Write(append(out, rest...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// closeWrite half-closes a test client's connection.
func halfClose(t require.TestingT, c net.Conn) {
	require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
}

func batchFrame(t *testing.T, msgs ...zab.Message) []byte {
	frame, n, err := NewBatchEncoder(1 << 20).Encode(msgs)
	require.NoError(t, err)
	require.Equal(t, len(msgs), n)
	return append([]byte(nil), frame...)
}

// TestMaliciousPeers: a raw TCP client sending bytes that are not the
// protocol gets disconnected, with a logged reason, and nothing is delivered.
func TestMaliciousPeers(t *testing.T) {
	good := msg(2, 1, 1)
	before := []struct {
		name, log string
		send      []byte
	}{
		{"garbage", "bad frame magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"wrong version", "unsupported protocol version", header(9, KindHello, 0)},
		{"oversized hello", "frame too large", header(Version, KindHello, maxHandshakePayload+1)},
		{"truncated hello", "unexpected EOF", append(header(Version, KindHello, 100), 1, 2, 3)},
		{"batch before handshake", "got batch frame, want hello", batchFrame(t, good)},
		{"malformed hello", "malformed payload", append(header(Version, KindHello, 2), 0xc1, 0xc1)},
	}
	for _, c := range before {
		t.Run("unauthenticated/"+c.name, func(t *testing.T) {
			lb := &logBuf{}
			tr := newTransport(t, 1, withKey(key1), withLog(lb))
			conn := rawClient(t, tr)
			_, err := conn.Write(c.send)
			require.NoError(t, err)
			if c.name == "truncated hello" {
				halfClose(t, conn)
			}
			requireClosedByServer(t, conn)
			eventually(t, wait, func() bool { return lb.has(c.log) }, "log lacks %q:\n%s", c.log, lb)
			noMessage(t, tr)
		})
	}

	after := []struct {
		name, log string
		send      []byte
	}{
		{"oversized frame", "frame too large", header(Version, KindBatch, 1<<30)},
		{"wrong version", "unsupported protocol version", header(Version+1, KindBatch, 0)},
		{"unknown kind", "unknown frame kind", header(Version, 42, 0)},
		{"hello after handshake", "unexpected hello frame", header(Version, KindHello, 0)},
		{"malformed batch", "malformed payload", append(header(Version, KindBatch, 3), 0x91, 0xc1, 0xc1)},
		{"hostile array length", "truncated msgpack", append(header(Version, KindBatch, 5), 0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"empty batch", "empty batch", append(header(Version, KindBatch, 1), 0x90)},
		{"truncated batch", "unexpected EOF", batchFrame(t, good)[:12]},
		{"garbage after a good frame", "bad frame magic", append(batchFrame(t, good), "garbage!"...)},
	}
	for _, c := range after {
		t.Run("authenticated/"+c.name, func(t *testing.T) {
			lb := &logBuf{}
			tr := newTransport(t, 1, withKey(key1), withLog(lb))
			conn := authedClient(t, tr, key1)
			_, err := conn.Write(c.send)
			require.NoError(t, err)
			if c.name == "truncated batch" {
				halfClose(t, conn)
			}
			requireClosedByServer(t, conn)
			eventually(t, wait, func() bool { return lb.has(c.log) }, "log lacks %q:\n%s", c.log, lb)
			if c.name == "garbage after a good frame" {
				// The good frame before the garbage is delivered, nothing else.
				require.Equal(t, good, recvN(t, tr, 1, wait)[0])
				require.Empty(t, tr.Receive())
				require.Equal(t, uint64(1), tr.Stats().MessagesReceived)
				return
			}
			noMessage(t, tr)
			require.Equal(t, uint64(1), tr.Stats().BadFrames)
		})
	}
}

// TestUnauthenticatedClaimOfVoterID: a client without the key claiming to be
// voter 2 gets nothing processed, even if it sends batches right after its
// hello without waiting for answers.
func TestUnauthenticatedClaimOfVoterID(t *testing.T) {
	tr := newTransport(t, 1, withKey(key1))
	conn := rawClient(t, tr)
	hi := hello{Cluster: tr.cfg.Cluster, From: 2, To: 1, Nonce: make([]byte, nonceSize), Auth: true}
	b, err := AppendFrame(nil, KindHello, &hi)
	require.NoError(t, err)
	b, err = AppendFrame(b, KindAuth, &authProof{MAC: make([]byte, 32)})
	require.NoError(t, err)
	b = append(b, batchFrame(t, msg(2, 1, 1))...)
	_, err = conn.Write(b)
	require.NoError(t, err)
	requireClosedByServer(t, conn)
	eventually(t, wait, func() bool { return tr.Stats().HandshakeFailures == 1 }, "handshake failure not counted")
	require.Equal(t, uint64(1), tr.Stats().AuthFailures, "a forged MAC is an authentication failure")
	noMessage(t, tr)
}

// TestHandshakeTimeout: a client that connects and says nothing is dropped
// after HandshakeTimeout.
func TestHandshakeTimeout(t *testing.T) {
	tr := newTransport(t, 1, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	conn := rawClient(t, tr)
	requireClosedByServer(t, conn)
	require.Equal(t, uint64(1), tr.Stats().HandshakeFailures)
	require.Zero(t, tr.Stats().AuthFailures, "silence is no authentication failure")
}

// TestPendingHandshakeLimit: connections beyond MaxPendingHandshakes are
// closed at once, and the slots free up again.
func TestPendingHandshakeLimit(t *testing.T) {
	tr := newTransport(t, 1, func(c *Config) { c.MaxPendingHandshakes = 2; c.HandshakeTimeout = wait })
	c1, c2 := rawClient(t, tr), rawClient(t, tr)
	eventually(t, wait, func() bool { return tr.Stats().InboundConns == 2 }, "two pending connections")
	c3 := rawClient(t, tr)
	requireClosedByServer(t, c3)
	_ = c1.Close()
	_ = c2.Close()
	eventually(t, wait, func() bool { return tr.Stats().InboundConns == 0 }, "slots not freed")
	peer := newTransport(t, 2)
	peer.SetPeer(1, tr.Addr().String())
	require.NoError(t, peer.Send(msg(2, 1, 5)))
	require.Equal(t, msg(2, 1, 5), recvN(t, tr, 1, wait)[0])
}

// TestIdleHandshakesFromOneHostDoNotBlockPeers: 64 unauthenticated idle
// connections from one host (127.0.0.2) take at most
// MaxPendingHandshakesPerHost slots, so a real peer (from 127.0.0.1) still
// connects at once (issue 10 item 7). Before, they filled every slot for
// HandshakeTimeout, again and again, and the peer's reconnects were closed.
func TestIdleHandshakesFromOneHostDoNotBlockPeers(t *testing.T) {
	tr := newTransport(t, 1, func(c *Config) { c.HandshakeTimeout = time.Minute })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: wait}
	for range 64 {
		c, err := d.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	eventually(t, wait, func() bool { st := tr.Stats(); return uint64(st.InboundConns)+st.HandshakeFailures == 64 },
		"the idle connections were not all taken in")
	peer := newTransport(t, 2)
	peer.SetPeer(1, tr.Addr().String())
	require.NoError(t, peer.Send(msg(2, 1, 5)))
	require.Equal(t, msg(2, 1, 5), recvN(t, tr, 1, wait)[0], "the peer could not connect")
	require.Equal(t, 8+1, tr.Stats().InboundConns, "one host holds at most MaxPendingHandshakesPerHost slots")
}

// TestDuplicateLiveIDRefused: a second live process with a peer's id (two
// nodes configured with one id) is refused at the handshake while the
// first one's connection is live, and the refusal says why on both sides
// (issue 10 item 4: "two live nodes with the same id both vote"). Before,
// its connection replaced the first one's and both sent as that id. Once
// the first process is gone, the second connects (a restart).
func TestDuplicateLiveIDRefused(t *testing.T) {
	var logA, logB logBuf
	a := newTransport(t, 1, withLog(&logA), func(c *Config) { c.HandshakeTimeout = 5 * time.Second })
	b1 := newTransport(t, 2)
	b1.SetPeer(1, a.Addr().String())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // b1 keeps its connection live, as a follower's acks do
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = b1.Send(msg(2, 1, i))
			}
		}
	}()
	defer func() { close(stop); <-done }()
	m := recvN(t, a, 1, wait)[0]
	require.Equal(t, zab.PeerID(2), m.From)

	b2 := newTransport(t, 2, withLog(&logB))
	b2.SetPeer(1, a.Addr().String())
	sendRetry(t, b2, zab.Message{From: 2, To: 1, Type: zab.MsgPing, Seq: 1 << 40}, wait)
	eventually(t, wait, func() bool { return a.Stats().DuplicateIDs > 0 }, "the second process was not refused")
	// The refusal is counted before it is logged.
	eventually(t, wait, func() bool { return logA.has("another live node uses this id") }, "acceptor log: %s", logA.String())
	eventually(t, wait, func() bool { return logB.has("another live node uses this id") }, "dialer log: %s", logB.String())
	// Nothing of b2 got through while b1 is live.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case m := <-a.Receive():
			require.NotEqual(t, uint64(1<<40), m.Seq, "the duplicate's message was delivered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The first process goes away: the second one is a restart now.
	close(stop)
	<-done
	stop, done = make(chan struct{}), make(chan struct{})
	close(done)
	require.NoError(t, b1.Close())
	require.Eventually(t, func() bool {
		_ = b2.Send(zab.Message{From: 2, To: 1, Type: zab.MsgPing, Seq: 1<<40 + 1})
		for {
			select {
			case m := <-a.Receive():
				if m.Seq >= 1<<40 {
					return true
				}
			default:
				return false
			}
		}
	}, wait, 20*time.Millisecond, "the restarted process never connected")
}

// TestRestartAcceptedWhileOldReaderLags: a process killed and started again
// at once is not a duplicate of itself. The acceptor's reader of the old
// connection is still blocked delivering (its receive channel full, as on
// a loaded machine where the driver is behind) so it has not seen the
// old connection end, and it heard the old process moments ago. The new
// process is admitted, whether the reader catches up while admit watches
// or only after (nothing arrives on the old connection after the new
// hello), and its messages follow once the channel drains. Before, it was
// refused as a live duplicate and a restarted coord node failed its Join
// (TestChaos at load 46).
func TestRestartAcceptedWhileOldReaderLags(t *testing.T) {
	for _, tc := range []struct {
		name string
		lag  time.Duration // before the receive channel is drained
	}{
		{"reader catches up during the watch", 0},
		{"reader still behind after the watch", 2 * admitWatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTransport(t, 1, func(c *Config) { c.RecvBufferSize = 2 })
			b1 := newTransport(t, 2)
			b1.SetPeer(1, a.Addr().String())
			for i := range 8 { // more than the channel holds: the reader blocks
				sendRetry(t, b1, msg(2, 1, i), wait)
			}
			eventually(t, wait, func() bool { return len(a.Receive()) == cap(a.Receive()) }, "the receive channel never filled")
			require.NoError(t, b1.Close()) // killed: its socket closes

			b2 := newTransport(t, 2, func(c *Config) { c.HandshakeTimeout = 4 * admitWatch })
			b2.SetPeer(1, a.Addr().String())
			const restarted = 1 << 40
			sendRetry(t, b2, zab.Message{From: 2, To: 1, Type: zab.MsgPing, Seq: restarted}, wait)
			time.Sleep(tc.lag) // the driver is behind this long: not a synchronisation
			require.Eventually(t, func() bool {
				for {
					select {
					case m := <-a.Receive():
						if m.Seq == restarted {
							return true
						}
					default:
						return false
					}
				}
			}, wait, 20*time.Millisecond, "the restarted process never got through")
			require.Zero(t, a.Stats().DuplicateIDs, "the restart was refused as a duplicate")
		})
	}
}
