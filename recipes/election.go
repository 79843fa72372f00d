package recipes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coord-dev/coord/coord"
)

// ErrNoLeader is returned by Election.Leader when nobody is campaigning.
var ErrNoLeader = errors.New("recipes: no leader")

// Election elects one leader among candidates (ZooKeeper's election
// recipe): the candidate whose node is first in the queue leads until its
// lease ends. It is a Lock whose contenders record who they are.
type Election struct {
	lock *Lock
}

// NewElection returns an election held under dir; candidate identifies this
// participant (for Leader).
func NewElection(s Session, dir, candidate string) *Election {
	return &Election{lock: NewLock(s, dir, []byte(candidate))}
}

// Campaign waits until this candidate leads or ctx ends. Leadership lasts
// until the lease's Done closes or it is released (Resign).
func (e *Election) Campaign(ctx context.Context) (*Lease, error) {
	return e.lock.Acquire(ctx)
}

// Leader returns the current leader's candidate name, as of this node's
// replica (Sync the session first for a linearizable answer).
func (e *Election) Leader(ctx context.Context) (string, error) {
	s, dir := e.lock.s, e.lock.dir
	for {
		names, _, err := s.Children(ctx, dir)
		if errors.Is(err, coord.ErrNoNode) {
			return "", ErrNoLeader
		}
		if err != nil {
			return "", err
		}
		var seqs []string
		for _, n := range names {
			if strings.HasPrefix(n, lockPrefix) {
				seqs = append(seqs, n)
			}
		}
		if len(seqs) == 0 {
			return "", ErrNoLeader
		}
		sort.Strings(seqs)
		data, _, err := s.Get(ctx, dir+"/"+seqs[0])
		if errors.Is(err, coord.ErrNoNode) {
			continue // the leader just left; read again
		}
		if err != nil {
			return "", fmt.Errorf("recipes: reading the leader: %w", err)
		}
		return string(data), nil
	}
}
