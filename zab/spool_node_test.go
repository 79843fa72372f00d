package zab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/coord-dev/coord/zab"
)

// damagingSpool is a SnapSpool in memory whose first Bytes reports the
// image damaged, as a spool file changed under the learner would.
type damagingSpool struct {
	mu      sync.Mutex
	buf     []byte
	reads   int
	damaged bool
}

func (s *damagingSpool) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = nil
	return nil
}

func (s *damagingSpool) Append(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	return nil
}

func (s *damagingSpool) Len() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.buf))
}

func (s *damagingSpool) Bytes() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if !s.damaged {
		s.damaged = true
		return nil, fmt.Errorf("%w: planted", zab.ErrSpoolDamaged)
	}
	return s.buf, nil
}

func (s *damagingSpool) counts() (reads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// TestNodeSpoolsStreamedSnapshot stops a durable follower until the
// leader's log is compacted past it, so it needs a SNAP larger than one
// message: the snapshot is streamed to it, spooled in its DataDir,
// installed, and the spool emptied (and removed at Close; one a crash
// left is removed at start); with a spool whose first read back is damaged the image is not
// installed, and the follower asks again and gets there.
func TestNodeSpoolsStreamedSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage bool
	}{{"file in DataDir", false}, {"damaged read back", true}} {
		t.Run(tc.name, func(t *testing.T) {
			spool := &damagingSpool{}
			var lagger zab.PeerID
			c := newClusterCore(t, 3, true, func(id zab.PeerID, cfg *zab.Config) {
				cfg.MaxMsgBytes = 256 // the snapshot streams in many chunks
				if tc.damage && id == lagger {
					cfg.SnapSpool = spool
				}
			})
			leader := c.leader(10 * time.Second)
			lagger = c.follower(leader)
			before := c.propose(leader, "before")
			c.waitApplied(before)
			c.stop(lagger)
			var last zab.Zxid
			for i := range 160 { // snapshots every 50: the log is compacted past the lagger
				last = c.propose(leader, fmt.Sprintf("while-away-%03d", i))
			}
			c.waitApplied(last)

			path := filepath.Join(c.dirs[lagger], "snapstream.tmp")
			require.NoError(t, os.WriteFile(path, []byte("left by a crash"), 0o600))
			c.start(lagger, c.transport(lagger, c.addrs[lagger]))
			got := c.waitApplied(last)
			require.Contains(t, entryData(got), "while-away-159")
			st := c.nodes[lagger].Status().SnapStreams
			require.Greater(t, st.BytesReceived, uint64(256), "the snapshot was streamed to the lagger")
			require.False(t, st.Receiving)
			if tc.damage {
				require.GreaterOrEqual(t, spool.counts(), 2, "the damaged image was not installed: asked again")
				return
			}
			fi, err := os.Stat(path)
			require.NoError(t, err, "the snapshot was spooled in the DataDir")
			require.Zero(t, fi.Size(), "emptied once installed")
			c.stop(lagger)
			require.NoFileExists(t, path, "removed at Close")

			// Up to date, it needs no snapshot when it starts again: a
			// spool a crash left is removed at start all the same.
			require.NoError(t, os.WriteFile(path, []byte("left by a crash"), 0o600))
			c.start(lagger, c.transport(lagger, c.addrs[lagger]))
			c.waitApplied(last)
			require.NoFileExists(t, path, "a spool left by a crash is removed at start")
		})
	}
}

func entryData(ents []zab.Entry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, string(e.Data))
	}
	return out
}
