package recipes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
)

// The queue every lock-like recipe (Lock, RWLock, Semaphore, MultiLock,
// Election) shares: each contender is an ephemeral sequential node under a
// directory, and contenders are ordered by their sequence numbers, which
// the parent hands out in creation (zxid) order whatever the name's
// prefix. A contender reads the queue from its own node's replica, which
// has applied its create and so every create before it: it can only see
// more contenders ahead of it than there are (deletes not applied yet),
// never fewer, so deciding from that view is safe.

// seqDigits is the width of the sequence suffix (ZooKeeper's %010d).
const seqDigits = 10

// defaultCleanup bounds the removal of a contender that gave up.
const defaultCleanup = 5 * time.Second

// contender is one node of a queue, ordered by seq.
type contender struct {
	name string
	seq  int64
}

// seqOf parses the sequence suffix of a contender's name.
func seqOf(name string) (int64, bool) {
	if len(name) < seqDigits {
		return 0, false
	}
	n, err := strconv.ParseInt(name[len(name)-seqDigits:], 10, 64)
	return n, err == nil && n >= 0
}

// contenders returns the names among names that carry one of prefixes and
// a sequence suffix, in queue order.
func contenders(names []string, prefixes ...string) []contender {
	var q []contender
	for _, n := range names {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) && len(n) == len(p)+seqDigits {
				if seq, ok := seqOf(n); ok {
					q = append(q, contender{name: n, seq: seq})
				}
				break
			}
		}
	}
	slices.SortFunc(q, func(a, b contender) int { return cmp.Compare(a.seq, b.seq) })
	return q
}

// decision is what a contender does next: hold, watch one contender ahead
// of it, or watch the whole directory.
type decision struct {
	held     bool
	watch    string // a contender ahead of this one
	children bool   // any change of the directory
}

// rule decides from the queue and this contender's index in it.
type rule func(q []contender, me int) decision

// mutex holds the first place; the others watch the one just ahead.
func mutex(q []contender, me int) decision {
	if me == 0 {
		return decision{held: true}
	}
	return decision{watch: q[me-1].name}
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
func (q queue) acquire(ctx context.Context, prefix string, data []byte, r rule, fixed <-chan struct{}) (*Lease, error) {
	done := fixed
	if done == nil {
		var err error
		if done, err = connected(ctx, q.s); err != nil {
			return nil, err
		}
	} else if isClosed(done) {
		return nil, fmt.Errorf("%w: the session is not connected", ErrLeaseLost)
	}
	path, err := q.enqueue(ctx, prefix, data)
	if err != nil {
		return nil, err
	}
	lease, err := q.wait(ctx, path, r, done, fixed != nil)
	if err != nil {
		q.leave(ctx, path)
		return nil, err
	}
	return lease, nil
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

// tryAcquire is acquire that gives up at once if rule does not let the new
// contender hold.
func (q queue) tryAcquire(ctx context.Context, prefix string, data []byte, done <-chan struct{}, r rule) (*Lease, bool, error) {
	select {
	case <-done:
		return nil, false, fmt.Errorf("%w: the session is not connected", ErrLeaseLost)
	default:
	}
	path, err := q.enqueue(ctx, prefix, data)
	if err != nil {
		return nil, false, err
	}
	names, _, err := q.s.Children(ctx, q.dir)
	if err == nil {
		var c []contender
		var me int
		if c, me, err = q.place(names, path); err == nil && r(c, me).held {
			var l *Lease
			if l, err = q.lease(ctx, path, done); err == nil {
				return l, true, nil
			}
		}
	}
	q.leave(ctx, path)
	return nil, false, err
}

// leave deletes a contender that gave up, with a fresh context since ctx
// may be what ended.
func (q queue) leave(ctx context.Context, path string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
	_ = q.s.Delete(dctx, path, coord.AnyVersion)
	cancel()
}

// place finds path among the contenders listed in names.
func (q queue) place(names []string, path string) ([]contender, int, error) {
	c := contenders(names, q.prefixes...)
	mine := path[strings.LastIndexByte(path, '/')+1:]
	for i := range c {
		if c[i].name == mine {
			return c, i, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: contender %s vanished", ErrLeaseLost, path)
}

// wait blocks until r lets path hold. Every watch it sets is removed
// before it returns, so an abandoned wait leaves nothing registered.
func (q queue) wait(ctx context.Context, path string, r rule, done <-chan struct{}, fixed bool) (*Lease, error) {
	for {
		if isClosed(done) {
			if fixed {
				return nil, ErrLeaseLost
			}
			var err error
			if done, err = connected(ctx, q.s); err != nil {
				return nil, err
			}
		}
		names, wch, err := q.list(ctx)
		if err != nil {
			return nil, err
		}
		c, me, err := q.place(names, path)
		if err != nil {
			q.unwatch(wch)
			return nil, err
		}
		d := r(c, me)
		if !d.children {
			q.unwatch(wch)
		}
		if d.held {
			l, err := q.lease(ctx, path, done)
			if err != nil || !isClosed(done) {
				return l, err
			}
			continue // Suspended during the check: check again once Connected
		}
		ch := wch
		if !d.children {
			_, ok, ech, err := q.s.ExistsW(ctx, q.dir+"/"+d.watch)
			if err != nil {
				return nil, err
			}
			if !ok {
				q.s.RemoveWatch(ech) // it left between the two reads
				continue
			}
			ch = ech
		}
		select {
		case <-ch:
		case <-done:
			q.s.RemoveWatch(ch)
		case <-ctx.Done():
			q.s.RemoveWatch(ch)
			return nil, ctx.Err()
		}
	}
}

// list reads the directory, with a child watch if the queue waits on it.
func (q queue) list(ctx context.Context) ([]string, <-chan coord.Event, error) {
	if !q.children {
		names, _, err := q.s.Children(ctx, q.dir)
		return names, nil, err
	}
	names, _, ch, err := q.s.ChildrenW(ctx, q.dir)
	return names, ch, err
}

// unwatch removes a watch the wait no longer needs (nil: none).
func (q queue) unwatch(ch <-chan coord.Event) {
	if ch != nil {
		q.s.RemoveWatch(ch)
	}
}

// lease makes the lease of a contender that holds; its token is the zxid
// that created its node.
func (q queue) lease(ctx context.Context, path string, done <-chan struct{}) (*Lease, error) {
	st, ok, err := q.s.Exists(ctx, path)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: contender %s vanished", ErrLeaseLost, path)
	}
	return &Lease{s: q.s, path: path, token: st.Czxid, done: done}, nil
}

// enqueue creates a contender's node, creating the directory and its
// missing parents as containers (the reaper removes them once empty, so a
// directory may vanish between the two steps: then it tries again). A
// retried create is applied once (coord's request ids), so a lost reply
// leaves no orphan node.
//
// The create runs to its outcome whatever ctx does (for defaultCleanup at
// most): abandoned in flight, it could leave a contender nobody knows of,
// which would block the queue for as long as the session lives. If ctx
// ended meanwhile, the contender is removed.
func (q queue) enqueue(ctx context.Context, prefix string, data []byte) (string, error) {
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCleanup)
		path, err := q.s.Create(cctx, q.dir+"/"+prefix, data, coord.EphemeralSequential)
		cancel()
		if err == nil && ctx.Err() != nil {
			q.leave(ctx, path)
			return "", ctx.Err()
		}
		if !errors.Is(err, coord.ErrNoNode) {
			return path, err
		}
		if err := ensureDir(ctx, q.s, q.dir); err != nil {
			return "", fmt.Errorf("recipes: queue dir %s: %w", q.dir, err)
		}
	}
}

// ensureDir creates dir and its missing ancestors as containers.
func ensureDir(ctx context.Context, s Session, dir string) error {
	for i := 1; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		_, err := s.Create(ctx, dir[:i], nil, coord.Container)
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
