package recipes_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

// roster rebuilds a group from its events alone, checking they make sense.
type roster struct {
	t       *testing.T
	mu      sync.Mutex
	members map[string]string
	loaded  bool
}

func newRoster(t *testing.T, g *recipes.Group) *roster {
	r := &roster{t: t, members: map[string]string{}}
	g.Listen(func(ev recipes.MemberEvent) {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, had := r.members[ev.Member.Name]
		switch ev.Type {
		case recipes.MembersLoaded:
			r.loaded = true
		case recipes.MemberJoined:
			if had {
				r.t.Errorf("%s joined twice", ev.Member.Name)
			}
			r.members[ev.Member.Name] = string(ev.Member.Data)
		case recipes.MemberUpdated:
			if !had {
				r.t.Errorf("%s updated before joining", ev.Member.Name)
			}
			r.members[ev.Member.Name] = string(ev.Member.Data)
		case recipes.MemberLeft:
			if !had {
				r.t.Errorf("%s left before joining", ev.Member.Name)
			}
			delete(r.members, ev.Member.Name)
		}
	})
	return r
}

func (r *roster) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.members)
}

func groupString(g *recipes.Group) string {
	m := map[string]string{}
	for _, info := range g.Members() {
		m[info.Name] = string(info.Data)
	}
	return fmt.Sprint(m)
}

// newSessions is a factory that opens a new session on n at each call.
func newSessions(n *coord.Node) recipes.SessionFactory {
	return func(ctx context.Context) (recipes.Session, error) {
		s, err := n.Session(ctx, coord.SessionOptions{Timeout: workTimeout})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// startGroups starts a group view with a roster on each node.
func startGroups(t *testing.T, nodes []*coord.Node, dir string) ([]*recipes.Group, []*roster) {
	ctx := testCtx(t, 20*time.Second)
	var gs []*recipes.Group
	var rs []*roster
	for _, n := range nodes {
		g := recipes.NewGroup(recipes.NodeSessions(n), dir)
		r := newRoster(t, g)
		require.NoError(t, g.Start(ctx))
		t.Cleanup(func() { g.Close() })
		gs, rs = append(gs, g), append(rs, r)
	}
	return gs, rs
}

func requireGroups(t *testing.T, gs []*recipes.Group, rs []*roster, want map[string]string) {
	t.Helper()
	requireGroupsWithin(t, gs, rs, want, 10*time.Second)
}

func requireGroupsWithin(t *testing.T, gs []*recipes.Group, rs []*roster, want map[string]string, d time.Duration) {
	t.Helper()
	for i := range gs {
		require.Eventually(t, func() bool {
			return groupString(gs[i]) == fmt.Sprint(want) && rs[i].String() == fmt.Sprint(want)
		}, d, 5*time.Millisecond, "view %d: %s, events %s, want %v", i, groupString(gs[i]), rs[i], want)
	}
}

// members has n workers over nodes join the group, report progress k
// times, and (odd ones) leave; it returns what the group should hold.
func members(t *testing.T, nodes []*coord.Node, dir, tag string, n, k int, afterFirst func()) map[string]string {
	ctx := testCtx(t, 60*time.Second)
	var mu sync.Mutex
	want := map[string]string{}
	var once sync.Once
	workers(t, nodes, n, func(i int, _ *coord.Session) {
		name := fmt.Sprintf("%s-%d", tag, i)
		m, err := recipes.JoinGroup(ctx, newSessions(nodes[i%len(nodes)]), dir, name, []byte("starting"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		for j := range k {
			if err := m.Update(ctx, fmt.Appendf(nil, "%d%%", (j+1)*100/k)); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if afterFirst != nil {
				once.Do(afterFirst)
			}
		}
		if i%2 == 1 {
			if err := m.Leave(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			assert.ErrorIs(t, m.Err(), recipes.ErrLeft)
			return
		}
		mu.Lock()
		want[name] = "100%"
		mu.Unlock()
	})
	return want
}

// TestMembershipContention: 16 workers over 3 nodes join, report progress
// into their own node and half of them leave; a view on every node (and its
// events alone) ends with exactly the members that stayed and their last
// progress. Then again while the leader is crash-stopped: the members on
// the survivors keep their nodes.
func TestMembershipContention(t *testing.T) {
	nodes := cluster(t, 3)
	gs, rs := startGroups(t, nodes, "/services/workers")
	want := members(t, nodes, "/services/workers", "a", 16, 5, nil)
	requireGroups(t, gs, rs, want)

	old, alive := splitLeader(t, nodes)
	for name, v := range members(t, alive, "/services/workers", "b", 16, 3, old.Shutdown) {
		want[name] = v
	}
	var ags []*recipes.Group
	var ars []*roster
	for i, n := range nodes {
		if n != old {
			ags, ars = append(ags, gs[i]), append(ars, rs[i])
		}
	}
	// The members on the dead node go when the leader expires their
	// sessions (after workTimeout).
	for name := range want {
		var i int
		fmt.Sscanf(name[2:], "%d", &i)
		if name[0] == 'a' && nodes[i%3] == old {
			delete(want, name)
		}
	}
	requireGroupsWithin(t, ags, ars, want, workTimeout+10*time.Second)
}

// TestMemberRegistersAgain: a member whose session ends registers again
// with a fresh session and its newest metadata; its view sees it leave and
// join again. With a session really lost (its node partitioned until the
// leader expires it), the same.
func TestMemberRegistersAgain(t *testing.T) {
	c := newCluster(t, 3)
	nodes := c.nodes
	gs, rs := startGroups(t, nodes, "/g")
	ctx := testCtx(t, 60*time.Second)
	f := c.follower()
	g := newGated(nodes[f])
	m, err := recipes.JoinGroup(ctx, g.get, "/g", "w1", []byte("v1"))
	require.NoError(t, err)
	requireGroups(t, gs, rs, map[string]string{"w1": "v1"})

	// Its session is closed: the node goes at once, and comes back.
	release := g.interrupt(t)
	require.NoError(t, m.Update(ctx, []byte("v2"))) // while unregistered
	release()
	requireGroups(t, gs, rs, map[string]string{"w1": "v2"})
	require.NoError(t, m.Err())

	// Someone deletes its node: it comes back.
	require.NoError(t, nodes[0].Delete(ctx, "/g/w1", coord.AnyVersion))
	require.Eventually(t, func() bool {
		_, ok, err := nodes[f].Exists(ctx, "/g/w1")
		return err == nil && ok
	}, 10*time.Second, time.Millisecond, "registered again after a delete")
	requireGroups(t, gs, rs, map[string]string{"w1": "v2"})

	// Its node is cut off until the session expires.
	other := (f + 1) % 3
	var left sync.Once
	gone := make(chan struct{})
	gs[other].Listen(func(ev recipes.MemberEvent) {
		if ev.Type == recipes.MemberLeft {
			left.Do(func() { close(gone) })
		}
	})
	c.partition(f)
	select {
	case <-gone:
	case <-ctx.Done():
		t.Fatal("the partitioned member's node never expired")
	}
	c.heal()
	requireGroups(t, gs, rs, map[string]string{"w1": "v2"})
	require.NoError(t, m.Update(ctx, []byte("v3")))
	requireGroups(t, gs, rs, map[string]string{"w1": "v3"})

	require.NoError(t, m.Leave(ctx))
	requireGroups(t, gs, rs, map[string]string{})
}

func TestMembershipCancelAndErrors(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 20*time.Second)
	s := workSession(t, nodes[0])
	before := watches(nodes)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := recipes.JoinGroup(cctx, recipes.FixedSession(s), "/grp", "x", nil)
	require.ErrorIs(t, err, context.Canceled)
	_, err = recipes.JoinGroup(ctx, recipes.FixedSession(s), "/grp", "a/b", nil)
	require.ErrorIs(t, err, coord.ErrBadArguments)
	_, ok, err := s.Exists(ctx, "/grp/x")
	require.NoError(t, err)
	require.False(t, ok)
	requireWatchesBack(t, nodes, before)

	// With a FixedSession, the member stops when its session ends.
	m, err := recipes.JoinGroup(ctx, recipes.FixedSession(s), "/grp", "x", []byte("1"))
	require.NoError(t, err)
	require.NoError(t, s.Close(ctx))
	select {
	case <-m.Done():
	case <-ctx.Done():
		t.Fatal("member outlived its fixed session")
	}
	require.ErrorIs(t, m.Err(), coord.ErrSessionExpired)
	require.NoError(t, m.Leave(ctx))
	requireWatchesBack(t, nodes, before)
}

// TestJoinGroupCancelledDuringCreate: a JoinGroup cancelled while its
// member's create is in flight (committed on the leader, the answer held up
// on the way back) leaves no member node behind.
func TestJoinGroupCancelledDuringCreate(t *testing.T) {
	c := newCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	l := leader(t, c.nodes)
	f := (l + 1) % 3
	s := workSession(t, c.nodes[f])
	_, err := s.Create(ctx, "/inflight", nil, coord.Persistent)
	require.NoError(t, err)
	c.proxy.Stall(l+1, f+1) // the leader's answers to f are held
	wctx, wcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := recipes.JoinGroup(wctx, recipes.FixedSession(s), "/inflight", "m", nil)
		errc <- err
	}()
	require.Eventually(t, func() bool {
		_, ok, err := c.nodes[l].Exists(ctx, "/inflight/m")
		return err == nil && ok
	}, 10*time.Second, time.Millisecond, "committed on the leader")
	wcancel()
	c.heal()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Eventually(t, func() bool {
		_, ok, err := c.nodes[l].Exists(ctx, "/inflight/m")
		return err == nil && !ok
	}, 5*time.Second, time.Millisecond, "the cancelled member's node was left behind")
}
