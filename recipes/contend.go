package recipes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/internal/lockcore"
)

// The queue every lock-like recipe (Lock, RWLock, Semaphore, MultiLock,
// Election) shares is internal/lockcore's protocol: a deterministic core
// that says what to do next (create the contender, list the queue, watch a
// contender ahead, wait, leave) and is told the outcome. queue.run drives it
// through a Session, one blocking call at a time; internal/sim drives the
// same core over its simulated tree and sessions.

// defaultCleanup bounds the removal of a contender that gave up.
const defaultCleanup = 5 * time.Second

// contender is one node of a queue, ordered by seq.
type contender struct {
	name string
	seq  int64
}

// contenders returns the names among names that carry one of prefixes and
// a sequence suffix, in queue order.
func contenders(names []string, prefixes ...string) []contender {
	var q []contender
	for _, c := range lockcore.Contenders(names, prefixes...) {
		q = append(q, contender{name: c.Name, seq: c.Seq})
	}
	return q
}

// queue is one directory of contenders through one session.
type queue struct {
	s        Session
	dir      string
	prefixes []string // every prefix the recipe's contenders use
	// children: the rule may wait on the whole directory, so the queue is
	// listed with a child watch.
	children bool
}

// acquire enqueues a contender named prefix+seq carrying data and waits
// until rule lets it hold or ctx ends. On failure it leaves the queue.
//
// The lease rests on one Connected period of the session: its Done is the
// session's Suspended channel of the period in which the contender was
// seen to hold (taken before that check, so a suspension during it is not
// missed). With fixed nil, a suspension while waiting is waited out: the
// wait goes on once the session is Connected again, and fails if it is
// lost. With fixed set, the lease must rest on that channel, and its
// closing fails the acquisition with ErrLeaseLost (MultiLock).
func (q queue) acquire(ctx context.Context, prefix string, data []byte, r lockcore.Rule, fixed <-chan struct{}) (*Lease, error) {
	mode := lockcore.Wait
	if fixed != nil {
		mode = lockcore.Fixed
	}
	l, _, err := q.run(ctx, prefix, data, r, mode, fixed)
	return l, err
}

// tryAcquire is acquire that gives up at once if rule does not let the new
// contender hold; the lease rests on done.
func (q queue) tryAcquire(ctx context.Context, prefix string, data []byte, done <-chan struct{}, r lockcore.Rule) (*Lease, bool, error) {
	return q.run(ctx, prefix, data, r, lockcore.Try, done)
}

// run executes the actions of one acquisition's core through the session
// and feeds their outcomes back, until it holds or fails. Every watch it
// sets is removed before it returns, so an abandoned wait leaves nothing
// registered.
func (q queue) run(ctx context.Context, prefix string, data []byte, r lockcore.Rule, mode lockcore.Mode, done <-chan struct{}) (*Lease, bool, error) {
	c := lockcore.New(lockcore.Config{Dir: q.dir, Prefix: prefix, Prefixes: q.prefixes, Children: q.children,
		Rule: r, Mode: mode})
	var watch <-chan coord.Event // the watch set by the last List or ExistsW
	var a lockcore.Answer
	for {
		a.Broken, a.CtxErr = isClosed(done), ctx.Err()
		act := c.Step(a)
		if act.Unwatch && watch != nil {
			q.s.RemoveWatch(watch)
			watch = nil
		}
		a = lockcore.Answer{}
		switch act.Kind {
		case lockcore.Connect:
			done, a.Err = connected(ctx, q.s)
		case lockcore.Create:
			// The create runs to its outcome whatever ctx does (for
			// defaultCleanup at most); a retried create is applied once
			// (coord's request ids), so a lost reply leaves no orphan.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
			a.Path, a.Err = q.s.Create(cctx, act.Path, data, coord.EphemeralSequential)
			cancel()
		case lockcore.CreateDir:
			_, a.Err = q.s.Create(ctx, act.Path, nil, coord.Container)
		case lockcore.List:
			if act.Watch {
				a.Names, _, watch, a.Err = q.s.ChildrenW(ctx, act.Path)
			} else {
				a.Names, _, a.Err = q.s.Children(ctx, act.Path)
			}
		case lockcore.ExistsW:
			_, a.Exists, watch, a.Err = q.s.ExistsW(ctx, act.Path)
		case lockcore.Exists:
			var st coord.Stat
			st, a.Exists, a.Err = q.s.Exists(ctx, act.Path)
			a.Czxid = st.Czxid
		case lockcore.Block:
			select {
			case <-watch:
				a.Woke, watch = lockcore.Fired, nil
			case <-done:
				a.Woke = lockcore.Broken
			case <-ctx.Done():
				a.Woke, a.Err = lockcore.Cancelled, ctx.Err()
			}
		case lockcore.Delete:
			q.leave(ctx, act.Path)
		case lockcore.Held:
			return &Lease{s: q.s, path: act.Path, token: act.Token, done: done}, true, nil
		default: // lockcore.Failed
			return nil, false, act.Err
		}
	}
}

// connected returns the session's Suspended channel once the session is
// Connected, checking every retryDelay while it is Suspended (the session
// offers no event for its return); it fails once the session is lost or
// closed, or ctx ends.
func connected(ctx context.Context, s Session) (<-chan struct{}, error) {
	for {
		done := s.Suspended()
		if !isClosed(done) {
			return done, nil
		}
		// A local read fails only once the session is lost or closed.
		if _, _, err := s.Exists(ctx, "/"); err != nil {
			return nil, err
		}
		if err := sleep(ctx, retryDelay); err != nil {
			return nil, err
		}
	}
}

// leave deletes a contender that gave up, with a fresh context since ctx
// may be what ended.
func (q queue) leave(ctx context.Context, path string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
	_ = q.s.Delete(dctx, path, coord.AnyVersion)
	cancel()
}

// ensureDir creates dir and its missing ancestors as containers.
func ensureDir(ctx context.Context, s Session, dir string) error {
	for _, p := range lockcore.Ancestors(dir) {
		_, err := s.Create(ctx, p, nil, coord.Container)
		if err != nil && !errors.Is(err, coord.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// holder is the "one lease at a time" state a recipe value keeps, so a
// second acquisition through the same value fails with ErrAlreadyHeld
// instead of queueing behind itself.
type holder struct {
	mu   chan struct{} // capacity 1: held while acquiring or holding
	kind string
}

func newHolder(kind string) holder { return holder{mu: make(chan struct{}, 1), kind: kind} }

// take marks the value busy, or fails with ErrAlreadyHeld.
func (h holder) take() error {
	select {
	case h.mu <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%w: this %s already holds or is acquiring a lease; release it first, or use another %s value", ErrAlreadyHeld, h.kind, h.kind)
	}
}

// free marks the value free again.
func (h holder) free() {
	select {
	case <-h.mu:
	default:
	}
}
