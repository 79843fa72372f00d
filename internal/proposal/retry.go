package proposal

import (
	"errors"
	"fmt"

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
}

// Next takes the outcome of an attempt as zab.Node.Propose reports it (a
// nil err with the entry's zxid and the state machine's response, or an
// error) and returns the verdict. Only zab.ErrOutcomeUnknown,
// zab.ErrNoLeader and zab.ErrProposalDropped are retried; for a Retry
// made AsLeader, zab.ErrNoLeader (the node no longer leads in its epoch)
// ends the write.
func (r *Retry) Next(a zab.Applied, err error) Step {
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
		return Step{Result: res, Zxid: a.Zxid, Err: res.Err}
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
