package coord

import (
	"bytes"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// request is what coord replicates: one tree op with the proposer's id,
// clock and session. Followers forward it unchanged to the leader.
type request struct {
	Origin  uint64  `msgpack:"o"`
	ReqID   uint64  `msgpack:"r,omitempty"` // unique per write; reused only by its retries
	Time    int64   `msgpack:"t"`           // proposer's clock, ms since the Unix epoch
	Session int64   `msgpack:"s,omitempty"`
	Op      tree.Op `msgpack:"p"`
}

// maxPendingResults bounds the results kept for local writers that stopped
// waiting (their context ended): older ones are dropped.
const maxPendingResults = 4096

// fsm applies committed requests to the tree. It is the zab.StateMachine of
// a Node: Apply and Restore run on the zab driver goroutine.
type fsm struct {
	id   uint64
	tree *tree.Tree
	// onApply, if set, sees every applied txn and its result (session
	// bookkeeping on the leader). It runs on the driver goroutine.
	onApply func(txn tree.Txn, res tree.Result)

	mu      sync.Mutex
	results map[zab.Zxid]tree.Result // this node's writes, until collected
}

func newFSM(id uint64, t *tree.Tree) *fsm {
	return &fsm{id: id, tree: t, results: make(map[zab.Zxid]tree.Result)}
}

func encodeRequest(r *request) ([]byte, error) { return msgpack.Marshal(r) }

func decodeRequest(b []byte) (request, error) {
	var r request
	if err := msgpackcheck.Check(b, 8); err != nil {
		return r, err
	}
	err := msgpack.Unmarshal(b, &r)
	return r, err
}

// Apply applies one committed entry. An entry that does not decode (it
// cannot happen unless a peer is broken) is applied as a no-op so the tree's
// zxid still advances.
func (f *fsm) Apply(e zab.Entry) {
	req, err := decodeRequest(e.Data)
	if err != nil {
		req = request{Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1}}
	}
	if req.Op.Type == tree.OpCreateSession && req.Op.Session == 0 {
		// A session's id is the zxid of its creation: unique across leaders.
		req.Op.Session = int64(e.Zxid)
	}
	txn := tree.Txn{Zxid: int64(e.Zxid), Time: req.Time, Session: req.Session, ReqID: req.ReqID, Op: req.Op}
	res := f.tree.Apply(txn)
	if f.onApply != nil {
		f.onApply(txn, res)
	}
	if req.Origin == f.id {
		f.mu.Lock()
		if len(f.results) >= maxPendingResults {
			for z := range f.results {
				if z < e.Zxid-maxPendingResults/2 {
					delete(f.results, z)
				}
			}
		}
		f.results[e.Zxid] = res
		f.mu.Unlock()
	}
}

// take returns and forgets the result of this node's write at z.
func (f *fsm) take(z zab.Zxid) (tree.Result, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.results[z]
	delete(f.results, z)
	return r, ok
}

func (f *fsm) Snapshot(w io.Writer) (zab.Zxid, error) {
	z, err := f.tree.WriteSnapshot(w)
	return zab.Zxid(z), err
}

func (f *fsm) Restore(s zab.Snapshot) error {
	return f.tree.Restore(bytes.NewReader(s.Data))
}
