package coord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A second live node started with the id of a running one (the leader's or
// a follower's, after the cluster has run for a while) is refused: its Join
// fails with ErrDuplicateID, it takes no part, and the first one and the
// cluster go on.
func TestJoinRefusesDuplicateID(t *testing.T) {
	for _, dupOf := range []string{"leader", "follower"} {
		t.Run(dupOf, func(t *testing.T) {
			c := startCluster(t, 3, nil)
			ctx := ctxT(t)
			l := c.leader()
			id := l
			if dupOf == "follower" {
				id = l%3 + 1
			}
			for i := range 50 { // running for a while
				_, err := c.nodes[l].Create(ctx, fmt.Sprintf("/before-%d", i), nil, Persistent)
				require.NoError(t, err)
			}
			cfg := c.cfgs[id]
			cfg.GossipBindAddr = freeAddr(t)
			cfg.JoinTimeout = 20 * time.Second
			start := time.Now()
			dup, err := Join(cfg)
			if err == nil {
				dup.Shutdown()
			}
			require.ErrorIs(t, err, ErrDuplicateID, "the second node with id %d joined", id)
			t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)

			require.NoError(t, c.nodes[id].Err())
			_, err = c.nodes[l].Create(ctx, "/after", nil, Persistent)
			require.NoError(t, err)
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, c.nodes[id].Sync(sctx))
			_, _, err = c.nodes[id].Get(ctx, "/after")
			require.NoError(t, err, "the first node with id %d still serves", id)
		})
	}
}
