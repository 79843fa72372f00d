// Package recipes builds the coordination patterns people use ZooKeeper and
// Curator for on the public coord API alone: a mutual-exclusion Lock, a
// readers-writer RWLock, a counting Semaphore and a MultiLock, all with
// fencing tokens; leader Election with a leader loop (Election.Run); a
// typed live Config, a Cache of a subtree, group membership (Member,
// Group), Barrier and DoubleBarrier, Queue, Counter and Naming.
//
// Every recipe takes a Session, the narrow interface a *coord.Session
// satisfies, so recipes can be tested against any implementation. Each
// recipe is tied to its session: when the session is Suspended, a held lock
// or leadership is considered lost at once (Curator's advice, made
// automatic): the Lease's Done channel closes, and the holder must stop
// acting. Fencing tokens let the resources a holder talks to refuse a
// holder that was too slow to notice, and Lease.Guard fences writes into
// coord itself. A waiter is not a holder: a suspension while it waits is
// waited out, and it goes on waiting once the session is Connected again.
//
// A lock value (Lock, RWLock, Semaphore, MultiLock, Election) is one
// holder: asking it for a second lease while it holds or acquires one
// fails at once with ErrAlreadyHeld. Nothing is re-entrant, and nothing
// waits for itself.
//
// Recipes that outlive a session (Config, Cache, Member, Election) take a
// SessionFactory instead and ask it for a fresh session when the one they
// use is lost. They never close a session they got from it.
//
// Every blocking call takes a context; when it ends, the call returns its
// error and leaves nothing behind (no node of a waiter, no watch).
package recipes

import (
	"context"
	"errors"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Session is what the recipes need from a coord session.
type Session interface {
	Create(ctx context.Context, path string, data []byte, mode coord.CreateMode, opts ...coord.CreateOption) (string, error)
	Delete(ctx context.Context, path string, version int32) error
	Set(ctx context.Context, path string, data []byte, version int32) (coord.Stat, error)
	Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error)
	Exists(ctx context.Context, path string) (coord.Stat, bool, error)
	ExistsW(ctx context.Context, path string) (coord.Stat, bool, <-chan coord.Event, error)
	Get(ctx context.Context, path string) ([]byte, coord.Stat, error)
	GetW(ctx context.Context, path string) ([]byte, coord.Stat, <-chan coord.Event, error)
	Children(ctx context.Context, path string) ([]string, coord.Stat, error)
	ChildrenW(ctx context.Context, path string) ([]string, coord.Stat, <-chan coord.Event, error)
	Watch(ctx context.Context, path string, recursive bool) (*coord.Watch, error)
	WatchFrom(ctx context.Context, path string, recursive bool, zxid int64) (*coord.Watch, error)
	Sync(ctx context.Context) error
	ID() int64
	RemoveWatch(ch <-chan coord.Event) bool
	Suspended() <-chan struct{}
	Remaining() time.Duration
}

var _ Session = (*coord.Session)(nil)

// SessionFactory returns a live session. A recipe that outlives sessions
// calls it once to start and again each time the session it holds is lost
// (its watches end with coord.ErrSessionExpired, its writes fail with it).
// The recipe never closes a session it got from the factory.
type SessionFactory func(ctx context.Context) (Session, error)

// NodeSessions returns a SessionFactory handing out n's default session
// (coord.Node.DefaultSession): the same one while it lives, a new one after
// it is lost. Close n to end the sessions.
func NodeSessions(n *coord.Node) SessionFactory {
	return func(ctx context.Context) (Session, error) {
		s, err := n.DefaultSession(ctx)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// FixedSession returns a SessionFactory that always hands out s: a recipe
// using it ends with coord.ErrSessionExpired once s is lost.
func FixedSession(s Session) SessionFactory {
	return func(context.Context) (Session, error) { return s, nil }
}

// nodeGone reports whether err says the session's node is closed or
// fail-stopped: no session of it will work again.
func nodeGone(err error) bool {
	return errors.Is(err, coord.ErrClosed) || errors.Is(err, coord.ErrFailed)
}
