package tcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/coord-dev/coord/zab"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func sampleMessages(n int) []zab.Message {
	msgs := make([]zab.Message, n)
	for i := range msgs {
		msgs[i] = zab.Message{
			Type:  zab.MsgType(i%7 + 1),
			From:  1,
			To:    2,
			Epoch: uint32(i),
			Zxid:  zab.NewZxid(3, uint32(i)),
		}
		if i%3 == 0 {
			msgs[i].Entries = []zab.Entry{{Zxid: zab.NewZxid(3, uint32(i)), Data: []byte("payload")}}
		}
	}
	return msgs
}

// readAll decodes every batch frame in b.
func readAll(t *testing.T, b []byte, maxPayload int) (msgs []zab.Message, frames int) {
	t.Helper()
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		h, payload, err := ReadFrame(r, maxPayload, nil)
		require.NoError(t, err)
		require.Equal(t, KindBatch, h.Kind)
		require.LessOrEqual(t, len(payload), maxPayload)
		got, err := DecodeBatch(payload)
		require.NoError(t, err)
		msgs = append(msgs, got...)
		frames++
	}
	return msgs, frames
}

func TestBatchRoundTrip(t *testing.T) {
	want := sampleMessages(100)
	enc := NewBatchEncoder(1 << 20)
	frame, n, err := enc.Encode(want)
	require.NoError(t, err)
	require.Equal(t, 100, n, "all messages in one frame")
	got, frames := readAll(t, frame, 1<<20)
	require.Equal(t, 1, frames)
	require.Equal(t, want, got)
}

func TestBatchEncoderSplitsAtMaxFrameSize(t *testing.T) {
	want := sampleMessages(1000)
	const max = 1024
	enc := NewBatchEncoder(max)
	var wire []byte
	rest := want
	for len(rest) > 0 {
		frame, n, err := enc.Encode(rest)
		require.NoError(t, err)
		require.Positive(t, n)
		wire = append(wire, frame...)
		rest = rest[n:]
	}
	got, frames := readAll(t, wire, max)
	require.Greater(t, frames, 10)
	require.Equal(t, want, got)
}

func TestBatchEncoderMessageTooLarge(t *testing.T) {
	enc := NewBatchEncoder(1024)
	big := zab.Message{Type: 1, From: 1, To: 2, Entries: []zab.Entry{{Data: make([]byte, 2000)}}}
	_, n, err := enc.Encode([]zab.Message{big, {Type: 1, From: 1, To: 2}})
	require.ErrorIs(t, err, ErrMessageTooLarge)
	require.Zero(t, n)
	// The encoder is still usable and the next message goes through.
	frame, n, err := enc.Encode([]zab.Message{{Type: 1, From: 1, To: 2}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, _ := readAll(t, frame, 1024)
	require.Equal(t, []zab.Message{{Type: 1, From: 1, To: 2}}, got)
}

// TestDecodeIgnoresUnknownFields shows that a newer peer may add fields to
// Message: an older decoder skips what it does not know.
func TestDecodeIgnoresUnknownFields(t *testing.T) {
	type future struct {
		Type  zab.MsgType `msgpack:"t"`
		From  zab.PeerID  `msgpack:"f"`
		To    zab.PeerID  `msgpack:"o"`
		Extra []string    `msgpack:"zz_new"`
	}
	payload, err := msgpack.Marshal([]future{{Type: 4, From: 1, To: 2, Extra: []string{"a", "b"}}})
	require.NoError(t, err)
	got, err := DecodeBatch(payload)
	require.NoError(t, err)
	require.Equal(t, []zab.Message{{Type: 4, From: 1, To: 2}}, got)
}

func header(version uint8, kind Kind, length uint32) []byte {
	b := make([]byte, HeaderSize)
	PutHeader(b, Header{Version: version, Kind: kind, Length: length})
	return b
}

func TestParseHeaderRejects(t *testing.T) {
	require.NoError(t, func() error { _, err := ParseHeader(header(Version, KindBatch, 100), 100); return err }())
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", []byte{'Z', 'B', 1}, ErrMalformed},
		{"magic", append([]byte("GE"), header(Version, KindBatch, 1)[2:]...), ErrBadMagic},
		{"version 0", header(0, KindBatch, 1), ErrBadVersion},
		{"version 1", header(1, KindBatch, 1), ErrBadVersion},
		{"version 3", header(3, KindBatch, 1), ErrBadVersion},
		{"kind 0", header(Version, 0, 1), ErrBadKind},
		{"kind 99", header(Version, 99, 1), ErrBadKind},
		{"too large", header(Version, KindBatch, 101), ErrFrameTooLarge},
		{"4 GiB", header(Version, KindBatch, 0xffffffff), ErrFrameTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHeader(c.b, 100)
			require.ErrorIs(t, err, c.want)
		})
	}
}

func TestReadFrameTruncated(t *testing.T) {
	enc := NewBatchEncoder(1 << 16)
	frame, _, err := enc.Encode(sampleMessages(3))
	require.NoError(t, err)
	for cut := 1; cut < len(frame); cut++ {
		_, _, err := ReadFrame(bytes.NewReader(frame[:cut]), 1<<16, nil)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d", cut)
	}
	_, _, err = ReadFrame(bytes.NewReader(nil), 1<<16, nil)
	require.ErrorIs(t, err, io.EOF)
}

// TestReadFrameChecksLengthBeforeAllocating: a header claiming 2 GiB followed
// by nothing must fail without allocating the payload.
func TestReadFrameChecksLengthBeforeAllocating(t *testing.T) {
	b := header(Version, KindBatch, 1<<31)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadFrame(bytes.NewReader(b), 1<<20, nil)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10))
}

func TestDecodeBatchRejects(t *testing.T) {
	valid, err := msgpack.Marshal(sampleMessages(2))
	require.NoError(t, err)
	hugeEntries := []byte{0x91, 0x81, 0xa1, 'n', 0xdd, 0xff, 0xff, 0xff, 0xff}
	deep := bytes.Repeat([]byte{0x91}, 10000)
	cases := map[string][]byte{
		"empty payload":             nil,
		"nil":                       {0xc0},
		"empty array":               {0x90},
		"not an array":              {0x81, 0xa1, 't', 0x01},
		"array32 of 4G messages":    {0xdd, 0xff, 0xff, 0xff, 0xff},
		"entries claims 4G":         hugeEntries,
		"bin32 claims 4 GiB":        {0x91, 0x81, 0xa1, 'n', 0x91, 0x81, 0xa1, 'd', 0xc6, 0xff, 0xff, 0xff, 0xff},
		"trailing bytes":            append(append([]byte(nil), valid...), 0x00),
		"truncated":                 valid[:len(valid)-1],
		"wrong field type":          {0x91, 0x81, 0xa1, 't', 0xa3, 'a', 'b', 'c'},
		"invalid code 0xc1":         {0x91, 0xc1},
		"deep nesting":              deep,
		"message is a string":       {0x91, 0xa1, 'x'},
		"too many messages (65537)": append([]byte{0xdd, 0x00, 0x01, 0x00, 0x01}, bytes.Repeat([]byte{0x80}, 65537)...),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			msgs, err := DecodeBatch(payload)
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, msgs)
		})
	}
}

// TestMsgpackPreallocatesClaimedLength documents why checkMsgpack exists:
// msgpack v5.4.1 allocates a slice of the length a peer claims, before
// reading any element, so nine bytes cost tens of megabytes.
func TestMsgpackPreallocatesClaimedLength(t *testing.T) {
	claim := []byte{0xdd, 0x00, 0x10, 0x00, 0x00} // array32 of 1Mi entries, no elements
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	raw := allocated(func() {
		var entries []zab.Entry
		require.Error(t, msgpack.Unmarshal(claim, &entries))
	})
	require.Greater(t, raw, uint64(16<<20), "msgpack itself preallocates (if this fails, the library was fixed)")
	ours := allocated(func() {
		_, err := DecodeBatch(claim)
		require.ErrorIs(t, err, ErrMalformed)
	})
	require.Less(t, ours, uint64(64<<10))
}

func TestCheckMsgpackAcceptsEncoderOutput(t *testing.T) {
	v := map[string]any{
		"ints":   []any{0, 1, -1, 127, 128, -33, 255, 256, 65535, 65536, -70000, int64(1) << 40, -(int64(1) << 40), uint64(1) << 63},
		"floats": []any{float32(1.5), 2.5},
		"str":    []any{"", "x", string(make([]byte, 40)), string(make([]byte, 300)), string(make([]byte, 70000))},
		"bin":    []any{[]byte{}, make([]byte, 300), make([]byte, 70000)},
		"bool":   []any{true, false, nil},
		"time":   []any{time.Unix(1, 0), time.Unix(1, 5), time.Unix(1<<40, 5)},
		"nested": map[string]any{"a": []any{map[string]any{"b": []any{}}}},
		"big":    make([]any, 70000),
	}
	m16 := map[string]int{}
	for i := range 20 {
		m16[string(rune('a'+i))] = i
	}
	v["map16"] = m16
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, checkMsgpack(b))
	// Every strict prefix is rejected.
	for _, cut := range []int{0, 1, len(b) / 2, len(b) - 1} {
		require.ErrorIs(t, checkMsgpack(b[:cut]), ErrMalformed)
	}
	// ext8/16/32 and fixext forms.
	for _, ext := range [][]byte{
		{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 1, 0, 0, 0, 0}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), {0xc7, 2, 1, 0, 0}, {0xc8, 0, 1, 1, 0},
		{0xc9, 0, 0, 0, 1, 1, 0},
	} {
		require.NoError(t, checkMsgpack(ext), "% x", ext)
		require.Error(t, checkMsgpack(ext[:len(ext)-1]), "% x", ext)
	}
}

func TestAppendFrameAndDecodePayload(t *testing.T) {
	in := hello{Cluster: "c", From: 1, To: 2, Nonce: make([]byte, nonceSize), Auth: true}
	b, err := AppendFrame(nil, KindHello, &in)
	require.NoError(t, err)
	h, payload, err := ReadFrame(bytes.NewReader(b), maxHandshakePayload, nil)
	require.NoError(t, err)
	require.Equal(t, Header{Version: Version, Kind: KindHello, Length: uint32(len(payload))}, h)
	var out hello
	require.NoError(t, DecodePayload(payload, &out))
	require.Equal(t, in, out)
	require.Equal(t, uint32(len(b)-HeaderSize), binary.BigEndian.Uint32(b[4:8]))
}

// TestEncodeBuffersIsEncode: the vector EncodeBuffers returns is, joined,
// the frame Encode returns, byte for byte and message for message, at
// every frame limit, and large byte fields (a snapshot chunk, an entry's
// data) are referenced in place, not copied.
func TestEncodeBuffersIsEncode(t *testing.T) {
	chunk := bytes.Repeat([]byte("s"), 1<<20)
	entry := bytes.Repeat([]byte("e"), extMin)
	small := bytes.Repeat([]byte("x"), extMin-1)
	msgs := sampleMessages(20)
	msgs[3].Snap, msgs[3].Offset, msgs[3].Total = chunk, 1<<20, 3<<20
	msgs[4].Entries = []zab.Entry{{Zxid: 7, Data: entry}, {Zxid: 8, Data: small}, {Zxid: 9, Data: entry[:extMin:extMin]}}
	msgs[5].Snap = chunk[:extMin+1]
	msgs[5].Entries = []zab.Entry{{Zxid: 10, Data: entry}}
	for _, limit := range []int{1 << 10, 40 << 10, 100 << 10, 1 << 20, 2 << 20, 16 << 20} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			flat, vec := NewBatchEncoder(limit), NewBatchEncoder(limit)
			var wire []byte
			rest := msgs
			for len(rest) > 0 {
				want, wn, werr := flat.Encode(rest)
				pieces, size, n, err := vec.EncodeBuffers(rest)
				require.Equal(t, wn, n)
				if werr != nil {
					require.ErrorIs(t, err, ErrMessageTooLarge)
					require.ErrorIs(t, werr, ErrMessageTooLarge)
					rest = rest[1:]
					continue
				}
				require.NoError(t, err)
				got := bytes.Join(pieces, nil)
				require.Equal(t, want, got)
				require.Equal(t, len(want), size)
				for _, m := range rest[:n] {
					for _, b := range append([][]byte{m.Snap}, entryData(m)...) {
						if len(b) >= extMin {
							require.True(t, slices.ContainsFunc(pieces, func(p []byte) bool {
								return len(p) == len(b) && &p[0] == &b[0]
							}), "a %d-byte field was copied", len(b))
						}
					}
				}
				wire = append(wire, got...)
				rest = rest[n:]
			}
			got, _ := readAll(t, wire, limit)
			var fit []zab.Message
			for _, m := range msgs {
				if f, _, err := NewBatchEncoder(limit).Encode([]zab.Message{m}); err == nil && len(f) > 0 {
					fit = append(fit, m)
				}
			}
			require.Equal(t, fit, got)
		})
	}
}

func entryData(m zab.Message) [][]byte {
	var out [][]byte
	for _, e := range m.Entries {
		out = append(out, e.Data)
	}
	return out
}
