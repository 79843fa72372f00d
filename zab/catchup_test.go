package zab_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNodeFollowerCatchesUpAfterBigEntries stops a follower, writes 3 MB
// in 100 KB entries without it, and starts it again on its address: it
// must catch up from the leader's log within a few seconds, under -race
// on a loaded machine too. (Seen: with entries' data read back from disk
// on the leader's driver, the follower stayed FOLLOWING at its old last
// zxid for good in 6 of 8 runs beside three CPU hogs, and the leader lost
// its quorum.)
func TestNodeFollowerCatchesUpAfterBigEntries(t *testing.T) {
	c := newCluster(t, 3, true)
	leader := c.leader(10 * time.Second)
	value := strings.Repeat("v", 100<<10)
	last := c.propose(leader, "x")
	c.waitApplied(last)
	f := c.follower(leader)
	c.stop(f)
	for i := range 30 {
		last = c.propose(leader, fmt.Sprintf("%s%d", value, i))
	}
	c.start(f, c.transport(f, c.addrs[f]))
	if !assertEventually(func() bool { return c.nodes[f].Status().Applied >= last }, 10*time.Second) {
		for id, n := range c.nodes {
			st := n.Status()
			t.Logf("node %v: %+v last %v committed %v applied %v progress %+v",
				id, st.SoftState, st.LastZxid, st.Committed, st.Applied, st.Progress)
		}
		require.FailNow(t, "the follower did not catch up", "follower %v, last %v", f, last)
	}
	c.waitApplied(last)
}
