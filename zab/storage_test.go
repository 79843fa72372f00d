package zab

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func zx(c uint32) Zxid { return NewZxid(1, c) }

func ents(cs ...uint32) []Entry {
	out := make([]Entry, len(cs))
	for i, c := range cs {
		out[i] = Entry{Zxid: zx(c), Data: []byte{byte(c)}}
	}
	return out
}

func TestMemoryStorage(t *testing.T) {
	s := NewMemoryStorage()
	require.NoError(t, s.Append(ents(1, 2, 3, 4, 5)))
	last, _ := s.LastZxid()
	require.Equal(t, zx(5), last)

	tests := []struct {
		name      string
		after, to Zxid
		max       int
		want      []Entry
	}{
		{"all", 0, zx(9), 0, ents(1, 2, 3, 4, 5)},
		{"middle", zx(1), zx(3), 0, ents(2, 3)},
		{"max", zx(1), zx(5), 2, ents(2, 3)},
		{"empty", zx(5), zx(9), 0, ents()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Entries(tt.after, tt.to, tt.max)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	f, err := s.Floor(NewZxid(1, 9))
	require.NoError(t, err)
	require.Equal(t, zx(5), f)

	// Snapshot then compact: entries up to the previous point go away.
	require.NoError(t, s.CreateSnapshot(zx(3), []byte("s3")))
	require.Error(t, s.Compact(zx(4)), "cannot compact beyond the snapshot")
	require.NoError(t, s.Compact(zx(2)))
	_, err = s.Entries(zx(1), zx(5), 0)
	require.ErrorIs(t, err, ErrCompacted)
	_, err = s.Floor(zx(1))
	require.ErrorIs(t, err, ErrCompacted)
	got, err := s.Entries(zx(2), zx(5), 0)
	require.NoError(t, err)
	require.Equal(t, ents(3, 4, 5), got)

	// Truncation never goes below the snapshot.
	require.ErrorIs(t, s.TruncateAfter(zx(2)), ErrCompacted)
	require.NoError(t, s.TruncateAfter(zx(4)))
	last, _ = s.LastZxid()
	require.Equal(t, zx(4), last)

	// Appending over a suffix replaces it; a clone is independent.
	c := s.Clone()
	require.NoError(t, s.Append([]Entry{{Zxid: NewZxid(2, 1)}}))
	require.NoError(t, s.Append([]Entry{{Zxid: zx(4)}, {Zxid: NewZxid(3, 1)}}))
	got, _ = s.Entries(zx(2), NewZxid(9, 0), 0)
	require.Equal(t, []Entry{ents(3)[0], {Zxid: zx(4)}, {Zxid: NewZxid(3, 1)}}, got)
	last, _ = c.LastZxid()
	require.Equal(t, zx(4), last)
	require.Error(t, s.Append(ents(3)), "cannot rewrite the snapshot")

	// Installing a snapshot replaces everything.
	s.ApplySnapshot(Snapshot{Zxid: NewZxid(5, 5), Data: []byte("x")})
	last, _ = s.LastZxid()
	require.Equal(t, NewZxid(5, 5), last)
	snap, _ := s.Snapshot()
	require.Equal(t, []byte("x"), snap.Data)
}

func TestZlogUnstableView(t *testing.T) {
	st := NewMemoryStorage()
	require.NoError(t, st.Append(ents(1, 2, 3, 4)))
	l := zlog{storage: st}
	l.append(ents(5, 6)...)
	require.Equal(t, zx(6), l.last())

	// Truncating into stable storage is recorded, not applied.
	require.True(t, l.truncate(zx(2)))
	require.True(t, l.truncated)
	require.Equal(t, zx(2), l.last())
	require.Empty(t, l.ents)
	l.append(Entry{Zxid: NewZxid(2, 1)})
	got, err := l.entries(0, NewZxid(9, 0), 0)
	require.NoError(t, err)
	require.Equal(t, append(ents(1, 2), Entry{Zxid: NewZxid(2, 1)}), got)
	f, err := l.floor(zx(4))
	require.NoError(t, err)
	require.Equal(t, zx(2), f, "truncated entries are gone from the view")
	require.True(t, l.contains(NewZxid(2, 1)))

	// Never below the commit point.
	l.committed = zx(2)
	require.False(t, l.truncate(zx(1)))

	// A snapshot replaces the whole view.
	l.installSnapshot(Snapshot{Zxid: NewZxid(3, 3)})
	require.Equal(t, NewZxid(3, 3), l.last())
	_, err = l.entries(zx(1), NewZxid(9, 0), 0)
	require.ErrorIs(t, err, ErrCompacted)
	require.Equal(t, NewZxid(3, 3), l.applied)
}

// TestMemoryStorageRelease: released entries are refused by Entries
// (ErrUnavailable) but for the newest keep bytes; with dropData their data
// is gone, without it Released reads it back; Inspect reads them all; the
// count of held data follows truncation, replaced suffixes and compaction.
func TestMemoryStorageRelease(t *testing.T) {
	for _, drop := range []bool{false, true} {
		s := NewMemoryStorage()
		var es []Entry
		for c := uint32(1); c <= 10; c++ {
			e := Entry{Zxid: zx(c), Data: []byte{byte(c), 1, 2, 3}}
			if c == 7 {
				e = Entry{Zxid: zx(c), Voters: []PeerID{1, 2}}
			}
			es = append(es, e)
		}
		require.NoError(t, s.Append(es))
		s.Release(zx(8), 0)
		require.Equal(t, 36, s.HeldBytes(), "nothing released before EnableRelease")
		s.EnableRelease(drop)
		s.Release(zx(8), 12)
		require.Equal(t, 12, s.HeldBytes(), "up to 8, keeping 12 bytes: 8, 9 and 10")
		_, err := s.Entries(zx(5), zx(10), 0)
		require.ErrorIs(t, err, ErrUnavailable)
		got, err := s.Entries(zx(7), zx(10), 0)
		require.NoError(t, err)
		require.Equal(t, es[7:], got, "the newest are served")
		all, err := s.Inspect(0, zx(10))
		require.NoError(t, err)
		require.Len(t, all, 10)
		require.Equal(t, es[6], all[6], "a configuration entry keeps its voters")
		if drop {
			require.Nil(t, all[0].Data)
			require.Nil(t, s.Released(0, 100))
		} else {
			require.Equal(t, es, all)
			require.Equal(t, es[2:4], s.Released(zx(2), 9), "about 9 bytes, whole entries")
			require.Equal(t, es[2:3], s.Released(zx(2), 1), "one entry at least")
			require.Equal(t, es[4:6], s.Released(zx(4), 100), "released ones only")
		}
		require.NoError(t, s.CreateSnapshot(zx(3), nil))
		require.NoError(t, s.Compact(zx(3)))
		_, err = s.Entries(zx(3), zx(10), 0)
		require.ErrorIs(t, err, ErrUnavailable, "still released after compaction")
		require.NoError(t, s.Append([]Entry{{Zxid: zx(9), Data: []byte("new")}}))
		require.Equal(t, 4+3, s.HeldBytes(), "a replaced suffix is counted anew: entry 8 and the new 9")
		require.NoError(t, s.TruncateAfter(zx(5)))
		require.Zero(t, s.HeldBytes())
		_, err = s.Entries(zx(3), zx(5), 0)
		require.ErrorIs(t, err, ErrUnavailable)
		s.EnableRelease(drop) // a restart: nothing released
		if !drop {
			got, err = s.Entries(zx(3), zx(5), 0)
			require.NoError(t, err)
			require.Equal(t, es[3:5], got)
		}
	}
}
