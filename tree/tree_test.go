package tree

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestCreateGetStat(t *testing.T) {
	a := newApplier(Options{})
	p := a.create(t, "/a", "hello", Persistent)
	require.Equal(t, "/a", p)
	data, st, err := a.t.Get("/a", nil)
	require.NoError(t, err)
	require.Equal(t, "hello", string(data))
	require.Equal(t, Stat{Czxid: 1, Mzxid: 1, Pzxid: 1, Ctime: 1_000_010, Mtime: 1_000_010, DataLength: 5}, st)

	_, root, err := a.t.Get("/", nil)
	require.NoError(t, err)
	require.Equal(t, int32(1), root.Cversion)
	require.Equal(t, int64(1), root.Pzxid)
	require.Equal(t, int32(1), root.NumChildren)

	a.create(t, "/a/b", "", Persistent)
	_, st, err = a.t.Get("/a", nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Mzxid, "a child create does not touch mzxid")
	require.Equal(t, int64(2), st.Pzxid)
	require.Equal(t, int32(1), st.Cversion)
	require.Equal(t, int32(1), st.NumChildren)
	require.Equal(t, 3, a.t.NodeCount())
	checkDigest(t, a.t)
}

func TestCreateErrors(t *testing.T) {
	a := newApplier(Options{})
	a.maxData = 8
	a.session(t, 7)
	a.create(t, "/p", "", Persistent)
	a.createIn(t, 7, "/p/eph", Ephemeral)
	tests := []struct {
		name    string
		session int64
		op      Op
		want    error
	}{
		{"exists", 0, Op{Type: OpCreate, Path: "/p"}, ErrNodeExists},
		{"root", 0, Op{Type: OpCreate, Path: "/"}, ErrNodeExists},
		{"no parent", 0, Op{Type: OpCreate, Path: "/x/y"}, ErrNoNode},
		{"child of ephemeral", 0, Op{Type: OpCreate, Path: "/p/eph/c"}, ErrNoChildrenForEphemerals},
		{"bad path", 0, Op{Type: OpCreate, Path: "/p/"}, ErrInvalidPath},
		{"too large", 0, Op{Type: OpCreate, Path: "/big", Data: []byte("123456789")}, ErrDataTooLarge},
		{"bad mode", 0, Op{Type: OpCreate, Path: "/m", Mode: 99}, ErrBadArguments},
		{"ttl without ttl mode", 0, Op{Type: OpCreate, Path: "/t", TTL: 5}, ErrBadArguments},
		{"ttl zero", 0, Op{Type: OpCreate, Path: "/t", Mode: PersistentWithTTL}, ErrBadArguments},
		{"ttl too big", 0, Op{Type: OpCreate, Path: "/t", Mode: PersistentWithTTL, TTL: MaxTTL + 1}, ErrBadArguments},
		{"ephemeral without session", 0, Op{Type: OpCreate, Path: "/e", Mode: Ephemeral}, ErrSessionExpired},
		{"unknown session", 99, Op{Type: OpCreate, Path: "/e", Mode: Ephemeral}, ErrSessionExpired},
		{"unknown session persistent", 99, Op{Type: OpCreate, Path: "/e"}, ErrSessionExpired},
		{"unknown op", 0, Op{Type: 77}, ErrBadArguments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := a.t.Digest()
			r := a.apply(tc.session, tc.op)
			require.ErrorIs(t, r.Err, tc.want)
			require.Equal(t, before, a.t.Digest(), "a failed op changes nothing")
			require.Equal(t, a.zxid, a.t.LastZxid(), "a failed op still consumes its zxid")
		})
	}
	checkDigest(t, a.t)
}

func TestSequential(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	require.Equal(t, "/q/n-0000000000", a.create(t, "/q/n-", "", PersistentSequential))
	require.Equal(t, "/q/n-0000000001", a.create(t, "/q/n-", "", PersistentSequential))
	a.create(t, "/q/other", "", Persistent)
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/q/other", Version: -1}).Err)
	// cversion counts creates and deletes, so a name is never reused.
	require.Equal(t, "/q/0000000004", a.create(t, "/q/", "", PersistentSequential))
	a.session(t, 3)
	r := a.apply(3, Op{Type: OpCreate, Path: "/q/e", Mode: EphemeralSequential})
	require.NoError(t, r.Err)
	require.Equal(t, "/q/e0000000005", r.Path)
	require.Equal(t, int64(3), r.Stat.EphemeralOwner)
	checkDigest(t, a.t)
}

func TestDeleteSetCheck(t *testing.T) {
	a := newApplier(Options{})
	a.maxData = 4
	a.create(t, "/a", "x", Persistent)
	a.create(t, "/a/b", "", Persistent)

	r := a.apply(0, Op{Type: OpSetData, Path: "/a", Data: []byte("yy"), Version: 0})
	require.NoError(t, r.Err)
	require.Equal(t, int32(1), r.Stat.Version)
	require.Equal(t, a.zxid, r.Stat.Mzxid)
	require.Equal(t, int32(2), r.Stat.DataLength)

	tests := []struct {
		name string
		op   Op
		want error
	}{
		{"set bad version", Op{Type: OpSetData, Path: "/a", Version: 0}, ErrBadVersion},
		{"set no node", Op{Type: OpSetData, Path: "/zz", Version: -1}, ErrNoNode},
		{"set too large", Op{Type: OpSetData, Path: "/a", Data: []byte("12345"), Version: -1}, ErrDataTooLarge},
		{"set bad path", Op{Type: OpSetData, Path: "a", Version: -1}, ErrInvalidPath},
		{"delete not empty", Op{Type: OpDelete, Path: "/a", Version: -1}, ErrNotEmpty},
		{"delete bad version", Op{Type: OpDelete, Path: "/a/b", Version: 3}, ErrBadVersion},
		{"delete no node", Op{Type: OpDelete, Path: "/a/c", Version: -1}, ErrNoNode},
		{"delete no parent", Op{Type: OpDelete, Path: "/x/c", Version: -1}, ErrNoNode},
		{"delete root", Op{Type: OpDelete, Path: "/", Version: -1}, ErrBadArguments},
		{"check bad version", Op{Type: OpCheck, Path: "/a", Version: 0}, ErrBadVersion},
		{"check no node", Op{Type: OpCheck, Path: "/q", Version: -1}, ErrNoNode},
		{"check ok", Op{Type: OpCheck, Path: "/a", Version: 1}, nil},
		{"check any", Op{Type: OpCheck, Path: "/a", Version: -1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := a.t.Digest()
			r := a.apply(0, tc.op)
			if tc.want == nil {
				require.NoError(t, r.Err)
			} else {
				require.ErrorIs(t, r.Err, tc.want)
			}
			require.Equal(t, before, a.t.Digest())
		})
	}
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/a/b", Version: 0}).Err)
	require.NoError(t, a.apply(0, Op{Type: OpSetData, Path: "/a", Version: -1}).Err)
	data, st, err := a.t.Get("/a", nil)
	require.NoError(t, err)
	require.Empty(t, data)
	require.Equal(t, int32(2), st.Version)
	require.Equal(t, int32(2), st.Cversion)
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/a", Version: 2}).Err)
	_, _, err = a.t.Get("/a", nil)
	require.ErrorIs(t, err, ErrNoNode)
	require.Equal(t, 1, a.t.NodeCount())
	checkDigest(t, a.t)
}

func TestZxidOrder(t *testing.T) {
	tr := New(Options{})
	require.NoError(t, tr.Apply(Txn{Zxid: 5, Op: Op{Type: OpCreate, Path: "/a"}}).Err)
	r := tr.Apply(Txn{Zxid: 5, Op: Op{Type: OpCreate, Path: "/b"}})
	require.ErrorIs(t, r.Err, ErrZxidOrder)
	r = tr.Apply(Txn{Zxid: 4, Op: Op{Type: OpCreate, Path: "/b"}})
	require.ErrorIs(t, r.Err, ErrZxidOrder)
	_, ok, _ := tr.Exists("/b", nil)
	require.False(t, ok)
	require.Equal(t, int64(5), tr.LastZxid())
}

func TestReads(t *testing.T) {
	a := newApplier(Options{})
	for _, p := range []string{"/r", "/r/c", "/r/a", "/r/b", "/r/b/x", "/r/b/x/y"} {
		a.create(t, p, "", Persistent)
	}
	names, st, err := a.t.Children("/r", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, names)
	require.Equal(t, int32(3), st.NumChildren)
	_, _, err = a.t.Children("/nope", nil)
	require.ErrorIs(t, err, ErrNoNode)
	_, _, err = a.t.Children("bad", nil)
	require.ErrorIs(t, err, ErrInvalidPath)

	n, err := a.t.CountDescendants("/r")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	n, err = a.t.CountDescendants("/")
	require.NoError(t, err)
	require.Equal(t, 6, n)
	_, err = a.t.CountDescendants("/nope")
	require.ErrorIs(t, err, ErrNoNode)

	st, ok, err := a.t.Exists("/r/b/x", nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int32(1), st.NumChildren)
	_, ok, err = a.t.Exists("/r/zz", nil)
	require.NoError(t, err)
	require.False(t, ok)
	_, _, err = a.t.Exists("r", nil)
	require.ErrorIs(t, err, ErrInvalidPath)
	_, _, err = a.t.Get("/r/", nil)
	require.ErrorIs(t, err, ErrInvalidPath)
}

func TestSessionsAndEphemerals(t *testing.T) {
	a := newApplier(Options{})
	a.session(t, 1)
	a.session(t, 2)
	a.create(t, "/s", "", Persistent)
	a.createIn(t, 1, "/s/one", Ephemeral)
	a.createIn(t, 1, "/s/two-", EphemeralSequential)
	a.createIn(t, 2, "/s/other", Ephemeral)
	require.Equal(t, []string{"/s/one", "/s/two-0000000001"}, a.t.Ephemerals(1))
	require.Equal(t, []SessionInfo{{ID: 1, Timeout: 5000}, {ID: 2, Timeout: 5000}}, a.t.Sessions())

	// Deleting an ephemeral by hand removes it from its session.
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/s/one", Version: -1}).Err)
	require.Equal(t, []string{"/s/two-0000000001"}, a.t.Ephemerals(1))

	w := &recorder{}
	_, _, err := a.t.Children("/s", w)
	require.NoError(t, err)
	require.NoError(t, a.apply(0, Op{Type: OpCloseSession, Session: 1}).Err)
	names, _, err := a.t.Children("/s", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"other"}, names)
	require.Empty(t, a.t.Ephemerals(1))
	require.Equal(t, []Event{{Type: EventNodeChildrenChanged, Path: "/s", Zxid: a.zxid}}, w.take())

	require.ErrorIs(t, a.apply(0, Op{Type: OpCloseSession, Session: 1}).Err, ErrSessionExpired)
	require.ErrorIs(t, a.apply(1, Op{Type: OpCreate, Path: "/s/x"}).Err, ErrSessionExpired)
	require.ErrorIs(t, a.apply(0, Op{Type: OpCreateSession, Session: 0, Timeout: 1}).Err, ErrBadArguments)
	require.ErrorIs(t, a.apply(0, Op{Type: OpCreateSession, Session: 5, Timeout: 0}).Err, ErrBadArguments)
	// Re-creating a live session only updates its timeout.
	require.NoError(t, a.apply(0, Op{Type: OpCreateSession, Session: 2, Timeout: 9000}).Err)
	require.Equal(t, []SessionInfo{{ID: 2, Timeout: 9000}}, a.t.Sessions())
	require.Equal(t, []string{"/s/other"}, a.t.Ephemerals(2))
	checkDigest(t, a.t)
}

func TestContainerAndTTL(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/c", "", Container)
	require.Empty(t, a.t.ReapCandidates(a.now), "a container that never had a child stays")
	a.create(t, "/c/x", "", Persistent)
	require.Empty(t, a.t.ReapCandidates(a.now), "a container with children stays")
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/c/x", Version: -1}).Err)
	require.Equal(t, []string{"/c"}, a.t.ReapCandidates(a.now))

	r := a.apply(0, Op{Type: OpCreate, Path: "/t", Mode: PersistentWithTTL, TTL: 100})
	require.NoError(t, r.Err)
	require.Zero(t, r.Stat.EphemeralOwner, "TTL nodes report no owner")
	created := a.now
	require.Equal(t, []string{"/c"}, a.t.ReapCandidates(created+100))
	require.Equal(t, []string{"/c", "/t"}, a.t.ReapCandidates(created+101))

	// A reap applied before the TTL has passed is refused.
	require.ErrorIs(t, a.apply(0, Op{Type: OpReap, Path: "/t"}).Err, ErrNotEligible)
	// A child makes a TTL node ineligible.
	a.create(t, "/t/k", "", Persistent)
	a.now = created + 1000
	require.ErrorIs(t, a.apply(0, Op{Type: OpReap, Path: "/t"}).Err, ErrNotEligible)
	require.NoError(t, a.apply(0, Op{Type: OpDelete, Path: "/t/k", Version: -1}).Err)
	require.NoError(t, a.apply(0, Op{Type: OpReap, Path: "/t"}).Err)
	require.NoError(t, a.apply(0, Op{Type: OpReap, Path: "/c"}).Err)
	require.ErrorIs(t, a.apply(0, Op{Type: OpReap, Path: "/c"}).Err, ErrNoNode)
	a.create(t, "/plain", "", Persistent)
	require.ErrorIs(t, a.apply(0, Op{Type: OpReap, Path: "/plain"}).Err, ErrNotEligible)
	require.ErrorIs(t, a.apply(0, Op{Type: OpReap, Path: "/"}).Err, ErrBadArguments)
	require.Empty(t, a.t.ReapCandidates(a.now+1e9))

	seq := a.apply(0, Op{Type: OpCreate, Path: "/s-", Mode: PersistentSequentialWithTTL, TTL: 5})
	require.NoError(t, seq.Err)
	require.True(t, strings.HasPrefix(seq.Path, "/s-00000000"))
	require.Equal(t, []string{seq.Path}, a.t.ReapCandidates(a.now+6))
	checkDigest(t, a.t)
}

func TestMulti(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/m", "v0", Persistent)

	ok := a.apply(0, Op{Type: OpMulti, Ops: []Op{
		{Type: OpCheck, Path: "/m", Version: 0},
		{Type: OpCreate, Path: "/m/a", Data: []byte("x")},
		{Type: OpCreate, Path: "/m/s-", Mode: PersistentSequential},
		{Type: OpSetData, Path: "/m/a", Data: []byte("y"), Version: 0},
		{Type: OpDelete, Path: "/m/a", Version: 1},
	}})
	require.NoError(t, ok.Err)
	require.Len(t, ok.Results, 5)
	require.Equal(t, "/m/a", ok.Results[1].Path)
	require.Equal(t, "/m/s-0000000001", ok.Results[2].Path)
	require.Equal(t, int32(1), ok.Results[3].Stat.Version)
	names, st, _ := a.t.Children("/m", nil)
	require.Equal(t, []string{"s-0000000001"}, names)
	require.Equal(t, int32(3), st.Cversion)
	require.Equal(t, ok.Results[0].Type, OpCheck)

	w := &recorder{}
	_, _, _ = a.t.Get("/m", w)
	_, _, _ = a.t.Children("/m", w)
	before, count := a.t.Digest(), a.t.NodeCount()
	_, stBefore, _ := a.t.Get("/m", nil)
	fail := a.apply(0, Op{Type: OpMulti, Ops: []Op{
		{Type: OpCreate, Path: "/m/b"},
		{Type: OpSetData, Path: "/m", Data: []byte("v1"), Version: -1},
		{Type: OpDelete, Path: "/m/s-0000000001", Version: -1},
		{Type: OpCreate, Path: "/m/b"}, // fails: exists (created by op 0)
		{Type: OpSetData, Path: "/m", Version: -1},
	}})
	require.ErrorIs(t, fail.Err, ErrNodeExists)
	require.Len(t, fail.Results, 5)
	for i, want := range []error{nil, nil, nil, ErrNodeExists, ErrRuntimeInconsistency} {
		if want == nil {
			require.NoError(t, fail.Results[i].Err, "op %d", i)
		} else {
			require.ErrorIs(t, fail.Results[i].Err, want, "op %d", i)
		}
	}
	require.Equal(t, before, a.t.Digest(), "a failed multi changes nothing")
	require.Equal(t, count, a.t.NodeCount())
	data, stAfter, _ := a.t.Get("/m", nil)
	require.Equal(t, "v0", string(data))
	require.Equal(t, stBefore, stAfter)
	require.Empty(t, w.take(), "a failed multi fires no watch")
	checkDigest(t, a.t)

	require.ErrorIs(t, a.apply(0, Op{Type: OpMulti, Ops: []Op{{Type: OpCreateSession, Session: 3, Timeout: 1}}}).Err, ErrBadArguments)
	require.NoError(t, a.apply(0, Op{Type: OpMulti}).Err, "an empty multi succeeds")

	// The successful multi fires its events after it is applied.
	ok = a.apply(0, Op{Type: OpMulti, Ops: []Op{
		{Type: OpSetData, Path: "/m", Data: []byte("v2"), Version: -1},
		{Type: OpCreate, Path: "/m/c"},
	}})
	require.NoError(t, ok.Err)
	require.Equal(t, []Event{
		{Type: EventNodeDataChanged, Path: "/m", Zxid: a.zxid},
		{Type: EventNodeChildrenChanged, Path: "/m", Zxid: a.zxid},
	}, w.take())
}

func TestTxnTimeNeverGoesBack(t *testing.T) {
	tr := New(Options{})
	require.NoError(t, tr.Apply(Txn{Zxid: 1, Time: 500, Op: Op{Type: OpCreate, Path: "/a"}}).Err)
	r := tr.Apply(Txn{Zxid: 2, Time: 100, Op: Op{Type: OpCreate, Path: "/b"}})
	require.NoError(t, r.Err)
	require.Equal(t, int64(500), r.Stat.Ctime, "a proposer with a slow clock cannot move time back")

	var buf bytes.Buffer
	_, err := tr.WriteSnapshot(&buf)
	require.NoError(t, err)
	back, err := ReadSnapshot(&buf, Options{})
	require.NoError(t, err)
	r = back.Apply(Txn{Zxid: 3, Time: 200, Op: Op{Type: OpCreate, Path: "/c"}})
	require.Equal(t, int64(500), r.Stat.Ctime, "the snapshot carries the clock")
}

// TestNodeLayout guards the size of a znode (issue 13's memory target: it
// is paid 100,000 times over): 96 bytes, a malloc size class, with the
// children behind a pointer that leaves keep nil.
func TestNodeLayout(t *testing.T) {
	require.Equal(t, uintptr(96), unsafe.Sizeof(node{}))
	tr := New(Options{})
	require.Nil(t, tr.root.kids, "an empty root has no children slice")
}
