package recipes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/recipes"
)

// next returns the next leader change Observe reports.
func next(t *testing.T, ch <-chan recipes.Leader) recipes.Leader {
	t.Helper()
	select {
	case l, ok := <-ch:
		require.True(t, ok, "Observe ended")
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no leader change")
	}
	return recipes.Leader{}
}

// TestElectionObserve: Observe reports no leader, a leader, its new value,
// the next leader, and no leader again once the last leader resigns and
// when the leader's session ends with no one following (the deletion
// etcd's Observe does not report). Cancelling it leaves no watch.
func TestElectionObserve(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	before := watches(nodes)
	a := recipes.NewElection(recipes.FixedSession(session(t, nodes[0])), "/election", "a")
	b := recipes.NewElection(recipes.FixedSession(session(t, nodes[1])), "/election", "b")
	obs := recipes.NewElection(recipes.NodeSessions(nodes[2]), "/election", "observer")
	octx, ocancel := context.WithCancel(ctx)
	changes := obs.Observe(octx)

	require.Equal(t, recipes.Leader{}, next(t, changes), "nobody leads yet")
	_, err := a.Leader(ctx)
	require.ErrorIs(t, err, recipes.ErrNoLeader)
	require.ErrorIs(t, a.Proclaim(ctx, []byte("x")), recipes.ErrNotLeader)

	la, err := a.Campaign(ctx, []byte("v1"))
	require.NoError(t, err)
	_, err = a.Campaign(ctx, nil)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	got := next(t, changes)
	require.Equal(t, recipes.Leader{Name: "a", Value: []byte("v1"), Token: la.Token()}, got)

	require.NoError(t, a.Proclaim(ctx, []byte("v2")))
	require.Equal(t, recipes.Leader{Name: "a", Value: []byte("v2"), Token: la.Token()}, next(t, changes))
	require.NoError(t, nodes[1].Sync(ctx))
	l, err := b.Leader(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", l.Name)
	require.Equal(t, "v2", string(l.Value))

	won := make(chan *recipes.Lease, 1)
	go func() {
		l, err := b.Campaign(ctx, []byte("b1"))
		if err != nil {
			t.Error(err)
		}
		won <- l
	}()
	requireQueued(t, nodes[2], "/election", 2)
	requireReleased(t, a.Resign(ctx))
	require.NoError(t, a.Resign(ctx), "resigning when not leading does nothing")
	lb := <-won
	require.NotNil(t, lb)
	got = next(t, changes)
	require.Equal(t, recipes.Leader{Name: "b", Value: []byte("b1"), Token: lb.Token()}, got)
	require.Greater(t, lb.Token(), la.Token())

	requireReleased(t, b.Resign(ctx))
	require.Equal(t, recipes.Leader{}, next(t, changes), "the leader resigned and nobody follows")

	// The leader's session ends: its node is deleted, nobody follows.
	cs := session(t, nodes[0])
	lc, err := recipes.NewElection(recipes.FixedSession(cs), "/election", "c").Campaign(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, lc.Token(), next(t, changes).Token)
	require.NoError(t, cs.Close(ctx))
	require.Equal(t, recipes.Leader{}, next(t, changes), "the leader's session ended and nobody follows")

	ocancel()
	for range changes {
	}
	requireWatchesBack(t, nodes, before)
}

// TestElectionCancelLeavesNothing: a Campaign abandoned while it waits
// leaves no node and no watch.
func TestElectionCancelLeavesNothing(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	lead := recipes.NewElection(recipes.FixedSession(session(t, nodes[0])), "/el/c", "a")
	_, err := lead.Campaign(ctx, nil)
	require.NoError(t, err)
	e := recipes.NewElection(recipes.FixedSession(session(t, nodes[1])), "/el/c", "b")
	before := watches(nodes)
	requireCancelLeavesNothing(t, nodes, before, "/el/c", 1, func(ctx context.Context) error {
		_, err := e.Campaign(ctx, nil)
		return err
	})
	// The value is free again.
	requireReleased(t, lead.Resign(ctx))
	l, err := e.Campaign(ctx, nil)
	require.NoError(t, err)
	requireReleased(t, l.Release(ctx))
}

// term is one call of a Run's fn: when it started and when its context
// ended.
type term struct {
	start, end time.Time
}

// runner runs e.Run, recording each term; fn waits for its leaderCtx.
type runner struct {
	mu    sync.Mutex
	terms []term
	began chan struct{} // a term started
	err   chan error
}

func startRun(ctx context.Context, e *recipes.Election, value string) *runner {
	r := &runner{began: make(chan struct{}, 16), err: make(chan error, 1)}
	go func() {
		r.err <- e.Run(ctx, []byte(value), func(leaderCtx context.Context) error {
			r.mu.Lock()
			i := len(r.terms)
			r.terms = append(r.terms, term{start: time.Now()})
			r.mu.Unlock()
			r.began <- struct{}{}
			<-leaderCtx.Done()
			r.mu.Lock()
			r.terms[i].end = time.Now()
			r.mu.Unlock()
			return leaderCtx.Err()
		})
	}()
	return r
}

func (r *runner) term(i int) term {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.terms[i]
}

func (r *runner) waitTerm(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.began:
	case err := <-r.err:
		t.Fatalf("%s: Run ended: %v", what, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: never led", what)
	}
}

// TestElectionRun: a leader loop whose node is partitioned has its
// leaderCtx cancelled before the other candidate's term starts; after the
// partition heals its session is found lost, Run campaigns again with a
// fresh session (NodeSessions), and leads again when the other stops.
func TestElectionRun(t *testing.T) {
	c := newCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	f := c.follower()
	w := (f + 1) % 3
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	a := startRun(actx, recipes.NewElection(recipes.NodeSessions(c.nodes[f]), "/el/run", "a"), "a")
	a.waitTerm(t, "a")
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	b := startRun(bctx, recipes.NewElection(recipes.NodeSessions(c.nodes[w]), "/el/run", "b"), "b")
	requireQueued(t, c.nodes[w], "/el/run", 2)

	c.partition(f)
	b.waitTerm(t, "b")
	aEnd, bStart := a.term(0).end, b.term(0).start
	require.False(t, aEnd.IsZero(), "a's leaderCtx still live when b's term began")
	require.True(t, aEnd.Before(bStart), "a's term ended %v after b's began", aEnd.Sub(bStart))
	t.Logf("a's term ended %v before b's began", bStart.Sub(aEnd).Round(time.Millisecond))

	// a's session was expired while cut off; healed, it campaigns again
	// with a new session and queues behind b.
	c.heal()
	requireQueued(t, c.nodes[w], "/el/run", 2)
	bcancel()
	require.ErrorIs(t, <-b.err, context.Canceled)
	a.waitTerm(t, "a again")
	acancel()
	require.ErrorIs(t, <-a.err, context.Canceled)
	require.Eventually(t, func() bool {
		names, _, err := c.nodes[w].Children(ctx, "/el/run")
		return err != nil || len(names) == 0
	}, 5*time.Second, time.Millisecond, "Run left its node behind")
}

// TestElectionRunAcrossFailover: the coordination leader is crash-stopped
// under an election leader. Whether the fail-over Suspends the election
// leader's session depends on timing: if it does, its term's context ends
// before a new term with a higher token begins; if not, the term goes on.
// Either way it leads through the new coordination leader (Proclaim), and
// Observe follows.
func TestElectionRunAcrossFailover(t *testing.T) {
	c := newCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	l := leader(t, c.nodes)
	f := (l + 1) % 3
	e := recipes.NewElection(recipes.NodeSessions(c.nodes[f]), "/el/fo", "a")
	r := startRun(ctx, e, "a")
	r.waitTerm(t, "first term")
	obs := recipes.NewElection(recipes.FixedSession(session(t, c.nodes[(l+2)%3])), "/el/fo", "o")
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	changes := obs.Observe(octx)
	first := next(t, changes)
	require.Equal(t, "a", first.Name)

	c.nodes[l].Shutdown()
	// Proclaim until the observer sees the value: a term that a Suspended
	// session ends after the Proclaim starts again with Run's value, so
	// the value is proclaimed again then.
	deadline := time.Now().Add(30 * time.Second)
	var got recipes.Leader
	for string(got.Value) != "after" {
		require.True(t, time.Now().Before(deadline), "the observer never saw the proclaimed value after the fail-over")
		_ = e.Proclaim(ctx, []byte("after")) // fails while no term is held
		select {
		case l, ok := <-changes:
			require.True(t, ok, "Observe ended")
			got = l
		case <-time.After(200 * time.Millisecond):
		}
	}
	require.Equal(t, "a", got.Name)
	require.GreaterOrEqual(t, got.Token, first.Token)
	if got.Token == first.Token {
		t.Log("the session stayed Connected through the fail-over: one term")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	require.GreaterOrEqual(t, len(r.terms), 2)
	require.False(t, r.terms[0].end.IsZero())
	require.True(t, r.terms[0].end.Before(r.terms[1].start), "the first term ended after the second began")
	t.Logf("a new term %v after the first ended", r.terms[1].start.Sub(r.terms[0].end).Round(time.Millisecond))
}
