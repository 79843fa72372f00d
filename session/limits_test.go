package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNegotiate(t *testing.T) {
	tick := 2 * time.Second
	l := DefaultLimits(tick)
	require.Equal(t, Limits{Min: 4 * time.Second, Max: 40 * time.Second}, l)
	for _, tc := range []struct {
		name      string
		requested time.Duration
		want      time.Duration
	}{
		{"zero gets min", 0, 4 * time.Second},
		{"negative gets min", -time.Second, 4 * time.Second},
		{"below min", 3 * time.Second, 4 * time.Second},
		{"at min", 4 * time.Second, 4 * time.Second},
		{"between", 10 * time.Second, 10 * time.Second},
		{"odd value kept", 12345 * time.Millisecond, 12345 * time.Millisecond},
		{"truncated to whole ms", 12345*time.Millisecond + 999*time.Microsecond, 12345 * time.Millisecond},
		{"truncation then clamp", 4*time.Second - time.Nanosecond, 4 * time.Second},
		{"at max", 40 * time.Second, 40 * time.Second},
		{"above max", 41 * time.Second, 40 * time.Second},
		{"huge", time.Duration(1 << 62), 40 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Negotiate(tc.requested, l.Min, l.Max))
			assert.Equal(t, tc.want, l.Negotiate(tc.requested))
		})
	}
	t.Run("min above max: max wins", func(t *testing.T) {
		assert.Equal(t, time.Second, Negotiate(0, 2*time.Second, time.Second))
	})
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     Limits
		wants []string // substrings of the error; none = valid
	}{
		{"defaults", DefaultLimits(2 * time.Second), nil},
		{"equal bounds", Limits{Min: time.Second, Max: time.Second}, nil},
		{"max at limit", Limits{Min: time.Second, Max: MaxTimeout}, nil},
		{"zero", Limits{}, []string{"Limits.Min", "Limits.Max"}},
		{"negative min", Limits{Min: -1, Max: time.Second}, []string{"Limits.Min (-1ns) must be positive"}},
		{"min above max", Limits{Min: 3 * time.Second, Max: time.Second}, []string{"Limits.Min (3s) must not exceed Limits.Max (1s)"}},
		{"sub-millisecond", Limits{Min: 1500 * time.Microsecond, Max: time.Second + 1}, []string{"Limits.Min (1.5ms) must be a whole number", "Limits.Max (1.000000001s) must be a whole number"}},
		{"max too large", Limits{Min: time.Second, Max: MaxTimeout + time.Millisecond}, []string{"Limits.Max", "must be at most"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate()
			if tc.wants == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tc.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestID(t *testing.T) {
	for _, tc := range []struct {
		id      ID
		valid   bool
		str     string
		epoch   uint32
		counter uint32
	}{
		{0, false, "0x0", 0, 0},
		{-1, false, "0xffffffffffffffff", 0xffffffff, 0xffffffff},
		{1, true, "0x1", 0, 1},
		{ID(5<<32 | 0x2a), true, "0x50000002a", 5, 0x2a},
		{ID(0x7fffffff<<32 | 0xffffffff), true, "0x7fffffffffffffff", 0x7fffffff, 0xffffffff},
	} {
		t.Run(tc.str, func(t *testing.T) {
			assert.Equal(t, tc.valid, tc.id.Valid())
			assert.Equal(t, tc.str, tc.id.String())
			assert.Equal(t, tc.epoch, tc.id.Epoch())
			assert.Equal(t, tc.counter, tc.id.Counter())
		})
	}
}
