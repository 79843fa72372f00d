package tree

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRestoreKeepsWatchesAndReportsChanges(t *testing.T) {
	a := newApplier(Options{})
	a.create(t, "/keep", "", Persistent)
	a.create(t, "/gone", "", Persistent)
	a.create(t, "/data", "v1", Persistent)
	a.create(t, "/sub", "", Persistent)

	// b is a later state of the same history.
	b := newApplier(Options{})
	for _, p := range []string{"/keep", "/gone", "/data", "/sub"} {
		b.create(t, p, "", Persistent)
	}
	b.apply(0, Op{Type: OpDelete, Path: "/gone", Version: -1})
	b.apply(0, Op{Type: OpSetData, Path: "/data", Data: []byte("v2"), Version: -1})
	b.create(t, "/new", "", Persistent)
	b.create(t, "/sub/x", "", Persistent)
	var snap bytes.Buffer
	_, err := b.t.WriteSnapshot(&snap)
	require.NoError(t, err)

	keep, gone, data, created, sub := &recorder{}, &recorder{}, &recorder{}, &recorder{}, &recorder{}
	_, _, _ = a.t.Get("/keep", keep)
	_, _, _ = a.t.Get("/gone", gone)
	_, _, _ = a.t.Get("/data", data)
	_, _, _ = a.t.Exists("/new", created)
	require.NoError(t, a.t.AddWatch("/sub", sub, true))

	require.NoError(t, a.t.Restore(&snap))
	require.Equal(t, b.t.Digest(), a.t.Digest())
	require.Equal(t, b.zxid, a.t.LastZxid())
	checkDigest(t, a.t)
	z := b.zxid
	require.Empty(t, keep.take())
	require.Equal(t, []Event{{Type: EventNodeDeleted, Path: "/gone", Zxid: z}}, gone.take())
	require.Equal(t, []Event{{Type: EventNodeDataChanged, Path: "/data", Zxid: z}}, data.take())
	require.Equal(t, []Event{{Type: EventNodeCreated, Path: "/new", Zxid: z}}, created.take())
	require.Equal(t, []Event{{Type: EventNodeCreated, Path: "/sub/x", Zxid: z}}, sub.take())

	// A bad snapshot leaves the tree as it was.
	before := a.t.Digest()
	require.ErrorIs(t, a.t.Restore(bytes.NewReader([]byte("junk"))), ErrCorruptSnapshot)
	require.Equal(t, before, a.t.Digest())
}
