package zab

import (
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/require"
)

// naiveCommitted tries every candidate zxid and keeps the largest one that a
// strict majority has reached.
func naiveCommitted(ids []PeerID, acked map[PeerID]Zxid) Zxid {
	uniq := map[PeerID]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	var best Zxid
	for cand := range uniq {
		z := acked[cand]
		n := 0
		for id := range uniq {
			if acked[id] >= z {
				n++
			}
		}
		if 2*n > len(uniq) && z > best {
			best = z
		}
	}
	return best
}

func naiveQuorum(ids []PeerID, yes map[PeerID]bool) bool {
	uniq := map[PeerID]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	n := 0
	for id := range uniq {
		if yes[id] {
			n++
		}
	}
	return len(uniq) > 0 && 2*n > len(uniq)
}

func TestQuorumCommittedMatchesNaive(t *testing.T) {
	f := func(raw []uint8, acks []uint16) bool {
		ids := make([]PeerID, 0, len(raw))
		acked := map[PeerID]Zxid{}
		for i, r := range raw {
			id := PeerID(r%16 + 1)
			ids = append(ids, id)
			if i < len(acks) {
				acked[id] = Zxid(acks[i] % 8)
			}
		}
		c := NewMajorityConfig(ids...)
		return c.CommittedZxid(func(id PeerID) Zxid { return acked[id] }) == naiveCommitted(ids, acked)
	}
	require.NoError(t, quick.Check(f, &quick.Config{MaxCount: 2000}))
}

func TestQuorumHasQuorumMatchesNaive(t *testing.T) {
	f := func(raw []uint8, votes []bool, outsiders []uint8) bool {
		ids := make([]PeerID, 0, len(raw))
		yes := map[PeerID]bool{}
		for i, r := range raw {
			id := PeerID(r%16 + 1)
			ids = append(ids, id)
			if i < len(votes) && votes[i] {
				yes[id] = true
			}
		}
		// Non-voters saying yes must not matter.
		for _, o := range outsiders {
			id := PeerID(o%16 + 100)
			yes[id] = true
		}
		c := NewMajorityConfig(ids...)
		return c.HasQuorum(func(id PeerID) bool { return yes[id] }) == naiveQuorum(ids, yes)
	}
	require.NoError(t, quick.Check(f, &quick.Config{MaxCount: 2000}))
}

func TestQuorumTable(t *testing.T) {
	tests := []struct {
		name   string
		voters []PeerID
		acked  map[PeerID]Zxid
		want   Zxid
	}{
		{"single", []PeerID{1}, map[PeerID]Zxid{1: 5}, 5},
		{"three-two-ahead", []PeerID{1, 2, 3}, map[PeerID]Zxid{1: 9, 2: 7, 3: 1}, 7},
		{"four-needs-three", []PeerID{1, 2, 3, 4}, map[PeerID]Zxid{1: 9, 2: 7, 3: 1}, 1},
		{"empty", nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewMajorityConfig(tt.voters...)
			require.Equal(t, tt.want, c.CommittedZxid(func(id PeerID) Zxid { return tt.acked[id] }))
		})
	}
}
