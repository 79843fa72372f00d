package proposal

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/coord-dev/coord/tree"
	"github.com/coord-dev/coord/zab"
)

// Retry is the rule by which coord attempts one write (coord's
// Node.proposeAt), as a value with no clock, no goroutine and no I/O, so
// that coord's loop and the simulator's clients step the same rule. Every
// attempt carries the same request, so the same ReqID: the tree applies a
// ReqID at most once, so a retry never applies a write twice and a retried
// sequential create returns the name it first got. Once an attempt's
// outcome is unknown, later attempts also carry Since (a zxid applied
// before the first attempt), so the tree refuses, with
// tree.ErrRetryForgotten, a retry it can no longer deduplicate; that
// refusal is reported as zab.ErrOutcomeUnknown, never as a result.
//
// A housekeeping decision only one reign may take (a leader expiring a
// session by its own clock) is a Retry made AsLeader: its attempts go only
// as that leader's (zab.Node.ProposeAsLeader), and a refusal because the
// node no longer leads in that epoch ends it, never retried nor forwarded:
// the next reign decides afresh.
type Retry struct {
	req     Request
	epoch   uint32 // non-zero: attempts only as the leader of this epoch
	data    []byte
	since   int64
	unknown error // the first attempt's outcome that was unknown
	mapErr  func(error) error
	tries   int // attempts stepped by Next
}

// NewRetry encodes req for its first attempt. since is a zxid the local
// tree had applied before the first attempt was made (zxids start above
// 1<<32, so 1 is below them all). mapErr, if not nil, translates zab's
// errors into the caller's (coord's mapErr); nil keeps them.
func NewRetry(req Request, since int64, mapErr func(error) error) (*Retry, error) {
	data, err := Encode(&req)
	if err != nil {
		return nil, err
	}
	if mapErr == nil {
		mapErr = func(err error) error { return err }
	}
	return &Retry{req: req, data: data, since: since, mapErr: mapErr}, nil
}

// AsLeader makes r's attempts decisions of the leader of epoch (non-zero)
// only, and returns r.
func (r *Retry) AsLeader(epoch uint32) *Retry {
	r.epoch = epoch
	return r
}

// Epoch is the reign every attempt must be proposed in
// (zab.Node.ProposeAsLeader), or 0 for any (zab.Node.Propose).
func (r *Retry) Epoch() uint32 { return r.epoch }

// Data is what the next attempt proposes.
func (r *Retry) Data() []byte { return r.data }

// Request is the request the next attempt carries.
func (r *Retry) Request() Request { return r.req }

// Step is the verdict on one attempt.
type Step struct {
	// Again: propose Data again, after a pause, if the caller still may.
	// A caller that stops instead (its context ended, it closed) returns
	// Err.
	Again bool
	// Result is the write's result when the attempt was applied with a
	// known outcome; Err is then Result.Err.
	Result tree.Result
	// Zxid is the attempt's zxid when zab reported it applied.
	Zxid zab.Zxid
	// Err is the write's error if it ends here; it wraps
	// zab.ErrOutcomeUnknown whenever an attempt may have been applied.
	Err error
	// Once is set when the write was applied by its first and only
	// attempt and its result is known here: no other copy of its request
	// was ever proposed (zab proposes one Propose call at most once), so
	// none can be applied later and its ReqID's result may be forgotten
	// (Finished). A write proposed more than once may have a late copy in
	// flight: its result stays for tree.DedupWindow.
	Once bool
}

// Next takes the outcome of an attempt as zab.Node.Propose reports it (a
// nil err with the entry's zxid and the state machine's response, or an
// error) and returns the verdict. Only zab.ErrOutcomeUnknown,
// zab.ErrNoLeader and zab.ErrProposalDropped are retried; for a Retry
// made AsLeader, zab.ErrNoLeader (the node no longer leads in its epoch)
// ends the write.
func (r *Retry) Next(a zab.Applied, err error) Step {
	r.tries++
	if err == nil {
		res, ok := a.Response.(tree.Result)
		if !ok {
			return Step{Zxid: a.Zxid, Err: fmt.Errorf("%w: %v has no result", zab.ErrOutcomeUnknown, a.Zxid)}
		}
		if errors.Is(res.Err, tree.ErrRetryForgotten) {
			// Dedup no longer remembers whether the first attempt was
			// applied: say so rather than apply it twice.
			return Step{Zxid: a.Zxid, Err: fmt.Errorf("%w: %w", zab.ErrOutcomeUnknown, res.Err)}
		}
		return Step{Result: res, Zxid: a.Zxid, Err: res.Err, Once: r.tries == 1 && !res.Duplicate}
	}
	again := errors.Is(err, zab.ErrOutcomeUnknown) || errors.Is(err, zab.ErrProposalDropped) ||
		(errors.Is(err, zab.ErrNoLeader) && r.epoch == 0)
	if errors.Is(err, zab.ErrOutcomeUnknown) && r.unknown == nil {
		// From now on an attempt may have been applied: retries say since
		// when, so the tree refuses one it cannot deduplicate.
		r.unknown = err
		r.req.Since = r.since
		data, eerr := Encode(&r.req)
		if eerr != nil {
			return Step{Err: fmt.Errorf("%w: %w", zab.ErrOutcomeUnknown, eerr)}
		}
		r.data = data
	}
	if r.unknown != nil && !errors.Is(err, zab.ErrOutcomeUnknown) {
		// An earlier attempt may have been applied.
		return Step{Again: again, Err: fmt.Errorf("%w: %w", zab.ErrOutcomeUnknown, r.mapErr(err))}
	}
	return Step{Again: again, Err: r.mapErr(err)}
}

// MaxForget is the most ReqIDs one request carries in Request.Forget.
const MaxForget = 64

// maxFinished bounds the ReqIDs a Finished holds: beyond it the oldest
// are left to tree.DedupWindow (a proposer that cannot propose).
const maxFinished = 1 << 14

// Finished collects one proposer's finished writes, those applied by their
// only attempt (Step.Once), for its next requests to carry in Forget (the
// Raft dissertation's client sessions, §6.3: the client tells the state
// machine which responses it no longer needs). It is safe for concurrent
// use.
type Finished struct {
	mu  sync.Mutex
	ids []uint64
}

// Take removes and returns up to MaxForget ReqIDs, oldest first, for the
// Forget of the next request (nil if none).
func (f *Finished) Take() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(f.ids), MaxForget)
	if n == 0 {
		return nil
	}
	ids := slices.Clone(f.ids[:n])
	f.ids = f.ids[n:]
	if len(f.ids) == 0 {
		f.ids = f.ids[:0:0] // let the old array go
	}
	return ids
}

// Done takes rt's final verdict st: rt's ReqID is finished if st.Once,
// and the ids rt's request carried in Forget go back for a later request
// unless it was applied (forgetting an id twice is harmless; not at all
// leaves it to the window).
func (f *Finished) Done(rt *Retry, st Step) {
	req := rt.Request()
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Zxid == 0 {
		f.ids = append(f.ids, req.Forget...)
	}
	if st.Once && req.ReqID != 0 {
		f.ids = append(f.ids, req.ReqID)
	}
	if len(f.ids) > maxFinished {
		f.ids = slices.Delete(f.ids, 0, len(f.ids)-maxFinished)
	}
}
