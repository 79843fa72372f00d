package coord

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Txn time is the leader's stamp, not the proposer's clock (issue 10 item
// 6): one node with a clock far ahead can move neither node times, TTLs nor
// the dedup window (on the old code its writes expired every remembered
// result, so a retried sequential create applied twice).
func TestLeaderStampIsTheTxnTime(t *testing.T) {
	t0 := time.UnixMilli(1_800_000_000_000)
	clock := t0
	stamp := newStamper(func() time.Time { return clock })
	f := newFSM(tree.New(tree.Options{}))
	z := zab.NewZxid(1, 0)
	apply := func(r request) tree.Result {
		b, err := encodeRequest(&r)
		require.NoError(t, err)
		z++
		res, ok := f.Apply(zab.Entry{Zxid: z, Data: stamp(b)}).(tree.Result)
		require.True(t, ok)
		return res
	}
	ahead := t0.Add(24 * time.Hour).UnixMilli() // a proposer a day ahead

	require.NoError(t, apply(request{Time: ahead, Op: tree.Op{Type: tree.OpCreate, Path: "/q"}}).Err)
	_, st, err := f.tree.Get("/q", nil)
	require.NoError(t, err)
	require.Equal(t, t0.UnixMilli(), st.Ctime, "the leader's time, not the proposer's")

	seq := tree.Op{Type: tree.OpCreate, Path: "/q/n-", Mode: tree.PersistentSequential}
	first := apply(request{ReqID: 1, Time: t0.UnixMilli(), Op: seq})
	require.NoError(t, first.Err)
	clock = clock.Add(time.Millisecond)
	require.NoError(t, apply(request{ReqID: 2, Time: ahead, Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1}}).Err)
	clock = clock.Add(time.Millisecond)
	retry := apply(request{ReqID: 1, Time: t0.UnixMilli(), Op: seq})
	require.True(t, retry.Duplicate, "the skewed write did not empty the dedup window")
	require.Equal(t, first.Path, retry.Path)
	names, _, err := f.tree.Children("/q", nil)
	require.NoError(t, err)
	require.Len(t, names, 1)

	// The leader's clock stepping back does not take stamps back.
	clock = t0.Add(-time.Hour)
	require.NoError(t, apply(request{Op: tree.Op{Type: tree.OpSetData, Path: "/q", Version: -1}}).Err)
	_, st, err = f.tree.Get("/q", nil)
	require.NoError(t, err)
	require.Equal(t, t0.Add(2*time.Millisecond).UnixMilli(), st.Mtime)
}

func TestStampedRequestDecodes(t *testing.T) {
	r := request{ReqID: 9, Time: 5, Session: 3, Op: tree.Op{Type: tree.OpCreate, Path: "/x", Data: []byte("d")}}
	b, err := encodeRequest(&r)
	require.NoError(t, err)
	at := time.UnixMilli(1_234)
	stamp := newStamper(func() time.Time { return at })
	s := stamp(b)
	got, err := decodeRequest(s)
	require.NoError(t, err)
	want := r
	want.Time = at.UnixMilli()
	require.Equal(t, want, got)
	// Restamping replaces the stamp instead of nesting one in another.
	at = at.Add(time.Second)
	got, err = decodeRequest(stamp(s))
	require.NoError(t, err)
	require.Equal(t, at.UnixMilli(), got.Time)
	// A plain request keeps its proposer's time; a cut stamp is refused.
	got, err = decodeRequest(b)
	require.NoError(t, err)
	require.Equal(t, r, got)
	_, err = decodeRequest(s[:stampLen-1])
	require.Error(t, err)
}
