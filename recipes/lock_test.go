package recipes_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/recipes"
)

var flagAcquisitions = flag.Int("recipes.acquisitions", 2000,
	"acquisitions in TestLockContention (a quarter in the RWLock and Semaphore ones)")

// fenced is a resource guarded by fencing tokens: it refuses a token lower
// than the highest it has seen, and counts who is inside.
type fenced struct {
	mu      sync.Mutex
	highest int64
	inside  int
	most    int // the most holders inside at once
}

// enter admits a holder with token (a strict resource refuses a token it
// has seen already) and returns how many are inside, or refuses a stale
// token.
func (f *fenced) enter(token int64, strict bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if token < f.highest || (strict && token == f.highest) {
		return f.inside, fmt.Errorf("token %d after %d", token, f.highest)
	}
	f.highest = max(f.highest, token)
	f.inside++
	f.most = max(f.most, f.inside)
	return f.inside, nil
}

// seen reports whether any holder came in.
func (f *fenced) seen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.highest != 0
}

func (f *fenced) leave() {
	f.mu.Lock()
	f.inside--
	f.mu.Unlock()
}

// contend runs 16 goroutines over the nodes (each its own session and
// value) that acquire with acquire until total acquisitions are done, and
// calls critical while holding. It returns the acquisitions' tokens.
func contend(t *testing.T, nodes []*coord.Node, total int,
	acquire func(s *coord.Session, w int) func(context.Context) (*recipes.Lease, error),
	critical func(w int, l *recipes.Lease) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var left atomic.Int64
	left.Store(int64(total))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		get := acquire(session(t, nodes[w%len(nodes)]), w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				l, err := get(ctx)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				cerr := critical(w, l)
				// ErrLeaseLost: the session was Suspended meanwhile (a
				// loaded machine); the node is deleted all the same.
				if err := l.Release(ctx); err != nil && !errors.Is(err, recipes.ErrLeaseLost) {
					errs <- fmt.Errorf("worker %d: release: %w", w, err)
					return
				}
				if cerr != nil {
					errs <- fmt.Errorf("worker %d: %w", w, cerr)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLockContention: 16 goroutines over 3 nodes; the lock never has two
// holders and each holder's token is above every earlier one's (a fenced
// resource refusing anything else). -recipes.acquisitions=2000 for the
// issue's figure.
func TestLockContention(t *testing.T) {
	nodes := cluster(t, 3)
	var res fenced
	var n atomic.Int64
	start := time.Now()
	contend(t, nodes, *flagAcquisitions,
		func(s *coord.Session, _ int) func(context.Context) (*recipes.Lease, error) {
			return recipes.NewLock(s, "/locks/contended", nil).Acquire
		},
		func(_ int, l *recipes.Lease) error {
			n.Add(1)
			inside, err := res.enter(l.Token(), true)
			if err != nil {
				return err
			}
			defer res.leave()
			if inside != 1 {
				return errors.New("two holders at once")
			}
			return nil
		})
	require.EqualValues(t, *flagAcquisitions, n.Load())
	require.Equal(t, 1, res.most)
	t.Logf("%d acquisitions by 16 goroutines over 3 nodes in %v", n.Load(), time.Since(start).Round(time.Millisecond))
}

// TestLockGuard: a Multi carrying the lease's Guard applies while the lease
// is held and fails, applying nothing, once its node is gone.
func TestLockGuard(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 30*time.Second)
	s := session(t, nodes[0])
	_, err := s.Create(ctx, "/guarded", []byte("0"), coord.Persistent)
	require.NoError(t, err)
	lease, err := recipes.NewLock(s, "/locks/g", nil).Acquire(ctx)
	require.NoError(t, err)
	_, err = s.Multi(ctx, lease.Guard(), coord.SetOp("/guarded", []byte("1"), coord.AnyVersion))
	require.NoError(t, err)

	// The lease's node goes behind the holder's back (its session is
	// expired, an operator deletes it, ...): the guarded write fails.
	require.NoError(t, nodes[0].Delete(ctx, lease.Path(), coord.AnyVersion))
	res, err := s.Multi(ctx, lease.Guard(), coord.SetOp("/guarded", []byte("2"), coord.AnyVersion))
	require.ErrorIs(t, err, coord.ErrNoNode)
	require.ErrorIs(t, res[0].Err, coord.ErrNoNode, "the guard is what failed")
	data, _, err := s.Get(ctx, "/guarded")
	require.NoError(t, err)
	require.Equal(t, "1", string(data), "nothing applied")
	requireReleased(t, lease.Release(ctx))
}

// TestLockAlreadyHeld: a second Acquire through the same value fails at
// once with ErrAlreadyHeld (no self-deadlock); after Release it works, and
// another value on the same session queues like any other holder.
func TestLockAlreadyHeld(t *testing.T) {
	nodes := cluster(t, 1)
	ctx := testCtx(t, 30*time.Second)
	s := session(t, nodes[0])
	lock := recipes.NewLock(s, "/locks/again", nil)
	first, err := lock.Acquire(ctx)
	require.NoError(t, err)
	_, err = lock.Acquire(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)
	_, _, err = lock.TryAcquire(ctx)
	require.ErrorIs(t, err, recipes.ErrAlreadyHeld)

	other := recipes.NewLock(s, "/locks/again", nil)
	_, ok, err := other.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "another value is another holder")

	requireReleased(t, first.Release(ctx))
	require.NoError(t, first.Release(ctx), "idempotent")
	second, err := lock.Acquire(ctx)
	require.NoError(t, err)
	require.Greater(t, second.Token(), first.Token())
	requireReleased(t, second.Release(ctx))
}

func TestLockHandOverWhenHolderSessionEnds(t *testing.T) {
	nodes := cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s1 := session(t, nodes[0])
	first, err := recipes.NewLock(s1, "/l", nil).Acquire(ctx)
	require.NoError(t, err)
	require.Greater(t, first.Remaining(), time.Duration(0), "a fresh lease may act")
	require.LessOrEqual(t, first.Remaining(), s1.Timeout())

	second := recipes.NewLock(session(t, nodes[1]), "/l", nil)
	_, ok, err := second.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "held")

	got := make(chan *recipes.Lease, 1)
	go func() {
		l, err := second.Acquire(ctx)
		if err == nil {
			got <- l
		}
	}()
	// The holder's session ends: its lease is broken and the waiter gets in.
	require.NoError(t, s1.Close(ctx))
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not broken by the session's end")
	}
	require.Zero(t, first.Remaining(), "a broken lease may not act")
	select {
	case l := <-got:
		require.Greater(t, l.Token(), first.Token())
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never acquired")
	}
	require.ErrorIs(t, first.Release(ctx), recipes.ErrLeaseLost)
}

// TestLockCancelLeavesNothing: an Acquire abandoned while it waits on its
// predecessor leaves no node and no watch behind, on any node.
func TestLockCancelLeavesNothing(t *testing.T) {
	nodes := cluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	held, err := recipes.NewLock(session(t, nodes[0]), "/locks/c", nil).Acquire(ctx)
	require.NoError(t, err)
	s := session(t, nodes[1])
	before := watches(nodes)
	wctx, wcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := recipes.NewLock(s, "/locks/c", nil).Acquire(wctx)
		errc <- err
	}()
	// Cancel once the waiter is queued and watching.
	require.Eventually(t, func() bool {
		names, _, err := s.Children(ctx, "/locks/c")
		return err == nil && len(names) == 2 && nodes[1].Stats().Watches > before[1]
	}, 5*time.Second, time.Millisecond)
	wcancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	names, _, err := s.Children(ctx, "/locks/c")
	require.NoError(t, err)
	require.Equal(t, []string{held.Path()[len("/locks/c/"):]}, names, "the cancelled contender left the queue")
	requireWatchesBack(t, nodes, before)
	requireReleased(t, held.Release(ctx))
}

// held is any lock recipe's held lease, for the tests they share.
type held struct {
	token     int64
	done      <-chan struct{}
	remaining func() time.Duration
	release   func(context.Context) error
}

func fromLease(l *recipes.Lease, err error) (held, error) {
	if err != nil {
		return held{}, err
	}
	return held{token: l.Token(), done: l.Done(), remaining: l.Remaining, release: l.Release}, nil
}

// lockKind is one lock recipe: acquire returns a fresh value's acquisition
// of the lock named dir; its contenders queue in dir+queue.
type lockKind struct {
	name    string
	queue   string
	acquire func(s *coord.Session, dir string) func(context.Context) (held, error)
}

var lockKinds = []lockKind{
	{"Lock", "", func(s *coord.Session, dir string) func(context.Context) (held, error) {
		l := recipes.NewLock(s, dir, nil)
		return func(ctx context.Context) (held, error) { return fromLease(l.Acquire(ctx)) }
	}},
	{"RWLock", "", func(s *coord.Session, dir string) func(context.Context) (held, error) {
		l := recipes.NewRWLock(s, dir, nil)
		return func(ctx context.Context) (held, error) { return fromLease(l.Lock(ctx)) }
	}},
	{"Semaphore", "", func(s *coord.Session, dir string) func(context.Context) (held, error) {
		l := recipes.NewSemaphore(s, dir, 1, nil)
		return func(ctx context.Context) (held, error) { return fromLease(l.Acquire(ctx)) }
	}},
	{"MultiLock", "/a", func(s *coord.Session, dir string) func(context.Context) (held, error) {
		l := recipes.NewMultiLock(s, []string{dir + "/b", dir + "/a"}, nil)
		return func(ctx context.Context) (held, error) {
			ml, err := l.Acquire(ctx)
			if err != nil {
				return held{}, err
			}
			return held{token: ml.Leases()[0].Token(), done: ml.Done(), remaining: ml.Remaining, release: ml.Release}, nil
		}
	}},
	{"Election", "", func(s *coord.Session, dir string) func(context.Context) (held, error) {
		e := recipes.NewElection(recipes.FixedSession(s), dir, "candidate")
		return func(ctx context.Context) (held, error) { return fromLease(e.Campaign(ctx, nil)) }
	}},
}

// eachHolderCase runs fn for every lock recipe, with the holder on a
// follower and, for Lock, also on the leader: c is a fresh cluster whose
// node h holds dir's lock (first), w another node.
func eachHolderCase(t *testing.T, dir string, fn func(t *testing.T, k lockKind, c *testCluster, h, w int, first held, ctx context.Context)) {
	for _, k := range lockKinds {
		for _, which := range []string{"follower", "leader"} {
			if which == "leader" && k.name != "Lock" {
				continue // one engine: the leader case once
			}
			t.Run(k.name+"/"+which, func(t *testing.T) {
				c := newCluster(t, 3)
				ctx := testCtx(t, 30*time.Second)
				h := leader(t, c.nodes)
				if which == "follower" {
					h = c.follower()
				}
				first, err := k.acquire(session(t, c.nodes[h]), dir)(ctx)
				require.NoError(t, err)
				fn(t, k, c, h, (h+1)%3, first, ctx)
			})
		}
	}
}

// TestHolderCrashStopped: the holder's node is crash-stopped (no session
// close); the next waiter proceeds within the session timeout plus 1s,
// for every lock recipe, whether the dead node was a follower or the
// leader.
func TestHolderCrashStopped(t *testing.T) {
	eachHolderCase(t, "/crash", func(t *testing.T, k lockKind, c *testCluster, h, w int, first held, ctx context.Context) {
		got := make(chan held, 1)
		errc := make(chan error, 1)
		wait := k.acquire(session(t, c.nodes[w]), "/crash")
		go func() {
			l, err := wait(ctx)
			if err != nil {
				errc <- err
				return
			}
			got <- l
		}()
		requireQueued(t, c.nodes[w], "/crash"+k.queue, 2)
		start := time.Now()
		c.nodes[h].Shutdown()
		select {
		case l := <-got:
			took := time.Since(start)
			t.Logf("waiter acquired %v after the holder's node stopped", took.Round(time.Millisecond))
			require.Less(t, took, sessionTimeout+time.Second)
			require.Greater(t, l.token, first.token)
			requireReleased(t, l.release(ctx))
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(sessionTimeout + time.Second):
			t.Fatalf("waiter still waiting %v after the holder's node stopped", sessionTimeout+time.Second)
		}
	})
}

// requireQueued waits until dir lists n contenders on node.
func requireQueued(t *testing.T, node *coord.Node, dir string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		names, _, err := node.Children(context.Background(), dir)
		return err == nil && len(names) == n
	}, 5*time.Second, time.Millisecond, "%s never had %d contenders", dir, n)
}

// TestHolderPartitioned: the holder's node is cut off; its lease's Done
// closes before anyone else acquires (the waiter gets in only once the
// leader has expired the holder's session), for every lock recipe.
func TestHolderPartitioned(t *testing.T) {
	eachHolderCase(t, "/part", func(t *testing.T, k lockKind, c *testCluster, h, w int, first held, ctx context.Context) {
		var doneAt, gotAt time.Time
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-first.done
			doneAt = time.Now()
		}()
		wait := k.acquire(session(t, c.nodes[w]), "/part")
		var got held
		var gotErr error
		go func() {
			defer wg.Done()
			got, gotErr = wait(ctx)
			gotAt = time.Now()
		}()
		requireQueued(t, c.nodes[w], "/part"+k.queue, 2)
		c.partition(h)
		wg.Wait()
		require.NoError(t, gotErr)
		require.True(t, doneAt.Before(gotAt), "the holder's Done closed %v after the next holder acquired", doneAt.Sub(gotAt))
		t.Logf("holder's Done closed %v before the waiter acquired", gotAt.Sub(doneAt).Round(time.Millisecond))
		require.Zero(t, first.remaining())
		require.Greater(t, got.token, first.token)
		requireReleased(t, got.release(ctx))
		c.heal()
	})
}

// TestAcrossLeaderFailover: for every lock recipe (one holder at a time),
// contenders on the followers keep taking the lock while the leader is
// crash-stopped; it never has two holders, tokens keep increasing, and
// acquisitions resume under the new leader.
func TestAcrossLeaderFailover(t *testing.T) {
	for _, k := range lockKinds {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, 3)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l := leader(t, c.nodes)
			var res fenced
			var after atomic.Int64 // acquisitions after the leader stopped
			var stopped atomic.Bool
			var wg sync.WaitGroup
			for w := range 4 {
				node := c.nodes[(l+1+w%2)%3] // the two followers
				acquire := k.acquire(session(t, node), "/failover")
				wg.Add(1)
				go func() {
					defer wg.Done()
					for after.Load() < 40 && ctx.Err() == nil {
						lease, err := acquire(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if _, err := res.enter(lease.token, true); err != nil {
							t.Error(err)
						} else {
							res.leave()
						}
						if stopped.Load() {
							after.Add(1)
						}
						if err := lease.release(ctx); err != nil && !errors.Is(err, recipes.ErrLeaseLost) {
							t.Error(err)
							return
						}
					}
				}()
			}
			require.Eventually(t, res.seen, 10*time.Second, time.Millisecond)
			c.nodes[l].Shutdown()
			stopped.Store(true)
			wg.Wait()
			require.GreaterOrEqual(t, after.Load(), int64(40))
			require.Equal(t, 1, res.most)
		})
	}
}

// TestWaiterSurvivesSuspension: a waiter whose session is Suspended (its
// node cut off for less than the session timeout) is not a holder: it waits
// the suspension out and acquires once the holder releases, with a lease
// resting on the new Connected period (Done open). For a MultiLock the
// suspension comes after it took its first lock: it gives that back and
// starts again.
func TestWaiterSurvivesSuspension(t *testing.T) {
	for _, k := range lockKinds {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, 3)
			ctx := testCtx(t, 30*time.Second)
			l := leader(t, c.nodes)
			h, w := (l+1)%3, (l+2)%3
			dir, queue := "/suspend", "/suspend"+k.queue
			var first held
			var err error
			if k.name == "MultiLock" {
				// Only /b is held: the waiter takes /a, then waits on /b.
				queue = dir + "/b"
				first, err = fromLease(recipes.NewLock(session(t, c.nodes[h]), queue, nil).Acquire(ctx))
			} else {
				first, err = k.acquire(session(t, c.nodes[h]), dir)(ctx)
			}
			require.NoError(t, err)
			ws := session(t, c.nodes[w])
			wait := k.acquire(ws, dir)
			got := make(chan held, 1)
			errc := make(chan error, 1)
			go func() {
				l, err := wait(ctx)
				if err != nil {
					errc <- err
					return
				}
				got <- l
			}()
			requireQueued(t, c.nodes[w], queue, 2)

			c.partition(w)
			require.Eventually(t, func() bool { return ws.State() == coord.SessionStateSuspended },
				5*time.Second, time.Millisecond, "the waiter's session never Suspended")
			c.heal()
			require.Eventually(t, func() bool { return ws.State() == coord.SessionStateConnected },
				sessionTimeout, time.Millisecond, "the waiter's session never came back")
			requireReleased(t, first.release(ctx)) // its session may be Suspended too
			select {
			case l := <-got:
				require.Greater(t, l.token, first.token)
				select {
				case <-l.done:
					t.Fatal("the lease rests on the ended period")
				default:
				}
				require.Positive(t, l.remaining())
				requireReleased(t, l.release(ctx))
			case err := <-errc:
				t.Fatal(err)
			case <-time.After(10 * time.Second):
				t.Fatal("the waiter never acquired")
			}
		})
	}
}

// TestCancelDuringCreateLeavesNothing: an Acquire cancelled while its
// contender's create is in flight (committed by the quorum, the answer held
// up on the way back to the waiter's node) does not leave that contender
// behind, where it would block the lock for as long as the session lives.
func TestCancelDuringCreateLeavesNothing(t *testing.T) {
	c := newCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	l := leader(t, c.nodes)
	f := (l + 1) % 3
	held, err := recipes.NewLock(session(t, c.nodes[l]), "/locks/inflight", nil).Acquire(ctx)
	require.NoError(t, err)
	s := session(t, c.nodes[f])
	c.proxy.Stall(l+1, f+1) // the leader's answers to f are held
	wctx, wcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := recipes.NewLock(s, "/locks/inflight", nil).Acquire(wctx)
		errc <- err
	}()
	requireQueued(t, c.nodes[l], "/locks/inflight", 2) // committed on the leader
	wcancel()
	time.Sleep(50 * time.Millisecond) // let an Acquire that gives up at once do so (not needed to pass)
	c.heal()
	require.Error(t, <-errc)
	require.Eventually(t, func() bool {
		names, _, err := c.nodes[l].Children(ctx, "/locks/inflight")
		return err == nil && len(names) == 1
	}, 5*time.Second, time.Millisecond, "the cancelled contender was left in the queue")
	requireReleased(t, held.Release(ctx))
}

// requireReleased accepts a release that succeeded or found its lease
// already lost to a Suspended session (a loaded machine): the node is
// deleted either way.
func requireReleased(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		require.ErrorIs(t, err, recipes.ErrLeaseLost)
	}
}
