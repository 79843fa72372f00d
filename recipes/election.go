package recipes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/lockcore"
)

var (
	// ErrNoLeader is returned by Election.Leader when nobody leads.
	ErrNoLeader = errors.New("recipes: no leader")
	// ErrNotLeader is returned by Election.Proclaim when this Election
	// value does not lead.
	ErrNotLeader = errors.New("recipes: not the leader")
)

const candidatePrefix = "candidate-"

// retryDelay is how often a wait for a Suspended session to be Connected
// again (or Lost) checks it, and how long Run waits between attempts.
const retryDelay = 100 * time.Millisecond

// Election elects one leader among candidates (ZooKeeper's election
// recipe): candidates queue as ephemeral sequential nodes under a
// directory, each watching only the one before it, and the first leads
// until it resigns or its session is Suspended. The leader's node carries
// its name and a value it can change (Proclaim); anyone can read the
// leader (Leader) or follow its changes (Observe). Run is a leader loop
// in the spirit of Curator's LeaderSelector.
//
// An Election value is one candidate: Campaign while it leads or
// campaigns fails with ErrAlreadyHeld. It takes its sessions from a
// SessionFactory, keeps using one until it is lost, then asks for a new
// one: so Observe and Run outlive a lost session (with NodeSessions),
// while a leadership never does.
type Election struct {
	sessions SessionFactory
	dir      string
	name     string
	h        holder

	mu    sync.Mutex
	s     Session // the session in use; nil: ask the factory
	lease *Lease  // the leadership Campaign won, until released
}

// NewElection returns the candidate name in the election held under dir
// (created as a container if missing; use the directory for nothing else).
func NewElection(sessions SessionFactory, dir, name string) *Election {
	return &Election{sessions: sessions, dir: newQueue(nil, dir).dir, name: name, h: newHolder("Election")}
}

// Leader is a leader as Leader and Observe report it. The zero Leader
// (Token 0) means that nobody leads.
type Leader struct {
	Name  string
	Value []byte
	// Token is the zxid that created the leader's node: successive
	// leaders' tokens strictly increase (a fencing token).
	Token int64
}

// candidateData is what a candidate's node holds.
type candidateData struct {
	Name  string `json:"name"`
	Value []byte `json:"value,omitempty"`
}

func (e *Election) encode(value []byte) []byte {
	b, _ := json.Marshal(candidateData{Name: e.name, Value: value}) // cannot fail
	return b
}

// decodeLeader reads a candidate's node; a node written by something else
// is reported with its raw data as Value.
func decodeLeader(data []byte, st coord.Stat) Leader {
	var c candidateData
	if err := json.Unmarshal(data, &c); err != nil {
		return Leader{Value: data, Token: st.Czxid}
	}
	return Leader{Name: c.Name, Value: c.Value, Token: st.Czxid}
}

// session returns the session in use, asking the factory for one if
// there is none.
func (e *Election) session(ctx context.Context) (Session, error) {
	e.mu.Lock()
	s := e.s
	e.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := e.sessions(ctx)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.s = s
	e.mu.Unlock()
	return s, nil
}

// failed drops s if err says it is lost, so the next call asks the factory
// for a new one.
func (e *Election) failed(s Session, err error) {
	if errors.Is(err, coord.ErrSessionExpired) {
		e.mu.Lock()
		if e.s == s {
			e.s = nil
		}
		e.mu.Unlock()
	}
}

// Campaign waits until this candidate leads, or ctx ends (then it leaves
// the queue). value is published in its node (see Leader); Proclaim
// changes it. Leadership lasts until Resign, or until the lease's Done
// closes (the session was Suspended): stop acting as the leader then.
// A suspension while it waits is waited out (see the package doc).
func (e *Election) Campaign(ctx context.Context, value []byte) (*Lease, error) {
	if err := e.h.take(); err != nil {
		return nil, err
	}
	s, err := e.session(ctx)
	if err != nil {
		e.h.free()
		return nil, err
	}
	q := newQueue(s, e.dir, candidatePrefix)
	l, err := q.acquire(ctx, candidatePrefix, e.encode(value), lockcore.Mutex, nil)
	if err != nil {
		e.failed(s, err)
		e.h.free()
		return nil, err
	}
	e.mu.Lock()
	e.lease = l
	e.mu.Unlock()
	l.free = func() {
		e.mu.Lock()
		if e.lease == l {
			e.lease = nil
		}
		e.mu.Unlock()
		e.h.free()
	}
	return l, nil
}

// leadership returns the lease Campaign won, if it is still held.
func (e *Election) leadership() *Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lease
}

// Resign gives leadership up (the next candidate leads). It returns nil if
// this value does not lead, ErrLeaseLost if its leadership had already
// been lost, and an error if its node could not be deleted (then call it
// again).
func (e *Election) Resign(ctx context.Context) error {
	l := e.leadership()
	if l == nil {
		return nil
	}
	return l.Release(ctx)
}

// Proclaim changes the value the leader publishes, without an election.
// It fails with ErrNotLeader if this value does not lead and ErrLeaseLost
// if its leadership was lost.
func (e *Election) Proclaim(ctx context.Context, value []byte) error {
	l := e.leadership()
	if l == nil {
		return ErrNotLeader
	}
	select {
	case <-l.Done():
		return ErrLeaseLost
	default:
	}
	_, err := l.s.Set(ctx, l.path, e.encode(value), coord.AnyVersion)
	if errors.Is(err, coord.ErrNoNode) || errors.Is(err, coord.ErrSessionExpired) {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return err
}

// Leader returns the current leader, as of this node's replica (Sync the
// session first for a linearizable answer), or ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	s, err := e.session(ctx)
	if err != nil {
		return Leader{}, err
	}
	for {
		l, err := e.read(ctx, s)
		if errors.Is(err, coord.ErrNoNode) {
			continue // the leader left between the two reads
		}
		if err != nil {
			e.failed(s, err)
			return Leader{}, err
		}
		if l.Token == 0 {
			return Leader{}, ErrNoLeader
		}
		return l, nil
	}
}

// read returns the leader (zero if none); ErrNoNode means it left while
// being read.
func (e *Election) read(ctx context.Context, s Session) (Leader, error) {
	names, _, err := s.Children(ctx, e.dir)
	if errors.Is(err, coord.ErrNoNode) {
		return Leader{}, nil
	}
	if err != nil {
		return Leader{}, err
	}
	q := contenders(names, candidatePrefix)
	if len(q) == 0 {
		return Leader{}, nil
	}
	data, st, err := s.Get(ctx, e.dir+"/"+q[0].name)
	if err != nil {
		return Leader{}, err
	}
	return decodeLeader(data, st), nil
}

// Observe returns a channel of leader changes: the leader now (the zero
// Leader if none), then each new leader, each new value it proclaims, and
// the zero Leader whenever the leader's node goes and no candidate
// follows. A slow reader sees the latest state, not every step. The
// channel is closed when ctx ends, or when the session is lost and the
// factory gives no live one. Every watch it sets is removed by then.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	out := make(chan Leader)
	go func() {
		defer close(out)
		var last Leader
		sent, fresh := false, false
		for ctx.Err() == nil {
			s, err := e.session(ctx)
			if err != nil {
				return
			}
			cur, w1, w2, err := e.watchLeader(ctx, s)
			if err != nil {
				e.failed(s, err)
				if !errors.Is(err, coord.ErrSessionExpired) || fresh {
					return // not a lost session, or a new one failed at once
				}
				fresh = true
				continue
			}
			fresh = false
			stop := func() {
				s.RemoveWatch(w1)
				if w2 != nil {
					s.RemoveWatch(w2)
				}
			}
			if !sent || cur.Token != last.Token || cur.Name != last.Name || !bytes.Equal(cur.Value, last.Value) {
				select {
				case out <- cur:
					last, sent = cur, true
				case <-ctx.Done():
					stop()
					return
				}
			}
			select {
			case <-w1:
			case <-w2:
			case <-ctx.Done():
			}
			stop()
		}
	}()
	return out
}

// watchLeader reads the leader and sets the one-shot watches that report
// its next change: the directory's children and the leader's data, or the
// directory's creation (w2 is then nil).
func (e *Election) watchLeader(ctx context.Context, s Session) (cur Leader, w1, w2 <-chan coord.Event, err error) {
	for {
		names, _, cw, err := s.ChildrenW(ctx, e.dir)
		if errors.Is(err, coord.ErrNoNode) {
			// No directory (the reaper removes it once empty): wait for it.
			_, ok, ew, err := s.ExistsW(ctx, e.dir)
			if err != nil {
				return Leader{}, nil, nil, err
			}
			if ok {
				s.RemoveWatch(ew)
				continue
			}
			return Leader{}, ew, nil, nil
		}
		if err != nil {
			return Leader{}, nil, nil, err
		}
		q := contenders(names, candidatePrefix)
		if len(q) == 0 {
			return Leader{}, cw, nil, nil
		}
		data, st, dw, err := s.GetW(ctx, e.dir+"/"+q[0].name)
		if errors.Is(err, coord.ErrNoNode) {
			s.RemoveWatch(cw)
			continue
		}
		if err != nil {
			s.RemoveWatch(cw)
			return Leader{}, nil, nil, err
		}
		return decodeLeader(data, st), cw, dw, nil
	}
}

// Run is a leader loop (Curator's LeaderSelector with auto-requeue): it
// campaigns with value and, each time this candidate is elected, calls fn
// with a context that is cancelled the moment leadership may be lost (the
// session is Suspended) or ctx ends. When fn returns, Run resigns and:
//
//   - if leadership was lost, campaigns again, whatever fn returned;
//   - if fn returned an error, returns it;
//   - if fn returned nil, campaigns again (behind the other candidates).
//
// Run takes its sessions from the Election's SessionFactory: it campaigns
// again on the same session after a suspension, once it is Connected, and
// after the session is lost it asks the factory for a new one
// (NodeSessions: the node's next default session) and campaigns with it. With a factory that cannot give a live
// session (FixedSession of a lost one) Run returns coord.ErrSessionExpired.
// It returns ctx's error when ctx ends, having resigned.
func (e *Election) Run(ctx context.Context, value []byte, fn func(leaderCtx context.Context) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		lease, err := e.Campaign(ctx, value)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, coord.ErrSessionExpired):
			// Campaign dropped the session; the factory gives the next. The
			// cluster may expire a session before its node notices, so a
			// factory may hand the old one out a little longer: give up
			// only on one that is unusable here already.
			s, err := e.session(ctx)
			if err != nil {
				return err
			}
			if _, _, err := s.Exists(ctx, "/"); err != nil {
				e.failed(s, err)
				return err
			}
			if err := sleep(ctx, retryDelay); err != nil {
				return err
			}
			continue
		case errors.Is(err, ErrLeaseLost):
			if err := sleep(ctx, retryDelay); err != nil {
				return err
			}
			continue
		default:
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		watching := make(chan struct{})
		go func() {
			defer close(watching)
			select {
			case <-lease.Done():
				cancel()
			case <-lctx.Done():
			}
		}()
		ferr := fn(lctx)
		cancel()
		<-watching
		lost := isClosed(lease.Done())
		if err := e.resign(ctx, lease); err != nil {
			return err
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case lost:
		case ferr != nil:
			return ferr
		}
	}
}

// resign releases lease, retrying while its node cannot be deleted (no
// quorum while Suspended) and the session lives; once ctx ends it tries
// once more with a bounded fresh context.
func (e *Election) resign(ctx context.Context, l *Lease) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, defaultCleanup)
		if ctx.Err() != nil {
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		}
		err := l.Release(rctx)
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if err := sleep(ctx, retryDelay); err != nil {
			return err
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
