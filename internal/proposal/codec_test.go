package proposal

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/tree"
)

// reflRequest is Request as the msgpack library's reflection encoded it
// before Request had its own codec: the same fields and tags, no methods.
// (tree.Op's own codec is held to reflection's bytes by tree's tests.)
type reflRequest struct {
	Origin   uint64   `msgpack:"o"`
	ReqID    uint64   `msgpack:"r,omitempty"`
	Time     int64    `msgpack:"t"`
	Session  int64    `msgpack:"s,omitempty"`
	MaxData  int32    `msgpack:"m,omitempty"`
	Since    int64    `msgpack:"si,omitempty"`
	Op       tree.Op  `msgpack:"p"`
	DigestAt int64    `msgpack:"da,omitempty"`
	Digest   uint64   `msgpack:"dg,omitempty"`
	Forget   []uint64 `msgpack:"fg,omitempty"`
}

// checkRequestCodec: r encodes to exactly the bytes reflection wrote, and
// those bytes decode back to r (plain and stamped), by the codec and by
// reflection. Bytes equal to the previous version's mean that its logs and
// its replicas, in a rolling restart, read ours and we theirs.
func checkRequestCodec(t *testing.T, r Request) {
	t.Helper()
	rr := reflRequest(r)
	want, err := msgpack.Marshal(&rr)
	require.NoError(t, err)
	got, err := Encode(&r)
	require.NoError(t, err)
	require.Equal(t, want, got, "encoding of %+v", r)
	back, err := Decode(want)
	require.NoError(t, err)
	require.Equal(t, r, back)
	var rback reflRequest
	require.NoError(t, msgpack.Unmarshal(got, &rback))
	require.Equal(t, rr, rback)
	stamped := append([]byte{StampTag, 0, 0, 0, 0, 0, 0, 0, 42}, got...)
	back, err = Decode(stamped)
	require.NoError(t, err)
	r.Time = 42
	require.Equal(t, r, back)
}

func TestRequestCodecMatchesReflection(t *testing.T) {
	for _, r := range []Request{
		{},
		{Origin: 1, ReqID: 1<<64 - 1, Time: 1_700_000_000_000, Session: 1 << 40, MaxData: 1 << 20,
			Op: tree.Op{Type: tree.OpSetData, Path: "/w0001", Data: make([]byte, 64), Version: -1}},
		{Origin: 3, ReqID: 9, Time: -1, Since: 1 << 32, Op: tree.Op{Type: tree.OpMulti, Ops: []tree.Op{
			{Type: tree.OpCreate, Path: "/m", Mode: tree.PersistentSequentialWithTTL, TTL: 5}, {Type: tree.OpCheck, Path: "/m"}}}},
		{Origin: 2, Time: 5, DigestAt: 1<<32 | 7, Digest: 1<<64 - 2, Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1}},
		{Origin: 2, Time: 5, MaxData: -1, Op: tree.Op{Type: tree.OpCreateSession, Timeout: 10_000}},
		{Origin: 1, ReqID: 4, Time: 5, Forget: []uint64{1, 1<<64 - 1, 0, 200}, Op: tree.Op{Type: tree.OpDelete, Path: "/d"}},
	} {
		checkRequestCodec(t, r)
	}
}

func TestRequestDecodeTakesAnyForm(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{"dg": uint8(1), "p": map[string]any{"t": 2, "p": "/x"},
		"unknown": map[string]any{"a": []any{1}}, "o": int8(3), "r": nil, "si": uint32(7), "m": int64(100), "fg": []any{int8(1), uint16(300)}})
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, Request{Origin: 3, Since: 7, MaxData: 100, Digest: 1, Forget: []uint64{1, 300}, Op: tree.Op{Type: tree.OpDelete, Path: "/x"}}, got)
	for _, bad := range []any{map[string]any{"fg": []any{"x"}}, map[string]any{"fg": 1}, []any{1, 2}, "x", map[string]any{"o": "x"}, map[string]any{"p": 1}, map[string]any{"t": []any{}}} {
		b, err := msgpack.Marshal(bad)
		require.NoError(t, err)
		_, err = Decode(b)
		require.Error(t, err, "%v", bad)
	}
}

// FuzzRequestCodec: every request encodes as reflection did and decodes
// back (checkRequestCodec). coord's FuzzDecodeRequest feeds arbitrary
// bytes to Decode and the apply path.
func FuzzRequestCodec(f *testing.F) {
	f.Add(uint64(1), uint64(2), int64(3), int64(4), int32(5), int64(6), int64(7), uint64(8), uint8(tree.OpCreate), "/a", []byte("x"), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(uint64(0), uint64(0), int64(0), int64(0), int32(0), int64(0), int64(0), uint64(0), uint8(0), "", []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, origin, reqID uint64, at, session int64, maxData int32, since, digestAt int64, digest uint64, typ uint8, path string, data, forget []byte) {
		if len(data) == 0 {
			data = nil // omitted, so it decodes as nil
		}
		var ids []uint64 // Forget: one id per 8 bytes of forget
		for ; len(forget) >= 8; forget = forget[8:] {
			ids = append(ids, binary.BigEndian.Uint64(forget))
		}
		checkRequestCodec(t, Request{Origin: origin, ReqID: reqID, Time: at, Session: session, MaxData: maxData,
			Since: since, DigestAt: digestAt, Digest: digest, Forget: ids, Op: tree.Op{Type: tree.OpType(typ), Path: path, Data: data}})
	})
}
