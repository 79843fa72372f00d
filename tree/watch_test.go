package tree

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOneShotWatches(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/w", "", Persistent)
	a.create(t, "/w/n", "", Persistent)
	ev := func(typ EventType, path string) Event { return Event{Type: typ, Path: path, Zxid: a.zxid} }

	data, child, exist := &recorder{}, &recorder{}, &recorder{}
	_, _, err := a.t.Get("/w/n", data)
	require.NoError(t, err)
	_, _, err = a.t.Children("/w", child)
	require.NoError(t, err)
	_, ok, err := a.t.Exists("/w/new", exist)
	require.NoError(t, err)
	require.False(t, ok)

	a.apply(0, Op{Type: OpSetData, Path: "/w/n", Version: -1})
	require.Equal(t, []Event{ev(EventNodeDataChanged, "/w/n")}, data.take())
	a.apply(0, Op{Type: OpSetData, Path: "/w/n", Version: -1})
	require.Empty(t, data.take(), "one-shot: fired once")

	a.create(t, "/w/new", "", Persistent)
	require.Equal(t, []Event{ev(EventNodeCreated, "/w/new")}, exist.take())
	require.Equal(t, []Event{ev(EventNodeChildrenChanged, "/w")}, child.take())

	// Delete fires the data and child watches of the node itself once.
	both := &recorder{}
	_, _, _ = a.t.Get("/w/new", both)
	_, _, _ = a.t.Children("/w/new", both)
	_, _, _ = a.t.Children("/w", child)
	a.apply(0, Op{Type: OpDelete, Path: "/w/new", Version: -1})
	require.Equal(t, []Event{ev(EventNodeDeleted, "/w/new")}, both.take())
	require.Equal(t, []Event{ev(EventNodeChildrenChanged, "/w")}, child.take())
	require.Zero(t, a.t.WatchCount(), "fired one-shot watches are gone")

	// Get on a missing node sets no watch; Exists does.
	_, _, err = a.t.Get("/w/none", data)
	require.ErrorIs(t, err, ErrNoNode)
	_, _, err = a.t.Children("/w/none", data)
	require.ErrorIs(t, err, ErrNoNode)
	require.Zero(t, a.t.WatchCount())
}

func TestPersistentWatches(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/p", "", Persistent)
	ev := func(typ EventType, path string) Event { return Event{Type: typ, Path: path, Zxid: a.zxid} }

	flat, rec := &recorder{}, &recorder{}
	require.NoError(t, a.t.AddWatch("/p", flat, false))
	require.NoError(t, a.t.AddWatch("/p", rec, true))

	a.create(t, "/p/c", "", Persistent)
	require.Equal(t, []Event{ev(EventNodeChildrenChanged, "/p")}, flat.take())
	require.Equal(t, []Event{ev(EventNodeCreated, "/p/c")}, rec.take(), "recursive watches get no child events")
	a.create(t, "/p/c/d", "", Persistent)
	require.Empty(t, flat.take())
	require.Equal(t, []Event{ev(EventNodeCreated, "/p/c/d")}, rec.take())
	a.apply(0, Op{Type: OpSetData, Path: "/p", Version: -1})
	require.Equal(t, []Event{ev(EventNodeDataChanged, "/p")}, flat.take())
	require.Equal(t, []Event{ev(EventNodeDataChanged, "/p")}, rec.take())
	a.apply(0, Op{Type: OpSetData, Path: "/p", Version: -1})
	require.Len(t, flat.take(), 1, "persistent: fires again")
	require.Len(t, rec.take(), 1)

	// A watcher matched by several registrations hears each event once.
	require.NoError(t, a.t.AddWatch("/p/c", rec, true))
	_, _, _ = a.t.Get("/p/c/d", rec)
	a.apply(0, Op{Type: OpSetData, Path: "/p/c/d", Version: -1})
	require.Equal(t, []Event{ev(EventNodeDataChanged, "/p/c/d")}, rec.take())

	// Removal, by kind.
	require.ErrorIs(t, a.t.RemoveWatches("/p", flat, WatchData), ErrNoWatcher)
	require.NoError(t, a.t.RemoveWatches("/p", flat, WatchPersistent))
	require.ErrorIs(t, a.t.RemoveWatches("/p", flat, WatchAny), ErrNoWatcher)
	require.NoError(t, a.t.RemoveWatches("/p", rec, WatchAny))
	a.apply(0, Op{Type: OpSetData, Path: "/p", Version: -1})
	require.Empty(t, flat.take())
	require.Empty(t, rec.take())
	a.apply(0, Op{Type: OpSetData, Path: "/p/c", Version: -1})
	require.Len(t, rec.take(), 1, "the watch on /p/c remains")
	a.t.RemoveWatcher(rec)
	require.Zero(t, a.t.WatchCount())
	a.apply(0, Op{Type: OpSetData, Path: "/p/c", Version: -1})
	require.Empty(t, rec.take())

	require.ErrorIs(t, a.t.AddWatch("p", flat, false), ErrInvalidPath)
	require.ErrorIs(t, a.t.AddWatch("/p", nil, false), ErrBadArguments)
	require.ErrorIs(t, a.t.RemoveWatches("p", flat, WatchAny), ErrInvalidPath)

	// A persistent watch on a missing node sees its creation and deletion.
	ghost := &recorder{}
	require.NoError(t, a.t.AddWatch("/ghost", ghost, false))
	a.create(t, "/ghost", "", Persistent)
	require.Equal(t, []Event{ev(EventNodeCreated, "/ghost")}, ghost.take())
	a.apply(0, Op{Type: OpDelete, Path: "/ghost", Version: -1})
	require.Equal(t, []Event{ev(EventNodeDeleted, "/ghost")}, ghost.take())
}

func TestRecursiveWatchOnRoot(t *testing.T) {
	a := newApplier(Options{})
	all := &recorder{}
	require.NoError(t, a.t.AddWatch("/", all, true))
	a.create(t, "/a", "", Persistent)
	a.create(t, "/a/b", "", Persistent)
	a.apply(0, Op{Type: OpDelete, Path: "/a/b", Version: -1})
	require.Equal(t, []Event{
		{Type: EventNodeCreated, Path: "/a", Zxid: 1},
		{Type: EventNodeCreated, Path: "/a/b", Zxid: 2},
		{Type: EventNodeDeleted, Path: "/a/b", Zxid: 3},
	}, all.take())
}

// orderWatcher records the zxids of the events it is told, so a concurrent
// reader can check it was told of a change before it could read the result.
type orderWatcher struct {
	mu   sync.Mutex
	seen []int64
}

func (o *orderWatcher) Notify(ev Event) {
	o.mu.Lock()
	o.seen = append(o.seen, ev.Zxid)
	o.mu.Unlock()
}

func (o *orderWatcher) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

// TestWatchBeforeRead: whenever a reader observes version v of a node, the
// persistent watcher has already been told of every change up to v.
func TestWatchBeforeRead(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/v", "", Persistent)
	w := &orderWatcher{}
	require.NoError(t, a.t.AddWatch("/v", w, false))
	const n = 2000
	done := make(chan struct{})
	var violations int
	go func() {
		defer close(done)
		for {
			_, st, err := a.t.Get("/v", nil)
			if err != nil {
				return
			}
			if got := w.count(); got < int(st.Version) {
				violations++
			}
			if st.Version == n {
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		a.apply(0, Op{Type: OpSetData, Path: "/v", Version: -1})
	}
	<-done
	require.Zero(t, violations)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Len(t, w.seen, n)
	for i := 1; i < len(w.seen); i++ {
		require.Greater(t, w.seen[i], w.seen[i-1], "events in zxid order")
	}
}
