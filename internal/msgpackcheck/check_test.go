package msgpackcheck

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckAcceptsEncoderOutput(t *testing.T) {
	values := []any{
		nil, true, 1, -1, 1 << 40, 1.5, "s", []byte("bin"),
		[]int{1, 2, 3}, map[string]any{"a": []any{1, "x", map[string]int{"b": 2}}},
		make([]byte, 70000), make([]string, 70000),
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, Check(b, 16), "%T", v)
		for cut := 0; cut < len(b) && cut < 64; cut++ {
			require.ErrorIs(t, Check(b[:cut], 16), ErrMalformed, "%T cut at %d", v, cut)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	tests := map[string][]byte{
		"empty":             {},
		"array32 claims 4G": {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 claims 4G":   {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01},
		"str32 claims 4G":   {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"trailing bytes":    {0x01, 0x02},
		"invalid code":      {0xc1},
		"too deep":          {0x91, 0x91, 0x91, 0x91, 0x01},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, Check(b, 3), ErrMalformed)
		})
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{0x93, 0x01, 0xa1, 'x', 0xc0})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b, 16) != nil {
			return
		}
		// What Check accepts, msgpack decodes without panicking or asking
		// for more memory than the input justifies.
		var v any
		_ = msgpack.Unmarshal(b, &v)
	})
}
