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

// TestMemoryStorageReleasesData: in front of a durable log, the storage
// drops the data of entries up to the point it is told, keeping the newest
// keep bytes, and reads them back whenever they are asked for; a log that
// no longer holds them makes them compacted.
func TestMemoryStorageReleasesData(t *testing.T) {
	durable := map[Zxid]Entry{}
	reads := 0
	read := func(after, upTo Zxid, max int) ([]Entry, error) {
		reads++
		var out []Entry
		for c := after.Counter() + 1; NewZxid(1, c) <= upTo && (max == 0 || len(out) < max); c++ {
			e, ok := durable[NewZxid(1, c)]
			if !ok {
				break
			}
			out = append(out, e)
		}
		return out, nil
	}
	s := NewMemoryStorage()
	s.setReader(read)
	appendN := func(from, to uint32) {
		var es []Entry
		for c := from; c <= to; c++ {
			e := Entry{Zxid: zx(c), Data: []byte{byte(c), 1, 2, 3}}
			if c == 7 {
				e = Entry{Zxid: zx(c), Voters: []PeerID{1, 2}}
			}
			durable[e.Zxid] = e
			es = append(es, e)
		}
		require.NoError(t, s.Append(es))
	}
	want := func(from, to uint32) []Entry {
		var out []Entry
		for c := from; c <= to; c++ {
			out = append(out, durable[zx(c)])
		}
		return out
	}
	appendN(1, 10) // 9 entries of 4 bytes, one configuration entry

	s.release(zx(8), 12)
	require.Equal(t, zx(6), s.released, "up to the point given, keeping 12 bytes: 8, 9 and 10")
	require.Equal(t, 12, s.held)
	for i := range 6 {
		require.Nil(t, s.ents[i].Data, "entry %d dropped its data", i+1)
	}
	require.Equal(t, []PeerID{1, 2}, s.ents[6].Voters, "a configuration entry keeps its voters")

	reads = 0
	got, err := s.Entries(zx(7), zx(10), 0)
	require.NoError(t, err)
	require.Equal(t, want(8, 10), got)
	require.Zero(t, reads, "the newest entries are served from memory")
	got, err = s.Entries(zx(2), zx(9), 3)
	require.NoError(t, err)
	require.Equal(t, want(3, 5), got)
	got, err = s.Entries(0, zx(10), 0)
	require.NoError(t, err)
	require.Equal(t, want(1, 10), got)
	require.Equal(t, 2, reads)
	require.Nil(t, s.ents[0].Data, "what was read back is not kept")

	// Nothing is released beyond the point given, however much is held.
	appendN(11, 20)
	s.release(zx(12), 0)
	require.Equal(t, zx(12), s.released)
	require.Equal(t, 8*4, s.held)

	// Truncating, replacing a suffix and compacting keep the count right.
	require.NoError(t, s.TruncateAfter(zx(10)))
	require.Equal(t, zx(10), s.released)
	require.Zero(t, s.held)
	appendN(11, 14)
	require.Equal(t, 16, s.held)
	require.NoError(t, s.Append([]Entry{{Zxid: zx(9), Data: []byte("new")}}))
	durable[zx(9)] = Entry{Zxid: zx(9), Data: []byte("new")}
	require.Equal(t, zx(8), s.released)
	require.Equal(t, 3, s.held)
	got, err = s.Entries(zx(4), zx(9), 0)
	require.NoError(t, err)
	require.Equal(t, want(5, 9), got)
	require.NoError(t, s.CreateSnapshot(zx(6), nil))
	require.NoError(t, s.Compact(zx(6)))
	require.Equal(t, zx(8), s.released)
	got, err = s.Entries(zx(6), zx(9), 0)
	require.NoError(t, err)
	require.Equal(t, want(7, 9), got)

	// A log purged under the storage's feet: the entries count as compacted.
	delete(durable, zx(8))
	_, err = s.Entries(zx(6), zx(9), 0)
	require.ErrorIs(t, err, ErrCompacted)

	// Without a reader nothing is ever released.
	m := NewMemoryStorage()
	require.NoError(t, m.Append(ents(1, 2, 3)))
	m.release(zx(3), 0)
	got, err = m.Entries(0, zx(3), 0)
	require.NoError(t, err)
	require.Equal(t, ents(1, 2, 3), got)
}
