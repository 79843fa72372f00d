package tcp

import (
	"bytes"
	"testing"

	"github.com/coord-dev/coord/zab"
	"github.com/vmihailenco/msgpack/v5"
)

// Every decoder of bytes from the network has a fuzz target here. CI runs
// each for about 10 s; they are in-memory and allocation-bounded.

const fuzzMaxPayload = 1 << 16

func fuzzSeeds(f *testing.F) {
	enc := NewBatchEncoder(fuzzMaxPayload)
	frame, _, err := enc.Encode(sampleMessages(5))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), frame...))
	// A snapshot stream: chunk, acknowledgement, wait.
	frame, _, err = enc.Encode([]zab.Message{
		{Type: zab.MsgSnapChunk, From: 1, To: 2, Epoch: 3, Seq: 4, Prev: zab.NewZxid(3, 9), Offset: 5, Total: 8, Snap: []byte("abc")},
		{Type: zab.MsgSnapAck, From: 2, To: 1, Epoch: 3, Seq: 4, Prev: zab.NewZxid(3, 9), Offset: 8},
		{Type: zab.MsgSnapWait, From: 1, To: 2, Epoch: 3, Seq: 5},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), frame...))
	for _, v := range []struct {
		k Kind
		v any
	}{
		{KindHello, &hello{Cluster: "coord", From: 2, To: 1, Nonce: make([]byte, nonceSize), Auth: true}},
		{KindWelcome, &welcome{From: 1, Nonce: make([]byte, nonceSize), Auth: true, MAC: make([]byte, 32)}},
		{KindAuth, &authProof{MAC: make([]byte, 32)}},
		{KindAccept, nil},
		{KindRefuse, &refusal{Reason: "no"}},
	} {
		b, err := AppendFrame(nil, v.k, v.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(header(Version, KindBatch, 5))
	f.Add(append(header(Version, KindBatch, 5), 0xdd, 0xff, 0xff, 0xff, 0xff))
	f.Add(append(header(Version, KindBatch, 9), 0x91, 0x81, 0xa1, 'n', 0xdd, 0xff, 0xff, 0xff, 0xff))
}

// roundTrip checks that a decoded batch re-encodes to a fixed point: what we
// deliver is exactly what we would send.
func roundTrip(t *testing.T, msgs []zab.Message) {
	// Big batches are valid but slow to re-encode; the property does not
	// depend on the count, and the fuzzer's budget is better spent elsewhere.
	if len(msgs) > 256 {
		return
	}
	enc := NewBatchEncoder(1 << 26)
	b1, n, err := enc.Encode(msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("re-encode: n=%d of %d, err=%v", n, len(msgs), err)
	}
	b1 = append([]byte(nil), b1...)
	again, err := DecodeBatch(b1[HeaderSize:])
	if err != nil {
		t.Fatalf("decode of our own encoding: %v", err)
	}
	b2, _, err := enc.Encode(again)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("encoding is not a fixed point (err=%v)", err)
	}
	// What the writer sends in the clear: the same bytes, in pieces.
	vec, size, n, err := enc.EncodeBuffers(msgs)
	if err != nil || n != len(msgs) || size != len(b1) || !bytes.Equal(bytes.Join(vec, nil), b1) {
		t.Fatalf("EncodeBuffers differs from Encode: n=%d size=%d of %d, err=%v", n, size, len(b1), err)
	}
}

// FuzzDecodeFrame feeds a byte stream to the frame reader and every payload
// decoder, as a connection reader would.
func FuzzDecodeFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var buf []byte
		for {
			h, payload, err := ReadFrame(r, fuzzMaxPayload, buf)
			if err != nil {
				return
			}
			buf = payload
			if len(payload) > fuzzMaxPayload {
				t.Fatalf("payload of %d bytes above the limit", len(payload))
			}
			switch h.Kind {
			case KindBatch:
				if msgs, err := DecodeBatch(payload); err == nil {
					roundTrip(t, msgs)
				}
			case KindHello:
				_ = DecodePayload(payload, &hello{})
			case KindWelcome:
				_ = DecodePayload(payload, &welcome{})
			case KindAuth:
				_ = DecodePayload(payload, &authProof{})
			case KindRefuse:
				_ = DecodePayload(payload, &refusal{})
			}
		}
	})
}

// FuzzDecodeBatch fuzzes the batch payload decoder directly.
func FuzzDecodeBatch(f *testing.F) {
	for _, n := range []int{1, 3, 20} {
		b, _ := msgpack.Marshal(sampleMessages(n))
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x91, 0x81, 0xa1, 'n', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x91, 0x81, 0xa1, 'n', 0x91, 0x81, 0xa1, 'd', 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		msgs, err := DecodeBatch(payload)
		if err != nil {
			if msgs != nil {
				t.Fatal("messages returned with an error")
			}
			return
		}
		if len(msgs) == 0 || len(msgs) > MaxMessagesPerFrame {
			t.Fatalf("%d messages accepted", len(msgs))
		}
		roundTrip(t, msgs)
	})
}

// FuzzCheckMsgpack checks the structural pre-check against the msgpack
// library: whatever the pre-check accepts, the library can skip exactly.
func FuzzCheckMsgpack(f *testing.F) {
	b, _ := msgpack.Marshal(map[string]any{"a": []any{1, "x", []byte{1}, 1.5, nil, true, map[string]any{}}})
	f.Add(b)
	f.Add([]byte{0xc7, 2, 1, 0, 0})
	f.Add([]byte{0xdd, 0, 0, 0, 2, 0xc0, 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkMsgpack(data) != nil {
			return
		}
		r := bytes.NewReader(data)
		dec := msgpack.NewDecoder(r)
		if err := dec.Skip(); err != nil {
			t.Fatalf("pre-check accepted what msgpack cannot skip: %v", err)
		}
		if r.Len() != 0 {
			t.Fatalf("pre-check and msgpack disagree on the value's end (%d bytes left)", r.Len())
		}
	})
}

// zeroReader is a deterministic nonce source for handshake fuzzing.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// FuzzHandshakeAccept feeds arbitrary bytes to the acceptor side of the
// handshake, with and without a key.
func FuzzHandshakeAccept(f *testing.F) {
	fuzzSeeds(f)
	hi, _ := AppendFrame(nil, KindHello, &hello{Cluster: "coord", From: 2, To: 1, Nonce: make([]byte, nonceSize)})
	au, _ := AppendFrame(nil, KindAuth, &authProof{})
	f.Add(append(hi, au...))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, key := range [][]byte{nil, []byte(key1)} {
			h := handshaker{id: 1, cluster: "coord", key: key, rand: zeroReader{}}
			id, _, err := h.accept(bytes.NewReader(data), &bytes.Buffer{})
			if err == nil && (id == 0 || id == 1) {
				t.Fatalf("accepted invalid dialer id %d", id)
			}
			if err == nil && key != nil {
				// Forging a MAC by fuzzing would be a break of HMAC-SHA256.
				t.Fatal("accepted a keyed handshake from fuzz input")
			}
		}
	})
}

// FuzzHandshakeDial feeds arbitrary acceptor answers to the dialer side.
func FuzzHandshakeDial(f *testing.F) {
	fuzzSeeds(f)
	wl, _ := AppendFrame(nil, KindWelcome, &welcome{From: 2, Nonce: make([]byte, nonceSize)})
	ac, _ := AppendFrame(nil, KindAccept, nil)
	f.Add(append(wl, ac...))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, key := range [][]byte{nil, []byte(key1)} {
			h := handshaker{id: 1, cluster: "coord", key: key, rand: zeroReader{}}
			_, err := h.dial(bytes.NewReader(data), &bytes.Buffer{}, 2)
			if err == nil && key != nil {
				t.Fatal("dialer accepted a keyed handshake from fuzz input")
			}
		}
	})
}
