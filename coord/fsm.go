package coord

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// request is what coord replicates: one tree op with the proposer's id,
// clock and session. Followers forward it unchanged to the leader.
type request struct {
	Origin  uint64 `msgpack:"o"`           // the proposing node, for diagnostics
	ReqID   uint64 `msgpack:"r,omitempty"` // unique per write; reused only by its retries
	Time    int64  `msgpack:"t"`           // proposer's clock, ms since the Unix epoch; the leader's stamp replaces it
	Session int64  `msgpack:"s,omitempty"`
	// MaxData is the limit on node data the proposer checked the op
	// against (its Config.MaxDataSize); every replica applies the same.
	MaxData int32 `msgpack:"m,omitempty"`
	// Since is set on retries: a zxid applied before the first attempt
	// (tree.Txn.Since).
	Since int64   `msgpack:"si,omitempty"`
	Op    tree.Op `msgpack:"p"`
	// DigestAt and Digest, on a leader's digest check (digest.go), are
	// the leader's tree digest right after zxid DigestAt.
	DigestAt int64  `msgpack:"da,omitempty"`
	Digest   uint64 `msgpack:"dg,omitempty"`
}

// fsm applies committed requests to the tree. It is the zab.StateMachine of
// a Node: Apply and Restore run on the zab driver goroutine. A write's
// tree.Result goes back to its proposer as the response of Apply
// (zab.Applied.Response).
type fsm struct {
	tree *tree.Tree
	// onApply, if set, sees every applied txn and its result (session
	// bookkeeping on the leader). It runs on the driver goroutine.
	onApply func(txn tree.Txn, res tree.Result)
	// commits counts the entries applied (Stats.Commits).
	commits atomic.Uint64
	// digests records the tree's digest after each entry and checks the
	// leader's digest checks against it (digest.go).
	digests digests
}

func newFSM(t *tree.Tree) *fsm { return &fsm{tree: t} }

func encodeRequest(r *request) ([]byte, error) { return msgpack.Marshal(r) }

// A write the leader appended is stamped with the leader's clock: the
// stampTag byte, the time (ms since the Unix epoch, big-endian uint64),
// then the request as proposed. msgpack never uses 0xc1, so a plain
// request never starts with it. The stamp, not the proposer's clock,
// is the txn's time: one node's clock cannot move TTLs or dedup expiry.
const (
	stampTag = 0xc1
	stampLen = 9
)

// newStamper returns the zab.Config.Stamp of a node: it stamps each write
// with now, never earlier than the previous stamp (the tree also keeps txn
// times from going back across leaders). It runs on the zab driver only.
func newStamper(now func() time.Time) func([]byte) []byte {
	var last int64
	return func(data []byte) []byte {
		if len(data) >= stampLen && data[0] == stampTag {
			data = data[stampLen:] // restamped: the old stamp goes
		}
		last = max(last, now().UnixMilli())
		out := make([]byte, stampLen+len(data))
		out[0] = stampTag
		binary.BigEndian.PutUint64(out[1:stampLen], uint64(last))
		copy(out[stampLen:], data)
		return out
	}
}

// decodeRequest decodes a plain or stamped request; a stamped one takes
// the stamp as its Time.
func decodeRequest(b []byte) (request, error) {
	var r request
	stamped := len(b) > 0 && b[0] == stampTag
	var at int64
	if stamped {
		if len(b) < stampLen {
			return r, fmt.Errorf("coord: stamped request of %d bytes", len(b))
		}
		at = int64(binary.BigEndian.Uint64(b[1:stampLen]))
		b = b[stampLen:]
	}
	if err := msgpackcheck.Check(b, 8); err != nil {
		return r, err
	}
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if stamped {
		r.Time = at
	}
	return r, nil
}

// Apply applies one committed entry and returns its tree.Result. An entry
// that does not decode (it cannot happen unless a peer is broken) is
// applied as a no-op so the tree's zxid still advances.
func (f *fsm) Apply(e zab.Entry) any {
	f.commits.Add(1)
	req, err := decodeRequest(e.Data)
	if err != nil {
		req = request{Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1}}
	}
	if req.Op.Type == tree.OpCreateSession && req.Op.Session == 0 {
		// A session's id is the zxid of its creation: unique across leaders.
		req.Op.Session = int64(e.Zxid)
	}
	txn := tree.Txn{Zxid: int64(e.Zxid), Time: req.Time, Session: req.Session, ReqID: req.ReqID,
		MaxData: req.MaxData, Since: req.Since, Op: req.Op}
	res := f.tree.Apply(txn)
	if req.DigestAt != 0 {
		_ = f.digests.check(req.DigestAt, req.Digest, f.tree.Digest())
	}
	f.digests.record(int64(e.Zxid), f.tree.Digest())
	if f.onApply != nil {
		f.onApply(txn, res)
	}
	return res
}

func (f *fsm) Snapshot(w io.Writer) (zab.Zxid, error) {
	z, err := f.tree.WriteSnapshot(w)
	return zab.Zxid(z), err
}

func (f *fsm) Restore(s zab.Snapshot) error {
	if err := f.tree.Restore(bytes.NewReader(s.Data)); err != nil {
		return err
	}
	f.digests.record(f.tree.LastZxid(), f.tree.Digest())
	return nil
}
