// Package proposal is the request path coord replicates, shared by coord and
// the simulator in internal/sim so that the simulator drives the code that
// ships: the Request a write travels as, its encoding, the stamp a leader
// puts on every write it appends (NewStamper, installed as zab.Config.Stamp),
// the decoding of a committed entry into the tree.Txn every replica applies
// (Txn) and its application to the tree, whose result is the write's
// response (Apply), and the rule by which a write is retried (Retry).
package proposal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/coord-dev/coord/internal/msgpackcheck"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Request is what coord replicates: one tree op with the proposer's id,
// clock and session. Followers forward it unchanged to the leader.
type Request struct {
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
	// DigestAt and Digest, on a leader's digest check (coord's digest.go),
	// are the leader's tree digest right after zxid DigestAt.
	DigestAt int64  `msgpack:"da,omitempty"`
	Digest   uint64 `msgpack:"dg,omitempty"`
	// Forget lists ReqIDs of the proposer's earlier writes that were
	// applied by their only attempt and whose results it has (see
	// Finished): no attempt of theirs can come again, so every replica
	// drops their remembered results when it applies this request
	// (tree.Txn.Forget). At most MaxForget.
	Forget []uint64 `msgpack:"fg,omitempty"`
}

// A write the leader appended is stamped with the leader's clock: the
// StampTag byte, the time (ms since the Unix epoch, big-endian uint64),
// then the request as proposed: StampLen bytes before the request. msgpack
// never uses 0xc1, so a plain request never starts with it. The stamp, not
// the proposer's clock, is the txn's time: one node's clock cannot move
// TTLs or dedup expiry.
const (
	StampTag = 0xc1
	StampLen = 9
)

// NewStamper returns the zab.Config.Stamp of a node: it stamps each write
// with now, never earlier than the previous stamp (the tree also keeps txn
// times from going back across leaders). It runs on the zab driver only.
// Each run of a node makes its own.
func NewStamper(now func() time.Time) func([]byte) []byte {
	var last int64
	return func(data []byte) []byte {
		if len(data) >= StampLen && data[0] == StampTag {
			data = data[StampLen:] // restamped: the old stamp goes
		}
		last = max(last, now().UnixMilli())
		out := make([]byte, StampLen+len(data))
		out[0] = StampTag
		binary.BigEndian.PutUint64(out[1:StampLen], uint64(last))
		copy(out[StampLen:], data)
		return out
	}
}

// Decode decodes a plain or stamped request; a stamped one takes the stamp
// as its Time.
func Decode(b []byte) (Request, error) {
	var r Request
	stamped := len(b) > 0 && b[0] == StampTag
	var at int64
	if stamped {
		if len(b) < StampLen {
			return r, fmt.Errorf("coord: stamped request of %d bytes", len(b))
		}
		at = int64(binary.BigEndian.Uint64(b[1:StampLen]))
		b = b[StampLen:]
	}
	if err := msgpackcheck.Check(b, 8); err != nil {
		return r, err
	}
	var rd bytes.Reader
	rd.Reset(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(&rd)
	if err := r.DecodeMsgpack(dec); err != nil {
		return Request{}, err
	}
	if stamped {
		r.Time = at
	}
	return r, nil
}

// NoopOp is the op of an entry that changes nothing: a check of the root
// at any version.
func NoopOp() tree.Op { return tree.Op{Type: tree.OpCheck, Path: "/", Version: -1} }

// Txn decodes a committed entry into the txn every replica applies, with
// the request it carried. An entry that does not decode (it cannot happen
// unless a peer is broken) becomes a no-op (NoopOp), so the tree's zxid
// still advances, and the error says why. A createSession that names no
// session gets the entry's zxid as its id: unique across leaders.
func Txn(e zab.Entry) (tree.Txn, Request, error) {
	req, err := Decode(e.Data)
	if err != nil {
		req = Request{Op: NoopOp()}
	}
	if req.Op.Type == tree.OpCreateSession && req.Op.Session == 0 {
		req.Op.Session = int64(e.Zxid)
	}
	return tree.Txn{Zxid: int64(e.Zxid), Time: req.Time, Session: req.Session, ReqID: req.ReqID,
		MaxData: req.MaxData, Since: req.Since, Op: req.Op, Forget: req.Forget}, req, err
}

// Apply applies committed entry e to t as every replica's state machine
// does (coord's fsm): the txn is Txn's, and the tree's result is the
// state machine's response for e, which zab hands to e's proposer
// (zab.Applied.Response) and Retry.Next reads. err is Txn's: an entry that
// does not decode was applied as a no-op.
func Apply(t *tree.Tree, e zab.Entry) (tree.Txn, Request, tree.Result, error) {
	txn, req, err := Txn(e)
	return txn, req, t.Apply(txn), err
}
