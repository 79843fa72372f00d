package zab_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
	"github.com/coord-dev/coord/zab/tcp"
)

// TestSeedDataDir: three data directories seeded with one image start a
// cluster holding it, with the seeded voters, whose first new entry opens
// an epoch after the image's; a used directory is never seeded again.
func TestSeedDataDir(t *testing.T) {
	img := &logSM{entries: []zab.Entry{
		{Zxid: zab.NewZxid(3, 1), Data: []byte("a")},
		{Zxid: zab.NewZxid(3, 2), Data: []byte("b")},
		{Zxid: zab.NewZxid(4, 7), Data: []byte("c")},
	}}
	var buf bytes.Buffer
	z, err := img.Snapshot(&buf)
	require.NoError(t, err)

	c := &cluster{t: t, addrs: map[zab.PeerID]string{}, dirs: map[zab.PeerID]string{},
		nodes: map[zab.PeerID]*zab.Node{}, sms: map[zab.PeerID]*logSM{}}
	trs := map[zab.PeerID]*tcp.Transport{}
	for i := 1; i <= 3; i++ {
		id := zab.PeerID(i)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
		snap := zab.Snapshot{Zxid: z, Data: buf.Bytes(), Voters: []zab.PeerID{1, 2, 3}}
		require.NoError(t, zab.SeedDataDir(c.dirs[id], "", id, snap))
		require.ErrorIs(t, zab.SeedDataDir(c.dirs[id], "", id, snap), zab.ErrDataDir, "seeded twice")
		trs[id] = c.transport(id, "127.0.0.1:0")
	}
	for _, id := range c.ids {
		c.start(id, trs[id])
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	l := c.leader(10 * time.Second)
	next := c.propose(l, "d")
	require.Greater(t, next.Epoch(), z.Epoch())
	for _, id := range c.ids {
		require.Eventually(t, func() bool { return len(c.sms[id].snapshot()) == 4 }, 10*time.Second, 5*time.Millisecond,
			"node %v applies the new entry after the image", id)
		got := c.sms[id].snapshot()
		require.Equal(t, img.entries, got[:3], "node %v holds the image", id)
		require.Equal(t, next, got[3].Zxid)
		require.Equal(t, []zab.PeerID{1, 2, 3}, c.nodes[id].Status().Voters)
	}

	require.ErrorIs(t, zab.SeedDataDir(t.TempDir(), "", 1, zab.Snapshot{Zxid: z, Data: buf.Bytes()}), zab.ErrInvalidConfig, "no voters")
	require.ErrorIs(t, zab.SeedDataDir(t.TempDir(), "", 0, zab.Snapshot{Zxid: z, Data: buf.Bytes(), Voters: []zab.PeerID{1}}), zab.ErrInvalidConfig, "node 0")
}
