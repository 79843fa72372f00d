package recipes

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
)

// FuzzQueueAndCandidate: the lock recipes read names and data written by
// anyone with access to the tree; no name list or candidate data can make
// them panic, a queue comes out ordered by sequence number, and a
// candidate's encoding reads back.
func FuzzQueueAndCandidate(f *testing.F) {
	f.Add("lock-0000000001", "read-0000000003", []byte(`{"name":"a","value":"dg=="}`), "a", []byte("v"))
	f.Add("write-0000000002", "lock-x", []byte("not json"), "", []byte(nil))
	f.Add("lock-9999999999", "lock-00000000-1", []byte(`{"name":1}`), "é", []byte{0xff})
	f.Fuzz(func(t *testing.T, n1, n2 string, data []byte, name string, value []byte) {
		q := contenders([]string{n1, n2, n1}, lockPrefix, readPrefix, writePrefix)
		for i := 1; i < len(q); i++ {
			require.LessOrEqual(t, q[i-1].seq, q[i].seq)
		}
		for _, c := range q {
			require.GreaterOrEqual(t, c.seq, int64(0))
		}
		_ = decodeLeader(data, coord.Stat{Czxid: 1})
		e := &Election{name: name}
		l := decodeLeader(e.encode(value), coord.Stat{Czxid: 7})
		require.Equal(t, int64(7), l.Token)
		require.Equal(t, len(value), len(l.Value))
	})
}
