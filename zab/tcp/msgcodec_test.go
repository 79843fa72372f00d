package tcp

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/zab"
)

var codecSeed = flag.Uint64("codec.seed", 0, "seed of TestMessageCodecMatchesReflection (0: from the clock)")

// reflEncode is how BatchEncoder encoded a message before encodeMessage:
// the msgpack library's reflection over zab.Message's tags, compact ints.
func reflEncode(t *testing.T, m zab.Message) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	require.NoError(t, enc.Encode(m))
	return buf.Bytes()
}

// randomValue sets v, of any field type zab.Message has, to a random value
// (zero half the time; ints at every width's edges).
func randomValue(r *rand.Rand, v reflect.Value) {
	if r.IntN(2) == 0 {
		v.SetZero()
		return
	}
	edges := []uint64{1, 127, 128, 255, 256, 1<<16 - 1, 1 << 16, 1<<32 - 1, 1 << 32, 1<<64 - 1}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x := edges[r.IntN(len(edges))]
		if r.IntN(3) == 0 {
			x = r.Uint64()
		}
		v.SetUint(x & (^uint64(0) >> (64 - 8*v.Type().Size())))
	case reflect.Slice:
		n := 1 + r.IntN(4)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			n = []int{1, 31, 32, 255, 256, 70_000}[r.IntN(6)]
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			randomValue(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			randomValue(r, v.Field(i))
		}
	default:
		panic("randomValue: no case for " + v.Type().String())
	}
}

// TestMessageCodecMatchesReflection: messages with random fields set (every
// field of zab.Message, found by reflection, so a field added without its
// line in encodeMessage and decodeMessage fails here) encode to exactly the
// bytes reflection wrote and decode back to themselves, by the codec and by
// reflection: peers of the previous version read our frames and we theirs.
func TestMessageCodecMatchesReflection(t *testing.T) {
	seed := *codecSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -codec.seed %d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range 2000 {
		var m zab.Message
		randomValue(r, reflect.ValueOf(&m).Elem())
		if i == 0 { // every field at once
			for {
				v := reflect.ValueOf(&m).Elem()
				full := true
				for f := range v.NumField() {
					if v.Field(f).IsZero() {
						randomValue(r, v.Field(f))
						full = false
					}
				}
				if full {
					break
				}
			}
		}
		for j := range m.Entries {
			if len(m.Entries[j].Data) == 0 && r.IntN(2) == 0 {
				m.Entries[j].Data = []byte{} // not nil: written as empty bin, not msgpack nil
			}
		}
		want := reflEncode(t, m)
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		require.NoError(t, encodeMessage(enc, &m, nil))
		require.Equal(t, want, buf.Bytes(), "message %d: %+v", i, m)

		var got zab.Message
		require.NoError(t, decodeMessage(msgpack.NewDecoder(bytes.NewReader(want)), &got))
		var viaRefl zab.Message
		require.NoError(t, msgpack.Unmarshal(want, &viaRefl))
		require.Equal(t, viaRefl, got, "message %d decodes as reflection decodes it", i)
	}
}

func TestMessageDecodeTakesAnyForm(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{
		"zz": []any{1, map[string]any{"q": 1}}, "t": uint64(zab.MsgProposal), "f": int8(1), "o": nil,
		"n":                 []any{map[string]any{"d": "str", "z": uint32(7), "w": 1}, nil},
		"longer-than-eight": true, "mb": true, "x": false,
	})
	require.NoError(t, err)
	got, err := DecodeBatch(append([]byte{0x91}, b...))
	require.NoError(t, err)
	require.Equal(t, []zab.Message{{Type: zab.MsgProposal, From: 1, Member: true,
		Entries: []zab.Entry{{Zxid: 7, Data: []byte("str")}, {}}}}, got)
	for _, bad := range []any{map[string]any{"t": "x"}, map[string]any{"n": 1}, map[string]any{"n": []any{1}},
		map[string]any{"mb": 1}, map[string]any{"vs": []any{"a"}}, []any{1}} {
		b, err := msgpack.Marshal(bad)
		require.NoError(t, err)
		_, err = DecodeBatch(append([]byte{0x91}, b...))
		require.ErrorIs(t, err, ErrMalformed, "%v", bad)
	}
}
