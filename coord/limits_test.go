package coord

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/tree"
)

// Requests are bounded as a whole (issue 10 items 1 and 9): a request above
// a log record or a frame is refused with ErrRequestTooLarge before it
// reaches the log, and the cluster keeps committing.

// bigCreates is a Multi of n creates of 1 MiB each: each op is within
// MaxDataSize, the whole is not within one log record (9) or frame (17).
func bigCreates(prefix string, n int) []Op {
	data := bytes.Repeat([]byte("x"), 1<<20)
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = CreateOp(fmt.Sprintf("%s%d", prefix, i), data, Persistent)
	}
	return ops
}

// TestRequestAboveLogRecordIsRefused: 9 × 1 MiB creates in one Multi on a
// durable cluster (on the old code the leader and a follower fail-stopped
// with "wal: record too large" and the cluster lost its quorum).
func TestRequestAboveLogRecordIsRefused(t *testing.T) {
	c := startCluster(t, 3, withDataDirs(t))
	checkRefusedThenCommits(t, c, 9)
}

// TestRequestAboveFrameIsRefused: 17 × 1 MiB in memory (on the old code the
// txn exceeded the 16 MiB frame and every write on every node timed out).
func TestRequestAboveFrameIsRefused(t *testing.T) {
	c := startCluster(t, 3, nil)
	checkRefusedThenCommits(t, c, 17)
}

func checkRefusedThenCommits(t *testing.T, c *testCluster, n int) {
	ctx := ctxT(t)
	l := c.leader()
	var f uint64
	for id := range c.nodes {
		if id != l {
			f = id
		}
	}
	for _, at := range []uint64{l, f} {
		_, err := c.nodes[at].Multi(ctx, bigCreates("/big", n)...)
		require.ErrorIs(t, err, ErrRequestTooLarge, "at node %d", at)
		_, err = c.nodes[at].Multi(ctx, make([]Op, MaxMultiOps+1)...)
		require.ErrorIs(t, err, ErrRequestTooLarge, "too many ops at node %d", at)
	}
	// The cluster keeps committing, everywhere.
	for id, node := range c.nodes {
		_, err := node.Create(ctx, fmt.Sprintf("/after%d", id), nil, Persistent)
		require.NoError(t, err, "write through node %d", id)
		require.NoError(t, node.zab.Err(), "node %d replication", id)
	}
	for id, node := range c.nodes {
		require.NoError(t, node.Sync(ctx))
		_, ok, err := node.Exists(ctx, "/big0")
		require.NoError(t, err)
		require.False(t, ok, "node %d applied part of a refused request", id)
	}
}

// TestLargestCreateFitsARequest: a create at the largest MaxDataSize Validate
// accepts, with the longest path, fits MaxRequestSize.
func TestLargestCreateFitsARequest(t *testing.T) {
	path := "/" + strings.Repeat("p", tree.MaxPathLen-1)
	b, err := encodeRequest(&request{Origin: 1<<64 - 1, ReqID: 1<<64 - 1, Time: 1<<63 - 1, Session: 1<<63 - 1,
		MaxData: maxDataSizeLimit, Op: tree.Op{Type: tree.OpCreate, Path: path, Data: make([]byte, maxDataSizeLimit),
			Mode: tree.PersistentSequentialWithTTL, TTL: tree.MaxTTL}})
	require.NoError(t, err)
	require.Less(t, len(b), MaxRequestSize)
	cfg := validLocal()
	cfg.MaxDataSize = maxDataSizeLimit
	require.NoError(t, cfg.Validate())
}
