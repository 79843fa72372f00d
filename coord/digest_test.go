package coord

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
)

// Replicas prove they agree (issue 10): one follower's tree is corrupted in
// memory (a znode no txn created); the leader's next digest check finds it
// and that follower stops serving, loudly, instead of answering with
// different data, while the others go on.
func TestDigestCheckStopsDivergedReplica(t *testing.T) {
	var logs syncBuffer
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	ctx := ctxT(t)
	l := c.leader()
	var f, g uint64
	for id := range c.nodes {
		switch {
		case id == l:
		case f == 0:
			f = id
		default:
			g = id
		}
	}
	round := 0
	write := func(k int) {
		round++
		for i := range k {
			_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/n-%d-%d", round, i), nil, Persistent)
			require.NoError(t, err)
		}
	}
	write(2 * digestEvery) // checks pass while the replicas agree
	for id, n := range c.nodes {
		require.NoError(t, n.Err(), "node %d", id)
	}

	// Corrupt f's tree behind the replication's back.
	res := c.nodes[f].tree.Apply(tree.Txn{Zxid: 1 << 60, Op: tree.Op{Type: tree.OpCreate, Path: "/corrupt"}})
	require.NoError(t, res.Err)
	write(2 * digestEvery)
	require.Eventually(t, func() bool { return c.nodes[f].Err() != nil }, 10*time.Second, 10*time.Millisecond,
		"the diverged follower still serves")
	require.ErrorIs(t, c.nodes[f].Err(), ErrDiverged)
	require.ErrorIs(t, c.nodes[f].Err(), ErrFailed)
	_, _, err := c.nodes[f].Get(ctx, "/corrupt")
	require.ErrorIs(t, err, ErrDiverged, "no read answers from the diverged tree")
	require.True(t, strings.Contains(logs.String(), "differs from the leader's"), "said loudly")
	for _, id := range []uint64{l, g} {
		require.NoError(t, c.nodes[id].Err(), "node %d", id)
	}
	_, err = c.nodes[l].Create(ctx, "/after", nil, Persistent)
	require.NoError(t, err, "the others still have a quorum")
	require.NoError(t, c.nodes[g].Sync(ctx))
	_, _, err = c.nodes[g].Get(ctx, "/after")
	require.NoError(t, err)
}
