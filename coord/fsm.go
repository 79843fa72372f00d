package coord

import (
	"bytes"
	"io"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// request is what coord replicates (proposal.Request). Its encoding, the
// leader's stamp and the decoding of an entry into a txn live in
// internal/proposal, which the simulator in internal/sim drives too; these
// are coord's names for them.
type request = proposal.Request

// stampTag and stampLen frame a leader's stamp (proposal.StampTag).
const (
	stampTag = proposal.StampTag
	stampLen = proposal.StampLen
)

func encodeRequest(r *request) ([]byte, error) { return proposal.Encode(r) }

func decodeRequest(b []byte) (request, error) { return proposal.Decode(b) }

// newStamper returns the zab.Config.Stamp of a node (proposal.NewStamper).
func newStamper(now func() time.Time) func([]byte) []byte { return proposal.NewStamper(now) }

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
	// emptied: zab emptied the state (a resync, Restore of the zero
	// Snapshot); the tree is replaced by the next Restore, or emptied
	// before the next Apply (watchers see only what really changed).
	emptied atomic.Bool
	// resets counts those emptyings.
	resets atomic.Uint64
	// skew, set by tests only, is XORed into every digest recorded: a
	// replica whose tree keeps differing from the leader's.
	skew atomic.Uint64
	// restoreHook, set by tests only, runs when zab empties the state (a
	// resync): holding it is a replica slow to take the leader's state.
	restoreHook atomic.Pointer[func()]
}

func newFSM(t *tree.Tree) *fsm { return &fsm{tree: t} }

// Apply applies one committed entry and returns its tree.Result. An entry
// that does not decode (it cannot happen unless a peer is broken) is
// applied as a no-op so the tree's zxid still advances.
func (f *fsm) Apply(e zab.Entry) any {
	if f.emptied.Load() {
		if err := f.restoreEmpty(); err != nil {
			panic(err) // an empty tree always encodes and decodes
		}
	}
	f.commits.Add(1)
	// An entry that does not decode becomes a no-op (proposal.Txn). The
	// result is the response (proposal.Apply, which the simulator's state
	// machines run too).
	txn, req, res, _ := proposal.Apply(f.tree, e)
	if req.DigestAt != 0 {
		_ = f.digests.check(req.DigestAt, req.Digest, f.tree.Digest())
	}
	f.digests.record(int64(e.Zxid), f.tree.Digest()^f.skew.Load())
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
	if s.Zxid == 0 && len(s.Data) == 0 {
		f.digests.reset()
		f.emptied.Store(true)
		f.resets.Add(1)
		if h := f.restoreHook.Load(); h != nil {
			(*h)()
		}
		return nil
	}
	if err := f.tree.Restore(bytes.NewReader(s.Data)); err != nil {
		return err
	}
	f.emptied.Store(false)
	f.digests.record(f.tree.LastZxid(), f.tree.Digest()^f.skew.Load())
	return nil
}

// restoreEmpty replaces the tree by an empty one.
func (f *fsm) restoreEmpty() error {
	var buf bytes.Buffer
	if _, err := tree.New(tree.Options{}).WriteSnapshot(&buf); err != nil {
		return err
	}
	if err := f.tree.Restore(&buf); err != nil {
		return err
	}
	f.emptied.Store(false)
	return nil
}
