package tree

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
)

// reflOp is Op as the msgpack library's reflection encoded it before Op
// had its own codec: the same fields and tags, no methods.
type reflOp struct {
	Type    OpType     `msgpack:"t"`
	Path    string     `msgpack:"p,omitempty"`
	Data    []byte     `msgpack:"d,omitempty"`
	Mode    CreateMode `msgpack:"m,omitempty"`
	TTL     int64      `msgpack:"l,omitempty"`
	Version int32      `msgpack:"v,omitempty"`
	Session int64      `msgpack:"s,omitempty"`
	Timeout int32      `msgpack:"o,omitempty"`
	Ops     []reflOp   `msgpack:"x,omitempty"`
}

func toRefl(op Op) reflOp {
	r := reflOp{Type: op.Type, Path: op.Path, Data: op.Data, Mode: op.Mode, TTL: op.TTL,
		Version: op.Version, Session: op.Session, Timeout: op.Timeout}
	if op.Ops != nil {
		r.Ops = []reflOp{}
	}
	for _, o := range op.Ops {
		r.Ops = append(r.Ops, toRefl(o))
	}
	return r
}

// checkOpCodec: op encodes to exactly the bytes reflection wrote, and
// those bytes decode back to op, by the codec and by reflection.
func checkOpCodec(t *testing.T, op Op) {
	t.Helper()
	want, err := msgpack.Marshal(toRefl(op))
	require.NoError(t, err)
	got, err := msgpack.Marshal(op)
	require.NoError(t, err)
	require.Equal(t, want, got, "encoding of %+v", op)
	var back Op
	require.NoError(t, msgpack.Unmarshal(want, &back))
	require.Equal(t, op, back)
	var rback reflOp
	require.NoError(t, msgpack.Unmarshal(got, &rback))
	require.Equal(t, toRefl(op), rback)
}

func TestOpCodecMatchesReflection(t *testing.T) {
	long := make([]byte, 70_000)
	for _, op := range []Op{
		{Type: OpCreate, Path: "/a", Data: []byte("x")},
		{Type: OpCreate, Path: "/a/s-", Mode: EphemeralSequential},
		{Type: OpCreate, Path: "/t", Mode: PersistentWithTTL, TTL: MaxTTL},
		{Type: OpSetData, Path: "/a", Data: long, Version: -1},
		{Type: OpDelete, Path: "/a", Version: 1 << 30},
		{Type: OpCheck, Path: "/", Version: -1},
		{Type: OpCreateSession, Session: -1 << 63, Timeout: 1<<31 - 1},
		{Type: OpCloseSession, Session: 7},
		{Type: OpReap, Path: "/t"},
		{Type: 255, Mode: 255},
		{},
		{Type: OpMulti, Ops: []Op{
			{Type: OpCreate, Path: "/m"},
			{Type: OpCheck, Path: "/m", Version: 0},
			{Type: OpSetData, Path: "/m", Data: []byte("z"), Version: -1},
			{Type: OpMulti, Ops: []Op{{Type: OpDelete, Path: "/n"}}},
		}},
	} {
		checkOpCodec(t, op)
	}
}

func TestOpDecodeTakesAnyForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want Op
	}{
		{"fields out of order, unknown ones", map[string]any{"x": []any{map[string]any{"t": 1}}, "zz": []any{1, "a"}, "t": 5, "longer-than-eight": 1}, Op{Type: OpMulti, Ops: []Op{{Type: OpCreate}}}},
		{"compact and wide ints", map[string]any{"t": uint64(2), "v": int8(-1), "s": uint16(9), "o": int64(5)}, Op{Type: OpDelete, Version: -1, Session: 9, Timeout: 5}},
		{"nil values", map[string]any{"t": nil, "p": nil, "d": nil, "x": nil}, Op{}},
		{"nil", nil, Op{}},
		{"empty multi", map[string]any{"t": 5, "x": []any{}}, Op{Type: OpMulti, Ops: []Op{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := msgpack.Marshal(tc.in)
			require.NoError(t, err)
			var got Op
			require.NoError(t, msgpack.Unmarshal(b, &got))
			require.Equal(t, tc.want, got)
			var r reflOp
			require.NoError(t, msgpack.Unmarshal(b, &r))
			require.Equal(t, toRefl(tc.want), r, "reflection reads it the same")
		})
	}
	// Unlike reflection, the codec takes no struct written as an array:
	// no version of coord wrote one.
	for _, bad := range []any{"str", []any{1}, map[string]any{"t": "x"}, map[string]any{"p": 1}, map[string]any{"x": 1}, map[string]any{"x": []any{1}}} {
		b, err := msgpack.Marshal(bad)
		require.NoError(t, err)
		var got Op
		require.Error(t, msgpack.Unmarshal(b, &got), "%v", bad)
	}
}

// FuzzOpCodec: every op, as a multi of two or alone, encodes as
// reflection did and decodes back (checkOpCodec).
func FuzzOpCodec(f *testing.F) {
	f.Add(uint8(OpCreate), "/a", []byte("x"), uint8(Persistent), int64(0), int32(0), int64(0), int32(0), false)
	f.Add(uint8(OpSetData), "/a", []byte(nil), uint8(0), int64(-1), int32(-1), int64(1<<40), int32(1<<20), true)
	f.Fuzz(func(t *testing.T, typ uint8, path string, data []byte, mode uint8, ttl int64, version int32, session int64, timeout int32, multi bool) {
		op := Op{Type: OpType(typ), Path: path, Data: data, Mode: CreateMode(mode), TTL: ttl, Version: version, Session: session, Timeout: timeout}
		if len(op.Data) == 0 {
			op.Data = nil // omitted, so it decodes as nil
		}
		if multi {
			op = Op{Type: OpMulti, Ops: []Op{op, {Type: OpCheck, Path: path}}}
		}
		checkOpCodec(t, op)
	})
}

// TestResultRecCodecMatchesReflection: the results dedup keeps (every
// result shape the random txns of TestRandomApply make, relative to their
// txn) encode to exactly the bytes reflection wrote, which snapshots hold.
func TestResultRecCodecMatchesReflection(t *testing.T) {
	var refl bytes.Buffer
	renc := msgpack.NewEncoder(&refl)
	renc.UseArrayEncodedStructs(true)
	renc.UseCompactInts(true)
	var re resultEncoder
	check := func(r Result, txn *Txn) {
		t.Helper()
		rec := toRec(r)
		relativize(&rec, txn.Zxid, txn.Time, &txn.Op)
		refl.Reset()
		require.NoError(t, renc.Encode(&rec))
		require.Equal(t, refl.Bytes(), re.encode(r, txn.Zxid, txn.Time, &txn.Op), "result %+v of %+v", r, txn.Op)
	}
	check(Result{}, &Txn{})
	check(Result{Type: OpMulti, Results: []Result{}}, &Txn{Zxid: 1, Time: -1})
	check(Result{Type: OpCreateSession, Session: -1 << 63, Stat: Stat{Czxid: 1 << 62, Version: -1 << 31, NumChildren: 1<<31 - 1}}, &Txn{Zxid: -5})
	seed := testSeed(t)
	g := newTxnGen(seed)
	tr := New(Options{})
	for range 3000 {
		txn := g.next(tr.ReapCandidates)
		check(tr.Apply(txn), &txn)
	}
}

// reflSnapNode is snapNode as the msgpack library's reflection encoded it
// before snapNode had its own codec: the same fields and tag, no methods.
type reflSnapNode struct {
	_msgpack struct{} `msgpack:",as_array"`
	Path     string
	Czxid    int64
	Mzxid    int64
	Pzxid    int64
	Ctime    int64
	Mtime    int64
	Owner    int64
	Version  int32
	Cversion int32
	Data     string
}

// TestSnapNodeCodecMatchesReflection: a snapshot's znode records encode
// to exactly the bytes reflection wrote, and decode as reflection did,
// also the shapes no version wrote (short and long arrays, nil, ints of
// other widths).
func TestSnapNodeCodecMatchesReflection(t *testing.T) {
	long := strings.Repeat("d", 70_000)
	for _, r := range []snapNode{
		{},
		{Path: "/", Czxid: 0, Mzxid: 0},
		{Path: "/fill/k000001", Czxid: 1 << 40, Mzxid: 1<<40 + 7, Pzxid: 1<<40 + 9, Ctime: 1_733_390_000_000,
			Mtime: 1_733_390_000_001, Owner: 0x100000002, Version: 3, Cversion: 2, Data: "value"},
		{Path: "/t", Owner: math.MinInt64, Version: math.MaxInt32, Cversion: math.MinInt32, Data: long},
		{Path: "/c", Czxid: -1, Mzxid: math.MaxInt64, Pzxid: 1, Ctime: -5, Mtime: 127, Owner: -1, Version: -1},
	} {
		want, err := msgpack.Marshal(reflSnapNode(r))
		require.NoError(t, err)
		got, err := msgpack.Marshal(&r)
		require.NoError(t, err)
		require.Equal(t, want, got, "encoding of %+v", r)
		var back snapNode
		require.NoError(t, msgpack.Unmarshal(want, &back))
		require.Equal(t, r, back)
	}
	for _, v := range []any{
		nil,
		[]any{},
		[]any{"/a"},
		[]any{"/a", 1, 2},
		[]any{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		[]any{"/a", int8(-1), uint8(200), int16(-300), uint32(1 << 31), int64(-1 << 40), uint64(1), int64(1 << 33), -1, "d"},
		[]any{"/a", 1, 2, 3, 4, 5, 6, 7, 8, "d", "extra", []any{1, 2}, map[string]any{"k": 1}},
		[]any{"/a", "not an int"},
		[]any{1},
		"not an array",
		map[string]any{"Path": "/a"},
	} {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		checkSnapNodeDecode(t, b)
	}
}

// checkSnapNodeDecode: snapNode's decoder and reflection agree on b: the
// same record where reflection reads one; where it fails, the decoder
// either fails too or reads what no writer wrote (a map).
func checkSnapNodeDecode(t *testing.T, b []byte) {
	t.Helper()
	var got snapNode
	gotErr := msgpack.Unmarshal(b, &got)
	var want reflSnapNode
	wantErr := msgpack.Unmarshal(b, &want)
	if wantErr == nil && len(b) > 0 && b[0]&0xf0 != 0x80 && b[0] != 0xde && b[0] != 0xdf {
		require.NoError(t, gotErr, "% x", b)
		require.Equal(t, snapNode(want), got, "% x", b)
	}
	if gotErr == nil {
		require.NoError(t, wantErr, "% x", b)
	}
}

func FuzzSnapNodeDecode(f *testing.F) {
	for _, r := range []reflSnapNode{{}, {Path: "/a", Czxid: 5, Owner: -1, Version: 2, Data: "x"}} {
		b, _ := msgpack.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if msgpackcheck.Check(b, 8) != nil {
			return // frame rejects these before decoding
		}
		checkSnapNodeDecode(t, b)
	})
}
