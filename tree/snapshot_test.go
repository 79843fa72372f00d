package tree

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRandomStreamsAgree applies the same random txn stream to two trees and
// checks identical results, digests and snapshots, and that the incremental
// digest equals one computed from scratch.
func TestRandomStreamsAgree(t *testing.T) {
	seed := testSeed(t)
	for round := uint64(0); round < 20; round++ {
		g := newTxnGen(seed + round)
		a, b := New(Options{}), New(Options{})
		for i := 0; i < 1500; i++ {
			txn := g.next(a.ReapCandidates)
			ra, rb := a.Apply(txn), b.Apply(txn)
			require.Equal(t, errString(ra.Err), errString(rb.Err), describe(txn))
			require.Equal(t, ra.Path, rb.Path)
			require.Equal(t, a.Digest(), b.Digest(), describe(txn))
			if i%100 == 0 {
				checkDigest(t, a)
			}
		}
		checkDigest(t, a)
		var sa, sb bytes.Buffer
		_, err := a.WriteSnapshot(&sa)
		require.NoError(t, err)
		_, err = b.WriteSnapshot(&sb)
		require.NoError(t, err)
		require.Equal(t, sa.Bytes(), sb.Bytes(), "equal trees give identical snapshots")
		c, err := ReadSnapshot(&sa, Options{})
		require.NoError(t, err)
		require.Equal(t, a.Digest(), c.Digest())
		require.Equal(t, a.NodeCount(), c.NodeCount())
		require.Equal(t, a.Sessions(), c.Sessions())
		for _, s := range a.Sessions() {
			require.Equal(t, a.Ephemerals(s.ID), c.Ephemerals(s.ID))
		}
		require.Equal(t, a.ReapCandidates(g.now+100), c.ReapCandidates(g.now+100))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSnapshotUnderConcurrentWrites takes snapshots while an applier keeps
// writing, then rebuilds the tree from each snapshot plus the txns after its
// zxid and checks it equals the live tree.
func TestSnapshotUnderConcurrentWrites(t *testing.T) {
	seed := testSeed(t)
	g := newTxnGen(seed)
	live := New(Options{})
	var log []Txn
	for i := 0; i < 3000; i++ {
		txn := g.next(live.ReapCandidates)
		live.Apply(txn)
		log = append(log, txn)
	}
	for round := 0; round < 5; round++ {
		var snap bytes.Buffer
		var snapZxid int64
		var snapErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			snapZxid, snapErr = live.WriteSnapshot(&snap)
		}()
		for i := 0; i < 2000; i++ {
			txn := g.next(live.ReapCandidates)
			live.Apply(txn)
			log = append(log, txn)
		}
		wg.Wait()
		require.NoError(t, snapErr)
		rebuilt, err := ReadSnapshot(&snap, Options{})
		require.NoError(t, err)
		require.Equal(t, snapZxid, rebuilt.LastZxid())
		for _, txn := range log {
			if txn.Zxid > snapZxid {
				rebuilt.Apply(txn)
			}
		}
		require.Equal(t, live.Digest(), rebuilt.Digest(), "round %d, snapshot at zxid %d", round, snapZxid)
		require.Equal(t, live.NodeCount(), rebuilt.NodeCount())
		checkDigest(t, rebuilt)
	}
}

func smallSnapshot(t testing.TB) []byte {
	a := newApplier(Options{})
	a.session(t, 4)
	a.create(t, "/x", "data", Persistent)
	a.create(t, "/x/y", "", Container)
	a.createIn(t, 4, "/x/e", Ephemeral)
	require.NoError(t, a.apply(0, Op{Type: OpCreate, Path: "/t", Mode: PersistentWithTTL, TTL: 9}).Err)
	var buf bytes.Buffer
	_, err := a.t.WriteSnapshot(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

func TestSnapshotTruncatedEverywhere(t *testing.T) {
	snap := smallSnapshot(t)
	for n := 0; n < len(snap); n++ {
		_, err := ReadSnapshot(bytes.NewReader(snap[:n]), Options{})
		require.ErrorIs(t, err, ErrCorruptSnapshot, "cut at %d of %d", n, len(snap))
	}
	_, err := ReadSnapshot(bytes.NewReader(snap), Options{})
	require.NoError(t, err)
}

func TestSnapshotBitFlipsEverywhere(t *testing.T) {
	snap := smallSnapshot(t)
	for i := 0; i < len(snap); i++ {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(snap)
			bad[i] ^= 1 << bit
			_, err := ReadSnapshot(bytes.NewReader(bad), Options{})
			require.ErrorIs(t, err, ErrCorruptSnapshot, "flip bit %d of byte %d", bit, i)
		}
	}
}

func TestSnapshotLimitsAndRules(t *testing.T) {
	snap := smallSnapshot(t)
	_, err := readSnapshotLimited(bytes.NewReader(snap), Options{}, frameLimits{meta: maxMetaFrame, node: 12})
	require.ErrorIs(t, err, ErrCorruptSnapshot, "a node frame over the reader's limit")
	require.Contains(t, err.Error(), "limit")

	bad := bytes.Clone(snap)
	bad[9] = 9 // version
	_, err = ReadSnapshot(bytes.NewReader(bad), Options{})
	require.ErrorIs(t, err, ErrCorruptSnapshot)
	require.Contains(t, err.Error(), "unsupported version 9")

	_, err = ReadSnapshot(errReader{}, Options{})
	require.ErrorIs(t, err, errBoom)
}

var errBoom = errors.New("boom")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

func TestSnapshotWriteError(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/a", "x", Persistent)
	_, err := a.t.WriteSnapshot(errWriter{})
	require.ErrorIs(t, err, errBoom)
	// The tree is unaffected and can snapshot again.
	var buf bytes.Buffer
	_, err = a.t.WriteSnapshot(&buf)
	require.NoError(t, err)
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errBoom }

func FuzzReadSnapshot(f *testing.F) {
	f.Add(smallSnapshot(f))
	g := newTxnGen(1)
	tr := New(Options{})
	for i := 0; i < 200; i++ {
		tr.Apply(g.next(tr.ReapCandidates))
	}
	var buf bytes.Buffer
	if _, err := tr.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("COORDSNP\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ReadSnapshot(bytes.NewReader(b), Options{})
		if err != nil {
			return
		}
		// Whatever decodes is a consistent tree that round-trips.
		checkDigest(t, tr)
		var out bytes.Buffer
		_, err = tr.WriteSnapshot(&out)
		require.NoError(t, err)
		back, err := ReadSnapshot(&out, Options{})
		require.NoError(t, err)
		require.Equal(t, tr.Digest(), back.Digest())
	})
}

// TestSnapshotIsPointInTime blocks the snapshot's writer half-way, changes
// the tree in every way (Apply must not wait for the writer), and checks the
// snapshot holds exactly the state at its start.
func TestSnapshotIsPointInTime(t *testing.T) {
	a := newApplier(Options{})
	a.session(t, 1)
	for i := 0; i < 3*snapBatch; i++ {
		a.create(t, "/n-", "v", PersistentSequential)
	}
	a.create(t, "/n-0000000000/child", "", Persistent)
	a.createIn(t, 1, "/eph", Ephemeral)
	want := a.t.Digest()
	wantZxid := a.zxid

	pr, pw := io.Pipe()
	type result struct {
		zxid int64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		zxid, err := a.t.WriteSnapshot(pw)
		pw.CloseWithError(err)
		done <- result{zxid, err}
	}()
	var snap bytes.Buffer
	_, err := io.CopyN(&snap, pr, 64) // the writer is now blocked mid-stream
	require.NoError(t, err)

	applied := make(chan struct{})
	go func() {
		defer close(applied)
		a.apply(0, Op{Type: OpDelete, Path: "/n-0000000000/child", Version: -1})
		a.apply(0, Op{Type: OpDelete, Path: "/n-0000000000", Version: -1})
		a.create(t, "/n-0000000000", "again", Persistent)
		a.apply(0, Op{Type: OpSetData, Path: "/n-0000000700", Data: []byte("changed"), Version: -1})
		a.create(t, "/brand-new", "", Persistent)
		a.apply(0, Op{Type: OpCloseSession, Session: 1})
		a.apply(0, Op{Type: OpMulti, Ops: []Op{
			{Type: OpCreate, Path: "/n-0000000001/x"},
			{Type: OpCreate, Path: "/n-0000000001/x"}, // fails: the multi rolls back
		}})
	}()
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("Apply blocked behind a slow snapshot writer")
	}
	_, err = io.Copy(&snap, pr)
	require.NoError(t, err)
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, wantZxid, res.zxid)

	got, err := ReadSnapshot(&snap, Options{})
	require.NoError(t, err)
	require.Equal(t, want, got.Digest())
	data, _, err := got.Get("/n-0000000700", nil)
	require.NoError(t, err)
	require.Equal(t, "v", string(data))
	_, ok, _ := got.Exists("/n-0000000000/child", nil)
	require.True(t, ok)
	_, ok, _ = got.Exists("/brand-new", nil)
	require.False(t, ok)
	require.Equal(t, []string{"/eph"}, got.Ephemerals(1))

	// After the snapshot, the live tree's bookkeeping is back to normal.
	a.t.mu.RLock()
	require.Nil(t, a.t.snap)
	a.t.mu.RUnlock()
	checkDigest(t, a.t)
}
