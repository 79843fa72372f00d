package tree

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// applier feeds a tree txns with increasing zxids and a fake clock.
type applier struct {
	t       *Tree
	zxid    int64
	now     int64
	maxData int32 // Txn.MaxData of every txn
}

func newApplier(opts Options) *applier { return &applier{t: New(opts), now: 1_000_000} }

func (a *applier) apply(session int64, op Op) Result { return a.applyTxn(session, 0, op) }

// applyReq applies op as a write with request id id (dedup: a retry
// carries its first attempt's id).
func (a *applier) applyReq(id uint64, op Op) Result { return a.applyTxn(0, id, op) }

func (a *applier) applyTxn(session int64, id uint64, op Op) Result {
	a.zxid++
	a.now += 10
	return a.t.Apply(Txn{Zxid: a.zxid, Time: a.now, Session: session, ReqID: id, MaxData: a.maxData, Op: op})
}

func (a *applier) create(tb testing.TB, path string, data string, mode CreateMode) string {
	tb.Helper()
	r := a.apply(0, Op{Type: OpCreate, Path: path, Data: []byte(data), Mode: mode})
	require.NoError(tb, r.Err)
	return r.Path
}

func (a *applier) createIn(tb testing.TB, session int64, path string, mode CreateMode) string {
	tb.Helper()
	r := a.apply(session, Op{Type: OpCreate, Path: path, Mode: mode})
	require.NoError(tb, r.Err)
	return r.Path
}

func (a *applier) session(tb testing.TB, id int64) {
	tb.Helper()
	require.NoError(tb, a.apply(0, Op{Type: OpCreateSession, Session: id, Timeout: 5000}).Err)
}

// recorder is a Watcher that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Notify(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// checkDigest asserts the incremental digest equals one computed from scratch.
func checkDigest(tb testing.TB, tr *Tree) {
	tb.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	require.Equal(tb, tr.computeDigest(), tr.digest, "incremental digest drifted")
}
