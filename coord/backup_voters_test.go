package coord

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// TestBackupVotersAtItsZxid: a backup carries the voter configuration in
// force at its own zxid, which the configuration now in force may postdate:
// a voter added after the last txn of the tree is not in the backup's
// voters (the log still knows the one before), and is once a txn follows.
func TestBackupVotersAtItsZxid(t *testing.T) {
	c := startCluster(t, 3, lenient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := c.nodes[1]
	_, err := n.Create(ctx, "/before", nil, Persistent)
	require.NoError(t, err)
	z := zab.Zxid(n.tree.LastZxid())

	c.joinObserver(4)
	require.NoError(t, n.AddVoter(ctx, 4))
	require.Equal(t, []uint64{1, 2, 3, 4}, n.Voters())
	require.Greater(t, n.zab.Status().ConfigZxid, z)
	v, err := n.votersAt(z)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, v, "through the log: the change came after z")

	var buf bytes.Buffer
	info, err := n.Backup(ctx, &buf)
	require.NoError(t, err)
	if zab.Zxid(info.Zxid) < n.zab.Status().ConfigZxid {
		require.Equal(t, []uint64{1, 2, 3}, info.Voters)
	}
	_, err = n.Create(ctx, "/after", nil, Persistent)
	require.NoError(t, err)
	buf.Reset()
	info, err = n.Backup(ctx, &buf)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 4}, info.Voters)
	read, err := ReadBackup(&buf)
	require.NoError(t, err)
	require.Equal(t, info.Voters, read.Voters)
}
