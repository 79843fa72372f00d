package coord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coord-dev/coord/internal/proposal"
	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Stat is a znode's metadata, as ZooKeeper's Stat.
type Stat = tree.Stat

// CreateMode is the kind of node a create makes.
type CreateMode = tree.CreateMode

// The create modes (see package tree for their semantics).
const (
	Persistent                  = tree.Persistent
	Ephemeral                   = tree.Ephemeral
	PersistentSequential        = tree.PersistentSequential
	EphemeralSequential         = tree.EphemeralSequential
	Container                   = tree.Container
	PersistentWithTTL           = tree.PersistentWithTTL
	PersistentSequentialWithTTL = tree.PersistentSequentialWithTTL
)

// AnyVersion as an expected version matches every version.
const AnyVersion int32 = -1

// Limits on a request as a whole (ErrRequestTooLarge beyond them).
const (
	// MaxRequestSize is the most bytes one encoded request (a write with
	// its path, data and, for a Multi, every op) may take, so it fits one
	// log record and one replication frame.
	MaxRequestSize = zab.MaxEntrySize
	// MaxMultiOps is the most ops one Multi may hold.
	MaxMultiOps = tree.MaxMultiOps
)

// CreateOption is an option of a create. It is an opaque value made by
// WithTTL: it can set only what its constructor names, never the rest of
// the operation (its type, path or session).
type CreateOption struct {
	ttl    int64 // milliseconds
	hasTTL bool
}

// WithTTL sets the TTL of a PersistentWithTTL or PersistentSequentialWithTTL
// node: it is removed once it has had no children and no change for ttl.
func WithTTL(ttl time.Duration) CreateOption {
	return CreateOption{ttl: ttl.Milliseconds(), hasTTL: true}
}

// createOp builds the tree op of a create with its options.
func createOp(path string, data []byte, mode CreateMode, opts []CreateOption) tree.Op {
	op := tree.Op{Type: tree.OpCreate, Path: path, Data: data, Mode: mode}
	for _, o := range opts {
		if o.hasTTL {
			op.TTL = o.ttl
		}
	}
	return op
}

// Op is one operation of a Multi; build it with CreateOp, DeleteOp, SetOp and
// CheckOp.
type Op struct{ op tree.Op }

// CreateOp creates path in a Multi.
func CreateOp(path string, data []byte, mode CreateMode, opts ...CreateOption) Op {
	return Op{createOp(path, data, mode, opts)}
}

// DeleteOp deletes path at version (AnyVersion for any) in a Multi.
func DeleteOp(path string, version int32) Op {
	return Op{tree.Op{Type: tree.OpDelete, Path: path, Version: version}}
}

// SetOp sets path's data at version (AnyVersion for any) in a Multi.
func SetOp(path string, data []byte, version int32) Op {
	return Op{tree.Op{Type: tree.OpSetData, Path: path, Data: data, Version: version}}
}

// CheckOp requires path to exist at version (AnyVersion: just exist) in a Multi.
func CheckOp(path string, version int32) Op {
	return Op{tree.Op{Type: tree.OpCheck, Path: path, Version: version}}
}

// OpResult is the outcome of one op of a Multi. If the Multi failed, every
// result carries the error of its op: nil for ops before the failing one
// (rolled back), the failure itself, then ErrRuntimeInconsistency.
type OpResult struct {
	Err  error
	Path string // created path
	Stat Stat   // stat after a create or set
}

// Create creates a node and returns its path (with the sequence suffix for
// sequential modes). Ephemeral nodes belong to the session.
func (s *Session) Create(ctx context.Context, path string, data []byte, mode CreateMode, opts ...CreateOption) (string, error) {
	res, err := s.write(ctx, createOp(path, data, mode, opts))
	if err != nil {
		return "", err
	}
	return res.Path, nil
}

// Set replaces a node's data if its version is version (AnyVersion: any)
// and returns the new stat.
func (s *Session) Set(ctx context.Context, path string, data []byte, version int32) (Stat, error) {
	res, err := s.write(ctx, tree.Op{Type: tree.OpSetData, Path: path, Data: data, Version: version})
	return res.Stat, err
}

// Delete deletes a childless node if its version is version (AnyVersion: any).
func (s *Session) Delete(ctx context.Context, path string, version int32) error {
	_, err := s.write(ctx, tree.Op{Type: tree.OpDelete, Path: path, Version: version})
	return err
}

// Multi applies ops atomically: all of them or none. The error is the first
// failing op's; the results say which one it was.
func (s *Session) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	top := tree.Op{Type: tree.OpMulti, Ops: make([]tree.Op, len(ops))}
	for i, o := range ops {
		top.Ops[i] = o.op
	}
	res, err := s.write(ctx, top)
	if res.Results == nil {
		return nil, err
	}
	out := make([]OpResult, len(res.Results))
	for i, r := range res.Results {
		out[i] = OpResult{Err: r.Err, Path: r.Path, Stat: r.Stat}
	}
	return out, err
}

// Get returns a node's data and stat from the local replica.
func (s *Session) Get(ctx context.Context, path string) ([]byte, Stat, error) {
	if err := s.readable(ctx); err != nil {
		return nil, Stat{}, err
	}
	return s.n.tree.Get(path, nil)
}

// GetW is Get that also sets a one-shot watch: the channel receives the
// node's next change (NodeDataChanged or NodeDeleted) and is then closed.
func (s *Session) GetW(ctx context.Context, path string) ([]byte, Stat, <-chan Event, error) {
	if err := s.readable(ctx); err != nil {
		return nil, Stat{}, nil, err
	}
	w := s.newOneShot()
	data, st, err := s.n.tree.Get(path, w)
	if err != nil {
		s.dropWatch(w)
		return nil, Stat{}, nil, err
	}
	return data, st, w.ch, nil
}

// Exists reports whether a node exists, with its stat.
func (s *Session) Exists(ctx context.Context, path string) (Stat, bool, error) {
	if err := s.readable(ctx); err != nil {
		return Stat{}, false, err
	}
	return s.n.tree.Exists(path, nil)
}

// ExistsW is Exists that also sets a one-shot watch, whether or not the node
// exists: the channel receives its creation, data change or deletion.
func (s *Session) ExistsW(ctx context.Context, path string) (Stat, bool, <-chan Event, error) {
	if err := s.readable(ctx); err != nil {
		return Stat{}, false, nil, err
	}
	w := s.newOneShot()
	st, ok, err := s.n.tree.Exists(path, w)
	if err != nil {
		s.dropWatch(w)
		return Stat{}, false, nil, err
	}
	return st, ok, w.ch, nil
}

// Children returns the sorted names of a node's children and its stat.
func (s *Session) Children(ctx context.Context, path string) ([]string, Stat, error) {
	if err := s.readable(ctx); err != nil {
		return nil, Stat{}, err
	}
	return s.n.tree.Children(path, nil)
}

// ChildrenW is Children that also sets a one-shot child watch: the channel
// receives NodeChildrenChanged (or NodeDeleted) and is then closed.
func (s *Session) ChildrenW(ctx context.Context, path string) ([]string, Stat, <-chan Event, error) {
	if err := s.readable(ctx); err != nil {
		return nil, Stat{}, nil, err
	}
	w := s.newOneShot()
	names, st, err := s.n.tree.Children(path, w)
	if err != nil {
		s.dropWatch(w)
		return nil, Stat{}, nil, err
	}
	return names, st, w.ch, nil
}

// Sync waits until the local replica has applied every write committed
// before the call, the leader having confirmed with a quorum that it still
// leads. A read after Sync is linearizable.
func (s *Session) Sync(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	_, err := s.n.zab.Sync(ctx)
	return s.n.mapErr(err)
}

// readable checks what a local read needs.
func (s *Session) readable(ctx context.Context) error {
	yieldSometimes()
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.usable()
}

// write replicates op and returns its result once the local tree applied it.
func (s *Session) write(ctx context.Context, op tree.Op) (tree.Result, error) {
	if err := s.usable(); err != nil {
		return tree.Result{}, err
	}
	if err := s.n.precheck(&op); err != nil {
		return tree.Result{}, err
	}
	return s.n.propose(ctx, s.id, op)
}

// precheck refuses early, without using a zxid, what the tree would refuse:
// bad paths, oversize data and too many ops. The tree checks again when it
// applies (data against the limit the request carries).
func (n *Node) precheck(op *tree.Op) error {
	switch op.Type {
	case tree.OpCreate:
		p := op.Path
		if op.Mode.IsSequential() {
			p += "1"
		}
		if err := tree.ValidatePath(p); err != nil {
			return err
		}
	case tree.OpDelete, tree.OpSetData, tree.OpCheck:
		if err := tree.ValidatePath(op.Path); err != nil {
			return err
		}
	case tree.OpMulti:
		if len(op.Ops) > MaxMultiOps {
			return fmt.Errorf("%w: %d ops in a multi, limit %d", ErrRequestTooLarge, len(op.Ops), MaxMultiOps)
		}
		for i := range op.Ops {
			if err := n.precheck(&op.Ops[i]); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
		}
	}
	if len(op.Data) > n.cfg.MaxDataSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrDataTooLarge, len(op.Data), n.cfg.MaxDataSize)
	}
	return nil
}

// propose replicates op for session and waits for the local apply.
func (n *Node) propose(ctx context.Context, session int64, op tree.Op) (tree.Result, error) {
	res, _, err := n.proposeAt(ctx, session, op)
	return res, err
}

// proposeAt is propose that also returns the txn's zxid. The request
// carries a unique id, so when its outcome is unknown (the leader was lost
// in flight) or no leader is established, it is retried until ctx ends: the
// tree applies a request id at most once, so a retry never applies a write
// twice and a retried sequential create returns the name it first got.
func (n *Node) proposeAt(ctx context.Context, session int64, op tree.Op) (tree.Result, zab.Zxid, error) {
	// The first attempt, if applied at all, is applied after what the
	// local tree holds now (zxids start above 1<<32: 1 is below them all).
	since := max(n.tree.LastZxid(), 1)
	rt, err := n.newRetry(request{Origin: n.cfg.NodeID, ReqID: newReqID(), Time: time.Now().UnixMilli(),
		Session: session, MaxData: int32(n.cfg.MaxDataSize), Op: op}, since)
	if err != nil {
		return tree.Result{}, 0, err
	}
	if len(rt.Data()) > MaxRequestSize {
		// Refused before the log: a txn above a log record or a frame
		// would stop every replica it reached. The Forget ids it took go
		// back for the next request.
		n.finished.Done(rt, proposal.Step{})
		return tree.Result{}, 0, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrRequestTooLarge, len(rt.Data()), MaxRequestSize)
	}
	st := n.attempt(ctx, rt)
	n.finished.Done(rt, st)
	return st.Result, st.Zxid, st.Err
}

// newRetry makes the retry rule of req's attempts (proposal.NewRetry),
// req carrying in Forget the node's writes finished since its last
// request (proposal.Finished), unless they would push it above
// MaxRequestSize. Its caller hands the final verdict to n.finished.Done.
func (n *Node) newRetry(req request, since int64) (*proposal.Retry, error) {
	req.Forget = n.finished.Take()
	rt, err := proposal.NewRetry(req, since, n.mapErr)
	if err == nil && len(req.Forget) > 0 && len(rt.Data()) > MaxRequestSize {
		n.finished.Done(rt, proposal.Step{}) // the ids go back
		req.Forget = nil
		rt, err = proposal.NewRetry(req, since, n.mapErr)
	}
	return rt, err
}

// attempt proposes rt's write (as the leader of rt.Epoch only, if set)
// until rt's rule ends it, ctx ends or the node closes, a tick apart. The
// retry rule (which verdicts are retried, Since once an outcome is
// unknown, a leader's decision ending with its reign) is proposal.Retry's,
// which the simulator steps too: every write and housekeeping proposal of
// coord goes through here.
func (n *Node) attempt(ctx context.Context, rt *proposal.Retry) proposal.Step {
	for {
		var a zab.Applied
		var err error
		if e := rt.Epoch(); e != 0 {
			a, err = n.zab.ProposeAsLeader(ctx, e, rt.Data())
		} else {
			a, err = n.zab.Propose(ctx, rt.Data())
		}
		st := rt.Next(a, err)
		if !st.Again || ctx.Err() != nil || n.closed.Load() {
			return st
		}
		select {
		case <-ctx.Done():
		case <-n.closing:
		case <-time.After(n.cfg.TickInterval):
		}
	}
}

// newReqID returns a random non-zero request id.
func newReqID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// mapErr turns zab's errors into coord's.
func (n *Node) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zab.ErrOutcomeUnknown):
		return err
	case errors.Is(err, zab.ErrEntryTooLarge):
		return fmt.Errorf("%w: %w", ErrRequestTooLarge, err)
	case errors.Is(err, zab.ErrNodeClosed):
		if ferr := n.Err(); ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, zab.ErrNoLeader), errors.Is(err, zab.ErrLeaderLost), errors.Is(err, zab.ErrProposalDropped):
		return fmt.Errorf("%w: %w", ErrNoQuorum, err)
	}
	return err
}
