package session

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTracker(t testing.TB, tick time.Duration) *Tracker {
	t.Helper()
	tr, err := NewTracker(tick, t0)
	require.NoError(t, err)
	return tr
}

func TestNewTrackerRejectsBadTick(t *testing.T) {
	for _, tick := range []time.Duration{0, -time.Second} {
		_, err := NewTracker(tick, t0)
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.Contains(t, err.Error(), "tick")
	}
}

func TestTrackerAddValidates(t *testing.T) {
	tr := newTracker(t, ms(100))
	require.ErrorIs(t, tr.Add(0, time.Second, t0), ErrInvalidID)
	require.ErrorIs(t, tr.Add(-3, time.Second, t0), ErrInvalidID)
	require.ErrorIs(t, tr.Add(1, 0, t0), ErrInvalidTimeout)
	require.ErrorIs(t, tr.Add(1, -time.Second, t0), ErrInvalidTimeout)
	assert.Equal(t, 0, tr.Len())
}

// Expiry is rounded up to the first tick strictly after touch+timeout, like
// ZooKeeper's ExpiryQueue, and sessions landing in one bucket expire together.
func TestTrackerBuckets(t *testing.T) {
	tr := newTracker(t, ms(100))
	for _, a := range []struct {
		id     ID
		now    int64 // ms
		expiry int64 // ms
	}{
		{1, 0, 1100},  // 1000 -> next tick after is 1100
		{2, 50, 1100}, // 1050 -> 1100
		{3, 99, 1100}, // 1099 -> 1100
		{4, 100, 1200},
		{5, 150, 1200},
	} {
		require.NoError(t, tr.Add(a.id, time.Second, at(a.now)))
		info, ok := tr.Lookup(a.id)
		require.True(t, ok)
		assert.Equal(t, at(a.expiry), info.Expiry, "session %s", a.id)
		assert.False(t, info.Closing)
	}
	assert.Equal(t, 5, tr.Len())
	next, ok := tr.NextExpiry()
	require.True(t, ok)
	assert.Equal(t, at(1100), next)

	for _, step := range []struct {
		now  int64
		want []ID
	}{
		{0, nil},
		{1099, nil},
		{1100, []ID{1, 2, 3}},
		{1100, nil}, // each session is returned once
		{1199, nil},
		{1250, []ID{4, 5}},
	} {
		assert.Equal(t, step.want, tr.Expired(at(step.now)), "Expired at %d ms", step.now)
	}
	_, ok = tr.NextExpiry()
	assert.False(t, ok, "all sessions are closing")
	assert.Equal(t, 5, tr.Len(), "expired sessions stay until Remove")
}

func TestTrackerTouch(t *testing.T) {
	tr := newTracker(t, ms(100))
	require.NoError(t, tr.Add(1, time.Second, at(0)))
	require.NoError(t, tr.Add(2, time.Second, at(0)))

	require.True(t, tr.Touch(1, at(500)))
	info, _ := tr.Lookup(1)
	assert.Equal(t, at(1600), info.Expiry)

	// A touch with an older time (a reordered heartbeat, a driver handing in
	// stale times) never moves the expiry earlier.
	require.True(t, tr.Touch(1, at(200)))
	info, _ = tr.Lookup(1)
	assert.Equal(t, at(1600), info.Expiry)

	assert.Equal(t, []ID{2}, tr.Expired(at(1100)))
	assert.Nil(t, tr.Expired(at(1599)))
	require.True(t, tr.Touch(1, at(1599)))
	assert.Nil(t, tr.Expired(at(2599)))
	assert.Equal(t, []ID{1}, tr.Expired(at(2600)))
}

func TestTrackerTouchRefusesExpiredClosingAndUnknown(t *testing.T) {
	tr := newTracker(t, ms(10))
	require.NoError(t, tr.Add(1, ms(100), at(0)))
	require.NoError(t, tr.Add(2, ms(100), at(0)))
	require.NoError(t, tr.Add(3, ms(100), at(0)))

	assert.False(t, tr.Touch(9, at(5)), "unknown")

	assert.Equal(t, []ID{1, 2, 3}, tr.Expired(at(110)))
	// The closeSession txns are proposed; a heartbeat arriving now must not
	// revive the sessions.
	assert.False(t, tr.Touch(1, at(111)))
	info, ok := tr.Lookup(1)
	require.True(t, ok)
	assert.True(t, info.Closing)
	assert.True(t, info.Expiry.IsZero())
	assert.Nil(t, tr.Expired(at(10_000)), "a refused touch does not requeue")

	// Adding a closing session again (replayed createSession) keeps it closing.
	require.NoError(t, tr.Add(2, ms(500), at(120)))
	assert.False(t, tr.Touch(2, at(121)))

	assert.True(t, tr.Remove(1))
	assert.False(t, tr.Remove(1))
	assert.False(t, tr.Touch(1, at(130)), "removed")
	assert.Equal(t, 2, tr.Len())
}

func TestTrackerMarkClosing(t *testing.T) {
	tr := newTracker(t, ms(10))
	require.NoError(t, tr.Add(1, ms(100), at(0)))
	require.NoError(t, tr.Add(2, ms(100), at(0)))
	assert.False(t, tr.MarkClosing(7))
	assert.True(t, tr.MarkClosing(1))
	assert.True(t, tr.MarkClosing(1), "idempotent")
	assert.False(t, tr.Touch(1, at(50)))
	assert.Equal(t, []ID{2}, tr.Expired(at(200)), "a closing session is not reported again")
	assert.True(t, tr.Remove(1))
	assert.True(t, tr.Remove(2))
	assert.Equal(t, 0, tr.Len())
}

func TestTrackerRemoveLive(t *testing.T) {
	tr := newTracker(t, ms(10))
	for id := ID(1); id <= 5; id++ {
		require.NoError(t, tr.Add(id, ms(100), at(0)))
	}
	assert.True(t, tr.Remove(3))
	assert.True(t, tr.Remove(1))
	assert.Equal(t, []ID{2, 4, 5}, tr.Expired(at(110)))
}

func TestTrackerAddExistingUpdatesTimeout(t *testing.T) {
	tr := newTracker(t, ms(10))
	require.NoError(t, tr.Add(1, ms(100), at(0)))
	require.NoError(t, tr.Add(1, ms(300), at(50)))
	info, _ := tr.Lookup(1)
	assert.Equal(t, ms(300), info.Timeout)
	assert.Equal(t, at(360), info.Expiry)
	assert.Equal(t, 1, tr.Len())
}

// Expired returns sessions by expiry, then id, whatever the insertion order
// and however many buckets fall due in one call.
func TestTrackerExpiryOrderDeterministic(t *testing.T) {
	type add struct {
		id      ID
		now     int64 // ms
		timeout int64 // ms
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[ID]bool{}
	var adds []add
	for len(adds) < 300 {
		id := ID(1 + rng.Int64N(1<<40))
		if !seen[id] {
			seen[id] = true
			adds = append(adds, add{id, rng.Int64N(1000), 100 + rng.Int64N(1000)})
		}
	}
	// The documented rule: the first 50 ms tick strictly after now+timeout.
	expiry := func(a add) int64 { return (a.now+a.timeout)/50*50 + 50 }
	ref := slices.Clone(adds)
	slices.SortFunc(ref, func(a, b add) int { return cmp.Or(cmp.Compare(expiry(a), expiry(b)), cmp.Compare(a.id, b.id)) })
	var want []ID
	for _, a := range ref {
		want = append(want, a.id)
	}
	for run := 0; run < 3; run++ {
		tr := newTracker(t, ms(50))
		rng.Shuffle(len(adds), func(i, j int) { adds[i], adds[j] = adds[j], adds[i] })
		for _, a := range adds {
			require.NoError(t, tr.Add(a.id, ms(a.timeout), at(a.now)))
		}
		assert.Equal(t, want, tr.Expired(at(10_000)), "run %d", run)
	}
}

// naiveTracker is the obvious O(n) implementation of the documented rules,
// the reference the bucketed Tracker is checked against.
type naiveTracker struct {
	tick    int64
	expiry  map[ID]int64 // ms; absent from live once closing
	timeout map[ID]int64
	closing map[ID]bool
}

func (n *naiveTracker) round(t int64) int64 { return floorDiv(t, n.tick)*n.tick + n.tick }

func (n *naiveTracker) expired(now int64) []ID {
	var out []ID
	for id, e := range n.expiry {
		if !n.closing[id] && e <= now {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b ID) int { return cmp.Or(cmp.Compare(n.expiry[a], n.expiry[b]), cmp.Compare(a, b)) })
	for _, id := range out {
		n.closing[id] = true
	}
	return out
}

func TestTrackerMatchesNaiveModel(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		tick := 1 + rng.Int64N(100)
		tr := newTracker(t, ms(tick))
		n := &naiveTracker{tick: tick, expiry: map[ID]int64{}, timeout: map[ID]int64{}, closing: map[ID]bool{}}
		var now int64
		for step := 0; step < 2000; step++ {
			now += rng.Int64N(20)
			id := ID(1 + rng.Int64N(60))
			switch op := rng.IntN(10); {
			case op < 3:
				to := 1 + rng.Int64N(500)
				if err := tr.Add(id, ms(to), at(now)); err != nil {
					t.Fatal(err)
				}
				if _, ok := n.expiry[id]; !ok {
					n.expiry[id] = n.round(now + to)
				} else if !n.closing[id] {
					n.expiry[id] = max(n.expiry[id], n.round(now+to))
				}
				n.timeout[id] = to
			case op < 7:
				want := false
				if _, ok := n.expiry[id]; ok && !n.closing[id] {
					want = true
					n.expiry[id] = max(n.expiry[id], n.round(now+n.timeout[id]))
				}
				if got := tr.Touch(id, at(now)); got != want {
					t.Fatalf("seed %d step %d: Touch(%s) = %v, want %v", seed, step, id, got, want)
				}
			case op < 8:
				_, want := n.expiry[id]
				if got := tr.Remove(id); got != want {
					t.Fatalf("seed %d step %d: Remove(%s) = %v, want %v", seed, step, id, got, want)
				}
				delete(n.expiry, id)
				delete(n.closing, id)
			case op < 9:
				_, want := n.expiry[id]
				if got := tr.MarkClosing(id); got != want {
					t.Fatalf("seed %d step %d: MarkClosing(%s) = %v, want %v", seed, step, id, got, want)
				}
				if want {
					n.closing[id] = true
				}
			default:
				if want, got := n.expired(now), tr.Expired(at(now)); !slices.Equal(want, got) {
					t.Fatalf("seed %d step %d: Expired = %v, want %v", seed, step, got, want)
				}
			}
			if tr.Len() != len(n.expiry) {
				t.Fatalf("seed %d step %d: Len = %d, want %d", seed, step, tr.Len(), len(n.expiry))
			}
			var want time.Time
			for id, e := range n.expiry {
				if !n.closing[id] && (want.IsZero() || at(e).Before(want)) {
					want = at(e)
				}
			}
			if got, ok := tr.NextExpiry(); ok != !want.IsZero() || !got.Equal(want) {
				t.Fatalf("seed %d step %d: NextExpiry = %v %v, want %v", seed, step, got, ok, want)
			}
			for id, e := range n.expiry {
				info, ok := tr.Lookup(id)
				if !ok || info.Closing != n.closing[id] || (!info.Closing && !info.Expiry.Equal(at(e))) {
					t.Fatalf("seed %d step %d: Lookup(%s) = %+v %v, want expiry %d closing %v", seed, step, id, info, ok, e, n.closing[id])
				}
			}
		}
	}
}

func TestTrackerNextExpirySkipsEmptiedBuckets(t *testing.T) {
	tr := newTracker(t, ms(10))
	require.NoError(t, tr.Add(1, ms(100), at(0)))
	require.NoError(t, tr.Add(2, ms(300), at(0)))
	next, ok := tr.NextExpiry()
	require.True(t, ok)
	assert.Equal(t, at(110), next)
	require.True(t, tr.Touch(1, at(250))) // bucket 110 is now empty
	next, ok = tr.NextExpiry()
	require.True(t, ok)
	assert.Equal(t, at(310), next)
	// A session touched back into a bucket that was dropped is still found.
	require.NoError(t, tr.Add(3, ms(100), at(0)))
	next, _ = tr.NextExpiry()
	assert.Equal(t, at(110), next)
	assert.Equal(t, []ID{3}, tr.Expired(at(200)))
}

// A new leader gives every session a full timeout from its takeover, so
// sessions whose old expiry has passed, or that the old leader was closing,
// survive a failover.
func TestTrackerResetAfterFailover(t *testing.T) {
	old := newTracker(t, ms(100))
	require.NoError(t, old.Add(1, time.Second, at(0)))
	require.NoError(t, old.Add(2, 5*time.Second, at(0)))
	require.NoError(t, old.Add(3, time.Second, at(0)))
	assert.Equal(t, []ID{1, 3}, old.Expired(at(1100))) // closeSession proposed...
	// ...but the old leader dies before it commits. The new leader started
	// its tracker earlier, on a different tick grid, and takes over at 1500.
	tr, err := NewTracker(ms(100), at(-37))
	require.NoError(t, err)
	require.NoError(t, tr.Add(99, time.Second, at(-37))) // Reset drops it
	require.NoError(t, tr.Reset([]Entry{{1, time.Second}, {2, 5 * time.Second}, {3, time.Second}}, at(1500)))
	assert.Equal(t, 3, tr.Len())
	_, ok := tr.Lookup(99)
	assert.False(t, ok)
	for _, id := range []ID{1, 2, 3} {
		info, ok := tr.Lookup(id)
		require.True(t, ok)
		assert.False(t, info.Closing, "%s", id)
		assert.False(t, info.Expiry.Before(at(1500).Add(info.Timeout)), "%s gets a full timeout from takeover, got %v", id, info.Expiry.Sub(t0))
		assert.True(t, tr.Touch(id, at(1500)))
	}
	assert.Nil(t, tr.Expired(at(2499)))
	assert.Equal(t, []ID{1, 3}, tr.Expired(at(2600)))
	assert.Nil(t, tr.Expired(at(6499)))
	assert.Equal(t, []ID{2}, tr.Expired(at(6600)))

	err = tr.Reset([]Entry{{4, time.Second}, {0, time.Second}, {5, 0}}, at(7000))
	require.ErrorIs(t, err, ErrInvalidID)
	require.ErrorIs(t, err, ErrInvalidTimeout)
	assert.Equal(t, 1, tr.Len(), "valid entries are kept")
}

// Expired costs O(expired), not O(sessions): with 100k live sessions far
// from expiry, expiring a handful touches only those.
func TestTrackerExpireIsProportionalToExpired(t *testing.T) {
	tr := newTracker(t, ms(10))
	const live = 100_000
	for i := 1; i <= live; i++ {
		if err := tr.Add(ID(i), time.Hour, at(int64(i%1000))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 7; i++ {
		require.NoError(t, tr.Add(ID(live+i), ms(100), at(0)))
	}
	tr.scanned = 0
	assert.Nil(t, tr.Expired(at(50)))
	assert.Equal(t, 0, tr.scanned)
	got := tr.Expired(at(200))
	assert.Len(t, got, 7)
	assert.Equal(t, 7, tr.scanned)
	allocs := testing.AllocsPerRun(100, func() { tr.Expired(at(300)) })
	assert.Zero(t, allocs, "an Expired call with nothing due allocates nothing")
}
