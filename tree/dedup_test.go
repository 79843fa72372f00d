package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestRetriedTxnAppliesOnce(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	apply := a.applyReq
	first := apply(7, Op{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential})
	require.NoError(t, first.Err)
	again := apply(7, Op{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential})
	require.NoError(t, again.Err)
	require.True(t, again.Duplicate)
	require.Equal(t, first.Path, again.Path, "the retry learns the name the first attempt got")
	names, _, _ := a.t.Children("/q", nil)
	require.Len(t, names, 1, "no orphan")

	set := apply(8, Op{Type: OpSetData, Path: "/q", Data: []byte("x"), Version: -1})
	require.NoError(t, set.Err)
	dup := apply(8, Op{Type: OpSetData, Path: "/q", Data: []byte("x"), Version: -1})
	require.Equal(t, set.Stat, dup.Stat)
	_, st, _ := a.t.Get("/q", nil)
	require.Equal(t, int32(1), st.Version, "a retried set does not bump the version again")

	// A delete retried after it succeeded reports success, not ErrNoNode.
	require.NoError(t, apply(9, Op{Type: OpDelete, Path: first.Path, Version: -1}).Err)
	require.NoError(t, apply(9, Op{Type: OpDelete, Path: first.Path, Version: -1}).Err)

	// A failure is remembered too: a retry that comes after the state
	// changed still reports the first outcome and applies nothing.
	require.ErrorIs(t, apply(10, Op{Type: OpCreate, Path: "/r/x"}).Err, ErrNoNode)
	a.create(t, "/r", "", Persistent)
	r := apply(10, Op{Type: OpCreate, Path: "/r/x"})
	require.ErrorIs(t, r.Err, ErrNoNode)
	require.True(t, r.Duplicate)
	_, ok, _ := a.t.Exists("/r/x", nil)
	require.False(t, ok)

	// A retried createSession names the session the first one created (its
	// zxid), not the duplicate's.
	sess := apply(11, Op{Type: OpCreateSession, Session: a.zxid + 1, Timeout: 5000})
	require.NoError(t, sess.Err)
	require.Equal(t, a.zxid, sess.Session)
	sessAgain := apply(11, Op{Type: OpCreateSession, Session: a.zxid + 1, Timeout: 5000})
	require.True(t, sessAgain.Duplicate)
	require.Equal(t, sess.Session, sessAgain.Session)

	// The result survives a snapshot.
	back := snapshotRoundTrip(t, a.t)
	dupAfter := back.Apply(Txn{Zxid: a.zxid + 1, Time: a.now + 1, ReqID: 7, Op: Op{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential}})
	require.True(t, dupAfter.Duplicate)
	require.Equal(t, first.Path, dupAfter.Path)
	failedAfter := back.Apply(Txn{Zxid: a.zxid + 2, Time: a.now + 2, ReqID: 10, Op: Op{Type: OpCreate, Path: "/r/x"}})
	require.ErrorIs(t, failedAfter.Err, ErrNoNode, "a remembered failure survives the snapshot")
	sessAfter := back.Apply(Txn{Zxid: a.zxid + 3, Time: a.now + 3, ReqID: 11, Op: Op{Type: OpCreateSession, Session: int64(a.zxid) + 3, Timeout: 5000}})
	require.Equal(t, sess.Session, sessAfter.Session, "the session of a remembered createSession survives the snapshot")

	// After the window the id is forgotten.
	a.now += DedupWindow + 1
	late := apply(7, Op{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential})
	require.NoError(t, late.Err)
	require.False(t, late.Duplicate)
	require.NotEqual(t, first.Path, late.Path)
	checkDigest(t, a.t)
}

// TestRetryNeverAppliesTwice: dedup remembers a bounded window of results;
// a retry (Txn.Since) whose first attempt may have fallen out of it fails
// with ErrRetryForgotten instead of applying a second time, at any write
// rate and whatever the txn times (on the old code the retry applied
// again once the first result had expired).
func TestRetryNeverAppliesTwice(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	apply := func(id uint64, since int64, dt int64, op Op) Result {
		a.zxid++
		a.now += dt
		return a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, ReqID: id, Since: since, Op: op})
	}
	seq := Op{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential}
	before := a.zxid // what the proposer had applied before its first attempt
	require.NoError(t, apply(7, 0, 10, seq).Err)
	// Its result falls out of the window (by time here; by count alike).
	require.NoError(t, apply(8, 0, DedupWindow+1, Op{Type: OpCheck, Path: "/", Version: -1}).Err)

	r := apply(7, before, 10, seq)
	require.ErrorIs(t, r.Err, ErrRetryForgotten)
	names, _, _ := a.t.Children("/q", nil)
	require.Len(t, names, 1, "not applied twice")
	require.ErrorIs(t, apply(7, before, 10, seq).Err, ErrRetryForgotten, "and every later retry agrees")

	// A retry whose first attempt came after everything forgotten is
	// decided by the table: applied if absent (its first attempt never was).
	since := a.zxid
	r = apply(9, since, 10, seq)
	require.NoError(t, r.Err)
	require.False(t, r.Duplicate)
	require.True(t, apply(9, since, 10, seq).Duplicate)

	// The floor survives a snapshot, so a restored replica decides alike.
	var buf bytes.Buffer
	_, err := a.t.WriteSnapshot(&buf)
	require.NoError(t, err)
	back, err := ReadSnapshot(&buf, Options{})
	require.NoError(t, err)
	require.Equal(t, a.t.dedupFloor, back.dedupFloor)
	require.Positive(t, back.dedupFloor)
}

func TestRetryForgottenByCount(t *testing.T) {
	a := newApplier(Options{})
	const before = 5 // the first attempt comes after it
	first := a.t.Apply(Txn{Zxid: 10, Time: 1, ReqID: 1, Op: Op{Type: OpCreate, Path: "/x"}})
	require.NoError(t, first.Err)
	for i := range maxDedup {
		a.t.Apply(Txn{Zxid: int64(i) + 11, Time: 2, ReqID: uint64(i) + 2, Op: Op{Type: OpCheck, Path: "/", Version: -1}})
	}
	r := a.t.Apply(Txn{Zxid: maxDedup + 11, Time: 3, ReqID: 1, Since: before, Op: Op{Type: OpCreate, Path: "/x"}})
	require.ErrorIs(t, r.Err, ErrRetryForgotten)
}

// TestDedupKeepsOnlyWhatARetryNeeds: a remembered result is its compact
// encoded form (the old table kept every full Result, its error values
// and nested results, for 120 s), and a duplicate still gets it whole.
func TestDedupKeepsOnlyWhatARetryNeeds(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	apply := a.applyReq
	ops := []Op{
		{Type: OpCreate, Path: "/q/n-", Mode: PersistentSequential},
		{Type: OpSetData, Path: "/q", Data: []byte("x"), Version: -1},
		{Type: OpDelete, Path: "/nope", Version: -1},
		{Type: OpMulti, Ops: []Op{{Type: OpCheck, Path: "/q", Version: -1}, {Type: OpCreate, Path: "/q/m"}}},
	}
	for i, op := range ops {
		id := uint64(100 + i)
		first := apply(id, op)
		e := a.t.dedup[id]
		require.NotNil(t, e)
		require.LessOrEqual(t, len(e.res), 80, "%v keeps %d bytes", op.Type, len(e.res))
		again := apply(id, op)
		require.True(t, again.Duplicate)
		require.ErrorIs(t, again.Err, errors.Unwrap(first.Err))
		first.Err, again.Err, again.Duplicate = nil, nil, false
		for j := range first.Results {
			require.ErrorIs(t, again.Results[j].Err, first.Results[j].Err)
			first.Results[j].Err, again.Results[j].Err = nil, nil
		}
		require.Equal(t, first, again)
	}
}

// TestRememberedResultsAreCompactAndExact: every kind of result a retry
// can be answered with comes back exactly (stats, created names, errors,
// a Multi's per-op results) from its compact form, relative to the txn
// and the retry's op, straight from the table and through snapshots of
// both versions; a create's result takes a few bytes.
func TestRememberedResultsAreCompactAndExact(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	a.session(t, 77)
	ops := []struct {
		session int64
		op      Op
	}{
		{0, Op{Type: OpCreate, Path: "/q/a", Data: []byte("0123456789")}},
		{0, Op{Type: OpCreate, Path: "/q/s-", Data: []byte("x"), Mode: PersistentSequential}},
		{77, Op{Type: OpCreate, Path: "/q/e", Data: []byte("eph"), Mode: Ephemeral}},
		{0, Op{Type: OpSetData, Path: "/q/a", Data: []byte("a longer value than before"), Version: -1}},
		{0, Op{Type: OpSetData, Path: "/q", Data: nil, Version: 0}},
		{0, Op{Type: OpCheck, Path: "/q/a", Version: 1}},
		{0, Op{Type: OpCreate, Path: "/nope/x"}},
		{0, Op{Type: OpSetData, Path: "/q/a", Version: 9}},
		{0, Op{Type: OpMulti, Ops: []Op{
			{Type: OpCreate, Path: "/q/m1", Data: []byte("m")},
			{Type: OpCreate, Path: "/q/m-", Mode: PersistentSequential},
			{Type: OpSetData, Path: "/q/m1", Data: []byte("mm"), Version: 0},
			{Type: OpCheck, Path: "/q", Version: -1},
		}}},
		{0, Op{Type: OpMulti, Ops: []Op{
			{Type: OpCreate, Path: "/q/m2"},
			{Type: OpDelete, Path: "/q/none", Version: -1},
		}}},
		{0, Op{Type: OpDelete, Path: "/q/m1", Version: -1}},
	}
	type sent struct {
		id  uint64
		op  Op
		ses int64
		res Result
	}
	var all []sent
	for i, o := range ops {
		a.zxid++
		a.now += 1234
		id := uint64(100 + i)
		res := a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, Session: o.session, ReqID: id, Op: o.op})
		all = append(all, sent{id, o.op, o.session, res})
	}
	e := a.t.dedup[all[0].id]
	require.LessOrEqual(t, len(e.res), 24, "a create's result is kept in a few bytes: %x", e.res)

	check := func(name string, tr *Tree) {
		for _, s := range all {
			a.zxid++
			got := tr.Apply(Txn{Zxid: a.zxid, Time: a.now, Session: s.ses, ReqID: s.id, Op: s.op})
			require.True(t, got.Duplicate, "%s: %v", name, s.op)
			want := s.res
			want.Duplicate = true
			require.Equal(t, want.Type, got.Type, name)
			require.Equal(t, want.Path, got.Path, "%s: %v", name, s.op)
			require.Equal(t, want.Stat, got.Stat, "%s: %v", name, s.op)
			require.Equal(t, errCode(want.Err), errCode(got.Err), "%s: %v", name, s.op)
			require.Len(t, got.Results, len(want.Results), name)
			for i := range want.Results {
				require.Equal(t, want.Results[i].Path, got.Results[i].Path, "%s: %v op %d", name, s.op, i)
				require.Equal(t, want.Results[i].Stat, got.Results[i].Stat, "%s: %v op %d", name, s.op, i)
				require.Equal(t, errCode(want.Results[i].Err), errCode(got.Results[i].Err), "%s: %v op %d", name, s.op, i)
			}
		}
	}

	var v2 bytes.Buffer
	_, err := a.t.WriteSnapshot(&v2)
	require.NoError(t, err)
	byID := map[uint64]*Op{}
	for i := range all {
		byID[all[i].id] = &all[i].op
	}
	v1 := versionOneSnapshot(t, a.t, byID)
	check("table", a.t)
	for name, b := range map[string][]byte{"version 2": v2.Bytes(), "version 1": v1} {
		back, err := ReadSnapshot(bytes.NewReader(b), Options{})
		require.NoError(t, err, name)
		if name == "version 2" {
			// The table written straight from the entries (dedupList)
			// reads back entry for entry, byte for byte.
			require.Len(t, back.dedupOrder, len(a.t.dedupOrder))
			for i, e := range a.t.dedupOrder {
				require.Equal(t, *e, *back.dedupOrder[i])
			}
		}
		check(name, back)
	}
}

// versionOneSnapshot writes t's snapshot as version 1 did: its dedup
// results (of the ops in ops, by request id) with absolute stats and every
// path.
func versionOneSnapshot(t *testing.T, tr *Tree, ops map[uint64]*Op) []byte {
	old := map[*dedupEntry][]byte{}
	for _, e := range tr.dedupOrder {
		var rec resultRec
		require.NoError(t, decodeResultRec(e.res, &rec))
		require.NoError(t, absolutize(&rec, e.zxid, e.time, ops[e.id]))
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseArrayEncodedStructs(true)
		require.NoError(t, enc.Encode(&rec))
		old[e], e.res = e.res, buf.Bytes()
	}
	defer func() {
		for e, b := range old {
			e.res = b
		}
	}()
	var buf bytes.Buffer
	_, err := tr.WriteSnapshot(&buf)
	require.NoError(t, err)
	b := buf.Bytes()
	binary.BigEndian.PutUint16(b[len(snapMagic):], 1)
	body := b[:len(b)-4]
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(body, castagnoli))
	return b
}

// TestForgetDropsFinishedWrites: Txn.Forget drops remembered results on
// every replica alike (digest, snapshot), leaves dedupFloor alone (no
// retry of a forgotten write exists), ignores unknown ids, and the table
// stays as small as what is not forgotten whatever the write rate.
func TestForgetDropsFinishedWrites(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/f", "", Persistent)
	for id := uint64(1); id <= 5; id++ {
		require.NoError(t, a.applyReq(id, Op{Type: OpSetData, Path: "/f", Version: -1}).Err)
	}
	require.Equal(t, 5, a.t.DedupLen())
	a.zxid++
	a.now += 10
	r := a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, ReqID: 6, Forget: []uint64{2, 4, 99}, Op: Op{Type: OpCheck, Path: "/", Version: -1}})
	require.NoError(t, r.Err)
	require.Equal(t, 4, a.t.DedupLen(), "1, 3, 5 and 6 remembered")
	require.Zero(t, a.t.dedupFloor, "forgetting does not raise the floor")
	checkDigest(t, a.t)

	// A remembered id still answers as a duplicate; a forgotten one is a
	// new write (which is why only a write with no other attempt may be
	// forgotten).
	require.True(t, a.applyReq(3, Op{Type: OpSetData, Path: "/f", Version: -1}).Duplicate)
	require.False(t, a.applyReq(2, Op{Type: OpSetData, Path: "/f", Version: -1}).Duplicate)

	back := snapshotRoundTrip(t, a.t)
	require.Equal(t, a.t.DedupLen(), back.DedupLen())
	require.Len(t, back.dedupOrder, back.DedupLen(), "no forgotten entry in the snapshot")

	// Many writes, each forgotten by the next: dead entries are dropped
	// as they pile up, and expiry and maxDedup count only live ones.
	for id := uint64(1000); id < 6000; id++ {
		a.zxid++
		a.now++
		a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, ReqID: id, Forget: []uint64{id - 1}, Op: Op{Type: OpCheck, Path: "/", Version: -1}})
	}
	require.Equal(t, 6, a.t.DedupLen(), "1, 2, 3, 5, 6 and the last")
	require.Less(t, len(a.t.dedupOrder), 2100, "dead entries compacted")
	checkDigest(t, a.t)
	a.now += DedupWindow + 1
	require.NoError(t, a.applyReq(7000, Op{Type: OpCheck, Path: "/", Version: -1}).Err)
	require.Equal(t, 1, a.t.DedupLen())
	require.Zero(t, a.t.dedupDead)
	checkDigest(t, a.t)
}

// snapshotRoundTrip reads back tr's snapshot and checks the digests match.
func snapshotRoundTrip(t *testing.T, tr *Tree) *Tree {
	t.Helper()
	var buf bytes.Buffer
	_, err := tr.WriteSnapshot(&buf)
	require.NoError(t, err)
	back, err := ReadSnapshot(&buf, Options{})
	require.NoError(t, err)
	require.Equal(t, tr.Digest(), back.Digest())
	return back
}
