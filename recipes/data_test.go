package recipes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coord-dev/coord/coord"
)

// Helpers of the data recipes' tests (config, cache, membership, barrier,
// queue, counter, naming).

// testCtx returns a context bounded by d, cancelled when the test ends.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// workers runs fn(i, s) for n goroutines, worker i on nodes[i%len(nodes)]
// with a session of its own, and waits for them all.
func workers(t *testing.T, nodes []*coord.Node, n int, fn func(i int, s *coord.Session)) {
	t.Helper()
	sessions := make([]*coord.Session, n)
	for i := range sessions {
		sessions[i] = session(t, nodes[i%len(nodes)])
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, sessions[i])
		}()
	}
	wg.Wait()
}

// splitLeader returns the leader and the other nodes: workers of a
// fail-over test run on the others while the leader is crash-stopped.
func splitLeader(t *testing.T, nodes []*coord.Node) (*coord.Node, []*coord.Node) {
	t.Helper()
	l := leader(t, nodes)
	var alive []*coord.Node
	for i, n := range nodes {
		if i != l {
			alive = append(alive, n)
		}
	}
	return nodes[l], alive
}
