package tree

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAddWatchFromResumesWithoutGaps(t *testing.T) {
	a := newApplier(Options{WatchHistory: 8})
	a.create(t, "/r", "", Persistent)
	mark := a.zxid
	a.create(t, "/r/a", "", Persistent)                        // created /r/a, children /r
	a.apply(0, Op{Type: OpSetData, Path: "/r/a", Version: -1}) // data /r/a
	a.create(t, "/other", "", Persistent)                      // not under /r
	a.apply(0, Op{Type: OpDelete, Path: "/r/a", Version: -1})  // deleted /r/a, children /r
	rec, flat := &recorder{}, &recorder{}
	require.NoError(t, a.t.AddWatchFrom("/r", rec, true, mark))
	require.NoError(t, a.t.AddWatchFrom("/r", flat, false, mark))
	require.Equal(t, []Event{
		{Type: EventNodeCreated, Path: "/r/a", Zxid: mark + 1},
		{Type: EventNodeDataChanged, Path: "/r/a", Zxid: mark + 2},
		{Type: EventNodeDeleted, Path: "/r/a", Zxid: mark + 4},
	}, rec.take())
	require.Equal(t, []Event{
		{Type: EventNodeChildrenChanged, Path: "/r", Zxid: mark + 1},
		{Type: EventNodeChildrenChanged, Path: "/r", Zxid: mark + 4},
	}, flat.take())
	// Live events follow the replay.
	a.create(t, "/r/b", "", Persistent)
	require.Equal(t, []Event{{Type: EventNodeCreated, Path: "/r/b", Zxid: a.zxid}}, rec.take())

	// Too old: the ring of 8 events has moved on.
	for i := 0; i < 10; i++ {
		a.apply(0, Op{Type: OpSetData, Path: "/r", Version: -1})
	}
	require.ErrorIs(t, a.t.AddWatchFrom("/r", &recorder{}, true, mark), ErrHistoryCompacted)
	require.ErrorIs(t, a.t.AddWatchFrom("/r", &recorder{}, true, a.zxid+1), ErrBadArguments)
	require.NoError(t, a.t.AddWatchFrom("/r", &recorder{}, true, a.zxid))
	require.ErrorIs(t, a.t.AddWatchFrom("r", &recorder{}, true, a.zxid), ErrInvalidPath)

	none := newApplier(Options{WatchHistory: -1})
	none.create(t, "/x", "", Persistent)
	require.ErrorIs(t, none.t.AddWatchFrom("/x", &recorder{}, false, 0), ErrHistoryCompacted)
	require.NoError(t, none.t.AddWatchFrom("/x", &recorder{}, false, none.zxid))
}
