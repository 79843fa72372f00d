package tree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRetriedTxnAppliesOnce(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/q", "", Persistent)
	apply := func(id uint64, op Op) Result {
		a.zxid++
		a.now += 10
		return a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, ReqID: id, Op: op})
	}
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
	var buf bytes.Buffer
	_, err := a.t.WriteSnapshot(&buf)
	require.NoError(t, err)
	back, err := ReadSnapshot(&buf, Options{})
	require.NoError(t, err)
	require.Equal(t, a.t.Digest(), back.Digest())
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
	apply := func(id uint64, op Op) Result {
		a.zxid++
		a.now += 10
		return a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, ReqID: id, Op: op})
	}
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
