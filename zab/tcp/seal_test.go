package tcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// TestKeysAreSeparate: the handshake key, the two directions' frame keys
// and the frame keys of two connections (fresh nonces) all differ, and
// none is the secret itself.
func TestKeysAreSeparate(t *testing.T) {
	secret := []byte(key1)
	nd, na := bytes.Repeat([]byte{1}, nonceSize), bytes.Repeat([]byte{2}, nonceSize)
	nd2 := bytes.Repeat([]byte{3}, nonceSize)
	keys := map[string][]byte{
		"secret":              secret,
		"handshake":           handshakeKey(secret),
		"dialer frames":       frameKey(secret, dirDialer, "c", 1, 2, nd, na),
		"acceptor frames":     frameKey(secret, dirAcceptor, "c", 1, 2, nd, na),
		"next connection":     frameKey(secret, dirDialer, "c", 1, 2, nd2, na),
		"other pair":          frameKey(secret, dirDialer, "c", 1, 3, nd, na),
		"other cluster":       frameKey(secret, dirDialer, "d", 1, 2, nd, na),
		"other secret frames": frameKey([]byte(key2), dirDialer, "c", 1, 2, nd, na),
	}
	seen := map[string]string{}
	for name, k := range keys {
		if other, dup := seen[string(k)]; dup {
			t.Fatalf("%s and %s share a key", name, other)
		}
		seen[string(k)] = name
	}
	require.Equal(t, frameKey(secret, dirDialer, "c", 1, 2, nd, na), keys["dialer frames"], "both ends derive one key")
}

// sealedPair returns a sealer and an opener of one direction of one
// connection, from a real keyed handshake.
func sealedPair(t *testing.T) (seal, open *frameAEAD) {
	dErr, _, aErr, seal, open := pipeHandshake(hsr(1, "c", key1), hsr(2, "c", key1), 2)
	require.NoError(t, dErr)
	require.NoError(t, aErr)
	require.NotNil(t, seal)
	require.NotNil(t, open)
	return seal, open
}

// openFrame parses a sealed frame's header and opens it.
func openFrame(o *frameAEAD, frame []byte) ([]byte, error) {
	h, err := ParseHeader(frame, 1<<20)
	if err != nil {
		return nil, err
	}
	return o.open(h, frame[HeaderSize:])
}

// TestOpenRefuses: the opener refuses every frame that is not the next one
// the sealer sealed, untouched.
func TestOpenRefuses(t *testing.T) {
	frames := func(s *frameAEAD) [][]byte {
		var out [][]byte
		for i := range 3 {
			f, err := s.seal(batchFrame(t, msg(1, 2, i+1)))
			require.NoError(t, err)
			out = append(out, bytes.Clone(f))
		}
		return out
	}
	cases := []struct {
		name string
		// send returns the frames in the order they reach the opener; the
		// last one must fail, all before it open.
		send func(f [][]byte) [][]byte
	}{
		{"flipped payload bit", func(f [][]byte) [][]byte { f[0][HeaderSize+3] ^= 1; return f[:1] }},
		{"flipped tag bit", func(f [][]byte) [][]byte { f[0][len(f[0])-1] ^= 0x80; return f[:1] }},
		{"header changed to another kind", func(f [][]byte) [][]byte { f[0][3] = byte(KindBatch); return f[:1] }},
		{"cut short", func(f [][]byte) [][]byte {
			g := f[0][:len(f[0])-5]
			PutHeader(g, Header{Version: Version, Kind: KindSealed, Length: uint32(len(g) - HeaderSize)})
			return [][]byte{g}
		}},
		{"shorter than the tag", func(f [][]byte) [][]byte { return [][]byte{append(header(Version, KindSealed, 4), 1, 2, 3, 4)} }},
		{"replayed", func(f [][]byte) [][]byte { return [][]byte{f[0], bytes.Clone(f[0])} }},
		{"reordered", func(f [][]byte) [][]byte { return [][]byte{f[1]} }},
		{"dropped", func(f [][]byte) [][]byte { return [][]byte{f[0], f[2]} }},
		{"plain batch", func(f [][]byte) [][]byte { return [][]byte{batchFrame(t, msg(1, 2, 1))} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, o := sealedPair(t)
			got := c.send(frames(s))
			for i, f := range got {
				_, err := openFrame(o, f)
				if i < len(got)-1 {
					require.NoError(t, err, "frame %d", i)
					continue
				}
				require.ErrorIs(t, err, ErrOpen)
			}
		})
	}
	// The untouched stream opens, in order.
	s, o := sealedPair(t)
	for i, f := range frames(s) {
		pt, err := openFrame(o, f)
		require.NoError(t, err)
		msgs, err := DecodeBatch(pt)
		require.NoError(t, err)
		require.Equal(t, []zab.Message{msg(1, 2, i+1)}, msgs)
	}
}

// TestTamperedFrameClosesConnection: on a real Transport, a sealed frame
// that was tampered with, replayed or reordered closes the connection, is
// counted as an authentication failure and delivers nothing; the frames
// before it are delivered.
func TestTamperedFrameClosesConnection(t *testing.T) {
	cases := []struct {
		name      string
		delivered int
		build     func(s *frameAEAD) []byte
	}{
		{"tampered", 0, func(s *frameAEAD) []byte {
			f := sealOne(t, s, 1)
			f[HeaderSize] ^= 0x40
			return f
		}},
		{"replayed", 1, func(s *frameAEAD) []byte {
			f := sealOne(t, s, 1)
			return append(f, f...)
		}},
		{"reordered", 0, func(s *frameAEAD) []byte {
			f1, f2 := sealOne(t, s, 1), sealOne(t, s, 2)
			return append(f2, f1...)
		}},
		{"plain batch", 0, func(*frameAEAD) []byte { return batchFrame(t, msg(2, 1, 1)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lb := &logBuf{}
			tr := newTransport(t, 1, withKey(key1), withLog(lb))
			conn := rawClient(t, tr)
			h := hsr(2, tr.cfg.Cluster, key1)
			s, err := h.dial(conn, conn, tr.ID())
			require.NoError(t, err)
			_, err = conn.Write(c.build(s))
			require.NoError(t, err)
			requireClosedByServer(t, conn)
			eventually(t, wait, func() bool { return tr.Stats().AuthFailures == 1 }, "open failure not counted:\n%s", lb)
			if c.delivered > 0 {
				require.Len(t, recvN(t, tr, c.delivered, wait), c.delivered)
				require.Empty(t, tr.Receive())
			} else {
				noMessage(t, tr)
			}
			st := tr.Stats()
			require.Equal(t, uint64(c.delivered), st.MessagesReceived)
			require.Equal(t, uint64(1), st.BadFrames)
			require.Zero(t, st.HandshakeFailures, "the handshake itself passed")
			require.True(t, lb.has("sealed frame failed authentication"), "log lacks the reason:\n%s", lb)
		})
	}
}

func sealOne(t *testing.T, s *frameAEAD, seq int) []byte {
	f, err := s.seal(batchFrame(t, msg(2, 1, seq)))
	require.NoError(t, err)
	return bytes.Clone(f)
}

// TestSealedFramesBetweenTransports: two keyed transports exchange
// messages up to the largest that fits (MaxFrameSize less the tag), and a
// message too large for a sealed frame is dropped by the sender, not sent
// as a frame the receiver would refuse.
func TestSealedFramesBetweenTransports(t *testing.T) {
	small := func(c *Config) { c.MaxFrameSize = 4096 }
	a, b := newTransport(t, 1, withKey(key1), small), newTransport(t, 2, withKey(key1), small)
	connect(a, b)
	big := msg(1, 2, 1)
	// Grow the message to exactly the sealed limit.
	for {
		big.Entries = []zab.Entry{{Zxid: 1, Data: make([]byte, len(dataOf(big))+1)}}
		f, _, err := NewBatchEncoder(4096 - SealOverhead).Encode([]zab.Message{big})
		if err != nil {
			big.Entries[0].Data = big.Entries[0].Data[:len(big.Entries[0].Data)-1]
			break
		}
		require.LessOrEqual(t, len(f)-HeaderSize, 4096-SealOverhead)
	}
	require.NoError(t, a.Send(big))
	got := recvN(t, b, 1, wait)[0]
	require.Len(t, got.Entries[0].Data, len(big.Entries[0].Data))
	tooBig := big
	tooBig.Entries = []zab.Entry{{Zxid: 1, Data: make([]byte, len(big.Entries[0].Data)+1)}}
	require.NoError(t, a.Send(tooBig))
	eventually(t, wait, func() bool { return a.Stats().SendDrops == 1 }, "oversized message not dropped")
	require.NoError(t, a.Send(msg(1, 2, 3)))
	require.Equal(t, msg(1, 2, 3), recvN(t, b, 1, wait)[0])
	require.Zero(t, b.Stats().BadFrames)
	require.Zero(t, b.Stats().AuthFailures)
}

func dataOf(m zab.Message) []byte {
	if len(m.Entries) == 0 {
		return nil
	}
	return m.Entries[0].Data
}

// FuzzOpenFrame feeds arbitrary frames to the opener of a real session:
// nothing panics, and nothing opens (forging a GCM tag by fuzzing would be
// a break of AES-GCM), except the genuine seed frame in its place.
func FuzzOpenFrame(f *testing.F) {
	seal, _ := fuzzSession(f)
	good, err := seal.seal(append(header(Version, KindBatch, 1), 0x90))
	require.NoError(f, err)
	f.Add(bytes.Clone(good))
	f.Add(append(header(Version, KindSealed, 3), 1, 2, 3))
	f.Add(header(Version, KindSealed, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, open := fuzzSession(t)
		h, err := ParseHeader(data, fuzzMaxPayload)
		if err != nil || len(data) != HeaderSize+int(h.Length) {
			return
		}
		pt, err := open.open(h, bytes.Clone(data[HeaderSize:]))
		if err == nil && !bytes.Equal(data, good) {
			t.Fatalf("opened a frame that was not sealed by the peer: % x", pt)
		}
	})
}

// fuzzSession returns a fixed session (deterministic nonces), so the seed
// frame opens at the start of every fuzz iteration.
func fuzzSession(t testing.TB) (seal, open *frameAEAD) {
	secret := []byte(key1)
	nd, na := make([]byte, nonceSize), make([]byte, nonceSize)
	k := frameKey(secret, dirDialer, "coord", 2, 1, nd, na)
	s, err := newFrameAEAD(k)
	require.NoError(t, err)
	o, err := newFrameAEAD(k)
	require.NoError(t, err)
	return s, o
}

var _ net.Conn = (*sealingConn)(nil)
