// Package recipes builds the coordination patterns people use ZooKeeper and
// Curator for on the public coord API alone: a mutual-exclusion Lock with
// fencing tokens and leader Election.
//
// Every recipe takes a Session, the narrow interface a *coord.Session
// satisfies, so recipes can be tested against any implementation. Each
// recipe is tied to its session: when the session is Suspended, a held lock
// or leadership is considered lost at once (Curator's advice, made
// automatic): the Lease's Done channel closes, and the holder must stop
// acting. Fencing tokens let the resources a holder talks to refuse a
// holder that was too slow to notice.
package recipes

import (
	"context"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Session is what the recipes need from a coord session.
type Session interface {
	Create(ctx context.Context, path string, data []byte, mode coord.CreateMode, opts ...coord.CreateOption) (string, error)
	Delete(ctx context.Context, path string, version int32) error
	Exists(ctx context.Context, path string) (coord.Stat, bool, error)
	ExistsW(ctx context.Context, path string) (coord.Stat, bool, <-chan coord.Event, error)
	Children(ctx context.Context, path string) ([]string, coord.Stat, error)
	Get(ctx context.Context, path string) ([]byte, coord.Stat, error)
	Suspended() <-chan struct{}
	Remaining() time.Duration
}

var _ Session = (*coord.Session)(nil)
