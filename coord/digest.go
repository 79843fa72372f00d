package coord

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// ErrDiverged: this node's tree differs from the leader's at the same zxid
// (tree.Tree.Digest), so it stopped serving rather than answer with
// different data. Node.Err wraps it (and ErrFailed); start the node again
// (with a DataDir it rebuilds its tree from its snapshot and log, and a
// damaged DataDir must be wiped).
var ErrDiverged = errors.New("coord: replica diverged from the leader")

// Replicas prove they agree, as ZooKeeper 3.6's digest check does: the
// leader puts its tree digest at a zxid it applied into a txn every
// digestEvery applied entries, and every replica compares it with its own
// digest at that zxid when it applies the txn. zab only carries the txn
// (the digest is the state machine's, opaque to it). A replica that
// differs stops serving at once and says so loudly.
const (
	// digestEvery is how many applied entries the leader lets pass between
	// two digest checks.
	digestEvery = 64
	// digestKeep is how many recent (zxid, digest) pairs a replica keeps to
	// compare a check against: more than a check can lag behind its zxid.
	digestKeep = 4096
)

// digestAt is the tree's digest right after applying zxid.
type digestAt struct {
	zxid   int64
	digest uint64
}

// digests is a replica's record of its recent digests. Apply writes it on
// the zab driver goroutine; the leader's maintenance loop reads the last.
type digests struct {
	mu     sync.Mutex
	ring   [digestKeep]digestAt
	next   int
	n      int
	count  uint64 // entries recorded
	sent   uint64 // count when the leader last proposed a check
	failed error  // the first mismatch
}

// record notes the digest after zxid.
func (d *digests) record(zxid int64, digest uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ring[d.next] = digestAt{zxid: zxid, digest: digest}
	d.next = (d.next + 1) % digestKeep
	d.n = min(d.n+1, digestKeep)
	d.count++
}

// at returns the digest recorded right after zxid, if still kept.
func (d *digests) at(zxid int64) (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 1; i <= d.n; i++ {
		e := d.ring[(d.next-i+digestKeep)%digestKeep]
		if e.zxid == zxid {
			return e.digest, true
		}
		if e.zxid < zxid {
			break
		}
	}
	return 0, false
}

// due returns the last digest if a check is due, and marks it sent.
func (d *digests) due() (digestAt, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 || d.count-d.sent < digestEvery {
		return digestAt{}, false
	}
	d.sent = d.count
	return d.ring[(d.next-1+digestKeep)%digestKeep], true
}

// check compares a leader's digest with ours at the same zxid; a mismatch
// is kept (the first) and returned.
func (d *digests) check(zxid int64, leader uint64, self uint64) error {
	mine, ok := d.at(zxid)
	if !ok || mine == leader {
		return nil
	}
	err := fmt.Errorf("%w: tree digest at zxid %v is %016x here, %016x at the leader (checked by the txn applied after it; own last %016x)",
		ErrDiverged, zab.Zxid(zxid), mine, leader, self)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed == nil {
		d.failed = err
	}
	return err
}

func (d *digests) diverged() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}

// maybeProposeDigest, on the leader, proposes a digest check when one is
// due: a no-op txn carrying the leader's digest at the last zxid it applied.
func (n *Node) maybeProposeDigest() {
	at, ok := n.fsm.digests.due()
	if !ok {
		return
	}
	data, err := encodeRequest(&request{Origin: n.cfg.NodeID, ReqID: newReqID(), Time: time.Now().UnixMilli(),
		Op: tree.Op{Type: tree.OpCheck, Path: "/", Version: -1}, DigestAt: at.zxid, Digest: at.digest})
	if err != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := n.housekeepingContext()
		defer cancel()
		if _, err := n.zab.Propose(ctx, data); err != nil {
			n.log.Debug("coord: digest check not proposed", "zxid", zab.Zxid(at.zxid), "err", err)
		}
	}()
}

// checkDiverged fail-stops the node once its tree was found to differ from
// the leader's: it stops serving and leaves the replication, loudly. It
// runs on the maintenance goroutine and reports whether it stopped.
func (n *Node) checkDiverged() bool {
	err := n.fsm.digests.diverged()
	if err == nil {
		return false
	}
	n.log.Error("coord: this replica's tree differs from the leader's: it stops serving and leaves the replication; "+
		"restart it to rebuild its tree (wipe its DataDir if the restart diverges again)", "err", err)
	n.fail(err)
	n.zab.Close()
	return true
}
