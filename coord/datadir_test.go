package coord

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDataDirIdentity: every member records the cluster's id, chosen by
// the first established leader, and reports the same; a data directory is
// refused for another node or another cluster, with an error that says
// which (issue 10 item 4: "a data directory from another cluster or
// another node is accepted").
func TestDataDirIdentity(t *testing.T) {
	dirs := map[uint64]string{}
	c := startCluster(t, 3, func(cfg *Config) {
		dirs[cfg.NodeID] = t.TempDir()
		cfg.DataDir = dirs[cfg.NodeID]
	})
	ctx := ctxT(t)
	_, err := c.nodes[1].Create(ctx, "/x", nil, Persistent)
	require.NoError(t, err)
	var id string
	require.Eventually(t, func() bool {
		id = c.nodes[1].Stats().ClusterID
		for _, n := range c.nodes {
			if s := n.Stats().ClusterID; s == "" || s != id {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "members report one cluster id")
	t.Logf("cluster id %s", id)

	require.NoError(t, c.nodes[3].Close(ctx))
	delete(c.nodes, 3)
	join := func(cfg Config) error {
		jctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := JoinContext(jctx, cfg)
		if err == nil {
			_ = n.Close(jctx)
		}
		return err
	}
	other := c.cfgs[3]
	other.NodeID = 4
	other.Voters = []uint64{1, 2, 3, 4}
	err = join(other)
	require.ErrorIs(t, err, ErrDataDirMismatch)
	require.ErrorContains(t, err, "belongs to node 3, not to node 4")

	other = c.cfgs[3]
	other.Cluster = "elsewhere"
	err = join(other)
	require.ErrorIs(t, err, ErrDataDirMismatch)
	require.ErrorContains(t, err, `belongs to cluster "test", not to cluster "elsewhere"`)

	// Its own node and cluster still open it.
	n, err := JoinContext(ctx, c.cfgs[3])
	require.NoError(t, err)
	c.nodes[3] = n
	require.Eventually(t, func() bool { return n.Stats().ClusterID == id }, 10*time.Second, 10*time.Millisecond)
}
