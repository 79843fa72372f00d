package recipes

import (
	"context"
	"errors"
	"fmt"

	"github.com/coord-dev/coord/coord"
)

// ErrIDsExhausted is returned by Naming.Next once a name has handed out its
// last id (2^31-1, a znode version's limit).
var ErrIDsExhausted = errors.New("recipes: ids exhausted")

// Naming hands out cluster-unique, increasing ids under one name
// (ZooKeeper's naming service). Each id is one unconditional write to the
// name's znode: the id is the version that write gave it, so ids are dense
// (1, 2, 3, ...), unique across the cluster, and increase in the order the
// writes commit, so each caller sees its own ids increase. Concurrent
// callers never retry each other's writes. An id whose write had an unknown
// outcome is skipped, never handed out twice.
//
// Deleting the znode would start the ids again: do not delete it.
type Naming struct {
	s    Session
	path string
}

// NewNaming returns the id source stored at path.
func NewNaming(s Session, path string) *Naming {
	return &Naming{s: s, path: path}
}

// Next returns a new id.
func (n *Naming) Next(ctx context.Context) (int64, error) {
	for {
		st, err := n.s.Set(ctx, n.path, nil, coord.AnyVersion)
		if errors.Is(err, coord.ErrNoNode) {
			// First use: create the znode (version 0, not an id).
			if err := ensureDir(ctx, n.s, parentDir(n.path)); err != nil {
				return 0, fmt.Errorf("recipes: naming %s: %w", n.path, err)
			}
			_, err = n.s.Create(ctx, n.path, nil, coord.Persistent)
			if err != nil && !errors.Is(err, coord.ErrNodeExists) && !errors.Is(err, coord.ErrNoNode) {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if st.Version <= 0 { // wrapped past math.MaxInt32
			return 0, fmt.Errorf("%w: %s", ErrIDsExhausted, n.path)
		}
		return int64(st.Version), nil
	}
}
